// cninet-cni driving Debian's reference plugins (/usr/lib/cni bridge + host-local) with
// cninet-debug chained after them, inside a "node" namespace the test creates; the pod is
// another namespace. Nothing here touches the root namespace.
#include <sstream>

#include "cninet/cni/cni.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::cni {
namespace {

using ::cninet::testing::CommandResult;
using ::cninet::testing::ReadFile;
using ::cninet::testing::ScopedNetns;
using ::cninet::testing::TempDir;
using ::cninet::testing::UniqueName;
using ::cninet::testing::WriteFile;

class PeersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    node_ = std::make_unique<ScopedNetns>("node");
    pod_ = std::make_unique<ScopedNetns>("pod");
    bridge_ = UniqueName("br");
    nlohmann::json list = {
        {"cniVersion", "1.0.0"},
        {"name", "peers"},
        {"plugins",
         {{{"type", "bridge"},
           {"bridge", bridge_},
           {"isGateway", true},
           {"ipam",
            {{"type", "host-local"},
             {"subnet", "10.123.0.0/24"},
             {"dataDir", dir_.Sub("ipam")},
             {"routes", {{{"dst", "0.0.0.0/0"}}}}}}},
          {{"type", "cninet-debug"}, {"file", dir_.Sub("debug.log")}, {"vendorKey", {{"x", 1}}}}}}};
    WriteFile(dir_.Sub("net.d/10-peers.conflist"), list.dump(2));
  }

  CommandResult Tool(const std::string& op) {
    return node_->ExecArgv(
        {CNINET_TOOL_DIR "/cninet-cni", op, "peers", pod_->path()}, {},
        {"NETCONFPATH=" + dir_.Sub("net.d"), "CNI_PATH=" CNINET_PLUGIN_DIR ":/usr/lib/cni",
         "CNI_CACHE_DIR=" + dir_.Sub("cache"),
         "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=p1;K8S_POD_NAMESPACE=ns1"});
  }

  TempDir dir_;
  std::unique_ptr<ScopedNetns> node_, pod_;
  std::string bridge_;
};

TEST_F(PeersTest, ReferenceBridgeHostLocalWithDebugChainedAddCheckDel) {
  CommandResult add = Tool("add");
  ASSERT_TRUE(add.ok()) << add.err << add.out;
  auto result = Result::Parse(add.out);
  ASSERT_TRUE(result.ok()) << result.status() << add.out;
  ASSERT_EQ(result->ips.size(), 1u);
  std::string addr = result->ips[0].address.ToString();
  EXPECT_TRUE(IPPrefix::Parse("10.123.0.0/24")->Contains(result->ips[0].address.address()));

  // The pod really has the address, and can reach the gateway on the node's bridge.
  CommandResult ip = pod_->Exec("ip -4 -o addr show dev eth0");
  EXPECT_THAT(ip.out, ::testing::HasSubstr(addr));
  EXPECT_TRUE(pod_->Exec("ping -c1 -W2 10.123.0.1").ok()) << "pod cannot reach the bridge gateway";

  // cninet-debug saw the reference plugin's result as prevResult, and its own keys untouched.
  std::istringstream log(ReadFile(dir_.Sub("debug.log")));
  std::string first;
  std::getline(log, first);
  nlohmann::json rec = nlohmann::json::parse(first);
  EXPECT_EQ(rec["command"], "ADD");
  EXPECT_EQ(rec["config"]["vendorKey"], nlohmann::json({{"x", 1}}));
  EXPECT_EQ(rec["config"]["prevResult"]["ips"][0]["address"], addr);
  EXPECT_EQ(rec["args"], "IgnoreUnknown=1;K8S_POD_NAME=p1;K8S_POD_NAMESPACE=ns1");

  // Container ID derived like cnitool: "cnitool-" + first 10 bytes of sha512(netns path).
  CommandResult sum = testing::Sh("printf %s '" + pod_->path() + "' | sha512sum | cut -c1-20");
  std::string expected_id = "cnitool-" + sum.out.substr(0, 20);
  EXPECT_EQ(rec["containerID"], expected_id);
  EXPECT_FALSE(ReadFile(dir_.Sub("cache/results/peers-" + expected_id + "-eth0")).empty());

  CommandResult check = Tool("check");
  EXPECT_TRUE(check.ok()) << check.err;

  CommandResult del = Tool("del");
  ASSERT_TRUE(del.ok()) << del.err;
  EXPECT_FALSE(pod_->Exec("ip link show eth0").ok()) << "eth0 still in the pod after DEL";
  EXPECT_EQ(ReadFile(dir_.Sub("ipam/peers/" + result->ips[0].address.address().ToString())), "")
      << "lease still on disk after DEL";
  CommandResult veths = node_->Exec("ip -o link show type veth");
  EXPECT_EQ(veths.out, "") << "host-side veth left behind";
  EXPECT_EQ(ReadFile(dir_.Sub("cache/results/peers-" + expected_id + "-eth0")), "");
  // A second DEL succeeds (idempotent chain).
  EXPECT_TRUE(Tool("del").ok());
}

TEST_F(PeersTest, ToolReportsErrorsWithCodes) {
  CommandResult r =
      node_->ExecArgv({CNINET_TOOL_DIR "/cninet-cni", "add", "nosuchnet", pod_->path()}, {},
                      {"NETCONFPATH=" + dir_.Sub("net.d"), "CNI_PATH=/usr/lib/cni"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, ::testing::HasSubstr("no network named"));
  CommandResult usage = testing::Run({CNINET_TOOL_DIR "/cninet-cni", "frobnicate", "x", "y"});
  EXPECT_EQ(usage.exit_code, 2);
}

}  // namespace
}  // namespace cninet::cni
