// Malformed invocations of a real plugin process built with cni::PluginMain
// (cninet-test-recorder): each one must get the spec's error code as the spec's error JSON on
// stdout - and nothing else there -, a non-zero exit code, and must never reach the plugin's
// handler (the recorder writes a line for every handler call, so "no line" proves the host was
// left alone). A few well-formed invocations check the other side: VERSION, ADD printed in the
// requested version, DEL with a missing netns, CHECK, GC, STATUS, and plugin errors.
//
// The plugin runs inside a "node" network namespace created by the test (ip netns exec), with a
// second namespace as the pod's CNI_NETNS. It changes nothing, but tests never run plugins in
// the root namespace.
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cninet/cni/error.h"
#include "cninet/cni/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_util.h"

namespace cninet::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kPlugin[] = CNINET_RECORDER_PLUGIN;

// How one invocation deviates from a well-formed one.
struct BadCase {
  std::string name;
  std::string command;  // CNI_COMMAND of the well-formed base ("ADD", "CHECK", ...).
  std::string version;  // cniVersion of the base configuration.
  // Edits of the base environment: value std::nullopt removes the variable. Values may use
  // @POD@ (pod netns path), @NODE@ (the plugin's own netns), @TMP@ (a directory), @FILE@ (a
  // regular file), @GONE@ (a path that does not exist).
  std::vector<std::pair<std::string, std::optional<std::string>>> env;
  // Edits of the base configuration: key -> value; a discarded value removes the key.
  std::vector<std::pair<std::string, json>> conf;
  std::optional<std::string> raw_stdin;  // Replaces the configuration bytes entirely.
  uint32_t code;                         // Expected CNI error code.
  std::string mention;                   // Must appear in msg or details ("" = no check).
  bool version_readable;                 // The error's cniVersion must then equal `version`.
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

const json kRemove = json(json::value_t::discarded);

// A prevResult that matches the base ADD.
json PrevResult(const std::string& version) {
  json ip = {{"address", "10.22.0.5/24"}, {"gateway", "10.22.0.1"}, {"interface", 0}};
  if (version.rfind("0.", 0) == 0) ip["version"] = "4";
  return {{"cniVersion", version},
          {"interfaces", {{{"name", "eth0"}, {"sandbox", "/run/netns/pod"}}}},
          {"ips", {ip}}};
}

json BaseConf(const std::string& command, const std::string& version) {
  json conf = {{"cniVersion", version}, {"name", "badnet"}, {"type", "cninet-test-recorder"}};
  if (command == "CHECK") conf["prevResult"] = PrevResult(version);
  if (command == "GC") {
    conf["cni.dev/valid-attachments"] = {{{"containerID", "c1"}, {"ifname", "eth0"}}};
  }
  return conf;
}

std::vector<BadCase> BadCases() {
  using E = std::vector<std::pair<std::string, std::optional<std::string>>>;
  using C = std::vector<std::pair<std::string, json>>;
  const json bad_prev_addr = {{"cniVersion", "1.0.0"}, {"ips", {{{"address", "10.22.0.999/24"}}}}};
  return {
      // Configuration that does not decode: code 6.
      {"StdinNotJson", "ADD", "1.0.0", {}, {}, "{not json", 6, "", false},
      {"StdinEmpty", "ADD", "1.0.0", {}, {}, "", 6, "", false},
      {"StdinArray", "ADD", "1.0.0", {}, {}, "[]", 6, "", false},
      {"StdinTrailingGarbage",
       "ADD",
       "1.0.0",
       {},
       {},
       R"({"cniVersion":"1.0.0","name":"badnet","type":"r"} {})",
       6,
       "",
       false},
      {"NameWrongType", "ADD", "1.0.0", {}, C{{"name", 42}}, std::nullopt, 6, "name", true},
      {"TypeWrongType", "ADD", "1.0.0", {}, C{{"type", {"bridge"}}}, std::nullopt, 6, "type", true},
      {"CniVersionWrongType",
       "ADD",
       "1.0.0",
       {},
       C{{"cniVersion", 1.0}},
       std::nullopt,
       6,
       "cniVersion",
       false},
      {"DnsWrongType", "ADD", "1.0.0", {}, C{{"dns", "10.0.0.1"}}, std::nullopt, 6, "dns", true},
      {"CapabilitiesWrongType",
       "ADD",
       "1.0.0",
       {},
       C{{"capabilities", {"mac"}}},
       std::nullopt,
       6,
       "capabilities",
       true},
      {"PrevResultWrongType",
       "ADD",
       "1.0.0",
       {},
       C{{"prevResult", "none"}},
       std::nullopt,
       6,
       "prevResult",
       true},
      {"PrevResultBadAddress",
       "CHECK",
       "1.0.0",
       {},
       C{{"prevResult", bad_prev_addr}},
       std::nullopt,
       6,
       "",
       true},
      {"GcValidAttachmentsWrongType",
       "GC",
       "1.1.0",
       {},
       C{{"cni.dev/valid-attachments", "all"}},
       std::nullopt,
       6,
       "valid-attachments",
       true},
      // Invalid configuration: code 7.
      {"NameMissing", "ADD", "1.0.0", {}, C{{"name", kRemove}}, std::nullopt, 7, "name", true},
      {"NameInvalid", "ADD", "1.0.0", {}, C{{"name", "-bad/name"}}, std::nullopt, 7, "name", true},
      {"CheckWithoutPrevResult",
       "CHECK",
       "1.0.0",
       {},
       C{{"prevResult", kRemove}},
       std::nullopt,
       7,
       "prevResult",
       true},
      // Versions: code 1.
      {"VersionUnsupported020",
       "ADD",
       "1.0.0",
       {},
       C{{"cniVersion", "0.2.0"}},
       std::nullopt,
       1,
       "",
       false},
      {"VersionMissingMeans010",
       "ADD",
       "1.0.0",
       {},
       C{{"cniVersion", kRemove}},
       std::nullopt,
       1,
       "",
       false},
      {"VersionFuture", "ADD", "1.0.0", {}, C{{"cniVersion", "2.0.0"}}, std::nullopt, 1, "", false},
      {"VersionGarbage", "DEL", "1.0.0", {}, C{{"cniVersion", "one"}}, std::nullopt, 1, "", false},
      {"CheckOn031", "CHECK", "0.3.1", {}, {}, std::nullopt, 1, "CHECK", true},
      {"GcOn100", "GC", "1.0.0", {}, {}, std::nullopt, 1, "GC", true},
      {"StatusOn100", "STATUS", "1.0.0", {}, {}, std::nullopt, 1, "STATUS", true},
      {"StatusOn040", "STATUS", "0.4.0", {}, {}, std::nullopt, 1, "STATUS", true},
      // Environment: code 4, naming the variable.
      {"CommandMissing",
       "ADD",
       "1.0.0",
       E{{"CNI_COMMAND", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_COMMAND",
       false},
      {"CommandUnknown",
       "ADD",
       "1.0.0",
       E{{"CNI_COMMAND", "FROB"}},
       {},
       std::nullopt,
       4,
       "CNI_COMMAND",
       false},
      {"CommandLowercase",
       "ADD",
       "1.0.0",
       E{{"CNI_COMMAND", "add"}},
       {},
       std::nullopt,
       4,
       "CNI_COMMAND",
       false},
      {"ContainerIdMissing",
       "ADD",
       "1.0.0",
       E{{"CNI_CONTAINERID", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_CONTAINERID",
       false},
      {"ContainerIdMissingOnDel",
       "DEL",
       "1.0.0",
       E{{"CNI_CONTAINERID", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_CONTAINERID",
       false},
      {"NetnsMissing",
       "ADD",
       "1.0.0",
       E{{"CNI_NETNS", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_NETNS",
       false},
      {"NetnsMissingOnCheck",
       "CHECK",
       "1.0.0",
       E{{"CNI_NETNS", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_NETNS",
       false},
      {"IfnameMissing",
       "ADD",
       "1.0.0",
       E{{"CNI_IFNAME", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"IfnameMissingOnDel",
       "DEL",
       "1.0.0",
       E{{"CNI_IFNAME", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"IfnameMissingOnCheck",
       "CHECK",
       "1.0.0",
       E{{"CNI_IFNAME", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"MissingVariablesAllNamed",
       "ADD",
       "1.0.0",
       E{{"CNI_CONTAINERID", std::nullopt}, {"CNI_IFNAME", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"GcWithoutCniPath",
       "GC",
       "1.1.0",
       E{{"CNI_PATH", std::nullopt}},
       {},
       std::nullopt,
       4,
       "CNI_PATH",
       false},
      {"IfnameTooLong",
       "ADD",
       "1.0.0",
       E{{"CNI_IFNAME", "eth0123456789012"}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"IfnameWithSlash",
       "ADD",
       "1.0.0",
       E{{"CNI_IFNAME", "eth/0"}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"IfnameDot",
       "DEL",
       "1.0.0",
       E{{"CNI_IFNAME", "."}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"IfnameDotDot",
       "ADD",
       "1.0.0",
       E{{"CNI_IFNAME", ".."}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"IfnameWithSpace",
       "ADD",
       "1.0.0",
       E{{"CNI_IFNAME", "eth 0"}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"IfnameWithColon",
       "CHECK",
       "1.0.0",
       E{{"CNI_IFNAME", "eth0:1"}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"ContainerIdBadFirstChar",
       "ADD",
       "1.0.0",
       E{{"CNI_CONTAINERID", "-c0ffee"}},
       {},
       std::nullopt,
       4,
       "CNI_CONTAINERID",
       false},
      {"ContainerIdWithSlash",
       "DEL",
       "1.0.0",
       E{{"CNI_CONTAINERID", "c0/ffee"}},
       {},
       std::nullopt,
       4,
       "CNI_CONTAINERID",
       false},
      {"ContainerIdWithSpace",
       "ADD",
       "1.0.0",
       E{{"CNI_CONTAINERID", "c0 ffee"}},
       {},
       std::nullopt,
       4,
       "CNI_CONTAINERID",
       false},
      {"CniArgsWithoutEquals",
       "ADD",
       "1.0.0",
       E{{"CNI_ARGS", "K8S_POD_NAME"}},
       {},
       std::nullopt,
       4,
       "CNI_ARGS",
       false},
      {"CniArgsEmptyKey",
       "DEL",
       "1.0.0",
       E{{"CNI_ARGS", "K8S_POD_NAME=a;=b"}},
       {},
       std::nullopt,
       4,
       "CNI_ARGS",
       false},
      // Bytes that are not UTF-8 must still produce an error object (JSON needs UTF-8).
      {"CommandNotUtf8",
       "ADD",
       "1.0.0",
       E{{"CNI_COMMAND", "AD\xff"}},
       {},
       std::nullopt,
       4,
       "CNI_COMMAND",
       false},
      {"ContainerIdNotUtf8",
       "ADD",
       "1.0.0",
       E{{"CNI_CONTAINERID", "c0ffee\xfe"}},
       {},
       std::nullopt,
       4,
       "CNI_CONTAINERID",
       false},
      // A name the result JSON cannot carry: the spec says a plugin unable to use CNI_IFNAME must
      // return an error - before the handler has changed anything.
      {"IfnameNotUtf8",
       "ADD",
       "1.0.0",
       E{{"CNI_IFNAME", "eth\xff"}},
       {},
       std::nullopt,
       4,
       "CNI_IFNAME",
       false},
      {"CniArgsNotUtf8",
       "ADD",
       "1.0.0",
       E{{"CNI_ARGS", "K8S_POD_NAME\xff"}},
       {},
       std::nullopt,
       4,
       "CNI_ARGS",
       false},
      {"ConfigNotUtf8",
       "ADD",
       "1.0.0",
       {},
       {},
       "{\"cniVersion\":\"1.0.0\",\"name\":\"n\xff\",\"type\":\"r\"}",
       6,
       "",
       false},
      // CNI_NETNS that is not a usable namespace (ADD/CHECK): 3 if it does not exist, 8 if it is
      // not a network namespace or is the plugin's own.
      {"NetnsDoesNotExist",
       "ADD",
       "1.0.0",
       E{{"CNI_NETNS", "@GONE@"}},
       {},
       std::nullopt,
       3,
       "",
       true},
      {"NetnsDoesNotExistOnCheck",
       "CHECK",
       "1.0.0",
       E{{"CNI_NETNS", "@GONE@"}},
       {},
       std::nullopt,
       3,
       "",
       true},
      {"NetnsIsARegularFile",
       "ADD",
       "1.0.0",
       E{{"CNI_NETNS", "@FILE@"}},
       {},
       std::nullopt,
       8,
       "",
       true},
      {"NetnsIsADirectory",
       "ADD",
       "1.0.0",
       E{{"CNI_NETNS", "@TMP@"}},
       {},
       std::nullopt,
       8,
       "",
       true},
      {"NetnsIsThePluginsOwn",
       "ADD",
       "1.0.0",
       E{{"CNI_NETNS", "@NODE@"}},
       {},
       std::nullopt,
       8,
       "",
       true},
  };
}

std::string CaseName(const ::testing::TestParamInfo<BadCase>& p) { return p.param.name; }

// Per-test namespaces and scratch files.
class PluginProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    node_.emplace("cbinod");
    pod_.emplace("cbipod");
    ASSERT_TRUE(std::filesystem::exists(pod_->path())) << pod_->path();
    record_ = tmp_.Sub("record");
    regular_file_ = tmp_.Sub("not-a-netns");
    WriteFile(regular_file_, "plain file\n");
  }

  std::string Expand(std::string v) const {
    const std::pair<const char*, std::string> subs[] = {
        {"@POD@", pod_->path()},
        {"@NODE@", node_->path()},
        {"@TMP@", tmp_.path()},
        {"@FILE@", regular_file_},
        {"@GONE@", "/run/netns/" + UniqueName("gone")}};
    for (const auto& [from, to] : subs) {
      if (v == from) v = to;
    }
    return v;
  }

  // The base environment of a well-formed `command`.
  std::map<std::string, std::string> BaseEnv(const std::string& command) const {
    std::map<std::string, std::string> env = {
        {"CNI_COMMAND", command}, {"CNI_PATH", "/usr/lib/cni"}, {"CNINET_RECORD_FILE", record_}};
    if (command == "ADD" || command == "CHECK" || command == "DEL") {
      env["CNI_CONTAINERID"] = "c0ffee1234";
      env["CNI_IFNAME"] = "eth0";
      env["CNI_NETNS"] = pod_->path();
      env["CNI_ARGS"] = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0";
    }
    return env;
  }

  // Runs the plugin in the node namespace.
  CommandResult Invoke(const std::map<std::string, std::string>& env, std::string_view stdin_data) {
    std::vector<std::string> envv;
    for (const auto& [k, v] : env) envv.push_back(k + "=" + v);
    envv.push_back("CNINET_TEST_MARKER=1");  // Never an empty environment (Run would inherit ours).
    return ::cninet::testing::Run({"ip", "netns", "exec", node_->name(), kPlugin}, stdin_data, envv,
                                  std::chrono::seconds(30));
  }

  // Lines the plugin's handlers recorded.
  std::vector<std::string> Recorded() const {
    std::vector<std::string> lines;
    std::istringstream in(ReadFile(record_));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  // stdout holds exactly one JSON object: a CNI error with `code`.
  static json ExpectErrorJson(const CommandResult& r, uint32_t code) {
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "stdout is not exactly one JSON value: [" << r.out << "]";
    if (j.is_discarded()) return json::object();
    EXPECT_TRUE(j.is_object()) << r.out;
    for (const auto& [key, value] : j.items()) {
      EXPECT_TRUE(key == "cniVersion" || key == "code" || key == "msg" || key == "details")
          << "unexpected key " << key << " in " << r.out;
    }
    EXPECT_TRUE(j.contains("code") && j["code"].is_number_unsigned()) << r.out;
    EXPECT_EQ(j.value("code", 0u), code) << r.out;
    EXPECT_TRUE(j.contains("msg") && j["msg"].is_string() && !j["msg"].get<std::string>().empty())
        << r.out;
    if (j.contains("details")) {
      EXPECT_TRUE(j["details"].is_string()) << r.out;
    }
    EXPECT_TRUE(j.contains("cniVersion") && j["cniVersion"].is_string() &&
                cni::IsSupportedVersion(j["cniVersion"].get<std::string>()))
        << r.out;
    return j;
  }

  TempDir tmp_;
  std::optional<ScopedNetns> node_;
  std::optional<ScopedNetns> pod_;
  std::string record_;
  std::string regular_file_;
};

// --- The table of malformed invocations. -------------------------------------------------------

class BadInvocation : public PluginProcess, public ::testing::WithParamInterface<BadCase> {};

TEST_P(BadInvocation, GetsSpecErrorAndNeverReachesThePlugin) {
  const BadCase& c = GetParam();
  std::map<std::string, std::string> env = BaseEnv(c.command);
  for (const auto& [k, v] : c.env) {
    if (v.has_value()) {
      env[k] = Expand(*v);
    } else {
      env.erase(k);
    }
  }
  json conf = BaseConf(c.command, c.version);
  for (const auto& [k, v] : c.conf) {
    if (v.is_discarded()) {
      conf.erase(k);
    } else {
      conf[k] = v;
    }
  }
  const std::string stdin_data = c.raw_stdin.value_or(conf.dump());

  CommandResult r = Invoke(env, stdin_data);
  EXPECT_NE(r.exit_code, 0) << "stdout: " << r.out << "\nstderr: " << r.err;
  EXPECT_EQ(r.exit_code, 1) << "PluginMain exits 1 on error";
  json err = ExpectErrorJson(r, c.code);
  if (!c.mention.empty()) {
    EXPECT_THAT(err.value("msg", "") + " | " + err.value("details", ""), HasSubstr(c.mention));
  }
  if (c.version_readable) {
    EXPECT_EQ(err.value("cniVersion", ""), c.version)
        << "errors are reported in the request's version";
  }
  EXPECT_THAT(Recorded(), ::testing::IsEmpty()) << "the plugin's handler was called";
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("recorder handler ran"))) << r.err;
}

INSTANTIATE_TEST_SUITE_P(Table, BadInvocation, ::testing::ValuesIn(BadCases()), CaseName);

TEST(BadInvocationTable, HasAtLeast25Cases) { EXPECT_GE(BadCases().size(), 25u); }

// --- Well-formed invocations. ------------------------------------------------------------------

TEST_F(PluginProcess, VersionPrintsSupportedVersionsOnly) {
  CommandResult r = Invoke({{"CNI_COMMAND", "VERSION"}, {"CNINET_RECORD_FILE", record_}},
                           R"({"cniVersion":"1.0.0"})");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out), json::parse(R"({"cniVersion":"1.0.0",
      "supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})"));
  EXPECT_THAT(Recorded(), ::testing::IsEmpty());
}

TEST_F(PluginProcess, VersionNeedsNoOtherVariable) {
  // Only CNI_COMMAND is required for VERSION; the others are not even validated.
  CommandResult r = Invoke({{"CNI_COMMAND", "VERSION"},
                            {"CNI_IFNAME", "much-too-long-interface-name"},
                            {"CNI_CONTAINERID", "/bad"},
                            {"CNINET_RECORD_FILE", record_}},
                           R"({"cniVersion":"0.4.0"})");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["cniVersion"], "0.4.0");
  EXPECT_EQ(j["supportedVersions"].size(), 5u);
}

// The recorder's result, as the spec says it must look in each version.
json ExpectedAddResult(const std::string& version, const std::string& netns) {
  json ip = {{"address", "10.22.0.5/24"}, {"gateway", "10.22.0.1"}, {"interface", 0}};
  json intf = {{"name", "eth0"}, {"mac", "02:00:00:00:00:01"}, {"sandbox", netns}};
  json route = {{"dst", "0.0.0.0/0"}, {"gw", "10.22.0.1"}};
  if (version == "1.1.0") {
    intf["mtu"] = 1450;
    route["mtu"] = 1400;
    route["priority"] = 10;
  }
  if (version.rfind("0.", 0) == 0) ip["version"] = "4";
  return {{"cniVersion", version},
          {"interfaces", {intf}},
          {"ips", {ip}},
          {"routes", {route}},
          {"dns", {{"nameservers", {"10.22.0.1"}}}}};
}

TEST_F(PluginProcess, AddPrintsTheResultInTheRequestedVersion) {
  for (const std::string v : {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
    SCOPED_TRACE(v);
    CommandResult r = Invoke(BaseEnv("ADD"), BaseConf("ADD", v).dump());
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    json out = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(out.is_discarded()) << "stdout must be the result only: [" << r.out << "]";
    EXPECT_EQ(out, ExpectedAddResult(v, pod_->path()));
    // Logging went to stderr.
    EXPECT_THAT(r.err, HasSubstr("recorder handler ran: ADD"));
  }
  std::vector<std::string> lines = Recorded();
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], "ADD c0ffee1234 eth0 " + pod_->path() + " 0");
}

TEST_F(PluginProcess, ChainedAddPassesPrevResultThroughInTheRequestedVersion) {
  json conf = BaseConf("ADD", "0.4.0");
  conf["prevResult"] = json::parse(R"({
    "interfaces": [{"name": "cni0", "mac": "00:11:22:33:44:55"},
                   {"name": "eth0", "sandbox": "/var/run/netns/blue"}],
    "ips": [{"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 1}],
    "x-from-upstream": {"kept": true}
  })");
  CommandResult r = Invoke(BaseEnv("ADD"), conf.dump());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json want = conf["prevResult"];
  want["cniVersion"] = "0.4.0";
  EXPECT_EQ(json::parse(r.out), want);
}

TEST_F(PluginProcess, DelToleratesAMissingNetns) {
  std::map<std::string, std::string> env = BaseEnv("DEL");
  env["CNI_NETNS"] = "/run/netns/" + UniqueName("gone");
  CommandResult gone = Invoke(env, BaseConf("DEL", "1.0.0").dump());
  EXPECT_EQ(gone.exit_code, 0) << gone.out << gone.err;
  EXPECT_EQ(gone.out, "") << "DEL prints nothing on success";
  env.erase("CNI_NETNS");
  CommandResult unset = Invoke(env, BaseConf("DEL", "1.0.0").dump());
  EXPECT_EQ(unset.exit_code, 0) << unset.out << unset.err;
  EXPECT_EQ(unset.out, "");
  std::vector<std::string> lines = Recorded();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], ::testing::StartsWith("DEL c0ffee1234 eth0 /run/netns/gone"));
  EXPECT_EQ(lines[1], "DEL c0ffee1234 eth0 - 0");
}

TEST_F(PluginProcess, CheckGcAndStatusSucceedSilently) {
  CommandResult check = Invoke(BaseEnv("CHECK"), BaseConf("CHECK", "0.4.0").dump());
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_EQ(check.out, "");
  CommandResult gc = Invoke(BaseEnv("GC"), BaseConf("GC", "1.1.0").dump());
  EXPECT_EQ(gc.exit_code, 0) << gc.out << gc.err;
  EXPECT_EQ(gc.out, "");
  CommandResult status = Invoke(BaseEnv("STATUS"), BaseConf("STATUS", "1.1.0").dump());
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_EQ(status.out, "");
  std::vector<std::string> lines = Recorded();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "CHECK c0ffee1234 eth0 " + pod_->path() + " 0");
  EXPECT_EQ(lines[1], "GC   - 1");  // No container/ifname/netns for GC; one valid attachment.
  EXPECT_EQ(lines[2], "STATUS   - 0");
}

TEST_F(PluginProcess, PluginErrorsKeepTheirCode) {
  json add = BaseConf("ADD", "1.0.0");
  add["failWith"] = {{"ADD", 123}};
  CommandResult r = Invoke(BaseEnv("ADD"), add.dump());
  EXPECT_EQ(r.exit_code, 1);
  json err = ExpectErrorJson(r, 123);
  EXPECT_EQ(err["cniVersion"], "1.0.0");
  EXPECT_THAT(err.value("msg", ""), HasSubstr("configured to fail ADD"));

  json status = BaseConf("STATUS", "1.1.0");
  status["failWith"] = {{"STATUS", 50}};
  CommandResult s = Invoke(BaseEnv("STATUS"), status.dump());
  EXPECT_EQ(s.exit_code, 1);
  EXPECT_EQ(ExpectErrorJson(s, 50)["cniVersion"], "1.1.0");
  EXPECT_EQ(Recorded().size(), 2u);  // These did reach the plugin: it is the plugin that failed.
}

}  // namespace
}  // namespace cninet::testing
