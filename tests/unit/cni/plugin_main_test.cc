// RunPlugin driven in-process: errors raised before the configuration is parsed answer in the
// request's cniVersion, and `PluginInfo::needs_netns` lets IPAM plugins skip the netns check.
#include <map>
#include <sstream>
#include <string>

#include "cninet/cni/error.h"
#include "cninet/cni/plugin.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cninet::cni {
namespace {

// Returns an empty result for ADD; everything else succeeds.
class NullPlugin : public Plugin {
 public:
  absl::StatusOr<Result> Add(const CmdArgs&) override { return Result{}; }
  absl::Status Del(const CmdArgs&) override { return absl::OkStatus(); }
};

struct Outcome {
  int rc;
  nlohmann::json out;
};

Outcome Invoke(const std::map<std::string, std::string>& env, const std::string& stdin_data,
               const PluginInfo& info = {}) {
  NullPlugin plugin;
  std::istringstream in(stdin_data);
  std::ostringstream out, err;
  PluginIo io;
  io.getenv = [&](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  io.in = &in;
  io.out = &out;
  io.err = &err;
  int rc = RunPlugin(plugin, info, io);
  return {rc, nlohmann::json::parse(out.str(), nullptr, false)};
}

const std::string kConf031 = R"({"cniVersion": "0.3.1", "name": "n", "type": "t"})";

std::map<std::string, std::string> AddEnv(std::string netns) {
  return {{"CNI_COMMAND", "ADD"},
          {"CNI_CONTAINERID", "c1"},
          {"CNI_NETNS", std::move(netns)},
          {"CNI_IFNAME", "eth0"}};
}

TEST(RunPluginErrorVersion, UnknownCommandAnswersInTheRequestVersion) {
  Outcome o = Invoke({{"CNI_COMMAND", "BOGUS"}}, kConf031);
  EXPECT_EQ(o.rc, 1);
  EXPECT_EQ(o.out["code"], 4);
  EXPECT_EQ(o.out["cniVersion"], "0.3.1");
}

TEST(RunPluginErrorVersion, MissingEnvironmentAnswersInTheRequestVersion) {
  Outcome o = Invoke({{"CNI_COMMAND", "ADD"}}, kConf031);
  EXPECT_EQ(o.rc, 1);
  EXPECT_EQ(o.out["code"], 4);
  EXPECT_EQ(o.out["cniVersion"], "0.3.1");
}

TEST(RunPluginErrorVersion, UndecodableJsonStillShowsItsVersion) {
  Outcome o = Invoke(AddEnv("/proc/self/ns/net"), R"({"cniVersion": "0.4.0", "name": )");
  EXPECT_EQ(o.rc, 1);
  EXPECT_EQ(o.out["code"], 6);
  EXPECT_EQ(o.out["cniVersion"], "0.4.0");
}

TEST(RunPluginErrorVersion, UnreadableVersionFallsBackToTheCurrentOne) {
  Outcome o = Invoke({{"CNI_COMMAND", "BOGUS"}}, "not json");
  EXPECT_EQ(o.out["cniVersion"], std::string(kCurrentVersion));
}

TEST(RunPluginNetns, MissingNetnsFailsWithCode3ByDefault) {
  Outcome o = Invoke(AddEnv("/nonexistent/cninet-netns"), kConf031);
  EXPECT_EQ(o.rc, 1);
  EXPECT_EQ(o.out["code"], 3);
}

TEST(RunPluginNetns, IpamPluginsAcceptAMissingNetns) {
  Outcome o = Invoke(AddEnv("/nonexistent/cninet-netns"), kConf031, {.needs_netns = false});
  EXPECT_EQ(o.rc, 0) << o.out.dump();
  EXPECT_EQ(o.out["cniVersion"], "0.3.1");
}

}  // namespace
}  // namespace cninet::cni
