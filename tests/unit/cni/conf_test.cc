// NetConf and NetConfList parsing: typed spec keys, wrong types (code 6), invalid configuration
// (code 7), unknown keys kept, and loading configuration files the way runtimes do.
#include "cninet/cni/conf.h"

#include <string>
#include <vector>

#include "cninet/cni/error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_util.h"

namespace cninet::cni {
namespace {

using ::cninet::testing::TempDir;
using ::cninet::testing::WriteFile;
using nlohmann::json;

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

// A valid configuration with `key` set to `value` (or removed when value is discarded).
std::string ConfWith(const std::string& key, const json& value) {
  json j = {{"cniVersion", "1.0.0"}, {"name", "net1"}, {"type", "bridge"}};
  if (value.is_discarded()) {
    j.erase(key);
  } else {
    j[key] = value;
  }
  return j.dump();
}

// --- NetConf ------------------------------------------------------------------------------------

TEST(NetConf, ParsesEveryTypedKey) {
  const char* text = R"({
    "cniVersion": "1.1.0",
    "name": "k8s-pod-network",
    "type": "cninet-bridge",
    "capabilities": {"portMappings": true, "mac": false},
    "ipMasq": true,
    "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"},
    "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
    "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]},
    "args": {"cni": {"ips": ["10.22.0.9"]}},
    "bridge": "cni0",
    "mtu": 1450
  })";
  absl::StatusOr<NetConf> c = NetConf::Parse(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cni_version, "1.1.0");
  EXPECT_EQ(c->name, "k8s-pod-network");
  EXPECT_EQ(c->type, "cninet-bridge");
  EXPECT_EQ(c->capabilities, (std::map<std::string, bool>{{"mac", false}, {"portMappings", true}}));
  EXPECT_TRUE(c->ip_masq);
  EXPECT_EQ(c->IpamType(), "host-local");
  EXPECT_EQ(c->ipam["subnet"], "10.22.0.0/16");
  ASSERT_TRUE(c->dns.has_value());
  EXPECT_EQ(c->dns->nameservers, std::vector<std::string>{"10.96.0.10"});
  EXPECT_EQ(c->dns->search, std::vector<std::string>{"svc.cluster.local"});
  EXPECT_EQ(c->runtime_config["portMappings"][0]["hostPort"], 80);
  EXPECT_EQ(c->args["cni"]["ips"][0], "10.22.0.9");
  EXPECT_FALSE(c->prev_result.has_value());
  // Plugin-specific keys are read from raw, which is the whole object.
  EXPECT_EQ(c->raw, json::parse(text));
  EXPECT_EQ(c->raw["mtu"], 1450);
}

TEST(NetConf, MinimalConfigurationHasEmptyDefaults) {
  absl::StatusOr<NetConf> c = NetConf::Parse(R"({"cniVersion":"0.4.0","name":"n","type":"t"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->IpamType(), "");
  EXPECT_TRUE(c->capabilities.empty());
  EXPECT_FALSE(c->dns.has_value());
  EXPECT_FALSE(c->ip_masq);
  EXPECT_FALSE(c->raw_prev_result.has_value());
}

TEST(NetConf, PrevResultIsReadInTheConfigurationsVersion) {
  // 0.4.0 prevResult without its own cniVersion, with the 0.x "version" key.
  absl::StatusOr<NetConf> c = NetConf::Parse(R"({
    "cniVersion": "0.4.0", "name": "n", "type": "tuning",
    "prevResult": {
      "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
      "ips": [{"version": "4", "address": "10.0.0.5/32", "interface": 0}]
    }
  })");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->prev_result.has_value());
  EXPECT_EQ(c->prev_result->cni_version, "0.4.0");
  ASSERT_EQ(c->prev_result->ips.size(), 1u);
  EXPECT_EQ(c->prev_result->ips[0].address.ToString(), "10.0.0.5/32");
  EXPECT_EQ(c->prev_result->ips[0].interface, 0);
  EXPECT_TRUE(c->prev_result->ips[0].extra.empty()) << c->prev_result->ips[0].extra;
}

TEST(NetConf, UndecodableOrWronglyTypedIsCode6) {
  const std::vector<std::string> cases = {
      "",
      "{",
      "[]",
      "null",
      R"("net1")",
      R"({"cniVersion":"1.0.0","name":"net1","type":"bridge"} trailing)",
      ConfWith("name", 42),
      ConfWith("type", json::array({"bridge"})),
      ConfWith("cniVersion", 1.0),
      ConfWith("capabilities", "portMappings"),
      ConfWith("capabilities", {{"portMappings", "yes"}}),
      ConfWith("ipam", "host-local"),
      ConfWith("ipam", {{"type", 5}}),
      ConfWith("dns", "10.0.0.1"),
      ConfWith("dns", {{"nameservers", "10.0.0.1"}}),
      ConfWith("ipMasq", "true"),
      ConfWith("runtimeConfig", json::array()),
      ConfWith("args", "K=V"),
      ConfWith("prevResult", "none"),
      ConfWith("prevResult", {{"ips", {{{"address", "not-an-ip"}}}}}),
      ConfWith("prevResult", {{"interfaces", {{{"name", 1}}}}}),
  };
  for (const std::string& text : cases) {
    EXPECT_THAT(NetConf::Parse(text), HasCniCode(ErrorCode::kDecodeFailure)) << text;
  }
}

TEST(NetConf, InvalidNetworkNameIsCode7) {
  const json discard = json::value_t::discarded;
  for (const json& name : {json(discard), json(""), json("-net"), json(".net"), json("net/1"),
                           json("net 1"), json("net:1"), json("ne\u00e9t")}) {
    EXPECT_THAT(NetConf::Parse(ConfWith("name", name)), HasCniCode(ErrorCode::kInvalidConfig))
        << name.dump();
  }
  for (const char* name : {"a", "net1", "k8s-pod-network", "my_net.v2", "0net"}) {
    EXPECT_TRUE(NetConf::Parse(ConfWith("name", name)).ok()) << name;
  }
}

TEST(NetConf, FromJsonEqualsParse) {
  const std::string text = ConfWith("ipam", {{"type", "static"}});
  absl::StatusOr<NetConf> a = NetConf::Parse(text);
  absl::StatusOr<NetConf> b = NetConf::FromJson(json::parse(text));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->raw, b->raw);
  EXPECT_EQ(a->IpamType(), "static");
  EXPECT_EQ(b->IpamType(), "static");
}

// --- NetConfList --------------------------------------------------------------------------------

TEST(NetConfList, ParsesListKeys) {
  const char* text = R"({
    "cniVersion": "1.1.0",
    "cniVersions": ["1.0.0", "1.1.0"],
    "name": "cbr0",
    "disableCheck": true,
    "disableGC": true,
    "x-owner": "ops",
    "plugins": [
      {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}},
      {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
    ]
  })";
  absl::StatusOr<NetConfList> l = NetConfList::Parse(text);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->name, "cbr0");
  EXPECT_EQ(l->cni_version, "1.1.0");
  EXPECT_EQ(l->cni_versions, (std::vector<std::string>{"1.0.0", "1.1.0"}));
  EXPECT_TRUE(l->disable_check);
  EXPECT_TRUE(l->disable_gc);
  ASSERT_EQ(l->plugins.size(), 2u);
  EXPECT_EQ(l->plugins[1]["snat"], true);
  EXPECT_EQ(l->raw, json::parse(text));
  EXPECT_EQ(l->raw["x-owner"], "ops");
}

TEST(NetConfList, DisableFlagsDefaultFalseAndAcceptStrings) {
  absl::StatusOr<NetConfList> l =
      NetConfList::Parse(R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"p"}]})");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_FALSE(l->disable_check);
  EXPECT_FALSE(l->disable_gc);
  // The 0.4.0 SPEC types disableCheck as a string ("true"/"false"); libcni accepts both forms.
  l = NetConfList::Parse(
      R"({"cniVersion":"0.4.0","name":"n","disableCheck":"true","plugins":[{"type":"p"}]})");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE(l->disable_check);
  l = NetConfList::Parse(
      R"({"cniVersion":"0.4.0","name":"n","disableCheck":"false","plugins":[{"type":"p"}]})");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_FALSE(l->disable_check);
}

TEST(NetConfList, UndecodableOrWronglyTypedIsCode6) {
  const char* cases[] = {
      "",
      "{",
      "[]",
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"p"}]}})",
      R"({"cniVersion":"1.0.0","name":5,"plugins":[{"type":"p"}]})",
      R"({"cniVersion":1,"name":"n","plugins":[{"type":"p"}]})",
      R"({"cniVersion":"1.1.0","cniVersions":"1.1.0","name":"n","plugins":[{"type":"p"}]})",
      R"({"cniVersion":"1.1.0","cniVersions":[1],"name":"n","plugins":[{"type":"p"}]})",
      R"({"cniVersion":"1.0.0","name":"n","plugins":{"type":"p"}})",
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"p"}, 7]})",
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":5}]})",
  };
  for (const char* text : cases) {
    EXPECT_THAT(NetConfList::Parse(text), HasCniCode(ErrorCode::kDecodeFailure)) << text;
  }
}

// A number or a list where a boolean (or its 0.4.0 string form) belongs is a wrong JSON type,
// like "name": 5 above: code 6, not 7.
TEST(NetConfList, DisableFlagOfWrongTypeIsCode6) {
  const char* cases[] = {
      R"({"cniVersion":"1.0.0","name":"n","disableCheck":1,"plugins":[{"type":"p"}]})",
      R"({"cniVersion":"1.1.0","name":"n","disableGC":[true],"plugins":[{"type":"p"}]})",
  };
  for (const char* text : cases) {
    EXPECT_THAT(NetConfList::Parse(text), HasCniCode(ErrorCode::kDecodeFailure)) << text;
  }
}

TEST(NetConfList, InvalidConfigurationIsCode7) {
  const char* cases[] = {
      R"({"cniVersion":"1.0.0","plugins":[{"type":"p"}]})",                  // No name.
      R"({"cniVersion":"1.0.0","name":"-n","plugins":[{"type":"p"}]})",      // Bad name.
      R"({"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"p"}]})",     // Bad name.
      R"({"cniVersion":"1.0.0","name":"n","plugins":[]})",                   // No plugins.
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"bridge":"cni0"}]})",  // No type.
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":""}]})",
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../bin/sh"}]})",
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a\\b"}]})",
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":".."}]})",
      // A string is an accepted type for disableCheck (0.4.0 SPEC), but not this value.
      R"({"cniVersion":"1.0.0","name":"n","disableCheck":"maybe","plugins":[{"type":"p"}]})",
  };
  for (const char* text : cases) {
    EXPECT_THAT(NetConfList::Parse(text), HasCniCode(ErrorCode::kInvalidConfig)) << text;
  }
}

TEST(NetConfList, SingleConfigurationIsAListOfOne) {
  json conf = {{"cniVersion", "0.4.0"},
               {"name", "wan"},
               {"type", "macvlan"},
               {"master", "eth0"},
               {"ipam", {{"type", "dhcp"}}}};
  absl::StatusOr<NetConfList> l = NetConfList::FromSingle(conf);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->name, "wan");
  EXPECT_EQ(l->cni_version, "0.4.0");
  ASSERT_EQ(l->plugins.size(), 1u);
  EXPECT_EQ(l->plugins[0]["type"], "macvlan");
  EXPECT_EQ(l->plugins[0]["master"], "eth0");
  EXPECT_EQ(l->SelectedVersion().value_or(""), "0.4.0");
  EXPECT_THAT(NetConfList::FromSingle(json{{"cniVersion", "0.4.0"}, {"name", "wan"}}),
              HasCniCode(ErrorCode::kInvalidConfig));
}

// --- Loading files as runtimes do. --------------------------------------------------------------

TEST(ConfFiles, LoadsByExtensionInNameOrder) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  WriteFile(
      dir.Sub("20-b.conflist"),
      R"({"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"},{"type":"portmap"}]})");
  WriteFile(dir.Sub("10-a.conf"), R"({"cniVersion":"0.4.0","name":"a","type":"macvlan"})");
  WriteFile(dir.Sub("30-c.json"), R"({"cniVersion":"0.3.1","name":"c","type":"ipvlan"})");
  WriteFile(dir.Sub("05-ignored.txt"), R"({"cniVersion":"1.0.0","name":"z","type":"x"})");
  WriteFile(dir.Sub("README"), "not a configuration");

  absl::StatusOr<std::vector<std::string>> files = ConfFiles(dir.path());
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(*files, (std::vector<std::string>{dir.Sub("10-a.conf"), dir.Sub("20-b.conflist"),
                                              dir.Sub("30-c.json")}));

  absl::StatusOr<NetConfList> first = LoadFirstConfList(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->name, "a");
  ASSERT_EQ(first->plugins.size(), 1u);
  EXPECT_EQ(first->plugins[0]["type"], "macvlan");
  EXPECT_EQ(first->source, dir.Sub("10-a.conf"));

  absl::StatusOr<NetConfList> b = LoadConfList(dir.path(), "b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->plugins.size(), 2u);
  EXPECT_EQ(b->source, dir.Sub("20-b.conflist"));
  absl::StatusOr<NetConfList> c = LoadConfList(dir.path(), "c");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cni_version, "0.3.1");

  EXPECT_EQ(LoadConfList(dir.path(), "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadConfList(dir.path(), "z").status().code(), absl::StatusCode::kNotFound);
}

TEST(ConfFiles, BrokenFileIsReportedWithItsCode) {
  TempDir dir;
  WriteFile(dir.Sub("10-bad.conflist"), R"({"cniVersion":"1.0.0","name":"bad","plugins":[)");
  EXPECT_THAT(LoadConfListFile(dir.Sub("10-bad.conflist")), HasCniCode(ErrorCode::kDecodeFailure));
  EXPECT_FALSE(LoadConfListFile(dir.Sub("missing.conflist")).ok());
  WriteFile(dir.Sub("x.conf"), R"({"cniVersion":"1.0.0","name":"x","type":"t"})");
  absl::StatusOr<NetConfList> one = LoadConfListFile(dir.Sub("x.conf"));
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->plugins.size(), 1u);
}

TEST(ConfFiles, EmptyOrMissingDirectory) {
  TempDir dir;
  absl::StatusOr<std::vector<std::string>> files = ConfFiles(dir.path());
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_TRUE(files->empty());
  EXPECT_EQ(LoadFirstConfList(dir.path()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(LoadFirstConfList(dir.Sub("does-not-exist")).ok());
}

// --- Name rules (spec sections 1 and 2). --------------------------------------------------------

TEST(NameRules, ContainerId) {
  for (const char* ok : {"a", "0", "abc123", "k8s_pod.1-x", "A.B_C-D",
                         "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b"}) {
    EXPECT_TRUE(ValidateContainerId(ok).ok()) << ok;
  }
  EXPECT_THAT(ValidateContainerId(""), HasCniCode(ErrorCode::kUnknownContainer));
  for (const char* bad : {"-a", "_a", ".a", "a/b", "a b", "a;b", "a\nb", "a:b", "é"}) {
    EXPECT_THAT(ValidateContainerId(bad), HasCniCode(ErrorCode::kInvalidEnvironment)) << bad;
  }
}

TEST(NameRules, InterfaceName) {
  for (const char* ok : {"eth0", "e", "net1", "veth-abc_1.2", "123456789012345"}) {
    EXPECT_TRUE(ValidateInterfaceName(ok).ok()) << ok;
  }
  for (const char* bad :
       {"", "1234567890123456", ".", "..", "a/b", "/", "a:b", "a b", "a\tb", "eth0\n"}) {
    EXPECT_THAT(ValidateInterfaceName(bad), HasCniCode(ErrorCode::kInvalidEnvironment)) << bad;
  }
}

TEST(NameRules, NetworkName) {
  for (const char* ok : {"dbnet", "k8s-pod-network", "a.b_c-d", "1"}) {
    EXPECT_TRUE(ValidateNetworkName(ok).ok()) << ok;
  }
  for (const char* bad : {"", "-a", ".a", "_a", "a/b", "a b", "a\\b"}) {
    EXPECT_THAT(ValidateNetworkName(bad), HasCniCode(ErrorCode::kInvalidConfig)) << bad;
  }
}

TEST(NameRules, PluginType) {
  for (const char* ok : {"bridge", "host-local", "cninet-debug", "my.plugin"}) {
    EXPECT_TRUE(ValidatePluginType(ok).ok()) << ok;
  }
  for (std::string_view bad : {std::string_view(""), std::string_view("."), std::string_view(".."),
                               std::string_view("a/b"), std::string_view("/bin/sh"),
                               std::string_view("a\\b"), std::string_view("a\0b", 3)}) {
    EXPECT_THAT(ValidatePluginType(bad), HasCniCode(ErrorCode::kInvalidConfig)) << bad;
  }
}

}  // namespace
}  // namespace cninet::cni
