// Side by side with Debian's reference plugins (/usr/lib/cni): the same configuration run with
// the reference plugin and with ours, each in its own node/pod namespaces, must give the same
// pod-side state (link type, MTU, addresses, routes) and the same result (IPs, routes, DNS,
// interface layout). Both use the reference host-local IPAM so only the plugins differ; with
// cninet-host-local built, ours is also run with it (drop-in replacement of the pair).
#include <sys/socket.h>

#include <cstdlib>
#include <iostream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin_env.h"

namespace cninet::testing {
namespace {

struct Case {
  std::string name;
  std::string ref_type;  // "ptp" or "bridge"
  std::string our_type;  // "cninet-ptp" or "cninet-bridge"
  std::string extra;     // Plugin keys (JSON object text).
  std::string ranges;    // host-local ranges; "" = no IPAM (L2 only).
  std::string routes = "[]";
};

std::vector<Case> Cases() {
  return {
      {"ptp_ipv4", "ptp", "cninet-ptp", R"({"mtu": 1400})", R"([[{"subnet":"10.11.0.0/24"}]])",
       R"([{"dst":"0.0.0.0/0"}])"},
      {"ptp_dual_stack", "ptp", "cninet-ptp", R"({"mtu": 1480})",
       R"([[{"subnet":"10.12.0.0/24"}],[{"subnet":"fd00:12::/64"}]])",
       R"([{"dst":"0.0.0.0/0"},{"dst":"::/0"},{"dst":"192.168.0.0/16","gw":"10.12.0.254"}])"},
      {"bridge_default_gateway_hairpin", "bridge", "cninet-bridge",
       R"({"bridge": "cbr0", "isDefaultGateway": true, "hairpinMode": true, "mtu": 1450})",
       R"([[{"subnet":"10.13.0.0/24"}]])", R"([{"dst":"192.168.0.0/16"}])"},
      {"bridge_dual_stack_gateway", "bridge", "cninet-bridge",
       R"({"bridge": "cbr1", "isGateway": true})",
       R"([[{"subnet":"10.14.0.0/24"}],[{"subnet":"fd00:14::/64"}]])",
       R"([{"dst":"10.99.0.0/16"},{"dst":"fd00:99::/48"}])"},
      {"bridge_promisc", "bridge", "cninet-bridge",
       R"({"bridge": "cbr2", "isDefaultGateway": true, "promiscMode": true})",
       R"([[{"subnet":"10.15.0.0/24"}]])"},
      {"bridge_layer2_only", "bridge", "cninet-bridge", R"({"bridge": "cbr3", "mtu": 9000})", ""},
  };
}

class SideBySideTest : public ::testing::TestWithParam<Case> {};

std::string Config(const Case& c, const std::string& type, const Node& node,
                   std::string_view ipam_type) {
  nlohmann::json conf = nlohmann::json::parse(c.extra);
  conf["cniVersion"] = "1.0.0";
  conf["name"] = "sbs";
  conf["type"] = type;
  if (!c.ranges.empty())
    conf["ipam"] = HostLocalIpam(node.data_dir(), c.ranges, c.routes, ipam_type);
  return conf.dump();
}

struct Observed {
  std::vector<std::string> pod;
  nlohmann::json result;
  std::vector<std::string> bridge;  // Node-side facts of the bridge plugin.
};

Observed RunOnce(const Case& c, const std::string& binary, const std::string& type,
                 std::string_view ipam_type) {
  Observed o;
  Node node;
  Pod pod = node.NewPod();
  std::string conf = Config(c, type, node, ipam_type);
  PluginRun add = node.Exec(binary, "ADD", "sbs-ctr", pod.path(), conf);
  EXPECT_TRUE(add.status.ok()) << type << ": " << add.raw.out << add.raw.err;
  if (!add.status.ok()) return o;
  o.pod = PodView(*pod.h, "eth0");
  o.result = NormalizedResult(add.raw.out);
  if (c.ref_type == "bridge") {
    std::string br = nlohmann::json::parse(c.extra).value("bridge", "cni0");
    auto b = node.h().GetLink(br);
    EXPECT_TRUE(b.ok()) << b.status();
    if (b.ok()) {
      o.bridge.push_back(
          cninet::StrCat("bridge kind ", b->kind, " promisc ", b->promisc, " up ", b->admin_up));
      if (auto addrs = node.h().ListAddresses(b->index); addrs.ok()) {
        for (const auto& a : *addrs) {
          if (a.scope == 0) o.bridge.push_back("bridge addr " + a.prefix.ToString());
        }
      }
      if (auto links = node.h().ListLinks(); links.ok()) {
        for (const auto& l : *links) {
          if (l.master_index == b->index) {
            o.bridge.push_back(cninet::StrCat("port kind ", l.kind, " mtu ", l.mtu, " hairpin ",
                                              l.hairpin.value_or(false)));
          }
        }
      }
      std::sort(o.bridge.begin(), o.bridge.end());
    }
  }
  // The attachment is removed again by DEL (and the node is left as it was, bridge aside).
  PluginRun del = node.Exec(binary, "DEL", "sbs-ctr", pod.path(), conf);
  EXPECT_TRUE(del.status.ok()) << type << " DEL: " << del.raw.out << del.raw.err;
  EXPECT_THAT(PodView(*pod.h, "eth0"),
              ::testing::ElementsAre(::testing::HasSubstr("no link eth0")));
  return o;
}

TEST_P(SideBySideTest, SamePodStateAndResultAsTheReferencePlugin) {
  CNINET_REQUIRE_ROOT();
  const Case& c = GetParam();
  Observed ref = RunOnce(c, RefPlugin(c.ref_type), c.ref_type, "host-local");
  Observed ours = RunOnce(c, OurPlugin(c.our_type), c.our_type, "host-local");
  ASSERT_FALSE(ref.pod.empty());
  // The views hold real facts (guards against comparing two empty views).
  EXPECT_THAT(ref.pod, ::testing::Contains(::testing::HasSubstr("kind veth")));
  if (!c.ranges.empty()) {
    EXPECT_THAT(ref.pod, ::testing::Contains(::testing::HasSubstr("addr ")));
    EXPECT_THAT(ref.pod, ::testing::Contains(::testing::HasSubstr("route ")));
  }
  if (::testing::Test::HasFailure() || getenv("CNINET_TEST_VERBOSE") != nullptr) {
    for (const auto& line : ref.pod) std::cerr << "  ref  " << line << "\n";
    for (const auto& line : ours.pod) std::cerr << "  ours " << line << "\n";
  }
  EXPECT_EQ(ours.pod, ref.pod) << "pod-side state differs";
  EXPECT_EQ(ours.result, ref.result)
      << "result differs:\n ours " << ours.result.dump() << "\n ref  " << ref.result.dump();
  EXPECT_EQ(ours.bridge, ref.bridge) << "bridge-side state differs";

  if (HaveCninetHostLocal() && !c.ranges.empty()) {
    Observed pair = RunOnce(c, OurPlugin(c.our_type), c.our_type, "cninet-host-local");
    EXPECT_EQ(pair.pod, ref.pod) << "with cninet-host-local";
    EXPECT_EQ(pair.result, ref.result) << "with cninet-host-local";
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, SideBySideTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& p) { return p.param.name; });

}  // namespace
}  // namespace cninet::testing
