// cninet-static next to the reference static IPAM plugin (/usr/lib/cni/static, Debian's
// containernetworking-plugins 1.1.1): the same configuration, CNI_ARGS and command given to both
// binaries, executed like a runtime does (in a "node" namespace, CNI_NETNS a "pod" namespace),
// must print the same JSON; errors carry the same message, and our specific code where the
// reference says 999. Then the reference ptp plugin delegates its IPAM to us in real namespaces.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_util.h"

namespace cninet::static_ipam::e2e {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using json = nlohmann::json;

// Our plugin, as built, and the reference one Debian ships.
std::string OurPlugin() { return std::string(CNINET_PLUGIN_DIR) + "/cninet-static"; }
constexpr const char* kRefPlugin = "/usr/lib/cni/static";

// The versions both plugins implement, and the one only cninet does.
const std::vector<std::string> kSharedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
constexpr const char* kCninetOnlyVersion = "1.1.0";

// One plugin run: exit code, and stdout parsed as JSON (discarded when it is not JSON).
struct Outcome {
  int exit_code = -1;
  json out;
  std::string text;  // stdout and stderr, for failure messages.
};

// The configuration object `members` with "cniVersion" set to `version`.
std::string WithVersion(const std::string& members, const std::string& version) {
  json j = json::parse(members);
  j["cniVersion"] = version;
  return j.dump();
}

// A network configuration whose ipam section is `ipam`, with `extra` top-level members
// (",\"runtimeConfig\":{...}"), without cniVersion.
std::string Net(const std::string& ipam, const std::string& extra = "") {
  return R"({"name":"stnet","type":"mock","ipam":)" + ipam + extra + "}";
}

class StaticE2eTest : public ::testing::Test {
 protected:
  void SetUp() override { CNINET_REQUIRE_ROOT(); }

  // Runs `plugin` inside the node namespace with CNI_NETNS = the pod namespace.
  Outcome Call(const std::string& plugin, const std::string& command, const std::string& conf,
               const std::string& cni_args = "") const {
    cninet::testing::PluginCall call;
    call.command = command;
    call.container_id = "static-ctr";
    call.netns = pod_.path();
    call.args = cni_args;
    call.path = "/usr/lib/cni";
    auto r = cninet::testing::RunCniPlugin(plugin, call, conf, node_.name());
    Outcome o{r.exit_code, json(), "stdout: " + r.out + "\nstderr: " + r.err};
    if (!r.out.empty()) o.out = json::parse(r.out, nullptr, false);
    return o;
  }

  cninet::testing::ScopedNetns node_{"stnode"};
  cninet::testing::ScopedNetns pod_{"stpod"};
};

// ADD: configurations both plugins accept.
struct AddCase {
  std::string what;
  std::string members;  // The configuration without cniVersion.
  std::string cni_args;
};

std::vector<AddCase> AddCases() {
  const std::string dual =
      R"({"type":"static","addresses":[{"address":"10.50.0.5/24","gateway":"10.50.0.1"},)"
      R"({"address":"fd50::5/64","gateway":"fd50::1"}],)"
      R"("routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"fd50::1"},)"
      R"({"dst":"192.168.0.0/16","gw":"10.50.0.254"}],)"
      R"("dns":{"nameservers":["10.50.0.53","fd50::53"],"domain":"cluster.example",)"
      R"("search":["ns.svc.example","svc.example"],"options":["ndots:5","edns0"]}})";
  const std::string one = R"({"type":"static","addresses":[{"address":"10.50.0.9/24"}]})";
  return {
      {"v4 with gateway",
       Net(R"({"type":"static","addresses":[{"address":"10.50.0.5/24","gateway":"10.50.0.1"}]})")},
      {"v4 without gateway", Net(one)},
      {"v6 with gateway",
       Net(R"({"type":"static","addresses":[{"address":"fd50::5/64","gateway":"fd50::1"}]})")},
      {"v6 without gateway and several v4",
       Net(R"({"type":"static","addresses":[{"address":"fd50::6/64"},{"address":"10.50.0.7/24"},)"
           R"({"address":"10.51.0.7/16","gateway":"10.51.0.1"}]})")},
      {"dual stack with routes and DNS", Net(dual)},
      {"routes and DNS without addresses",
       Net(R"({"type":"static","routes":[{"dst":"10.0.0.0/8"}],)"
           R"("dns":{"nameservers":["10.0.0.53"]}})")},
      {"empty ipam section", Net("{}")},
      {"v4-mapped addresses, route host bits, empty gateways, leading zero in length",
       Net(R"({"type":"static","addresses":[)"
           R"({"address":"::ffff:10.52.0.5/120","gateway":"::ffff:10.52.0.1"},)"
           R"({"address":"10.53.0.5/024","gateway":""}],)"
           R"("routes":[{"dst":"10.54.3.4/16","gw":""},{"dst":"::ffff:10.0.0.0/104"}]})")},
      {"DNS keeps its four keys only, null lists are empty",
       Net(R"({"type":"static","addresses":null,"routes":null,)"
           R"("dns":{"nameservers":[],"search":["a.example"],"foo":1,"domain":null}})")},
      {"keys matched ignoring case as Go does",
       R"({"name":"stnet","type":"mock","IPAM":{"Addresses":[)"
       R"({"ADDRESS":"10.55.0.5/24","Gateway":"10.55.0.1"}],)"
       R"("Routes":[{"Dst":"0.0.0.0/0","GW":"10.55.0.1"}],"Dns":{"NameServers":["10.55.0.53"]}}})"},
      {"runtimeConfig.ips replaces every other source",
       Net(dual, R"(,"runtimeConfig":{"ips":["10.59.0.5/24","fd59::5/64"]},)"
                 R"("args":{"cni":{"ips":["10.58.0.5/24"]}})"),
       "IP=10.57.0.5/24;GATEWAY=10.57.0.1"},
      {"args.cni.ips replaces ipam.addresses and IP=",
       Net(dual, R"(,"args":{"cni":{"ips":["10.58.0.5/24","10.58.0.6/24"]}})"),
       "IP=10.57.0.5/24;GATEWAY=10.57.0.1"},
      {"a bad ipam address replaced by runtimeConfig.ips is no error",
       Net(R"({"type":"static","addresses":[{"address":"not-a-cidr"}]})",
           R"(,"runtimeConfig":{"ips":["10.59.0.5/24"]})")},
      {"empty runtimeConfig.ips and args.cni.ips keep the addresses",
       Net(one, R"(,"runtimeConfig":{"ips":[]},"args":{"cni":{"ips":null}})")},
      {"CNI_ARGS IP= and GATEWAY= append (trimmed); GATEWAY= skips ipam.addresses", Net(one),
       "IP= 10.56.0.5/24 , fd56::5/64 ;GATEWAY=10.56.0.1, fd56::1,10.50.0.1"},
      {"IgnoreUnknown with the Kubernetes keys", Net(one),
       "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;IP=10.56.0.7/24"},
      {"duplicates are kept",
       Net(R"({"addresses":[{"address":"10.50.0.5/24"},{"address":"10.50.0.5/24"}],)"
           R"("routes":[{"dst":"0.0.0.0/0"},{"dst":"0.0.0.0/0"}]})")},
  };
}

// Every shared version: the same JSON. 1.1.0 (which the reference does not implement): the
// reference's 1.0.0 result, labelled 1.1.0 (what the upstream plugin prints since it has 1.1.0).
TEST_F(StaticE2eTest, AddPrintsTheReferenceResultInEveryVersion) {
  const auto cases = AddCases();
  ASSERT_GE(cases.size(), 15u);
  for (const AddCase& c : cases) {
    for (const std::string& version : kSharedVersions) {
      std::string conf = WithVersion(c.members, version);
      Outcome ref = Call(kRefPlugin, "ADD", conf, c.cni_args);
      Outcome our = Call(OurPlugin(), "ADD", conf, c.cni_args);
      ASSERT_EQ(ref.exit_code, 0) << c.what << " " << version << "\n" << ref.text;
      ASSERT_EQ(our.exit_code, 0) << c.what << " " << version << "\n" << our.text;
      EXPECT_EQ(our.out, ref.out) << c.what << " " << version << "\nours: " << our.out.dump()
                                  << "\nref:  " << ref.out.dump();
    }
    Outcome ref10 = Call(kRefPlugin, "ADD", WithVersion(c.members, "1.0.0"), c.cni_args);
    Outcome ref11 = Call(kRefPlugin, "ADD", WithVersion(c.members, kCninetOnlyVersion), c.cni_args);
    Outcome our11 =
        Call(OurPlugin(), "ADD", WithVersion(c.members, kCninetOnlyVersion), c.cni_args);
    EXPECT_EQ(ref11.exit_code, 1) << c.what;
    EXPECT_EQ(ref11.out["code"], 1) << c.what << ": the reference now implements 1.1.0";
    ASSERT_EQ(our11.exit_code, 0) << c.what << "\n" << our11.text;
    json expected = ref10.out;
    expected["cniVersion"] = kCninetOnlyVersion;
    EXPECT_EQ(our11.out, expected) << c.what << " 1.1.0\nours: " << our11.out.dump();
  }
}

// ADD: input both plugins refuse.
struct ErrorCase {
  std::string what;
  std::string conf;  // Complete configuration.
  std::string cni_args;
  uint32_t our_code;        // Our code; the reference's is 999 unless `ref_code` says otherwise.
  uint32_t ref_code = 999;  // The reference's code.
  bool same_msg = true;     // False where the message is documented to differ.
};

std::vector<ErrorCase> ErrorCases() {
  auto v1 = [](const std::string& members) { return WithVersion(members, "1.0.0"); };
  auto addr = [&](const std::string& entry) {
    return v1(Net(R"({"type":"static","addresses":[)" + entry + "]}"));
  };
  const std::string ok = v1(Net(R"({"type":"static"})"));
  return {
      {"address without prefix length", addr(R"({"address":"10.1.0.5"})"), "", 7},
      {"address with a leading zero", addr(R"({"address":"010.1.0.5/24"})"), "", 7},
      {"address with a zone", addr(R"({"address":"fe80::1%eth0/64"})"), "", 7},
      {"prefix length too long", addr(R"({"address":"10.1.0.5/33"})"), "", 7},
      {"null address", addr("null"), "", 7},
      {"invalid gateway", addr(R"({"address":"10.1.0.5/24","gateway":"x"})"), "", 7},
      {"gateway not a string", addr(R"({"address":"10.1.0.5/24","gateway":5})"), "", 7},
      {"Version not a string", addr(R"({"address":"10.1.0.5/24","version":4})"), "", 7},
      {"no ipam section", v1(R"({"name":"stnet","type":"mock"})"), "", 7},
      {"null ipam section", v1(Net("null")), "", 7},
      {"addresses not a list", v1(Net(R"({"addresses":"10.1.0.5/24"})")), "", 7},
      {"invalid route dst", v1(Net(R"({"routes":[{"dst":"default"}]})")), "", 7},
      {"null route dst", v1(Net(R"({"routes":[{"dst":null}]})")), "", 7},
      {"route dst not a string", v1(Net(R"({"routes":[{"dst":5}]})")), "", 7},
      {"invalid route gw", v1(Net(R"({"routes":[{"dst":"0.0.0.0/0","gw":"x"}]})")), "", 7},
      {"nameserver not a string", v1(Net(R"({"dns":{"nameservers":[1]}})")), "", 7},
      {"dns not an object", v1(Net(R"({"dns":5})")), "", 7},
      {"runtimeConfig.ips not a list", v1(Net("{}", R"(,"runtimeConfig":{"ips":"x"})")), "", 7},
      {"runtimeConfig.ips entry without length",
       v1(Net("{}", R"(,"runtimeConfig":{"ips":["10.2.0.5"]})")), "", 7},
      {"args.cni not an object", v1(Net("{}", R"(,"args":{"cni":5})")), "", 7},
      {"args.cni.ips bad entry", v1(Net("{}", R"(,"args":{"cni":{"ips":["bad"]}})")), "", 7},
      {"CNI_ARGS IP= without length", ok, "IP=10.1.0.5", 4},
      {"CNI_ARGS IP= with an empty item", ok, "IP=10.1.0.5/24,", 4},
      {"CNI_ARGS GATEWAY= invalid", ok, "IP=10.1.0.5/24;GATEWAY=x, y", 4},
      {"CNI_ARGS value with '='", ok, "IP=10.1.0.5/24=3", 4},
      {"CNI_ARGS unknown keys", ok, "A=1;B=\"q\"", 2},
      {"CNI_ARGS keys are case-sensitive", ok, "ip=10.1.0.5/24", 2},
      {"CNI_ARGS IGNORE_UNKNOWN is not the reference's key", ok, "IGNORE_UNKNOWN=1;K8S_POD_NAME=p",
       2},
      {"CNI_ARGS IgnoreUnknown not a boolean", ok, "IgnoreUnknown=yes", 4},
      {"invalid network name",
       WithVersion(R"({"name":"bad name","type":"mock","ipam":{}})", "1.0.0"), "", 7, 7},
      {"unsupported cniVersion", WithVersion(Net("{}"), "9.9.9"), "", 1, 1, false},
      // cninet's configuration reader checks ipam.type before the plugin runs.
      {"ipam.type not a string", v1(Net(R"({"type":5})")), "", 6, 999, false},
  };
}

TEST_F(StaticE2eTest, InvalidInputFailsWithTheReferenceMessage) {
  const auto cases = ErrorCases();
  ASSERT_GE(cases.size(), 15u);
  for (const ErrorCase& c : cases) {
    Outcome ref = Call(kRefPlugin, "ADD", c.conf, c.cni_args);
    Outcome our = Call(OurPlugin(), "ADD", c.conf, c.cni_args);
    EXPECT_EQ(ref.exit_code, 1) << c.what << "\n" << ref.text;
    EXPECT_EQ(our.exit_code, 1) << c.what << "\n" << our.text;
    EXPECT_EQ(ref.out["code"], c.ref_code) << c.what << "\n" << ref.text;
    EXPECT_EQ(our.out["code"], c.our_code) << c.what << "\n" << our.text;
    if (c.same_msg) {
      EXPECT_EQ(our.out["msg"], ref.out["msg"]) << c.what;
      EXPECT_EQ(our.out.value("details", ""), ref.out.value("details", "")) << c.what;
    }
  }
}

// CHECK: the configuration is validated, and the gateway of each configured address that
// prevResult lists must match.
struct CheckCase {
  std::string what;
  std::string version;
  std::string ipam;         // The ipam section.
  std::string prev_result;  // The prevResult object ("" for none).
  std::string cni_args;
  uint32_t ref_code;  // 0: success.
  uint32_t our_code;
  bool same_msg = true;
};

std::vector<CheckCase> CheckCases() {
  const std::string gw =
      R"({"type":"static","addresses":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}]})";
  const std::string no_gw = R"({"type":"static","addresses":[{"address":"10.1.0.5/24"}]})";
  auto prev = [](const std::string& ips) {
    return R"({"cniVersion":"1.0.0","ips":[)" + ips + "]}";
  };
  return {
      {"same address and gateway", "1.0.0", gw,
       prev(R"({"address":"10.1.0.5/24","gateway":"10.1.0.1"})"), "", 0, 0},
      {"another gateway", "1.0.0", gw, prev(R"({"address":"10.1.0.5/24","gateway":"10.1.0.2"})"),
       "", 999, 100},
      {"no gateway in prevResult", "1.0.0", gw, prev(R"({"address":"10.1.0.5/16"})"), "", 999, 100},
      {"no gateway configured", "1.0.0", no_gw,
       prev(R"({"address":"10.1.0.5/24","gateway":"10.1.0.9"})"), "", 0, 0},
      {"address missing from prevResult", "1.0.0", gw, prev(R"({"address":"10.9.0.5/24"})"), "", 0,
       0},
      {"prevResult without ips", "1.0.0", gw, R"({"cniVersion":"1.0.0"})", "", 0, 0},
      {"first entry with the address decides", "1.0.0", gw,
       prev(R"({"address":"10.1.0.5/24","gateway":"10.1.0.1"},)"
            R"({"address":"10.1.0.5/24","gateway":"10.1.0.9"})"),
       "", 0, 0},
      {"v4-mapped prevResult", "1.0.0", gw,
       prev(R"({"address":"::ffff:10.1.0.5/120","gateway":"::ffff:10.1.0.1"})"), "", 0, 0},
      {"CNI_ARGS gateway", "1.0.0", R"({})", prev(R"({"address":"10.1.0.5/24"})"),
       "IP=10.1.0.5/24;GATEWAY=10.1.0.1", 999, 100},
      {"invalid configuration", "1.0.0", R"({"addresses":[{"address":"bad"}]})", prev(""), "", 999,
       7},
      {"0.4.0", "0.4.0", gw,
       R"({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1"}]})",
       "", 0, 0},
      {"0.3.1 has no CHECK", "0.3.1", gw, R"({"cniVersion":"0.3.1"})", "", 1, 1},
      {"prevResult missing", "1.0.0", gw, "", "", 999, 7, false},
  };
}

TEST_F(StaticE2eTest, CheckAgreesWithTheReference) {
  for (const CheckCase& c : CheckCases()) {
    std::string extra = c.prev_result.empty() ? "" : ",\"prevResult\":" + c.prev_result;
    std::string conf = WithVersion(Net(c.ipam, extra), c.version);
    Outcome ref = Call(kRefPlugin, "CHECK", conf, c.cni_args);
    Outcome our = Call(OurPlugin(), "CHECK", conf, c.cni_args);
    EXPECT_EQ(ref.exit_code, c.ref_code == 0 ? 0 : 1) << c.what << "\n" << ref.text;
    EXPECT_EQ(our.exit_code, c.our_code == 0 ? 0 : 1) << c.what << "\n" << our.text;
    if (c.ref_code == 0) continue;
    EXPECT_EQ(ref.out["code"], c.ref_code) << c.what << "\n" << ref.text;
    EXPECT_EQ(our.out["code"], c.our_code) << c.what << "\n" << our.text;
    if (c.same_msg) {
      EXPECT_EQ(our.out["msg"], ref.out["msg"]) << c.what;
    }
  }
}

// DEL allocates nothing back: it succeeds whatever the ipam section says, printing nothing.
TEST_F(StaticE2eTest, DelAlwaysSucceedsLikeTheReference) {
  for (const std::string& members :
       {Net(R"({"addresses":[{"address":"10.1.0.5/24"}]})"), Net(R"({"addresses":"garbage"})"),
        std::string(R"({"name":"stnet","type":"mock"})")}) {
    for (const std::string& version : kSharedVersions) {
      Outcome ref = Call(kRefPlugin, "DEL", WithVersion(members, version), "FOO=1");
      Outcome our = Call(OurPlugin(), "DEL", WithVersion(members, version), "FOO=1");
      EXPECT_EQ(ref.exit_code, 0) << members << " " << version << "\n" << ref.text;
      EXPECT_EQ(our.exit_code, 0) << members << " " << version << "\n" << our.text;
      EXPECT_TRUE(our.out.is_null()) << our.text;
    }
  }
}

// IPAM never enters the pod's namespace: like the reference, ADD succeeds when CNI_NETNS names
// a namespace that does not exist.
TEST_F(StaticE2eTest, AddWithANonexistentNetnsSucceedsLikeTheReference) {
  std::string conf = WithVersion(Net(R"({"addresses":[{"address":"10.1.0.5/24"}]})"), "1.0.0");
  for (const std::string& plugin : {std::string(kRefPlugin), OurPlugin()}) {
    cninet::testing::PluginCall call;
    call.command = "ADD";
    call.container_id = "static-ctr";
    call.netns = "/nonexistent/cninet-static-netns";
    call.path = "/usr/lib/cni";
    auto r = cninet::testing::RunCniPlugin(plugin, call, conf, node_.name());
    EXPECT_EQ(r.exit_code, 0) << plugin << "\n" << r.out << r.err;
  }
}

// VERSION lists every version cninet implements: the reference's from 0.3.0 on, and 1.1.0.
TEST_F(StaticE2eTest, VersionListsTheSharedVersionsAnd110) {
  Outcome ref = Call(kRefPlugin, "VERSION", R"({"cniVersion":"1.0.0"})");
  Outcome our = Call(OurPlugin(), "VERSION", R"({"cniVersion":"1.0.0"})");
  ASSERT_EQ(ref.exit_code, 0) << ref.text;
  ASSERT_EQ(our.exit_code, 0) << our.text;
  EXPECT_EQ(our.out["cniVersion"], ref.out["cniVersion"]);
  for (const std::string& version : kSharedVersions) {
    EXPECT_THAT(ref.out["supportedVersions"], Contains(version));
    EXPECT_THAT(our.out["supportedVersions"], Contains(version));
  }
  EXPECT_THAT(our.out["supportedVersions"], Contains(kCninetOnlyVersion));
}

// The documented version differences: no 0.1.0/0.2.0 (nor a missing cniVersion, which means
// 0.1.0), and the CNI 1.1 route attributes in 1.1.0 results only.
TEST_F(StaticE2eTest, VersionDifferencesAreTheDocumentedOnes) {
  const std::string members =
      Net(R"({"addresses":[{"address":"10.1.0.5/24"}],)"
          R"("routes":[{"dst":"0.0.0.0/0","mtu":1400,"advmss":1360,"priority":5,"table":100,)"
          R"("scope":0}]})");
  json no_version = json::parse(members);
  for (const std::string& conf : {WithVersion(members, "0.2.0"), no_version.dump()}) {
    Outcome ref = Call(kRefPlugin, "ADD", conf);
    Outcome our = Call(OurPlugin(), "ADD", conf);
    EXPECT_EQ(ref.exit_code, 0) << ref.text;
    EXPECT_EQ(our.exit_code, 1) << our.text;
    EXPECT_EQ(our.out["code"], 1) << our.text;
  }
  Outcome ref10 = Call(kRefPlugin, "ADD", WithVersion(members, "1.0.0"));
  Outcome our10 = Call(OurPlugin(), "ADD", WithVersion(members, "1.0.0"));
  EXPECT_EQ(our10.out, ref10.out) << our10.text;
  EXPECT_EQ(our10.out["routes"], json::parse(R"([{"dst":"0.0.0.0/0"}])"));
  Outcome our11 = Call(OurPlugin(), "ADD", WithVersion(members, "1.1.0"));
  EXPECT_EQ(our11.out["routes"], json::parse(R"([{"dst":"0.0.0.0/0","mtu":1400,"advmss":1360,)"
                                             R"("priority":5,"table":100,"scope":0}])"))
      << our11.text;
}

// The reference ptp plugin with "ipam": {"type": "cninet-static"}, found through CNI_PATH, next
// to the same ptp with the reference static (in a second node/pod pair): the same addresses,
// routes and DNS; our pod has them and reaches its gateway; CHECK and DEL pass through us.
TEST_F(StaticE2eTest, ReferencePtpDelegatesItsIpamToUs) {
  const std::string conf =
      R"({"cniVersion":"1.0.0","name":"stchain","type":"ptp","ipMasq":false,"mtu":1400,)"
      R"("ipam":{"type":"cninet-static",)"
      R"("addresses":[{"address":"10.61.0.5/24","gateway":"10.61.0.1"},)"
      R"({"address":"fd61::5/64","gateway":"fd61::1"}],)"
      R"("routes":[{"dst":"0.0.0.0/0"},{"dst":"fd62::/64","gw":"fd61::1"}],)"
      R"("dns":{"nameservers":["10.61.0.53"],"search":["svc.example"]}}})";
  json ref_conf = json::parse(conf);
  ref_conf["ipam"]["type"] = "static";
  cninet::testing::ScopedNetns ref_node("stnode2");
  cninet::testing::ScopedNetns ref_pod("stpod2");
  auto ptp = [&](const std::string& command, const std::string& config,
                 const cninet::testing::ScopedNetns& node,
                 const cninet::testing::ScopedNetns& pod) {
    cninet::testing::PluginCall call;
    call.command = command;
    call.container_id = "static-chain";
    call.netns = pod.path();
    call.path = std::string(CNINET_PLUGIN_DIR) + ":/usr/lib/cni";
    return cninet::testing::RunCniPlugin("/usr/lib/cni/ptp", call, config, node.name());
  };
  auto add = ptp("ADD", conf, node_, pod_);
  ASSERT_TRUE(add.ok()) << add.out << add.err;
  auto ref_add = ptp("ADD", ref_conf.dump(), ref_node, ref_pod);
  ASSERT_TRUE(ref_add.ok()) << ref_add.out << ref_add.err;
  json result = json::parse(add.out);
  json ref_result = json::parse(ref_add.out);
  for (const char* key : {"ips", "routes", "dns"}) {
    EXPECT_EQ(result[key], ref_result[key]) << key;
  }
  EXPECT_EQ(result["ips"][0]["address"], "10.61.0.5/24");
  EXPECT_THAT(pod_.Exec("ip -4 addr show dev eth0").out, HasSubstr("10.61.0.5/24"));
  EXPECT_THAT(pod_.Exec("ip -6 addr show dev eth0").out, HasSubstr("fd61::5/64"));
  EXPECT_THAT(pod_.Exec("ip -4 route show default").out, HasSubstr("via 10.61.0.1"));
  EXPECT_THAT(pod_.Exec("ip -6 route show fd62::/64").out, HasSubstr("via fd61::1"));
  auto ping = pod_.Exec("ping -c2 -i0.2 -W2 10.61.0.1");
  EXPECT_TRUE(ping.ok()) << ping.out << ping.err;

  json check = json::parse(conf);
  check["prevResult"] = result;
  auto checked = ptp("CHECK", check.dump(), node_, pod_);
  EXPECT_TRUE(checked.ok()) << checked.out << checked.err;

  ASSERT_TRUE(ptp("DEL", conf, node_, pod_).ok());
  ASSERT_TRUE(ptp("DEL", ref_conf.dump(), ref_node, ref_pod).ok());
  EXPECT_NE(pod_.Exec("ip link show eth0").exit_code, 0);
  EXPECT_TRUE(ptp("DEL", conf, node_, pod_).ok());  // Idempotent.
}

}  // namespace
}  // namespace cninet::static_ipam::e2e
