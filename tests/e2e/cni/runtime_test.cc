// Runtime (libcni's role) executing real plugin processes. The chained plugin here is
// cninet-debug, which records what it receives and changes nothing on the host, so these tests
// can run the runtime in-process; plugins that change networking are exercised in peers_test.cc
// inside a "node" namespace.
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "cninet/cni/cni.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::cni {
namespace {

using ::cninet::testing::ReadFile;
using ::cninet::testing::ScopedNetns;
using ::cninet::testing::TempDir;
using ::cninet::testing::WriteFile;

std::vector<nlohmann::json> ReadLog(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    pod_ = std::make_unique<ScopedNetns>("rtpod");
    RuntimeOptions o;
    o.plugin_paths = {CNINET_PLUGIN_DIR};
    o.cache_dir = dir_.Sub("cache");
    runtime_ = std::make_unique<Runtime>(o);
    rt_.container_id = "ctr-1";
    rt_.netns = pod_->path();
    rt_.ifname = "eth0";
    rt_.args = {{"K8S_POD_NAME", "web-0"}};
  }

  // A list of `n` cninet-debug plugins logging to one file; plugin i has key "index": i.
  NetConfList DebugList(int n, const std::string& version = "1.1.0", nlohmann::json extra = {}) {
    nlohmann::json list = {
        {"cniVersion", version}, {"name", "dbg"}, {"plugins", nlohmann::json::array()}};
    for (int i = 0; i < n; ++i) {
      nlohmann::json p = {{"type", "cninet-debug"}, {"file", log_}, {"index", i}};
      if (extra.is_object()) p.update(extra);
      list["plugins"].push_back(p);
    }
    return *NetConfList::FromJson(list);
  }

  TempDir dir_;
  std::string log_ = dir_.Sub("debug.log");
  std::unique_ptr<ScopedNetns> pod_;
  std::unique_ptr<Runtime> runtime_;
  RuntimeConf rt_;
};

TEST_F(RuntimeTest, AddChainsPrevResultAndCachesInLibcniLayout) {
  NetConfList list = DebugList(3);
  auto result = runtime_->AddNetworkList(list, rt_);
  ASSERT_TRUE(result.ok()) << result.status();
  auto log = ReadLog(log_);
  ASSERT_EQ(log.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(log[i]["command"], "ADD");
    EXPECT_EQ(log[i]["config"]["index"], i) << "plugins run in list order";
    EXPECT_EQ(log[i]["config"]["name"], "dbg");
    EXPECT_EQ(log[i]["config"]["cniVersion"], "1.1.0");
    EXPECT_EQ(log[i]["containerID"], "ctr-1");
    EXPECT_EQ(log[i]["args"], "K8S_POD_NAME=web-0");
    EXPECT_EQ(log[i]["config"].contains("prevResult"), i > 0) << "no prevResult for the first ADD";
  }
  // libcni layout: <cache>/results/<net>-<container>-<ifname>, kind cniCacheV1, base64 config.
  std::string entry_text = ReadFile(dir_.Sub("cache/results/dbg-ctr-1-eth0"));
  ASSERT_FALSE(entry_text.empty());
  nlohmann::json entry = nlohmann::json::parse(entry_text);
  EXPECT_EQ(entry["kind"], "cniCacheV1");
  EXPECT_EQ(entry["containerId"], "ctr-1");
  EXPECT_EQ(entry["ifName"], "eth0");
  EXPECT_EQ(entry["networkName"], "dbg");
  EXPECT_EQ(entry["cniArgs"], nlohmann::json::parse(R"([["K8S_POD_NAME","web-0"]])"));
  std::string config;
  ASSERT_TRUE(absl::Base64Unescape(entry["config"].get<std::string>(), &config));
  EXPECT_EQ(nlohmann::json::parse(config), list.raw);
  EXPECT_EQ(entry["result"]["cniVersion"], "1.1.0");
  auto cached = runtime_->GetCachedResult(list, rt_);
  ASSERT_TRUE(cached.ok()) << cached.status();
  ASSERT_TRUE(cached->has_value());
}

TEST_F(RuntimeTest, DelRunsInReverseWithCachedResultAndRemovesEntry) {
  NetConfList list = DebugList(3);
  ASSERT_TRUE(runtime_->AddNetworkList(list, rt_).ok());
  ASSERT_TRUE(runtime_->DelNetworkList(list, rt_).ok());
  auto log = ReadLog(log_);
  ASSERT_EQ(log.size(), 6u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(log[3 + i]["command"], "DEL");
    EXPECT_EQ(log[3 + i]["config"]["index"], 2 - i) << "DEL runs in reverse order";
    EXPECT_TRUE(log[3 + i]["config"].contains("prevResult")) << "every DEL gets the ADD result";
  }
  EXPECT_EQ(ReadFile(dir_.Sub("cache/results/dbg-ctr-1-eth0")), "");
  // DEL again (idempotent from the runtime's side) works without a cache entry.
  EXPECT_TRUE(runtime_->DelNetworkList(list, rt_).ok());
}

TEST_F(RuntimeTest, CorruptOrEmptyCacheNeverBlocksDel) {
  NetConfList list = DebugList(2);
  for (std::string_view junk : {"", "{not json", "{\"kind\":\"cniCacheV1\"}", "[]"}) {
    ASSERT_TRUE(runtime_->AddNetworkList(list, rt_).ok());
    WriteFile(dir_.Sub("cache/results/dbg-ctr-1-eth0"), junk);
    absl::Status s = runtime_->DelNetworkList(list, rt_);
    EXPECT_TRUE(s.ok()) << "junk cache \"" << junk << "\": " << s;
    EXPECT_EQ(ReadFile(dir_.Sub("cache/results/dbg-ctr-1-eth0")), "");
    auto last = ReadLog(log_).back();
    EXPECT_EQ(last["command"], "DEL");
    EXPECT_FALSE(last["config"].contains("prevResult"));
  }
}

TEST_F(RuntimeTest, CapabilitiesBecomeRuntimeConfigAndAreNotPassedOn) {
  NetConfList list =
      DebugList(1, "1.1.0", {{"capabilities", {{"portMappings", true}, {"mac", false}}}});
  rt_.capability_args = {
      {"portMappings", {{{"hostPort", 8080}, {"containerPort", 80}, {"protocol", "tcp"}}}},
      {"mac", "aa:bb:cc:dd:ee:ff"},
      {"bandwidth", {{"ingressRate", 1}}}};
  ASSERT_TRUE(runtime_->AddNetworkList(list, rt_).ok());
  auto conf = ReadLog(log_)[0]["config"];
  EXPECT_EQ(conf["runtimeConfig"],
            nlohmann::json({{"portMappings", rt_.capability_args["portMappings"]}}))
      << "only capabilities the plugin declares true are injected";
  EXPECT_FALSE(conf.contains("capabilities"));
}

TEST_F(RuntimeTest, FailingPluginStopsTheChainWithItsCode) {
  nlohmann::json list_json = {{"cniVersion", "1.0.0"},
                              {"name", "dbg"},
                              {"plugins",
                               {{{"type", "cninet-debug"}, {"file", log_}},
                                {{"type", "cninet-debug"}, {"file", log_}, {"fail", {{"ADD", 11}}}},
                                {{"type", "cninet-debug"}, {"file", log_}}}}};
  NetConfList list = *NetConfList::FromJson(list_json);
  auto result = runtime_->AddNetworkList(list, rt_);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(GetErrorCode(result.status()), 11u);
  EXPECT_EQ(ReadLog(log_).size(), 2u) << "the third plugin must not run";
  EXPECT_EQ(ReadFile(dir_.Sub("cache/results/dbg-ctr-1-eth0")), "") << "nothing cached on failure";
}

TEST_F(RuntimeTest, CheckRulesFollowTheSpec) {
  NetConfList list = DebugList(2);
  EXPECT_EQ(runtime_->CheckNetworkList(list, rt_).code(), absl::StatusCode::kNotFound)
      << "CHECK before ADD has no cached result";
  ASSERT_TRUE(runtime_->AddNetworkList(list, rt_).ok());
  ASSERT_TRUE(runtime_->CheckNetworkList(list, rt_).ok());
  EXPECT_EQ(ReadLog(log_).back()["command"], "CHECK");
  EXPECT_TRUE(ReadLog(log_).back()["config"].contains("prevResult"));

  NetConfList old = DebugList(1, "0.3.1");
  EXPECT_EQ(GetErrorCode(runtime_->CheckNetworkList(old, rt_)), 1u);

  nlohmann::json raw = list.raw;
  raw["disableCheck"] = true;
  size_t before = ReadLog(log_).size();
  EXPECT_TRUE(runtime_->CheckNetworkList(*NetConfList::FromJson(raw), rt_).ok());
  EXPECT_EQ(ReadLog(log_).size(), before) << "disableCheck: no plugin runs";
}

TEST_F(RuntimeTest, GcPassesValidAttachmentsAndPrunesCache) {
  NetConfList list = DebugList(2);
  RuntimeConf other = rt_;
  other.container_id = "ctr-2";
  ASSERT_TRUE(runtime_->AddNetworkList(list, rt_).ok());
  ASSERT_TRUE(runtime_->AddNetworkList(list, other).ok());
  EXPECT_EQ(runtime_->CachedAttachments("dbg").size(), 2u);
  ASSERT_TRUE(runtime_->GcNetworkList(list, {{"ctr-1", "eth0"}}).ok());
  auto log = ReadLog(log_);
  EXPECT_EQ(log.back()["command"], "GC");
  EXPECT_EQ(log.back()["config"]["cni.dev/valid-attachments"],
            nlohmann::json::parse(R"([{"containerID":"ctr-1","ifname":"eth0"}])"));
  EXPECT_FALSE(log.back()["config"].contains("prevResult"));
  auto left = runtime_->CachedAttachments("dbg");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].container_id, "ctr-1");
  // GC is a no-op before 1.1.0.
  size_t before = ReadLog(log_).size();
  EXPECT_TRUE(runtime_->GcNetworkList(DebugList(1, "1.0.0"), {}).ok());
  EXPECT_EQ(ReadLog(log_).size(), before);
}

TEST_F(RuntimeTest, StatusReportsThePluginsError) {
  EXPECT_TRUE(runtime_->StatusNetworkList(DebugList(2)).ok());
  NetConfList failing = DebugList(1, "1.1.0", {{"fail", {{"STATUS", 50}}}});
  EXPECT_EQ(GetErrorCode(runtime_->StatusNetworkList(failing)), 50u);
}

TEST_F(RuntimeTest, RejectsUnsafeAttachmentNames) {
  NetConfList list = DebugList(1);
  RuntimeConf bad = rt_;
  bad.container_id = "../../etc";
  EXPECT_EQ(GetErrorCode(runtime_->AddNetworkList(list, bad).status()), 4u);
  bad = rt_;
  bad.ifname = "a/b";
  EXPECT_EQ(GetErrorCode(runtime_->AddNetworkList(list, bad).status()), 4u);
  EXPECT_EQ(ReadFile(log_), "") << "no plugin may run for a rejected attachment";
}

TEST_F(RuntimeTest, VersionSelectionAndPluginVersions) {
  nlohmann::json raw = {{"cniVersion", "0.3.1"},
                        {"cniVersions", {"0.4.0", "1.1.0", "9.9.9"}},
                        {"name", "dbg"},
                        {"plugins", {{{"type", "cninet-debug"}, {"file", log_}}}}};
  NetConfList list = *NetConfList::FromJson(raw);
  EXPECT_EQ(*list.SelectedVersion(), "1.1.0");
  ASSERT_TRUE(runtime_->AddNetworkList(list, rt_).ok());
  EXPECT_EQ(ReadLog(log_)[0]["config"]["cniVersion"], "1.1.0");
  auto versions = runtime_->PluginVersions("cninet-debug", "1.0.0");
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ::testing::ElementsAre("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"));
  EXPECT_EQ(runtime_->PluginVersions("no-such-plugin", "1.0.0").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cninet::cni
