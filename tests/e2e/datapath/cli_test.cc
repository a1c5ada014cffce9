// cninet-dp's command line: usage errors exit with 2 and name the bad flag or command, every
// command has --help, and the help tells how to run it in a named network namespace.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using ::cninet::testing::CommandResult;
using ::testing::HasSubstr;

std::string Tool() { return std::string(CNINET_TOOL_DIR) + "/cninet-dp"; }

CommandResult Dp(std::vector<std::string> args) {
  args.insert(args.begin(), Tool());
  return ::cninet::testing::Run(args);
}

struct UsageCase {
  std::vector<std::string> args;
  std::string names;  // what the error message must mention
};

TEST(CninetDpCli, UsageErrorsExitWith2AndNameTheFlag) {
  const UsageCase cases[] = {
      {{"load", "--cluster-cidr", "10.244.0.0/16", "--node-ip", "192.0.2.1", "--bogus", "1"},
       "--bogus"},
      {{"load", "--node-ip", "192.0.2.1"}, "--cluster-cidr"},
      {{"load", "--cluster-cidr", "nope", "--node-ip", "192.0.2.1"}, "--cluster-cidr"},
      {{"service", "upsert", "--frontend", "clusterip:10.96.0.1:80/tcp"}, "--id"},
      {{"service", "upsert", "--id", "1", "--frontend", "bogus:1/tcp"}, "--frontend"},
      {{"service", "delete", "--id", "abc"}, "--id"},
      {{"ct", "frobnicate"}, "frobnicate"},
      {{"monitor", "--verdict", "maybe"}, "--verdict"},
      {{"monitor", "--address", "not-an-ip"}, "--address"},
      {{"monitor", "--count", "x"}, "--count"},
      {{"monitor", "--reason", "drop_bogus"}, "--reason"},
      {{"frobnicate"}, "frobnicate"},
      {{}, "subcommand"},
  };
  for (const UsageCase& c : cases) {
    CommandResult r = Dp(c.args);
    std::string line = ::testing::PrintToString(c.args);
    EXPECT_EQ(r.exit_code, 2) << line << ": " << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.names)) << line;
  }
}

TEST(CninetDpCli, EveryCommandHasHelp) {
  for (std::vector<std::string> cmd : std::vector<std::vector<std::string>>{{},
                                                                            {"load"},
                                                                            {"detach"},
                                                                            {"service"},
                                                                            {"service", "upsert"},
                                                                            {"service", "delete"},
                                                                            {"ct"},
                                                                            {"nat"},
                                                                            {"counters"},
                                                                            {"endpoint"},
                                                                            {"endpoint", "add"},
                                                                            {"unpin"},
                                                                            {"monitor"}}) {
    cmd.push_back("--help");
    CommandResult r = Dp(cmd);
    EXPECT_EQ(r.exit_code, 0) << ::testing::PrintToString(cmd) << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage")) << ::testing::PrintToString(cmd);
  }
  EXPECT_THAT(Dp({"--help"}).out, HasSubstr("nsenter --net=/run/netns/NAME"));
  EXPECT_THAT(Dp({"load", "--help"}).out, HasSubstr("nsenter --net=/run/netns/NAME"));
}

}  // namespace
}  // namespace cninet::datapath::testing
