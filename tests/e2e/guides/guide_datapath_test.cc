// docs/embedding-the-datapath.md: cninet-guide-lb run in a "node" namespace on a veth uplink:
// it loads the datapath, attaches both uplink programs, programs the service, prints its state,
// and its RAII attachments remove the tc filters when it exits.
#include <string>

#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::testing {
namespace {

TEST(GuideDatapathTest, RunsOnceAndDetaches) {
  CNINET_REQUIRE_ROOT();
  ScopedNetns node("glb");
  ASSERT_TRUE(node.Exec("ip link add up0 type veth peer name up0p && "
                        "ip addr add 192.0.2.1/24 dev up0 && ip link set up0 up")
                  .ok());
  std::string tool = std::string(CNINET_TOOL_DIR) + "/cninet-guide-lb";
  CommandResult run = node.ExecArgv({tool, "--once", "up0", "192.0.2.1", "10.244.0.0/16",
                                     "192.0.2.100:80", "10.244.1.2:8080", "10.244.2.2:8080"});
  ASSERT_TRUE(run.ok()) << run.out << run.err;
  EXPECT_NE(run.out.find("up0: 192.0.2.100:80 -> 2 backends"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("conntrack: 0 entries"), std::string::npos) << run.out;
  // The attachments died with the process: no cninet filter is left on the uplink.
  CommandResult filters =
      node.Exec("tc filter show dev up0 ingress; tc filter show dev up0 egress");
  EXPECT_EQ(filters.out.find("cn_"), std::string::npos) << filters.out;

  // Bad input is an error, not a partial setup.
  CommandResult bad = node.ExecArgv(
      {tool, "--once", "up0", "192.0.2.1", "10.244.0.0/16", "192.0.2.100", "10.244.1.2:8080"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("not ADDRESS:PORT"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace cninet::testing
