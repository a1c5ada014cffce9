// docs/writing-a-plugin.md: cninet-guide-veth run as a runtime runs it, in a "node" namespace,
// with cninet-host-local as its IPAM plugin: ADD, CHECK, DEL and a repeated DEL.
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_util.h"

namespace cninet::testing {
namespace {

TEST(GuidePluginTest, AddCheckDelInNamespaces) {
  CNINET_REQUIRE_ROOT();
  ScopedNetns node("gnode");
  ScopedNetns pod("gpod");
  TempDir tmp;
  nlohmann::json conf = {{"cniVersion", "1.0.0"},
                         {"name", "guide"},
                         {"type", "cninet-guide-veth"},
                         {"mtu", 1400},
                         {"ipam",
                          {{"type", "cninet-host-local"},
                           {"dataDir", tmp.Sub("ipam")},
                           {"ranges", {{{{"subnet", "10.251.7.0/24"}}}}}}}};
  std::string plugin = std::string(CNINET_PLUGIN_DIR) + "/cninet-guide-veth";
  PluginCall call{.command = "ADD", .container_id = "guide1", .netns = pod.path()};

  CommandResult add = RunCniPlugin(plugin, call, conf.dump(), node.name());
  ASSERT_TRUE(add.ok()) << add.out << add.err;
  nlohmann::json result = nlohmann::json::parse(add.out);
  ASSERT_EQ(result["ips"].size(), 1u) << add.out;
  EXPECT_EQ(result["ips"][0]["address"], "10.251.7.2/24");
  EXPECT_NE(ReadFile(tmp.Sub("ipam/guide/10.251.7.2")).find("guide1"), std::string::npos);
  ASSERT_EQ(result["interfaces"].size(), 2u);
  std::string host_veth = result["interfaces"][0]["name"];

  // The pod has eth0 with the address and MTU; the node has a /32 route to it on the veth.
  CommandResult addr = pod.Exec("ip -o addr show dev eth0; ip -o link show dev eth0");
  EXPECT_NE(addr.out.find("10.251.7.2/24"), std::string::npos) << addr.out;
  EXPECT_NE(addr.out.find("mtu 1400"), std::string::npos) << addr.out;
  CommandResult route = node.Exec("ip route show 10.251.7.2");
  EXPECT_NE(route.out.find("dev " + host_veth), std::string::npos) << route.out;

  nlohmann::json check_conf = conf;
  check_conf["prevResult"] = result;
  call.command = "CHECK";
  CommandResult check = RunCniPlugin(plugin, call, check_conf.dump(), node.name());
  EXPECT_TRUE(check.ok()) << check.out << check.err;
  // CHECK notices a change behind the plugin's back.
  ASSERT_TRUE(pod.Exec("ip addr del 10.251.7.2/24 dev eth0").ok());
  CommandResult bad_check = RunCniPlugin(plugin, call, check_conf.dump(), node.name());
  EXPECT_FALSE(bad_check.ok());
  EXPECT_NE(bad_check.out.find("\"code\":100"), std::string::npos) << bad_check.out;

  call.command = "DEL";
  for (int i = 0; i < 2; ++i) {  // DEL is idempotent.
    CommandResult del = RunCniPlugin(plugin, call, conf.dump(), node.name());
    EXPECT_TRUE(del.ok()) << "DEL " << i << ": " << del.out << del.err;
  }
  EXPECT_FALSE(pod.Exec("ip link show dev eth0").ok());
  EXPECT_FALSE(node.Exec("ip link show dev " + host_veth).ok());
  // The lease is gone (host-local's layout: one file per leased address).
  EXPECT_EQ(ReadFile(tmp.Sub("ipam/guide/10.251.7.2")), "");
}

// A failing ADD leaves nothing: here IPAM succeeds and the veth cannot be created (the pod
// interface name is taken), so the rollback must delete the lease again.
TEST(GuidePluginTest, FailedAddRollsBack) {
  CNINET_REQUIRE_ROOT();
  ScopedNetns node("gnode");
  ScopedNetns pod("gpod");
  TempDir tmp;
  ASSERT_TRUE(pod.Exec("ip link add eth0 type veth peer name eth0p").ok());
  nlohmann::json conf = {{"cniVersion", "1.0.0"},
                         {"name", "guide"},
                         {"type", "cninet-guide-veth"},
                         {"ipam",
                          {{"type", "cninet-host-local"},
                           {"dataDir", tmp.Sub("ipam")},
                           {"ranges", {{{{"subnet", "10.251.8.0/24"}}}}}}}};
  std::string plugin = std::string(CNINET_PLUGIN_DIR) + "/cninet-guide-veth";
  PluginCall call{.command = "ADD", .container_id = "guide3", .netns = pod.path()};
  CommandResult add = RunCniPlugin(plugin, call, conf.dump(), node.name());
  EXPECT_FALSE(add.ok()) << add.out;
  // No lease file is left for the network (host-local keeps one file per address).
  CommandResult leases = Sh("ls " + tmp.Sub("ipam/guide") + " | grep -c '^10\\.' || true");
  EXPECT_EQ(leases.out, "0\n") << leases.out;
  CommandResult links = node.Exec("ip -o link show type veth");
  EXPECT_EQ(links.out, "") << links.out;
}

}  // namespace
}  // namespace cninet::testing
