// The command lines of cninet-agent and cninetctl (CLI11): --help for every subcommand, usage
// errors name the bad flag and exit with 2, and the flags the demo and the e2e suites pass parse.
#include <string>
#include <vector>

#include "cninet/base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::agent {
namespace {

using ::cninet::testing::CommandResult;
using ::cninet::testing::TempDir;
using ::testing::HasSubstr;

const std::string kAgent = StrCat(CNINET_TOOL_DIR, "/cninet-agent");
const std::string kCtl = StrCat(CNINET_TOOL_DIR, "/cninetctl");

CommandResult Tool(const std::string& tool, std::vector<std::string> args) {
  args.insert(args.begin(), tool);
  return ::cninet::testing::Run(args);
}

TEST(AgentCliTest, HelpForEverySubcommand) {
  for (const char* cmd : {"run", "status", "health", "teardown"}) {
    CommandResult r = Tool(kAgent, {cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr(StrCat("cninet-agent ", cmd))) << cmd;
  }
  CommandResult r = Tool(kAgent, {"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("teardown"));
  EXPECT_THAT(Tool(kAgent, {"run", "--help"}).out, HasSubstr("--resync-interval"));
  // Socket LB is opt-in: the flag is documented as off unless given.
  EXPECT_THAT(Tool(kAgent, {"run", "--help"}).out, HasSubstr("--socket-lb-cgroup"));
  EXPECT_THAT(Tool(kAgent, {"run", "--help"}).out, HasSubstr("[off]"));
}

TEST(AgentCliTest, UsageErrorsNameTheFlagAndExitTwo) {
  CommandResult r = Tool(kAgent, {"run", "--node", "n1", "--bogus-flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--bogus-flag"));
  r = Tool(kAgent, {"run", "--node", "n1", "--maglev-size", "many"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--maglev-size"));
  r = Tool(kAgent, {"status", "--services"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--services"));
  r = Tool(kAgent, {"run"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--node"));
  r = Tool(kAgent, {"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("frobnicate"));
  // teardown takes the node flags only (and its options are validated like run's).
  r = Tool(kAgent, {"teardown", "--node", "n1", "--bpffs-root", "relative"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bpffs root"));
  r = Tool(kAgent, {"teardown", "--node", "n1", "--etcd", "127.0.0.1:2379"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--etcd"));
  // A value the agent's options refuse is a usage error too.
  r = Tool(kAgent, {"run", "--node", "n1", "--maglev-size", "252"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("maglev size"));
}

TEST(AgentCliTest, VersionIsTheProjectVersion) {
  CommandResult r = Tool(kAgent, {"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("."));
}

TEST(AgentCliTest, HealthWithoutAnAgentFailsWithOne) {
  TempDir dir;
  CommandResult r = Tool(kAgent, {"health", "--socket", dir.Sub("none.sock")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("none.sock"));
}

TEST(CtlCliTest, HelpForEverySubcommand) {
  for (std::vector<std::string> cmd : std::vector<std::vector<std::string>>{{"get"},
                                                                            {"put"},
                                                                            {"del"},
                                                                            {"namespace", "set"},
                                                                            {"service", "set"},
                                                                            {"policy", "apply"},
                                                                            {"policy", "delete"},
                                                                            {"status"},
                                                                            {"health"}}) {
    cmd.push_back("--help");
    CommandResult r = Tool(kCtl, cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd[0] << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage")) << cmd[0];
  }
}

TEST(CtlCliTest, UsageErrorsNameTheFlagAndExitTwo) {
  TempDir dir;
  CommandResult r = Tool(kCtl, {"--store-dir", dir.Sub("store"), "get", "--bogus-flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--bogus-flag"));
  r = Tool(kCtl, {"status", "--services", "x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--services"));
  r = Tool(kCtl, {"get"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--store-dir"));
  r = Tool(kCtl, {"--etcd", "127.0.0.1:1", "--store-dir", dir.Sub("store"), "get"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--etcd"));
}

TEST(CtlCliTest, GlobalFlagsBeforeOrAfterTheCommand) {
  TempDir dir;
  std::string store = dir.Sub("store");
  CommandResult r = Tool(
      kCtl, {"--store-dir", store, "namespace", "set", "web", "--isolated", "--labels", "team=a"});
  ASSERT_TRUE(r.ok()) << r.err;
  r = Tool(kCtl, {"namespace", "set", "web", "--isolated=false", "--store-dir", store});
  ASSERT_TRUE(r.ok()) << r.err;
  r = Tool(kCtl, {"get", "namespaces", "--store-dir", store});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_THAT(r.out, HasSubstr(R"("labels":{"team":"a"})"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("isolated")));
  r = Tool(kCtl, {"--store-dir", store, "put", "/cninet/v1/namespaces/web", "not json"});
  EXPECT_EQ(r.exit_code, 1);  // a bad value is not a usage error
}

TEST(CtlCliTest, ServiceSetWritesDualStackServicesAndRefusesInconsistentOnes) {
  TempDir dir;
  std::string store = dir.Sub("store");
  CommandResult r = Tool(kCtl, {"--store-dir", store, "service", "set", "default/web",
                                "--cluster-ip", "10.96.0.10,fd00:10:96::10", "--ports",
                                "http=80,dns=53/udp:30053", "--external-ips", "fd00:1::7"});
  ASSERT_TRUE(r.ok()) << r.err;
  r = Tool(kCtl, {"--store-dir", store, "get", "services"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_THAT(r.out, HasSubstr(R"("clusterIP":"10.96.0.10")"));
  EXPECT_THAT(r.out, HasSubstr(R"("clusterIPs":["10.96.0.10","fd00:10:96::10"])"));
  EXPECT_THAT(r.out, HasSubstr(R"("ipFamilyPolicy":"REQUIRE_DUAL_STACK")"));
  EXPECT_THAT(r.out, HasSubstr(R"("type":"NODE_PORT")"));
  EXPECT_THAT(r.out, HasSubstr(R"("externalIPs":["fd00:1::7"])"));
  // Updating one field keeps the others; the families follow Kubernetes' rules.
  r = Tool(kCtl,
           {"--store-dir", store, "service", "set", "default/web", "--ip-families", "IPv4,IPv6"});
  ASSERT_TRUE(r.ok()) << r.err;
  r = Tool(kCtl, {"--store-dir", store, "get", "services"});
  EXPECT_THAT(r.out, HasSubstr(R"("ipFamilies":["IPV4","IPV6"])"));
  EXPECT_THAT(r.out, HasSubstr(R"("clusterIPs":["10.96.0.10","fd00:10:96::10"])"));
  r = Tool(kCtl, {"--store-dir", store, "service", "set", "default/web", "--ip-family-policy",
                  "SingleStack"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("SINGLE_STACK allows one family"));
  r = Tool(kCtl,
           {"--store-dir", store, "service", "set", "default/web", "--ip-families", "IPv6,IPv4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("does not match"));
  r = Tool(kCtl, {"--store-dir", store, "service", "set", "default/v6", "--cluster-ip",
                  "fd00:10:96::20", "--ip-family-policy", "bogus"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("RequireDualStack"));
}

}  // namespace
}  // namespace cninet::agent
