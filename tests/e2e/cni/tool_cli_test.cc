// cninet-cni's command line: usage errors exit 2 and name the bad flag or argument, every
// subcommand has --help, and `gc` refuses to guess which attachments are valid.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::cni {
namespace {

using ::testing::HasSubstr;

const std::string kTool = CNINET_TOOL_DIR "/cninet-cni";

// Runs cninet-cni with a configuration directory that does not exist (usage errors come first).
testing::CommandResult Tool(std::vector<std::string> args) {
  args.insert(args.begin(), kTool);
  return testing::Run(args, {}, {"NETCONFPATH=/nonexistent/cninet-net.d", "CNI_PATH=/nonexistent"});
}

TEST(CniToolCli, UnknownSubcommandIsAUsageError) {
  testing::CommandResult r = Tool({"frobnicate", "x", "y"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("frobnicate"));
}

TEST(CniToolCli, UnknownFlagIsNamed) {
  testing::CommandResult r = Tool({"add", "net", "/run/netns/x", "--bogus-flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--bogus-flag"));
}

TEST(CniToolCli, MissingNetnsIsNamed) {
  testing::CommandResult r = Tool({"add", "net"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("NETNS"));
}

TEST(CniToolCli, EverySubcommandHasHelp) {
  for (const char* sub : {"add", "check", "del", "gc", "status"}) {
    testing::CommandResult r = Tool({sub, "--help"});
    EXPECT_EQ(r.exit_code, 0) << sub << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("NETWORK")) << sub;
  }
  testing::CommandResult top = Tool({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_THAT(top.out, HasSubstr("gc"));
}

TEST(CniToolCli, GcWithoutValidAttachmentsRefusesByDefault) {
  testing::CommandResult r = Tool({"gc", "net", "/run/netns/x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--valid"));
  EXPECT_THAT(r.err, HasSubstr("--none-valid"));
  testing::CommandResult help = Tool({"gc", "--help"});
  EXPECT_THAT(help.out, HasSubstr("--none-valid"));
}

TEST(CniToolCli, GcValidAndNoneValidExcludeEachOther) {
  testing::CommandResult r =
      Tool({"gc", "net", "/run/netns/x", "--none-valid", "--valid", "c1:eth0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--none-valid"));
}

TEST(CniToolCli, GcValidNeedsContainerIdAndIfname) {
  testing::CommandResult r = Tool({"gc", "net", "--valid", "c1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--valid"));
}

}  // namespace
}  // namespace cninet::cni
