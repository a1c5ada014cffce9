// Real traffic through attachments made by our plugins (run inside a node namespace): TCP
// pod-to-pod on the same node and pod-to-node, IPv4 and IPv6, for cninet-ptp and cninet-bridge.
#include <sys/socket.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin_env.h"

namespace cninet::testing {
namespace {

struct TrafficSetup {
  std::string type;
  std::string extra;
  std::string ranges;
  std::string routes = R"([{"dst":"0.0.0.0/0"},{"dst":"::/0"}])";
  std::vector<std::string> node_ips;  // Addresses the node answers on (gateways).
};

class TrafficTest : public ::testing::TestWithParam<TrafficSetup> {};

TEST_P(TrafficTest, PodToPodAndPodToNodeTcp) {
  CNINET_REQUIRE_ROOT();
  const TrafficSetup& s = GetParam();
  Node node;
  Pod a = node.NewPod();
  Pod b = node.NewPod();
  nlohmann::json conf = nlohmann::json::parse(s.extra);
  conf["cniVersion"] = HaveCninetHostLocal() ? "1.1.0" : "1.0.0";
  conf["name"] = "traffic";
  conf["type"] = s.type;
  conf["ipam"] = HostLocalIpam(node.data_dir(), s.ranges, s.routes,
                               HaveCninetHostLocal() ? "cninet-host-local" : "host-local");
  PluginRun ra = node.Exec(OurPlugin(s.type), "ADD", "pod-a", a.path(), conf.dump());
  ASSERT_TRUE(ra.status.ok()) << ra.raw.out << ra.raw.err;
  PluginRun rb = node.Exec(OurPlugin(s.type), "ADD", "pod-b", b.path(), conf.dump());
  ASSERT_TRUE(rb.status.ok()) << rb.raw.out << rb.raw.err;
  ASSERT_TRUE(ra.result.ok() && rb.result.ok());
  ASSERT_EQ(ra.result->ips.size(), rb.result->ips.size());

  uint16_t port = 7000;
  for (size_t i = 0; i < ra.result->ips.size(); ++i) {
    cni::IPAddress ip_a = ra.result->ips[i].address.address();
    cni::IPAddress ip_b = rb.result->ips[i].address.address();
    // a -> b, and the server sees a's own address (routed/bridged, no NAT).
    auto ab = TcpExchange(b.ns->ns(), ip_b, port++, a.ns->ns(), "a to b");
    ASSERT_TRUE(ab.ok()) << ip_a.ToString() << " -> " << ip_b.ToString() << ": " << ab.status();
    EXPECT_EQ(ab->reply, "echo:a to b");
    EXPECT_EQ(ab->client_addr, ip_a.ToString());
    auto ba = TcpExchange(a.ns->ns(), ip_a, port++, b.ns->ns(), "b to a");
    ASSERT_TRUE(ba.ok()) << ba.status();
    // pod -> node, on the gateway address the node owns.
    cni::IPAddress gw = *ra.result->ips[i].gateway;
    auto an = TcpExchange(node.ns().ns(), gw, port++, a.ns->ns(), "a to node");
    ASSERT_TRUE(an.ok()) << "to node " << gw.ToString() << ": " << an.status();
    EXPECT_EQ(an->client_addr, ip_a.ToString());
    // node -> pod.
    auto na = TcpExchange(a.ns->ns(), ip_a, port++, node.ns().ns(), "node to a");
    ASSERT_TRUE(na.ok()) << "node to " << ip_a.ToString() << ": " << na.status();
  }

  // After DEL of b, a can no longer reach b's address, and nothing of b remains on the node.
  ASSERT_TRUE(node.Exec(OurPlugin(s.type), "DEL", "pod-b", b.path(), conf.dump()).status.ok());
  auto gone = TcpExchange(b.ns->ns(), rb.result->ips[0].address.address(), 7100, a.ns->ns(), "x",
                          std::chrono::milliseconds(300));
  EXPECT_FALSE(gone.ok());
  ASSERT_TRUE(node.Exec(OurPlugin(s.type), "DEL", "pod-a", a.path(), conf.dump()).status.ok());
}

INSTANTIATE_TEST_SUITE_P(
    Plugins, TrafficTest,
    ::testing::Values(
        TrafficSetup{"cninet-ptp", R"({"mtu": 1400})",
                     R"([[{"subnet":"10.31.0.0/24"}],[{"subnet":"fd00:31::/64"}]])"},
        // isDefaultGateway adds the default routes itself.
        TrafficSetup{"cninet-bridge", R"({"bridge": "cntr0", "isDefaultGateway": true})",
                     R"([[{"subnet":"10.32.0.0/24"}],[{"subnet":"fd00:32::/64"}]])", "[]"},
        TrafficSetup{"cninet-bridge",
                     R"({"bridge": "cntr1", "isGateway": true, "hairpinMode": true, "mtu": 1400})",
                     R"([[{"subnet":"10.33.0.0/24"}]])"}),
    [](const ::testing::TestParamInfo<TrafficSetup>& p) {
      return cninet::StrCat(p.param.type == "cninet-ptp" ? "ptp" : "bridge", p.index);
    });

}  // namespace
}  // namespace cninet::testing
