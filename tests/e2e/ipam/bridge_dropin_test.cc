// Drop-in: Debian's reference `bridge` plugin delegating IPAM to cninet-host-local (found
// through CNI_PATH, our plugin directory first), inside a "node" namespace made by the test.
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_e2e.h"

namespace cninet::ipam::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

using BridgeDropInTest = IpamE2eTest;

TEST_F(BridgeDropInTest, BridgeGetsPodAddressesFromUsAndDelFreesThem) {
  cninet::testing::ScopedNetns pod2("ippod2");
  const std::string conf =
      R"({"cniVersion":"1.0.0","name":"brnet","type":"bridge",)"
      R"("bridge":"cnibr0","isGateway":true,"ipMasq":false,)"
      R"("ipam":{"type":"cninet-host-local","dataDir":")" +
      DataDir() + R"(","ranges":[[{"subnet":"10.80.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}})";
  auto bridge = [&](const std::string& command, const std::string& id,
                    const cninet::testing::ScopedNetns& pod) {
    cninet::testing::PluginCall call;
    call.command = command;
    call.container_id = id;
    call.netns = pod.path();
    call.ifname = "eth0";
    call.path = std::string(CNINET_PLUGIN_DIR) + ":/usr/lib/cni";
    return cninet::testing::RunCniPlugin("/usr/lib/cni/bridge", call, conf, node_.name());
  };

  auto add1 = bridge("ADD", "pod1", pod_);
  ASSERT_TRUE(add1.ok()) << add1.out << add1.err;
  auto add2 = bridge("ADD", "pod2", pod2);
  ASSERT_TRUE(add2.ok()) << add2.out << add2.err;
  auto r1 = nlohmann::json::parse(add1.out);
  EXPECT_EQ(r1["ips"][0]["address"], "10.80.0.2/24");
  EXPECT_EQ(r1["ips"][0]["gateway"], "10.80.0.1");
  EXPECT_EQ(nlohmann::json::parse(add2.out)["ips"][0]["address"], "10.80.0.3/24");

  // The leases are ours (host-local's format, in our dataDir) and the pods are configured.
  std::string dir = DataDir() + "/brnet";
  EXPECT_EQ(cninet::testing::ReadFile(dir + "/10.80.0.2"), "pod1\r\neth0");
  EXPECT_EQ(cninet::testing::ReadFile(dir + "/10.80.0.3"), "pod2\r\neth0");
  auto addr = pod_.Exec("ip -4 addr show dev eth0");
  EXPECT_THAT(addr.out, HasSubstr("10.80.0.2/24"));
  auto route = pod_.Exec("ip -4 route show default");
  EXPECT_THAT(route.out, HasSubstr("via 10.80.0.1"));
  // Traffic flows: pod -> gateway on the node's bridge, pod -> pod across the bridge.
  auto ping_gw = pod_.Exec("ping -c3 -i0.2 -W2 10.80.0.1");
  EXPECT_TRUE(ping_gw.ok()) << ping_gw.out << ping_gw.err;
  auto ping_pod = pod_.Exec("ping -c3 -i0.2 -W2 10.80.0.3");
  EXPECT_TRUE(ping_pod.ok()) << ping_pod.out << ping_pod.err;

  // CHECK through the bridge (which delegates CHECK to us with its prevResult).
  {
    nlohmann::json check = nlohmann::json::parse(conf);
    check["prevResult"] = r1;
    cninet::testing::PluginCall call;
    call.command = "CHECK";
    call.container_id = "pod1";
    call.netns = pod_.path();
    call.path = std::string(CNINET_PLUGIN_DIR) + ":/usr/lib/cni";
    auto r = cninet::testing::RunCniPlugin("/usr/lib/cni/bridge", call, check.dump(), node_.name());
    EXPECT_TRUE(r.ok()) << r.out << r.err;
  }

  ASSERT_TRUE(bridge("DEL", "pod1", pod_).ok());
  ASSERT_TRUE(bridge("DEL", "pod2", pod2).ok());
  EXPECT_THAT(LeaseFiles(dir), IsEmpty());
  EXPECT_THAT(pod_.Exec("ip link show eth0").exit_code, ::testing::Ne(0));
  // DEL again is fine (idempotent all the way down).
  EXPECT_TRUE(bridge("DEL", "pod1", pod_).ok());
}

}  // namespace
}  // namespace cninet::ipam::e2e
