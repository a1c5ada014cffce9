// The Delegate*(type, args) overloads pass the call's own configuration (args.stdin_data) to the
// delegate: cninet-debug records what it received.
#include <sstream>
#include <string>

#include "cninet/cni/exec.h"
#include "cninet/cni/plugin.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_util.h"

namespace cninet::cni {
namespace {

TEST(DelegateWithOwnConfig, PassesArgsStdinDataToTheDelegate) {
  testing::TempDir dir;
  nlohmann::json conf = {{"cniVersion", "1.1.0"},
                         {"name", "deleg"},
                         {"type", "cninet-debug"},
                         {"file", dir.Sub("debug.log")}};
  CmdArgs args;
  args.container_id = "delegate-ctr";
  args.ifname = "eth0";
  args.path = {CNINET_PLUGIN_DIR};
  args.stdin_data = conf.dump();
  ASSERT_TRUE(DelegateDel("cninet-debug", args).ok());
  ASSERT_TRUE(DelegateStatus("cninet-debug", args).ok());
  std::istringstream log(testing::ReadFile(dir.Sub("debug.log")));
  std::string line;
  int lines = 0;
  for (const char* command : {"DEL", "STATUS"}) {
    ASSERT_TRUE(std::getline(log, line)) << "no record of " << command;
    nlohmann::json rec = nlohmann::json::parse(line);
    EXPECT_EQ(rec["command"], command);
    EXPECT_EQ(rec["config"]["name"], "deleg");
    EXPECT_EQ(rec["config"]["file"], dir.Sub("debug.log"));
    ++lines;
  }
  EXPECT_EQ(lines, 2);
}

}  // namespace
}  // namespace cninet::cni
