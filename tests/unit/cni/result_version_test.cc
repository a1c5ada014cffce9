// Result conversion between every pair of supported versions (0.3.0 0.3.1 0.4.0 1.0.0 1.1.0)
// loses exactly what the spec and libcni document, and nothing else:
//   * below 1.1.0: interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope;
//   * below 1.0.0: every IP carries "version": "4"|"6"; from 1.0.0 on it does not;
//   * unknown fields at every level, everything else: equal.
// The expected JSON comes from a small reference implementation of those rules written here
// (Canonical) plus hand-written golden objects that do not depend on it.
#include <string>
#include <tuple>
#include <vector>

#include "cninet/cni/error.h"
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

const std::vector<std::string> kVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};

// A 1.1.0 result using every field: 1.1-only fields, IPv4 and IPv6, an IP without interface
// index, index 0, scope 0, and unknown keys at every level.
const char* kRich = R"({
  "cniVersion": "1.1.0",
  "x-top": {"vendor": "acme", "list": [1, 2]},
  "interfaces": [
    {"name": "cni0", "mac": "00:11:22:33:44:55", "mtu": 1500},
    {"name": "veth3243", "mac": "55:44:33:22:11:11", "x-if": 1},
    {"name": "eth0", "mac": "99:88:77:66:55:44", "mtu": 1450, "sandbox": "/var/run/netns/blue",
     "socketPath": "/run/vhost/eth0.sock", "pciID": "0000:03:00.1"}
  ],
  "ips": [
    {"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2},
    {"address": "fd00:1::5/64", "gateway": "fd00:1::1", "interface": 2, "x-ip": "kept"},
    {"address": "192.168.7.1/32", "interface": 0},
    {"address": "10.99.0.7/24"}
  ],
  "routes": [
    {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "advmss": 1360, "priority": 100,
     "table": 200, "scope": 0},
    {"dst": "::/0", "gw": "fd00:1::1", "priority": 1024},
    {"dst": "10.96.0.0/12", "scope": 253, "x-route": [1, 2]},
    {"dst": "192.168.0.0/16"}
  ],
  "dns": {
    "nameservers": ["10.1.0.1", "fd00:1::1"],
    "domain": "cluster.local",
    "search": ["default.svc.cluster.local", "svc.cluster.local"],
    "options": ["ndots:5", "edns0"],
    "x-dns": true
  }
})";

// Reference rules: `j` as it must look when emitted in `version`.
json Canonical(json j, const std::string& version) {
  j["cniVersion"] = version;
  const bool below_11 = CompareVersions(version, "1.1.0") < 0;
  const bool below_10 = CompareVersions(version, "1.0.0") < 0;
  if (below_11) {
    for (auto& intf : j["interfaces"]) {
      for (const char* k : {"mtu", "socketPath", "pciID"}) intf.erase(k);
    }
    for (auto& route : j["routes"]) {
      for (const char* k : {"mtu", "advmss", "priority", "table", "scope"}) route.erase(k);
    }
  }
  for (auto& ip : j["ips"]) {
    if (below_10) {
      ip["version"] = ip["address"].get<std::string>().find(':') == std::string::npos ? "4" : "6";
    } else {
      ip.erase("version");
    }
  }
  return j;
}

// --- Every version pair. -----------------------------------------------------------------------

class VersionPair : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(VersionPair, ConvertsWithDocumentedLossesOnly) {
  const auto& [from, to] = GetParam();
  const json rich = json::parse(kRich);
  absl::StatusOr<Result> original = Result::Parse(kRich);
  ASSERT_TRUE(original.ok()) << original.status();

  // Emit in `from`: exactly the reference form.
  absl::StatusOr<json> in_from = original->ToJson(from);
  ASSERT_TRUE(in_from.ok()) << in_from.status();
  const json want_from = Canonical(rich, from);
  EXPECT_EQ(*in_from, want_from) << "emitted in " << from;

  // A consumer in `from` parses it and emits `to`.
  absl::StatusOr<Result> parsed = Result::Parse(in_from->dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->cni_version, from);
  absl::StatusOr<json> in_to = parsed->ToJson(to);
  ASSERT_TRUE(in_to.ok()) << in_to.status();
  EXPECT_EQ(*in_to, Canonical(want_from, to)) << from << " -> " << to;

  // Re-emitting in the version it was read in is the identity.
  absl::StatusOr<json> again = parsed->ToJson(from);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *in_from);

  // And the round trip back: from -> to -> from.
  absl::StatusOr<Result> back = Result::FromJson(*in_to);
  ASSERT_TRUE(back.ok()) << back.status();
  absl::StatusOr<json> back_in_from = back->ToJson(from);
  ASSERT_TRUE(back_in_from.ok()) << back_in_from.status();
  EXPECT_EQ(*back_in_from, Canonical(Canonical(want_from, to), from));
}

std::string PairName(const ::testing::TestParamInfo<VersionPair::ParamType>& p) {
  std::string s = "v" + std::get<0>(p.param) + "_to_v" + std::get<1>(p.param);
  for (char& c : s) {
    if (c == '.') c = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(AllPairs, VersionPair,
                         ::testing::Combine(::testing::ValuesIn(kVersions),
                                            ::testing::ValuesIn(kVersions)),
                         PairName);

TEST(ResultVersions, LosslessAtTheSameVersion) {
  absl::StatusOr<Result> r = Result::Parse(kRich);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<std::string> text = r->ToString("1.1.0");
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<Result> again = Result::Parse(*text);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *r);
  EXPECT_EQ(json::parse(*text), json::parse(kRich));
}

// Typed access to what was parsed: nothing lands in `extra` that has a field.
TEST(ResultVersions, TypedFieldsAreParsed) {
  absl::StatusOr<Result> r = Result::Parse(kRich);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->interfaces.size(), 3u);
  EXPECT_EQ(r->interfaces[2].mtu, 1450u);
  EXPECT_EQ(r->interfaces[2].socket_path, "/run/vhost/eth0.sock");
  EXPECT_EQ(r->interfaces[2].pci_id, "0000:03:00.1");
  EXPECT_EQ(r->interfaces[2].sandbox, "/var/run/netns/blue");
  EXPECT_EQ(r->interfaces[1].extra, json({{"x-if", 1}}));
  ASSERT_EQ(r->ips.size(), 4u);
  EXPECT_EQ(r->ips[1].address.ToString(), "fd00:1::5/64");
  EXPECT_EQ(r->ips[2].interface, 0);
  EXPECT_FALSE(r->ips[3].interface.has_value());
  EXPECT_FALSE(r->ips[3].gateway.has_value());
  ASSERT_EQ(r->routes.size(), 4u);
  EXPECT_EQ(r->routes[0].mtu, 1400u);
  EXPECT_EQ(r->routes[0].advmss, 1360u);
  EXPECT_EQ(r->routes[0].priority, 100u);
  EXPECT_EQ(r->routes[0].table, 200u);
  EXPECT_EQ(r->routes[0].scope, 0u);  // Present and zero is not absent.
  EXPECT_FALSE(r->routes[1].scope.has_value());
  EXPECT_EQ(r->routes[2].scope, 253u);
  EXPECT_TRUE(r->routes[0].extra.empty());
  EXPECT_EQ(r->dns.domain, "cluster.local");
  EXPECT_EQ(r->dns.options, (std::vector<std::string>{"ndots:5", "edns0"}));
  EXPECT_EQ(r->extra, json({{"x-top", {{"vendor", "acme"}, {"list", {1, 2}}}}}));
}

// --- Golden conversions written out by hand (independent of Canonical). ------------------------

TEST(ResultVersionsGolden, From11To031) {
  absl::StatusOr<Result> r = Result::Parse(R"({
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "eth0", "mac": "02:42:ac:11:00:02", "mtu": 9000,
                    "sandbox": "/run/netns/p", "pciID": "0000:00:01.0"}],
    "ips": [{"address": "172.17.0.2/16", "gateway": "172.17.0.1", "interface": 0},
            {"address": "2001:db8::2/64", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "172.17.0.1", "table": 100, "scope": 0}],
    "dns": {"nameservers": ["1.1.1.1"]}
  })");
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<json> out = r->ToJson("0.3.1");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, json::parse(R"({
    "cniVersion": "0.3.1",
    "interfaces": [{"name": "eth0", "mac": "02:42:ac:11:00:02", "sandbox": "/run/netns/p"}],
    "ips": [{"version": "4", "address": "172.17.0.2/16", "gateway": "172.17.0.1", "interface": 0},
            {"version": "6", "address": "2001:db8::2/64", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "172.17.0.1"}],
    "dns": {"nameservers": ["1.1.1.1"]}
  })"));
}

TEST(ResultVersionsGolden, From030To100DropsIpVersion) {
  absl::StatusOr<Result> r = Result::Parse(R"({
    "cniVersion": "0.3.0",
    "interfaces": [{"name": "eth0", "sandbox": "/run/netns/p"}],
    "ips": [{"version": "4", "address": "10.0.0.9/8", "gateway": "10.0.0.1", "interface": 0}]
  })");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->cni_version, "0.3.0");
  absl::StatusOr<json> out = r->ToJson("1.0.0");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, json::parse(R"({
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "sandbox": "/run/netns/p"}],
    "ips": [{"address": "10.0.0.9/8", "gateway": "10.0.0.1", "interface": 0}]
  })"));
  // The default version is the one it was read in.
  absl::StatusOr<json> same = r->ToJson();
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ((*same)["cniVersion"], "0.3.0");
  EXPECT_EQ((*same)["ips"][0]["version"], "4");
}

TEST(ResultVersionsGolden, From11To10DropsOnly11Fields) {
  absl::StatusOr<Result> r = Result::Parse(R"({
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "vhost0", "socketPath": "/run/v.sock", "mtu": 1500}],
    "ips": [{"address": "10.2.0.3/24", "interface": 0}],
    "routes": [{"dst": "10.0.0.0/8", "gw": "10.2.0.1", "mtu": 1300, "advmss": 1260,
                "priority": 5, "table": 7, "scope": 253}]
  })");
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<std::string> out = r->ToString("1.0.0");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(json::parse(*out), json::parse(R"({
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "vhost0"}],
    "ips": [{"address": "10.2.0.3/24", "interface": 0}],
    "routes": [{"dst": "10.0.0.0/8", "gw": "10.2.0.1"}]
  })"));
  // ToString is ToJson().dump().
  absl::StatusOr<json> as_json = r->ToJson("1.0.0");
  ASSERT_TRUE(as_json.ok());
  EXPECT_EQ(*out, as_json->dump());
}

// --- Shapes the spec fixes. --------------------------------------------------------------------

TEST(ResultShape, IpamResultHasNoInterfacesInAnyVersion) {
  absl::StatusOr<Result> r = Result::Parse(R"({
    "cniVersion": "1.0.0",
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}]
  })");
  ASSERT_TRUE(r.ok()) << r.status();
  for (const std::string& v : kVersions) {
    SCOPED_TRACE(v);
    absl::StatusOr<json> out = r->ToJson(v);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_FALSE(out->contains("interfaces"));
    EXPECT_FALSE((*out)["ips"][0].contains("interface"));
    EXPECT_FALSE((*out)["routes"][0].contains("gw"));
    EXPECT_FALSE(out->contains("dns"));  // Empty dns is omitted.
  }
}

TEST(ResultShape, EmptyDnsIsOmittedAndNonEmptyKept) {
  absl::StatusOr<Result> empty = Result::Parse(R"({"cniVersion":"1.1.0","dns":{}})");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->dns.empty());
  for (const std::string& v : kVersions) {
    absl::StatusOr<json> out = empty->ToJson(v);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_FALSE(out->contains("dns")) << v;
  }
  absl::StatusOr<Result> domain_only =
      Result::Parse(R"({"cniVersion":"0.4.0","dns":{"domain":"x"}})");
  ASSERT_TRUE(domain_only.ok()) << domain_only.status();
  EXPECT_FALSE(domain_only->dns.empty());
  absl::StatusOr<json> out = domain_only->ToJson("1.1.0");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)["dns"], json({{"domain", "x"}}));
}

TEST(ResultShape, DnsJsonRoundTrip) {
  json in = {{"nameservers", {"10.0.0.10"}},
             {"search", {"a", "b"}},
             {"options", {"ndots:2"}},
             {"domain", "d"},
             {"x", 1}};
  absl::StatusOr<DNS> dns = DNS::FromJson(in);
  ASSERT_TRUE(dns.ok()) << dns.status();
  EXPECT_EQ(dns->search, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(dns->ToJson(), in);
  EXPECT_THAT(DNS::FromJson(json{{"nameservers", "10.0.0.10"}}),
              HasCniCode(ErrorCode::kDecodeFailure));
}

// --- Invalid results and unsupported versions. -------------------------------------------------

TEST(ResultErrors, InterfaceIndexMustReferToAnInterface) {
  Result r;
  r.cni_version = "1.0.0";
  r.interfaces.push_back(Interface{.name = "eth0"});
  IPConfig ip;
  ip.address = IPPrefix::Parse("10.0.0.2/24").value();
  ip.interface = 1;
  r.ips.push_back(ip);
  EXPECT_THAT(r.Validate(), HasCniCode(ErrorCode::kInvalidConfig));
  EXPECT_THAT(r.ToJson("1.0.0"), HasCniCode(ErrorCode::kInvalidConfig));
  EXPECT_THAT(r.ToString("0.4.0"), HasCniCode(ErrorCode::kInvalidConfig));
  r.ips[0].interface = -1;
  EXPECT_THAT(r.Validate(), HasCniCode(ErrorCode::kInvalidConfig));
  r.ips[0].interface = 0;
  EXPECT_TRUE(r.Validate().ok());
  EXPECT_TRUE(r.ToJson("1.0.0").ok());
}

TEST(ResultErrors, UnsupportedVersionsAreCode1) {
  absl::StatusOr<Result> r =
      Result::Parse(R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  for (const char* v : {"0.1.0", "0.2.0", "1.2.0", "2.0.0", "abc"}) {
    EXPECT_THAT(r->ToJson(v), HasCniCode(ErrorCode::kIncompatibleVersion)) << v;
  }
  EXPECT_THAT(Result::Parse(R"({"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}})"),
              HasCniCode(ErrorCode::kIncompatibleVersion));
  EXPECT_THAT(Result::Parse(R"({"cniVersion":"9.0.0","ips":[]})"),
              HasCniCode(ErrorCode::kIncompatibleVersion));
}

TEST(ResultErrors, UndecodableInputIsCode6) {
  const char* cases[] = {
      "",
      "not json",
      R"({"cniVersion":"1.0.0",)",
      R"([{"cniVersion":"1.0.0"}])",
      R"("1.0.0")",
      R"({"cniVersion":100})",
      R"({"cniVersion":"1.0.0","ips":{"address":"10.0.0.2/24"}})",
      R"({"cniVersion":"1.0.0","ips":[{"address":10}]})",
      R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]})",
      R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2"}]})",
      R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/33"}]})",
      R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":"gw"}]})",
      R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","interface":"0"}]})",
      R"({"cniVersion":"1.0.0","interfaces":[{"name":7}]})",
      R"({"cniVersion":"1.0.0","interfaces":"eth0"})",
      R"({"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mtu":"1500"}]})",
      R"({"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mtu":-1}]})",
      R"({"cniVersion":"1.0.0","routes":[{"gw":"10.0.0.1"}]})",
      R"({"cniVersion":"1.0.0","routes":[{"dst":"default"}]})",
      R"({"cniVersion":"1.1.0","routes":[{"dst":"0.0.0.0/0","priority":"high"}]})",
      R"({"cniVersion":"1.0.0","dns":{"nameservers":"10.0.0.10"}})",
      R"({"cniVersion":"1.0.0","dns":[]})",
  };
  for (const char* text : cases) {
    EXPECT_THAT(Result::Parse(text), HasCniCode(ErrorCode::kDecodeFailure)) << text;
  }
}

}  // namespace
}  // namespace cninet::cni
