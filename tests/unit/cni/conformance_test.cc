// Conformance with the CNI SPEC: every example of the specification (tests/data/spec, one
// directory per spec version) parses, re-emits unchanged, and the appendix's request
// configurations are exactly what Runtime::BuildPluginConfig derives from the example network
// configuration (spec section 3, "Deriving request configuration from plugin configuration").
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "cninet/cni/conf.h"
#include "cninet/cni/error.h"
#include "cninet/cni/plugin.h"
#include "cninet/cni/runtime.h"
#include "cninet/cni/types.h"
#include "cninet/cni/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cninet::cni {

// Readable gtest output for results (internal linkage: each test file has its own).
[[maybe_unused]] static void PrintTo(const Result& r, std::ostream* os) {
  absl::StatusOr<nlohmann::json> j = r.ToJson(kCurrentVersion);
  *os << "Result(" << r.cni_version << ") " << (j.ok() ? j->dump() : j.status().ToString());
}

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const std::string kSpecDir = CNINET_SOURCE_DIR "/tests/data/spec";

[[maybe_unused]] absl::Status StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Matches a failed Status/StatusOr whose CNI error code is `code`.
MATCHER_P(HasCniCode, code, "fails with CNI code " + ::testing::PrintToString(code)) {
  absl::Status s = StatusOf(arg);
  *result_listener << "status: " << s << ", CNI code " << GetErrorCode(s);
  return !s.ok() && GetErrorCode(s) == static_cast<uint32_t>(code);
}

// One example file of the spec.
struct SpecExample {
  std::string version;  // Directory name: the spec version the example belongs to.
  std::string stem;     // File name without ".json".
  std::string kind;     // Prefix of the stem: conflist, netconf, request, result, ...
  std::string path;
};

void PrintTo(const SpecExample& e, std::ostream* os) { *os << e.version << "/" << e.stem; }

std::vector<SpecExample> AllExamples() {
  std::vector<SpecExample> out;
  std::error_code ec;
  for (const auto& dir : fs::directory_iterator(kSpecDir, ec)) {
    if (!dir.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(dir.path())) {
      if (f.path().extension() != ".json") continue;
      SpecExample e;
      e.version = dir.path().filename().string();
      e.stem = f.path().stem().string();
      e.kind = e.stem.substr(0, e.stem.find('-'));
      e.path = f.path().string();
      out.push_back(e);
    }
  }
  std::sort(out.begin(), out.end(), [](const SpecExample& a, const SpecExample& b) {
    return std::tie(a.version, a.stem) < std::tie(b.version, b.stem);
  });
  return out;
}

std::vector<SpecExample> ExamplesOfKind(const std::string& kind) {
  std::vector<SpecExample> out;
  for (const auto& e : AllExamples()) {
    if (e.kind == kind) out.push_back(e);
  }
  return out;
}

std::string ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json ReadJson(const std::string& path) { return json::parse(ReadText(path)); }

std::string TestName(const ::testing::TestParamInfo<SpecExample>& info) {
  std::string s = "v" + info.param.version + "_" + info.param.stem;
  for (char& c : s) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

// The spec prints results without cniVersion; they are read in the example's version.
json WithVersion(json j, const std::string& version) {
  if (!j.contains("cniVersion")) j["cniVersion"] = version;
  return j;
}

// --- Inventory: the data set is complete (a missing directory must not pass silently). -------

TEST(SpecExamples, EveryVersionHasItsExamples) {
  std::map<std::string, int> per_version;
  for (const auto& e : AllExamples()) per_version[e.version]++;
  EXPECT_GE(per_version["0.3.0"], 4);
  EXPECT_GE(per_version["0.3.1"], 9);
  EXPECT_GE(per_version["0.4.0"], 11);
  EXPECT_GE(per_version["1.0.0"], 16);
  EXPECT_GE(per_version["1.1.0"], 17);
  for (const char* v : {"0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
    EXPECT_TRUE(fs::exists(kSpecDir + "/" + v + "/conflist-dbnet.json")) << v;
  }
  for (const char* v : {"1.0.0", "1.1.0"}) {
    EXPECT_TRUE(fs::exists(kSpecDir + "/" + v + "/error.json")) << v;
    EXPECT_TRUE(fs::exists(kSpecDir + "/" + v + "/result-add-1-bridge.json")) << v;
  }
}

// --- Every example parses and re-emits unchanged. ----------------------------------------------

class EveryExample : public ::testing::TestWithParam<SpecExample> {};

TEST_P(EveryExample, ParsesAndKeepsEveryField) {
  const SpecExample& e = GetParam();
  const std::string text = ReadText(e.path);
  const json j = json::parse(text);

  if (e.kind == "conflist") {
    absl::StatusOr<NetConfList> list = NetConfList::Parse(text);
    ASSERT_TRUE(list.ok()) << list.status();
    EXPECT_EQ(list->name, j["name"]);
    EXPECT_EQ(list->cni_version, j["cniVersion"]);
    EXPECT_EQ(list->raw, j);
    ASSERT_EQ(list->plugins.size(), j["plugins"].size());
    for (size_t i = 0; i < list->plugins.size(); ++i) {
      // Plugin-specific keys (bridge, keyA, sysctl, args ...) are kept verbatim.
      EXPECT_EQ(list->plugins[i], j["plugins"][i]) << "plugin " << i;
    }
    absl::StatusOr<std::string> selected = list->SelectedVersion();
    ASSERT_TRUE(selected.ok()) << selected.status();
    EXPECT_EQ(*selected, e.version);
    if (j.contains("cniVersions")) {
      EXPECT_EQ(json(list->cni_versions), j["cniVersions"]);
    }
  } else if (e.kind == "netconf" || e.kind == "request") {
    absl::StatusOr<NetConf> conf = NetConf::Parse(text);
    ASSERT_TRUE(conf.ok()) << conf.status();
    EXPECT_EQ(conf->cni_version, e.version);
    EXPECT_EQ(conf->name, j["name"]);
    EXPECT_EQ(conf->type, j["type"]);
    EXPECT_EQ(conf->raw, j);
    EXPECT_EQ(conf->IpamType(), j.contains("ipam") ? j["ipam"]["type"].get<std::string>() : "");
    if (j.contains("ipam")) {
      EXPECT_EQ(conf->ipam, j["ipam"]);
    }
    if (j.contains("dns")) {
      ASSERT_TRUE(conf->dns.has_value());
      EXPECT_EQ(json(conf->dns->nameservers), j["dns"]["nameservers"]);
    } else {
      EXPECT_FALSE(conf->dns.has_value());
    }
    if (j.contains("runtimeConfig")) {
      EXPECT_EQ(conf->runtime_config, j["runtimeConfig"]);
    }
    if (j.contains("args")) {
      EXPECT_EQ(conf->args, j["args"]);
    }
    if (j.contains("prevResult")) {
      ASSERT_TRUE(conf->raw_prev_result.has_value());
      EXPECT_EQ(*conf->raw_prev_result, j["prevResult"]);
      ASSERT_TRUE(conf->prev_result.has_value());
      // prevResult is read in the configuration's version and emits back unchanged.
      absl::StatusOr<json> emitted = conf->prev_result->ToJson(e.version);
      ASSERT_TRUE(emitted.ok()) << emitted.status();
      EXPECT_EQ(*emitted, WithVersion(j["prevResult"], e.version));
    } else {
      EXPECT_FALSE(conf->prev_result.has_value());
      EXPECT_FALSE(conf->raw_prev_result.has_value());
    }
  } else if (e.kind == "result") {
    absl::StatusOr<Result> r = Result::FromJson(WithVersion(j, e.version));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->Validate().ok()) << r->Validate();
    EXPECT_EQ(r->ips.size(), j["ips"].size());
    EXPECT_EQ(r->interfaces.size(), j.value("interfaces", json::array()).size());
    absl::StatusOr<json> emitted = r->ToJson(e.version);
    ASSERT_TRUE(emitted.ok()) << emitted.status();
    EXPECT_EQ(*emitted, WithVersion(j, e.version));
    // The same bytes through Parse.
    absl::StatusOr<Result> again = Result::Parse(WithVersion(j, e.version).dump());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, *r);
  } else if (e.kind == "version") {
    ASSERT_TRUE(j["cniVersion"].is_string());
    ASSERT_TRUE(j["supportedVersions"].is_array());
    std::vector<std::string> listed = j["supportedVersions"];
    std::vector<std::string_view> views(listed.begin(), listed.end());
    // Our VERSION writer produces exactly the spec's object for the spec's version list.
    EXPECT_EQ(json::parse(VersionResultJson(j["cniVersion"].get<std::string>(), views)), j);
    // And, for cninet's own list, the same shape with every supported version.
    json ours = json::parse(VersionResultJson(j["cniVersion"].get<std::string>()));
    EXPECT_EQ(ours["cniVersion"], j["cniVersion"]);
    EXPECT_EQ(ours["supportedVersions"], json({"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}));
  } else if (e.kind == "error") {
    absl::Status s = ErrorFromJson(text);
    EXPECT_EQ(GetErrorCode(s), j["code"].get<uint32_t>());
    EXPECT_EQ(std::string(s.message()), j["msg"].get<std::string>());
    EXPECT_EQ(GetErrorDetails(s), j["details"].get<std::string>());
    EXPECT_EQ(ErrorToJson(s, j["cniVersion"].get<std::string>()), j);
  } else if (e.kind == "plugin") {
    json list_json = {{"cniVersion", e.version}, {"name", "example"}, {"plugins", {j}}};
    absl::StatusOr<NetConfList> list = NetConfList::FromJson(list_json);
    ASSERT_TRUE(list.ok()) << list.status();
    ASSERT_EQ(list->plugins.size(), 1u);
    EXPECT_EQ(list->plugins[0], j);
  } else {
    FAIL() << "unknown example kind " << e.kind << " (" << e.path << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Spec, EveryExample, ::testing::ValuesIn(AllExamples()), TestName);

// --- Appendix: request configurations derived by the runtime. ---------------------------------

// The attachment of the appendix: CNI_IFNAME=eth0, netns "blue", the generic argument argA=foo,
// and the `mac` and `portMappings` capability arguments.
RuntimeConf AppendixAttachment() {
  RuntimeConf rt;
  rt.container_id = "example";
  rt.netns = "/var/run/netns/blue";
  rt.ifname = "eth0";
  rt.args = {{"argA", "foo"}};
  rt.capability_args = {
      {"mac", "00:11:22:33:44:66"},
      {"portMappings",
       json::array({{{"hostPort", 8080}, {"containerPort", 80}, {"protocol", "tcp"}}})}};
  return rt;
}

Command CommandOfRequest(const std::string& stem) {
  if (stem.rfind("request-add-", 0) == 0) return Command::kAdd;
  if (stem.rfind("request-check-", 0) == 0) return Command::kCheck;
  return Command::kDel;
}

class AppendixRequest : public ::testing::TestWithParam<SpecExample> {};

TEST_P(AppendixRequest, EqualsDerivedRequestConfiguration) {
  const SpecExample& e = GetParam();
  const json expected = ReadJson(e.path);
  absl::StatusOr<NetConfList> list =
      NetConfList::Parse(ReadText(kSpecDir + "/" + e.version + "/conflist-dbnet.json"));
  ASSERT_TRUE(list.ok()) << list.status();
  absl::StatusOr<std::string> version = list->SelectedVersion();
  ASSERT_TRUE(version.ok()) << version.status();
  ASSERT_EQ(*version, e.version);

  // The plugin the request is for.
  size_t index = list->plugins.size();
  for (size_t i = 0; i < list->plugins.size(); ++i) {
    if (list->plugins[i]["type"] == expected["type"]) index = i;
  }
  ASSERT_LT(index, list->plugins.size()) << "no plugin of type " << expected["type"];

  std::optional<Result> prev;
  if (expected.contains("prevResult")) {
    absl::StatusOr<Result> r = Result::FromJson(WithVersion(expected["prevResult"], e.version));
    ASSERT_TRUE(r.ok()) << r.status();
    prev = *r;
  }
  const Command command = CommandOfRequest(e.stem);
  absl::StatusOr<json> built =
      Runtime::BuildPluginConfig(*list, index, *version, prev, AppendixAttachment(), command);
  ASSERT_TRUE(built.ok()) << built.status();
  json actual = *built;

  EXPECT_FALSE(actual.contains("capabilities")) << "section 3: capabilities must not be set";
  if (actual.contains("prevResult") && actual["prevResult"].contains("cniVersion")) {
    // The spec abbreviates prevResult without cniVersion; when written it must be the selected one.
    EXPECT_EQ(actual["prevResult"]["cniVersion"], *version);
    actual["prevResult"].erase("cniVersion");
  }
  json want = expected;
  if ((e.version == "1.0.0" || e.version == "1.1.0") && want["type"] == "bridge") {
    // The appendix omits the ipam.routes of its own network configuration; the runtime must
    // pass the plugin configuration through unaltered, so ours keeps them.
    EXPECT_EQ(actual["ipam"]["routes"], list->plugins[index]["ipam"]["routes"]);
    actual["ipam"].erase("routes");
  }
  EXPECT_EQ(actual, want) << "derived:\n" << actual.dump(2) << "\nspec:\n" << want.dump(2);
}

INSTANTIATE_TEST_SUITE_P(Spec, AppendixRequest, ::testing::ValuesIn(ExamplesOfKind("request")),
                         TestName);

// The appendix's chain: bridge's result is tuning's prevResult, tuning's is portmap's, and the
// final result is what CHECK and DEL receive.
TEST(SpecAppendix, ResultsChainThroughPrevResult) {
  for (const std::string v : {"1.0.0", "1.1.0"}) {
    SCOPED_TRACE(v);
    const std::string dir = kSpecDir + "/" + v;
    absl::StatusOr<Result> bridge =
        Result::FromJson(WithVersion(ReadJson(dir + "/result-add-1-bridge.json"), v));
    absl::StatusOr<Result> tuning =
        Result::FromJson(WithVersion(ReadJson(dir + "/result-add-2-tuning.json"), v));
    absl::StatusOr<Result> ipam =
        Result::FromJson(WithVersion(ReadJson(dir + "/result-add-1-host-local.json"), v));
    ASSERT_TRUE(bridge.ok() && tuning.ok() && ipam.ok());
    // The IPAM result is the abbreviated form: no interfaces, no interface index.
    EXPECT_TRUE(ipam->interfaces.empty());
    ASSERT_EQ(ipam->ips.size(), 1u);
    EXPECT_FALSE(ipam->ips[0].interface.has_value());
    EXPECT_EQ(ipam->ips[0].address.ToString(), "10.1.0.5/16");
    ASSERT_TRUE(ipam->ips[0].gateway.has_value());
    EXPECT_EQ(ipam->ips[0].gateway->ToString(), "10.1.0.1");
    // bridge adds the interfaces and the index; tuning only changes the MAC of eth0.
    ASSERT_EQ(bridge->interfaces.size(), 3u);
    EXPECT_EQ(bridge->ips[0].interface, 2);
    EXPECT_EQ(bridge->interfaces[2].sandbox, "/var/run/netns/blue");
    EXPECT_EQ(bridge->interfaces[0].sandbox, "");
    Result expected_tuning = *bridge;
    expected_tuning.interfaces[2].mac = "00:11:22:33:44:66";
    EXPECT_EQ(*tuning, expected_tuning);

    NetConf tuning_req = NetConf::Parse(ReadText(dir + "/request-add-2-tuning.json")).value();
    ASSERT_TRUE(tuning_req.prev_result.has_value());
    EXPECT_EQ(*tuning_req.prev_result, *bridge);
    for (const char* f :
         {"request-add-3-portmap", "request-check-1-bridge", "request-del-1-portmap"}) {
      NetConf req = NetConf::Parse(ReadText(dir + "/" + f + ".json")).value();
      ASSERT_TRUE(req.prev_result.has_value()) << f;
      EXPECT_EQ(*req.prev_result, *tuning) << f;
    }
  }
}

// --- Section 3: deriving runtimeConfig and the injected keys. ----------------------------------

NetConfList ListOf(const std::string& version, const std::vector<json>& plugins) {
  json j = {{"cniVersion", version}, {"name", "net1"}, {"plugins", plugins}};
  absl::StatusOr<NetConfList> list = NetConfList::FromJson(j);
  EXPECT_TRUE(list.ok()) << list.status();
  return list.value_or(NetConfList{});
}

TEST(SpecSection3, RuntimeConfigIsTheSpecExample) {
  // "Deriving runtimeConfig": myPlugin with the portMappings capability.
  const json plugin = ReadJson(kSpecDir + "/1.1.0/plugin-capabilities.json");
  NetConfList list = ListOf("1.1.0", {plugin});
  RuntimeConf rt = AppendixAttachment();  // Offers mac too, which myPlugin did not declare.
  absl::StatusOr<json> built =
      Runtime::BuildPluginConfig(list, 0, "1.1.0", std::nullopt, rt, Command::kAdd);
  ASSERT_TRUE(built.ok()) << built.status();
  json want = {
      {"cniVersion", "1.1.0"},
      {"name", "net1"},
      {"type", "myPlugin"},
      {"runtimeConfig",
       {{"portMappings",
         json::array({{{"hostPort", 8080}, {"containerPort", 80}, {"protocol", "tcp"}}})}}}};
  EXPECT_EQ(*built, want);
}

TEST(SpecSection3, OnlyDeclaredAndProvidedCapabilitiesAreInjected) {
  NetConfList list = ListOf(
      "1.0.0",
      {{{"type", "p"}, {"capabilities", {{"mac", false}, {"bandwidth", true}, {"ips", true}}}}});
  RuntimeConf rt;
  rt.container_id = "c1";
  rt.netns = "/run/netns/x";
  rt.capability_args = {
      {"mac", "00:11:22:33:44:55"}, {"ips", {"10.0.0.1/24"}}, {"portMappings", json::array()}};
  absl::StatusOr<json> built =
      Runtime::BuildPluginConfig(list, 0, "1.0.0", std::nullopt, rt, Command::kAdd);
  ASSERT_TRUE(built.ok()) << built.status();
  // mac is declared false, bandwidth is not provided, portMappings is not declared.
  EXPECT_EQ((*built)["runtimeConfig"], json({{"ips", {"10.0.0.1/24"}}}));
  EXPECT_FALSE(built->contains("capabilities"));
}

TEST(SpecSection3, NameAndVersionOfTheListReplaceThePlugins) {
  // 0.4.0: "the runtime MUST replace the name and cniVersion fields in each individual network
  // configuration in the list with the name and cniVersion field of the list itself".
  NetConfList list = ListOf(
      "0.4.0",
      {{{"type", "p"}, {"name", "other"}, {"cniVersion", "0.3.0"}, {"x-vendor", {{"k", 1}}}}});
  RuntimeConf rt;
  rt.container_id = "c1";
  rt.netns = "/run/netns/x";
  absl::StatusOr<json> built =
      Runtime::BuildPluginConfig(list, 0, "0.4.0", std::nullopt, rt, Command::kDel);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ((*built)["name"], "net1");
  EXPECT_EQ((*built)["cniVersion"], "0.4.0");
  EXPECT_EQ((*built)["x-vendor"], json({{"k", 1}}));  // Unknown keys pass through.
  EXPECT_FALSE(built->contains("prevResult"));
}

TEST(SpecSection3, PrevResultIsWrittenInTheSelectedVersion) {
  absl::StatusOr<Result> prev = Result::Parse(R"({
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "mtu": 1450, "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 0},
            {"address": "fd00::5/64", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "priority": 10}]
  })");
  ASSERT_TRUE(prev.ok()) << prev.status();
  NetConfList list = ListOf("0.4.0", {{{"type", "a"}}, {{"type", "b"}}});
  RuntimeConf rt;
  rt.container_id = "c1";
  rt.netns = "/run/netns/x";
  absl::StatusOr<json> built =
      Runtime::BuildPluginConfig(list, 1, "0.4.0", *prev, rt, Command::kAdd);
  ASSERT_TRUE(built.ok()) << built.status();
  json want = json::parse(R"({
    "cniVersion": "0.4.0",
    "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/run/netns/x"}],
    "ips": [{"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 0},
            {"version": "6", "address": "fd00::5/64", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]
  })");
  EXPECT_EQ((*built)["prevResult"], want);
  EXPECT_EQ((*built)["type"], "b");
}

// --- Version considerations: cniVersions selects the highest supported version. ---------------

struct SelectionCase {
  const char* list_json;  // Version keys of the list (plugins are added by the test).
  const char* selected;   // Expected version, or nullptr for "code 1".
};

TEST(SpecVersionSelection, HighestSupportedOfCniVersionAndCniVersions) {
  const SelectionCase cases[] = {
      {R"({"cniVersion":"1.1.0","cniVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]})", "1.1.0"},
      {R"({"cniVersion":"0.4.0","cniVersions":["0.3.1","1.0.0"]})", "1.0.0"},
      {R"({"cniVersion":"1.1.0","cniVersions":["0.3.1"]})", "1.1.0"},
      {R"({"cniVersion":"1.0.0","cniVersions":["1.1.0","2.0.0"]})", "1.1.0"},
      {R"({"cniVersions":["1.0.0","0.4.0","0.3.0"]})", "1.0.0"},
      {R"({"cniVersion":"0.2.0","cniVersions":["0.4.0"]})", "0.4.0"},
      {R"({"cniVersion":"0.3.1"})", "0.3.1"},
      {R"({"cniVersion":"0.3.0"})", "0.3.0"},
      {R"({"cniVersion":"0.2.0"})", nullptr},
      {R"({"cniVersion":"3.0.0","cniVersions":["2.0.0","0.1.0"]})", nullptr},
  };
  for (const SelectionCase& c : cases) {
    SCOPED_TRACE(c.list_json);
    json j = json::parse(c.list_json);
    j["name"] = "net1";
    j["plugins"] = {{{"type", "bridge"}}};
    absl::StatusOr<NetConfList> list = NetConfList::Parse(j.dump());
    ASSERT_TRUE(list.ok()) << list.status();
    absl::StatusOr<std::string> selected = list->SelectedVersion();
    if (c.selected == nullptr) {
      EXPECT_THAT(selected, HasCniCode(ErrorCode::kIncompatibleVersion));
    } else {
      ASSERT_TRUE(selected.ok()) << selected.status();
      EXPECT_EQ(*selected, c.selected);
    }
  }
}

// The 0.3.0 spec's list example says "cniVersion": "0.2.0" - it parses, but no version cninet
// implements can run it.
TEST(SpecVersionSelection, ListInAVersionWeDoNotImplementParsesButCannotRun) {
  absl::StatusOr<NetConfList> list = NetConfList::Parse(
      R"({"cniVersion":"0.2.0","name":"dbnet","plugins":[{"type":"bridge","bridge":"cni0"}]})");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(list->SelectedVersion(), HasCniCode(ErrorCode::kIncompatibleVersion));
}

// --- Unknown fields survive parse/emit at every level. -----------------------------------------

TEST(SpecUnknownFields, NetConfKeepsThemInRaw) {
  const char* text = R"({
    "cniVersion": "1.0.0", "name": "n", "type": "mine",
    "x-top": {"nested": [1, 2, {"deep": true}]},
    "ipam": {"type": "host-local", "x-ipam": "kept", "ranges": [[{"subnet": "10.0.0.0/24"}]]}
  })";
  absl::StatusOr<NetConf> conf = NetConf::Parse(text);
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_EQ(conf->raw, json::parse(text));
  EXPECT_EQ(conf->raw["x-top"]["nested"][2]["deep"], true);
  EXPECT_EQ(conf->ipam["x-ipam"], "kept");
  EXPECT_EQ(conf->IpamType(), "host-local");
}

TEST(SpecUnknownFields, ResultKeepsThemAtEveryLevel) {
  const json in = json::parse(R"({
    "cniVersion": "1.0.0",
    "x-top": 1,
    "interfaces": [{"name": "eth0", "x-if": "a"}],
    "ips": [{"address": "10.0.0.2/24", "interface": 0, "x-ip": [1]}],
    "routes": [{"dst": "0.0.0.0/0", "x-route": {"k": "v"}}],
    "dns": {"nameservers": ["10.0.0.1"], "x-dns": null}
  })");
  absl::StatusOr<Result> r = Result::FromJson(in);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->extra, json({{"x-top", 1}}));
  EXPECT_EQ(r->interfaces[0].extra, json({{"x-if", "a"}}));
  EXPECT_EQ(r->ips[0].extra, json({{"x-ip", {1}}}));
  EXPECT_EQ(r->routes[0].extra, json({{"x-route", {{"k", "v"}}}}));
  EXPECT_EQ(r->dns.extra, json({{"x-dns", nullptr}}));
  absl::StatusOr<json> out = r->ToJson("1.0.0");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, in);
}

}  // namespace
}  // namespace cninet::cni
