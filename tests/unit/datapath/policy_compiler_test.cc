// The policy compiler (pure C++): label selectors, validation, each NetworkPolicy feature
// (podSelector, namespaceSelector, both, ipBlock with except, ports with protocol and endPort,
// policyTypes), Contrail isolation (a)-(e), identities, incremental updates and counter slots.
// Verdicts are checked through EvaluatePolicy(), which mirrors bpf/lib/policy.h (the BPF tests
// check that the datapath agrees with it), and against a naive evaluator written straight from
// the Kubernetes semantics on random worlds.
#include "cninet/datapath/policy_compiler.h"

#include <arpa/inet.h>

#include <algorithm>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/policy_types.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::datapath {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Op = LabelRequirement::Operator;

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }
cni::IPPrefix Pfx(std::string_view s) { return *cni::IPPrefix::Parse(s); }
cni::IPAddress H(std::string_view s) { return Ip(s); }

LabelSelector Sel(Labels l) { return LabelSelector{std::move(l), {}}; }

PodInfo Pod(std::string ns, std::string name, std::string ip, Labels labels, bool local = true) {
  PodInfo p;
  p.namespace_name = std::move(ns);
  p.name = std::move(name);
  p.addresses = {Ip(ip)};
  p.labels = std::move(labels);
  p.local = local;
  return p;
}

NamespaceInfo Ns(std::string name, Labels labels = {}, bool isolated = false) {
  return NamespaceInfo{std::move(name), std::move(labels), isolated};
}

PolicyPeer PodPeer(Labels l) {
  PolicyPeer p;
  p.pod_selector = Sel(std::move(l));
  return p;
}
PolicyPeer NsPeer(Labels l) {
  PolicyPeer p;
  p.namespace_selector = Sel(std::move(l));
  return p;
}
PolicyPeer CidrPeer(std::string cidr, std::vector<std::string> except = {}) {
  PolicyPeer p;
  IPBlock b;
  b.cidr = Pfx(cidr);
  for (auto& e : except) b.except.push_back(Pfx(e));
  p.ip_block = b;
  return p;
}
PolicyPort Tcp(uint16_t port, uint16_t end = 0) { return {PolicyProtocol::kTcp, port, end}; }
PolicyPort Udp(uint16_t port, uint16_t end = 0) { return {PolicyProtocol::kUdp, port, end}; }

NetworkPolicy Policy(std::string ns, std::string name, Labels selector,
                     std::vector<IngressRule> rules) {
  NetworkPolicy p;
  p.namespace_name = std::move(ns);
  p.name = std::move(name);
  p.pod_selector = Sel(std::move(selector));
  p.ingress = std::move(rules);
  return p;
}

// A compiler plus query helpers.
class World {
 public:
  explicit World(PolicyCompilerOptions o = {}) : c(o) {}
  PolicyCompiler c;
  PolicyChanges Compile() { return c.Compile(); }
  PolicyVerdict Ask(std::string_view src, std::string_view dst, uint8_t proto, uint16_t port,
                    bool via_service = false, bool from_host = false) {
    PolicyQuery q;
    q.src = Ip(src);
    q.dst = Ip(dst);
    q.protocol = ProtocolFromNumber(proto);
    q.port = port;
    q.via_service = via_service;
    q.from_host = from_host;
    return EvaluatePolicy(c.state(), q);
  }
  bool Allowed(std::string_view src, std::string_view dst, uint16_t port = 80, uint8_t proto = 6) {
    return Ask(src, dst, proto, port).allowed;
  }
  const EndpointPolicy* Endpoint(std::string_view ip) {
    auto it = c.state().endpoints.find(H(ip));
    return it == c.state().endpoints.end() ? nullptr : &it->second;
  }
};

// ---- selectors and validation ----

TEST(LabelSelector, MatchLabelsAndEveryOperator) {
  Labels l{{"app", "web"}, {"tier", "front"}};
  EXPECT_TRUE(LabelSelector{}.Matches(l));
  EXPECT_TRUE(LabelSelector{}.Matches({}));
  EXPECT_TRUE(Sel({{"app", "web"}}).Matches(l));
  EXPECT_FALSE(Sel({{"app", "db"}}).Matches(l));
  EXPECT_FALSE(Sel({{"app", "web"}, {"env", "prod"}}).Matches(l));
  auto expr = [](std::string key, Op op, std::vector<std::string> values = {}) {
    LabelSelector s;
    s.match_expressions.push_back({std::move(key), op, std::move(values)});
    return s;
  };
  EXPECT_TRUE(expr("tier", Op::kIn, {"back", "front"}).Matches(l));
  EXPECT_FALSE(expr("tier", Op::kIn, {"back"}).Matches(l));
  EXPECT_FALSE(expr("env", Op::kIn, {"prod"}).Matches(l));
  EXPECT_TRUE(expr("tier", Op::kNotIn, {"back"}).Matches(l));
  EXPECT_FALSE(expr("tier", Op::kNotIn, {"front"}).Matches(l));
  EXPECT_TRUE(expr("env", Op::kNotIn, {"prod"}).Matches(l));  // absent key satisfies NotIn
  EXPECT_TRUE(expr("app", Op::kExists).Matches(l));
  EXPECT_FALSE(expr("env", Op::kExists).Matches(l));
  EXPECT_TRUE(expr("env", Op::kDoesNotExist).Matches(l));
  EXPECT_FALSE(expr("app", Op::kDoesNotExist).Matches(l));
  LabelSelector both = expr("tier", Op::kIn, {"front"});
  both.match_labels = {{"app", "web"}};
  EXPECT_TRUE(both.Matches(l));
  EXPECT_EQ(both.ToString(), "app=web,tier in (front)");
  EXPECT_EQ(LabelSelector{}.ToString(), "{}");
}

TEST(LabelSelector, ValidateRejectsOperatorValueMismatches) {
  LabelSelector s;
  s.match_expressions.push_back({"k", Op::kIn, {}});
  EXPECT_THAT(s.Validate().message(), HasSubstr("needs values"));
  s.match_expressions = {{"k", Op::kExists, {"x"}}};
  EXPECT_THAT(s.Validate().message(), HasSubstr("takes no values"));
  s.match_expressions = {{"", Op::kExists, {}}};
  EXPECT_FALSE(s.Validate().ok());
  EXPECT_FALSE(Sel({{"", "v"}}).Validate().ok());
  EXPECT_TRUE(Sel({{"k", ""}}).Validate().ok());
}

TEST(NetworkPolicyValidate, RejectsEachBadField) {
  auto base = [] { return Policy("ns", "p", {}, {IngressRule{{PodPeer({})}, {Tcp(80)}}}); };
  ASSERT_TRUE(base().Validate().ok());
  auto bad = [](NetworkPolicy p, std::string_view want) {
    absl::Status s = p.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << want;
    EXPECT_THAT(s.message(), HasSubstr(std::string(want)));
  };
  NetworkPolicy p = base();
  p.name = "";
  bad(p, "empty name");
  p = base();
  p.namespace_name = "a/b";
  bad(p, "contains '/'");
  p = base();
  p.ingress[0].from = {PolicyPeer{}};
  bad(p, "needs podSelector, namespaceSelector or ipBlock");
  p = base();
  p.ingress[0].from[0].ip_block = IPBlock{Pfx("10.0.0.0/8"), {}};
  bad(p, "cannot be combined");
  p = base();
  p.ingress[0].from = {CidrPeer("10.0.0.0/16", {"10.1.0.0/24"})};
  bad(p, "strictly inside");
  p.ingress[0].from = {CidrPeer("10.0.0.0/16", {"10.0.0.0/16"})};
  bad(p, "strictly inside");
  p.ingress[0].from = {CidrPeer("10.0.0.0/16", {"fd00::/64"})};
  bad(p, "strictly inside");
  p = base();
  p.ingress[0].ports = {Tcp(0, 90)};
  bad(p, "endPort needs port");
  p.ingress[0].ports = {Tcp(90, 80)};
  bad(p, "endPort 80 < port 90");
  p = base();
  p.ingress[0].ports = {PolicyPort{static_cast<PolicyProtocol>(1), 0, 0}};
  bad(p, "TCP, UDP or SCTP");
  p = base();
  p.policy_types = {PolicyType::kIngress, PolicyType::kIngress};
  bad(p, "duplicate policyType");
  p = base();
  p.pod_selector.match_expressions = {{"k", Op::kIn, {}}};
  bad(p, "podSelector");
}

TEST(PolicyCompiler, BadInputChangesNothing) {
  World w;
  ASSERT_TRUE(w.c.UpsertPod(Pod("web", "api", "10.0.1.1", {{"role", "api"}})).ok());
  ASSERT_TRUE(w.c.UpsertPolicy(Policy("web", "deny", {{"role", "api"}}, {})).ok());
  w.Compile();
  const PolicyState before = w.c.state();
  NetworkPolicy broken = Policy("web", "deny", {}, {IngressRule{{PolicyPeer{}}, {}}});
  EXPECT_FALSE(w.c.UpsertPolicy(broken).ok());
  EXPECT_FALSE(w.c.UpsertPod(Pod("", "x", "10.0.1.2", {})).ok());
  EXPECT_FALSE(w.c.UpsertNamespace(Ns("")).ok());
  PolicySnapshot snap;
  snap.pods = {Pod("web", "a", "10.0.1.3", {}), Pod("web", "a", "10.0.1.4", {})};
  EXPECT_THAT(w.c.Replace(snap).message(), HasSubstr("listed twice"));
  EXPECT_TRUE(w.Compile().empty());
  EXPECT_EQ(w.c.state().endpoints.size(), before.endpoints.size());
  EXPECT_EQ(w.c.state().identities, before.identities);
  EXPECT_FALSE(w.Allowed("10.0.9.9", "10.0.1.1"));  // the deny-all policy still holds
}

// ---- port ranges ----

TEST(PortRangeBlocks, CoverExactlyTheRange) {
  EXPECT_THAT(PortRangeBlocks(80, 80), ElementsAre(std::pair<uint16_t, uint8_t>{80, 16}));
  EXPECT_THAT(PortRangeBlocks(0, 65535), ElementsAre(std::pair<uint16_t, uint8_t>{0, 0}));
  EXPECT_THAT(PortRangeBlocks(8000, 8003), ElementsAre(std::pair<uint16_t, uint8_t>{8000, 14}));
  EXPECT_THAT(PortRangeBlocks(81, 80), IsEmpty());
  std::mt19937 rng(7);
  size_t worst = 0;
  for (int i = 0; i < 2000; ++i) {
    uint16_t a = static_cast<uint16_t>(rng()), b = static_cast<uint16_t>(rng());
    if (i % 4 == 0) b = static_cast<uint16_t>(a + rng() % 300);
    uint16_t lo = std::min(a, b), hi = std::max(a, b);
    auto blocks = PortRangeBlocks(lo, hi);
    worst = std::max(worst, blocks.size());
    uint32_t next = lo;
    for (auto [start, bits] : blocks) {
      ASSERT_EQ(start, next) << lo << "-" << hi;
      uint32_t size = uint32_t{1} << (16 - bits);
      ASSERT_EQ(start % size, 0u) << "block not aligned";
      next = start + size;
    }
    ASSERT_EQ(next, uint32_t{hi} + 1) << lo << "-" << hi;
  }
  EXPECT_LE(worst, 30u);
  EXPECT_EQ(PortRangeBlocks(1, 65534).size(), 30u);  // the worst case
}

TEST(PolicyEntryKey, AbiRoundTripAndCoverage) {
  PolicyEntryKey k{H("10.0.1.1"), 300, 6, CN_POL_PREFIX_PROTO + 14, 8000};  // 8000-8003
  cn_pol_key a = k.ToAbi();
  EXPECT_EQ(a.prefixlen, CN_POL_PREFIX_PROTO + 14u);
  EXPECT_EQ(cninet::datapath::FromAbiAddr(a.endpoint), H("10.0.1.1"));
  EXPECT_EQ(a.port, htons(8000));
  EXPECT_EQ(PolicyEntryKey::FromAbi(a), k);
  EXPECT_TRUE(k.Covers(6, 8003));
  EXPECT_FALSE(k.Covers(6, 8004));
  EXPECT_FALSE(k.Covers(17, 8001));
  EXPECT_EQ(k.ToString(), "10.0.1.1 <- id 300 tcp 8000-8003");
  PolicyEntryKey any{H("10.0.1.1"), CN_POL_ID_ANY, 0, CN_POL_PREFIX_ANY_PROTO, 0};
  EXPECT_TRUE(any.Covers(1, 0));
  EXPECT_EQ(any.ToString(), "10.0.1.1 <- any any protocol");
  // Bits beyond the prefix are zero in the map key.
  PolicyEntryKey sloppy{H("10.0.1.1"), 5, 6, CN_POL_PREFIX_PROTO + 14, 8002};
  EXPECT_EQ(sloppy.ToAbi().port, htons(8000));
}

// ---- NetworkPolicy features ----

class NetworkPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(w_.c.UpsertNamespace(Ns("web", {{"team", "web"}})).ok());
    ASSERT_TRUE(w_.c.UpsertNamespace(Ns("ops", {{"team", "ops"}})).ok());
    ASSERT_TRUE(w_.c.UpsertNamespace(Ns("dev", {{"team", "dev"}})).ok());
    Add(Pod("web", "api", kApi, {{"role", "api"}}));
    Add(Pod("web", "fe", kFe, {{"role", "frontend"}}));
    Add(Pod("web", "db", kDb, {{"role", "db"}}));
    Add(Pod("ops", "mon", kMon, {{"role", "monitor"}}, /*local=*/false));
    Add(Pod("dev", "fe", kDevFe, {{"role", "frontend"}}, /*local=*/false));
  }
  void Add(const PodInfo& p) { ASSERT_TRUE(w_.c.UpsertPod(p).ok()); }
  void Set(const NetworkPolicy& p) {
    ASSERT_TRUE(w_.c.UpsertPolicy(p).ok());
    w_.Compile();
  }
  static constexpr char kApi[] = "10.0.1.1", kFe[] = "10.0.1.2", kDb[] = "10.0.1.3",
                        kMon[] = "10.0.2.1", kDevFe[] = "10.0.3.1";
  World w_;
};

TEST_F(NetworkPolicyTest, UnselectedPodsAcceptEverything) {
  Set(Policy("web", "p", {{"role", "api"}}, {}));
  EXPECT_NE(w_.Endpoint(kApi), nullptr);
  EXPECT_EQ(w_.Endpoint(kFe), nullptr);  // no record: the datapath does not look at it
  EXPECT_TRUE(w_.Allowed(kMon, kFe, 1234));
  EXPECT_FALSE(w_.Ask(kMon, kFe, 6, 1234).managed);
}

TEST_F(NetworkPolicyTest, EmptyIngressDeniesEverythingButHostAndServicesAreNotExempt) {
  Set(Policy("web", "deny-all", {{"role", "api"}}, {}));
  const EndpointPolicy* ep = w_.Endpoint(kApi);
  ASSERT_NE(ep, nullptr);
  EXPECT_EQ(ep->flags, uint32_t{CN_POL_F_DEFAULT_DENY | CN_POL_F_NETPOL});
  EXPECT_THAT(ep->entries, IsEmpty());
  PolicyVerdict v = w_.Ask(kFe, kApi, 6, 80);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.reason, uint32_t{CN_R_DROP_POLICY});
  EXPECT_EQ(v.slot, ep->deny_slot);
  EXPECT_FALSE(w_.Ask(kFe, kApi, 6, 80, /*via_service=*/true).allowed);
  PolicyVerdict host = w_.Ask("10.0.1.254", kApi, 6, 80, false, /*from_host=*/true);
  EXPECT_TRUE(host.allowed);
  EXPECT_EQ(host.slot, ep->host_slot);
}

TEST_F(NetworkPolicyTest, PodSelectorAloneSelectsPodsOfThePolicysNamespace) {
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{PodPeer({{"role", "frontend"}})}, {}}}));
  EXPECT_TRUE(w_.Allowed(kFe, kApi));
  EXPECT_FALSE(w_.Allowed(kDevFe, kApi)) << "same labels, other namespace";
  EXPECT_FALSE(w_.Allowed(kDb, kApi));
  EXPECT_FALSE(w_.Allowed("192.0.2.1", kApi));
}

TEST_F(NetworkPolicyTest, EmptyPodSelectorSelectsEveryPodOfTheNamespace) {
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{PodPeer({})}, {}}}));
  EXPECT_TRUE(w_.Allowed(kFe, kApi));
  EXPECT_TRUE(w_.Allowed(kDb, kApi));
  EXPECT_FALSE(w_.Allowed(kMon, kApi));
}

TEST_F(NetworkPolicyTest, NamespaceSelectorAloneSelectsEveryPodOfMatchingNamespaces) {
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{NsPeer({{"team", "ops"}})}, {}}}));
  EXPECT_TRUE(w_.Allowed(kMon, kApi));
  EXPECT_FALSE(w_.Allowed(kFe, kApi)) << "the policy's own namespace is not implied";
  EXPECT_FALSE(w_.Allowed(kDevFe, kApi));
  // The implicit kubernetes.io/metadata.name label.
  Set(Policy("web", "p", {{"role", "api"}},
             {IngressRule{{NsPeer({{std::string(kNamespaceNameLabel), "dev"}})}, {}}}));
  EXPECT_TRUE(w_.Allowed(kDevFe, kApi));
  EXPECT_FALSE(w_.Allowed(kMon, kApi));
  // Empty namespaceSelector: every namespace.
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{NsPeer({})}, {}}}));
  EXPECT_TRUE(w_.Allowed(kDevFe, kApi));
  EXPECT_TRUE(w_.Allowed(kMon, kApi));
  EXPECT_TRUE(w_.Allowed(kFe, kApi));
  EXPECT_FALSE(w_.Allowed("192.0.2.1", kApi)) << "selectors never match non-pod addresses";
}

TEST_F(NetworkPolicyTest, PodAndNamespaceSelectorTogetherSelectTheIntersection) {
  PolicyPeer both = NsPeer({{"team", "dev"}});
  both.pod_selector = Sel({{"role", "frontend"}});
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{both}, {}}}));
  EXPECT_TRUE(w_.Allowed(kDevFe, kApi));
  EXPECT_FALSE(w_.Allowed(kFe, kApi)) << "frontend, but not in a team=dev namespace";
  Add(Pod("dev", "other", "10.0.3.2", {{"role", "batch"}}, false));
  w_.Compile();
  EXPECT_FALSE(w_.Allowed("10.0.3.2", kApi)) << "team=dev namespace, but not a frontend";
  // Two separate peers are a union instead.
  Set(Policy("web", "p", {{"role", "api"}},
             {IngressRule{{NsPeer({{"team", "dev"}}), PodPeer({{"role", "frontend"}})}, {}}}));
  EXPECT_TRUE(w_.Allowed("10.0.3.2", kApi));
  EXPECT_TRUE(w_.Allowed(kFe, kApi));
}

TEST_F(NetworkPolicyTest, NamespaceLabelChangesMoveMatches) {
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{NsPeer({{"trusted", "yes"}})}, {}}}));
  EXPECT_FALSE(w_.Allowed(kMon, kApi));
  ASSERT_TRUE(w_.c.UpsertNamespace(Ns("ops", {{"team", "ops"}, {"trusted", "yes"}})).ok());
  PolicyChanges ch = w_.Compile();
  EXPECT_TRUE(ch.endpoints.count(H(kApi)));
  EXPECT_TRUE(w_.Allowed(kMon, kApi));
  ASSERT_TRUE(w_.c.DeleteNamespace("ops").ok());
  w_.Compile();
  EXPECT_FALSE(w_.Allowed(kMon, kApi)) << "a deleted namespace has only its name label";
}

TEST_F(NetworkPolicyTest, MatchExpressionsInPeers) {
  LabelSelector s;
  s.match_expressions = {{"role", Op::kIn, {"frontend", "db"}}};
  PolicyPeer p;
  p.pod_selector = s;
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{p}, {}}}));
  EXPECT_TRUE(w_.Allowed(kFe, kApi));
  EXPECT_TRUE(w_.Allowed(kDb, kApi));
  EXPECT_FALSE(w_.Allowed(kApi, kApi));
}

TEST_F(NetworkPolicyTest, IpBlockWithExcept) {
  Set(Policy("web", "p", {{"role", "api"}},
             {IngressRule{{CidrPeer("198.51.0.0/16", {"198.51.100.0/24", "198.51.7.0/28"})},
                          {Tcp(443)}}}));
  EXPECT_TRUE(w_.Allowed("198.51.3.4", kApi, 443));
  EXPECT_TRUE(w_.Allowed("198.51.7.16", kApi, 443));
  EXPECT_FALSE(w_.Allowed("198.51.7.15", kApi, 443)) << "in an except";
  EXPECT_FALSE(w_.Allowed("198.51.100.7", kApi, 443)) << "in an except";
  EXPECT_FALSE(w_.Allowed("198.52.0.1", kApi, 443));
  EXPECT_FALSE(w_.Allowed("198.51.3.4", kApi, 80)) << "other port";
  ASSERT_TRUE(w_.c.PrefixIdentity(Pfx("198.51.0.0/16")).ok());
  ASSERT_TRUE(w_.c.PrefixIdentity(Pfx("198.51.100.0/24")).ok());
  EXPECT_EQ(w_.c.state().cidrs.size(), 3u);
  // A longer prefix from another policy inside the block: its addresses get that prefix's
  // identity (LPM), so the block's rule must cover it too.
  Set(Policy("web", "q", {{"role", "db"}}, {IngressRule{{CidrPeer("198.51.3.0/24")}, {}}}));
  EXPECT_TRUE(w_.Allowed("198.51.3.4", kApi, 443));
  EXPECT_TRUE(w_.Allowed("198.51.3.4", kDb, 5432));
  EXPECT_FALSE(w_.Allowed("198.51.4.4", kDb, 5432));
  // ...but not a longer prefix inside an except.
  Set(Policy("web", "q", {{"role", "db"}}, {IngressRule{{CidrPeer("198.51.100.0/25")}, {}}}));
  EXPECT_FALSE(w_.Allowed("198.51.100.7", kApi, 443));
  EXPECT_TRUE(w_.Allowed("198.51.100.7", kDb, 5432));
}

TEST_F(NetworkPolicyTest, IpBlockAlsoMatchesPodAddresses) {
  Set(Policy("web", "p", {{"role", "api"}},
             {IngressRule{{CidrPeer("10.0.2.0/24")}, {Tcp(9100)}},
              IngressRule{{PodPeer({{"role", "frontend"}})}, {Tcp(80)}}}));
  EXPECT_TRUE(w_.Allowed(kMon, kApi, 9100)) << "pod identity misses, its CIDR identity matches";
  EXPECT_FALSE(w_.Allowed(kMon, kApi, 80));
  EXPECT_TRUE(w_.Allowed(kFe, kApi, 80));
  EXPECT_FALSE(w_.Allowed(kFe, kApi, 9100));
}

TEST_F(NetworkPolicyTest, IpBlockZeroSlashZeroExceptTheClusterPerFamily) {
  Set(Policy("web", "p", {{"role", "api"}},
             {IngressRule{{CidrPeer("0.0.0.0/0", {"10.0.0.0/8"}), CidrPeer("fd00::/8")}, {}}}));
  EXPECT_TRUE(w_.Allowed("192.0.2.1", kApi));
  EXPECT_FALSE(w_.Allowed(kFe, kApi));
  EXPECT_EQ(w_.c.state().cidrs.size(), 3u);
}

// ---- IPv6 ----

class DualStackPolicyTest : public NetworkPolicyTest {
 protected:
  void SetUp() override {
    NetworkPolicyTest::SetUp();
    AddV6("web", "api", kApi, kApi6, {{"role", "api"}});
    AddV6("web", "fe", kFe, kFe6, {{"role", "frontend"}});
    AddV6("ops", "mon", kMon, kMon6, {{"role", "monitor"}});
  }
  // Re-adds pod ns/name (address v4, labels) with a second, IPv6 address.
  void AddV6(const std::string& ns, const std::string& name, const std::string& v4,
             const std::string& v6, Labels labels) {
    PodInfo p = Pod(ns, name, v4, std::move(labels), /*local=*/ns == "web");
    p.addresses.push_back(Ip(v6));
    Add(p);
  }
  static constexpr char kApi6[] = "fd00:10:1::1", kFe6[] = "fd00:10:1::2", kMon6[] = "fd00:10:2::1";
};

TEST_F(DualStackPolicyTest, EachFamilyOfALocalPodIsAnEndpointAndEveryAddressHasTheIdentity) {
  Set(Policy("web", "p", {{"role", "api"}},
             {IngressRule{{PodPeer({{"role", "frontend"}})}, {Tcp(80)}}}));
  const EndpointPolicy* e4 = w_.Endpoint(kApi);
  const EndpointPolicy* e6 = w_.Endpoint(kApi6);
  ASSERT_NE(e4, nullptr);
  ASSERT_NE(e6, nullptr);
  EXPECT_EQ(e6->address, Ip(kApi6));
  EXPECT_NE(e4->deny_slot, e6->deny_slot) << "each family counts on its own";
  EXPECT_EQ(w_.c.state().identities.at(H(kFe6)), w_.c.state().identities.at(H(kFe)));
  EXPECT_TRUE(w_.Allowed(kFe6, kApi6, 80));
  EXPECT_FALSE(w_.Allowed(kFe6, kApi6, 81));
  EXPECT_FALSE(w_.Allowed(kMon6, kApi6, 80));
  EXPECT_TRUE(w_.Allowed(kFe, kApi, 80));
  // The map keys: the endpoint as a 128-bit address, entries keyed by it.
  PolicyEntryKey k = e6->entries.begin()->first;
  EXPECT_EQ(k.endpoint, Ip(kApi6));
  cn_pol_key abi = k.ToAbi();
  EXPECT_EQ(PolicyEntryKey::FromAbi(abi), k);
  EXPECT_EQ(FromAbiAddr(abi.endpoint), Ip(kApi6));
}

TEST_F(DualStackPolicyTest, IPv6BlocksMatchIPv6SourcesOnlyAndIPv4BlocksIPv4Only) {
  Set(Policy("web", "p", {{"role", "api"}},
             {IngressRule{{CidrPeer("2001:db8::/32", {"2001:db8:bad::/48"})}, {Tcp(443)}},
              IngressRule{{CidrPeer("198.51.100.0/24")}, {Tcp(8443)}}}));
  EXPECT_TRUE(w_.Allowed("2001:db8:1::7", kApi6, 443));
  EXPECT_FALSE(w_.Allowed("2001:db8:bad::7", kApi6, 443));
  EXPECT_FALSE(w_.Allowed("2001:db9::7", kApi6, 443));
  EXPECT_TRUE(w_.Allowed("198.51.100.9", kApi, 8443));
  EXPECT_FALSE(w_.Allowed("2001:db8:1::7", kApi6, 8443));
  auto id = w_.c.PrefixIdentity(Pfx("2001:db8::/32"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(*id & CN_POL_ID_CIDR_BIT);
}

TEST_F(DualStackPolicyTest, WholeIPv6SpaceDoesNotAdmitIPv4AndTheReverse) {
  // ::/0 in the 128-bit LPM trie covers the IPv4-mapped keys: the compiler adds 0.0.0.0/0 (the
  // key ::ffff:0:0/96) so IPv4 sources never fall into it.
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{CidrPeer("::/0")}, {}}}));
  EXPECT_TRUE(w_.Allowed("2001:db8::1", kApi6));
  EXPECT_TRUE(w_.Allowed(kMon6, kApi6));
  EXPECT_FALSE(w_.Allowed("192.0.2.1", kApi));
  EXPECT_FALSE(w_.Allowed(kMon, kApi));
  EXPECT_EQ(w_.c.state().cidrs.count(Pfx("0.0.0.0/0")), 1u);
  EXPECT_EQ(PolicyPrefixToAbi(Pfx("0.0.0.0/0")).prefixlen, 96u);
  EXPECT_EQ(PolicyPrefixFromAbi(PolicyPrefixToAbi(Pfx("::/0"))), Pfx("::/0"));
  EXPECT_EQ(PolicyPrefixFromAbi(PolicyPrefixToAbi(Pfx("10.0.0.0/8"))), Pfx("10.0.0.0/8"));
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{CidrPeer("0.0.0.0/0")}, {}}}));
  EXPECT_TRUE(w_.Allowed("192.0.2.1", kApi));
  EXPECT_FALSE(w_.Allowed("2001:db8::1", kApi6));
  // IPv6 blocks inside ::ffff:0:0/96 would alias IPv4 keys: compiled as matching nothing.
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{CidrPeer("::ffff:192.0.2.0/120")}, {}}}));
  EXPECT_FALSE(w_.Allowed("192.0.2.1", kApi));
  EXPECT_EQ(w_.c.state().cidrs.size(), 0u);
}

TEST_F(NetworkPolicyTest, PortsWithProtocolAndEndPort) {
  Set(Policy("web", "p", {{"role", "api"}},
             {IngressRule{
                 {PodPeer({{"role", "frontend"}})},
                 {Tcp(80), Tcp(8000, 8100), Udp(0), PolicyPort{PolicyProtocol::kSctp, 3868, 0}}}}));
  EXPECT_TRUE(w_.Allowed(kFe, kApi, 80));
  EXPECT_FALSE(w_.Allowed(kFe, kApi, 81));
  for (uint16_t p : {8000, 8001, 8063, 8064, 8099, 8100}) EXPECT_TRUE(w_.Allowed(kFe, kApi, p));
  EXPECT_FALSE(w_.Allowed(kFe, kApi, 7999));
  EXPECT_FALSE(w_.Allowed(kFe, kApi, 8101));
  EXPECT_TRUE(w_.Allowed(kFe, kApi, 53, 17)) << "UDP without a port: every UDP port";
  EXPECT_TRUE(w_.Allowed(kFe, kApi, 0, 17)) << "unparsed UDP fragment";
  EXPECT_FALSE(w_.Allowed(kFe, kApi, 80, 1)) << "ICMP is not TCP/UDP/SCTP";
  EXPECT_TRUE(w_.Allowed(kFe, kApi, 3868, 132));
  EXPECT_FALSE(w_.Allowed(kFe, kApi, 3869, 132));
  // 80 + 8000..8100 (8000-8063, 8064-8095, 8096-8099, 8100) + UDP + SCTP.
  EXPECT_EQ(w_.Endpoint(kApi)->entries.size(), 1u + 4u + 1u + 1u);
}

TEST_F(NetworkPolicyTest, NoPortsAllowsEveryProtocolIncludingIcmp) {
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{PodPeer({{"role", "frontend"}})}, {}}}));
  EXPECT_TRUE(w_.Allowed(kFe, kApi, 0, 1));
  EXPECT_TRUE(w_.Allowed(kFe, kApi, 5000, 17));
}

TEST_F(NetworkPolicyTest, NoFromAllowsEverySource) {
  Set(Policy("web", "p", {{"role", "api"}}, {IngressRule{{}, {Tcp(80)}}}));
  EXPECT_TRUE(w_.Allowed("192.0.2.1", kApi, 80));
  EXPECT_TRUE(w_.Allowed(kMon, kApi, 80));
  EXPECT_FALSE(w_.Allowed(kMon, kApi, 81));
  EXPECT_EQ(w_.Endpoint(kApi)->entries.begin()->first.peer, CN_POL_ID_ANY);
}

TEST_F(NetworkPolicyTest, PolicyTypes) {
  NetworkPolicy egress = Policy("web", "e", {{"role", "api"}}, {});
  egress.policy_types = {PolicyType::kEgress};
  Set(egress);
  EXPECT_EQ(w_.Endpoint(kApi), nullptr) << "an Egress-only policy does not isolate ingress";
  egress.policy_types = {PolicyType::kEgress, PolicyType::kIngress};
  Set(egress);
  EXPECT_NE(w_.Endpoint(kApi), nullptr);
  NetworkPolicy dflt = Policy("web", "d", {{"role", "db"}}, {});
  EXPECT_TRUE(dflt.AffectsIngress()) << "no policyTypes means Ingress";
  Set(dflt);
  EXPECT_NE(w_.Endpoint(kDb), nullptr);
}

TEST_F(NetworkPolicyTest, SeveralPoliciesAndRulesAreAUnionWithPerRuleSlots) {
  Set(Policy("web", "a", {{"role", "api"}},
             {IngressRule{{PodPeer({{"role", "frontend"}})}, {Tcp(80)}}}));
  Set(Policy("web", "b", {},
             {IngressRule{{NsPeer({{"team", "ops"}})}, {Tcp(9100)}},
              IngressRule{{PodPeer({{"role", "frontend"}})}, {Tcp(80), Tcp(81)}}}));
  const EndpointPolicy* ep = w_.Endpoint(kApi);
  ASSERT_NE(ep, nullptr);
  ASSERT_EQ(ep->rules.size(), 3u);
  EXPECT_EQ(ep->rules[0].description, "policy web/a ingress[0]");
  EXPECT_EQ(ep->rules[1].description, "policy web/b ingress[0]");
  EXPECT_EQ(ep->rules[2].description, "policy web/b ingress[1]");
  std::set<uint32_t> slots{ep->deny_slot, ep->host_slot};
  for (const auto& r : ep->rules) slots.insert(r.slot);
  EXPECT_EQ(slots.size(), 5u) << "distinct counters";
  // fe:80 is produced by both a[0] and b[1]: the first rule counts it; fe:81 only by b[1].
  EXPECT_EQ(w_.Ask(kFe, kApi, 6, 80).slot, ep->rules[0].slot);
  EXPECT_EQ(w_.Ask(kFe, kApi, 6, 81).slot, ep->rules[2].slot);
  EXPECT_EQ(w_.Ask(kMon, kApi, 6, 9100).slot, ep->rules[1].slot);
  EXPECT_FALSE(w_.Allowed(kMon, kApi, 80));
  // Policy b selects every pod of web: fe and db are default-deny now too.
  EXPECT_NE(w_.Endpoint(kFe), nullptr);
  EXPECT_TRUE(w_.Allowed(kFe, kFe, 81));
}

// ---- isolation (Contrail semantics) ----

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(w_.c.UpsertNamespace(Ns("iso", {}, /*isolated=*/true)).ok());
    ASSERT_TRUE(w_.c.UpsertNamespace(Ns("other")).ok());
    ASSERT_TRUE(w_.c.UpsertPod(Pod("iso", "i1", kI1, {{"app", "a"}})).ok());
    ASSERT_TRUE(w_.c.UpsertPod(Pod("iso", "i2", kI2, {{"app", "b"}}, /*local=*/false)).ok());
    ASSERT_TRUE(w_.c.UpsertPod(Pod("other", "o1", kO1, {{"app", "a"}})).ok());
    w_.Compile();
  }
  static constexpr char kI1[] = "10.0.1.1", kI2[] = "10.0.2.1", kO1[] = "10.0.1.9";
  World w_;
};

TEST_F(IsolationTest, FiveRules) {
  const EndpointPolicy* ep = w_.Endpoint(kI1);
  ASSERT_NE(ep, nullptr);
  EXPECT_EQ(ep->flags,
            uint32_t{CN_POL_F_DEFAULT_DENY | CN_POL_F_ISOLATED | CN_POL_F_ALLOW_SERVICE});
  EXPECT_EQ(ep->rules[0].description, "isolation of namespace iso");
  // (a) pods of the isolated namespace reach each other, any protocol and port.
  EXPECT_TRUE(w_.Allowed(kI2, kI1, 5432));
  EXPECT_TRUE(w_.Allowed(kI2, kI1, 0, 1));
  // (b) pods of other namespaces cannot reach them directly (same labels or not).
  PolicyVerdict b = w_.Ask(kO1, kI1, 6, 5432);
  EXPECT_FALSE(b.allowed);
  EXPECT_EQ(b.reason, uint32_t{CN_R_DROP_ISOLATED});
  EXPECT_FALSE(w_.Allowed("192.0.2.1", kI1, 5432));
  // (c) isolated pods reach pods of other namespaces: o1 has no policy at all.
  EXPECT_EQ(w_.Endpoint(kO1), nullptr);
  EXPECT_TRUE(w_.Allowed(kI1, kO1, 8080));
  // (d)+(e) through a service: the check after DNAT sees via_service.
  PolicyVerdict e = w_.Ask(kO1, kI1, 6, 5432, /*via_service=*/true);
  EXPECT_TRUE(e.allowed);
  EXPECT_EQ(e.slot, ep->service_slot);
  // Kubelet probes from the node.
  EXPECT_TRUE(w_.Ask("10.0.1.254", kI1, 6, 8080, false, /*from_host=*/true).allowed);
}

TEST_F(IsolationTest, NetworkPolicyAddsToIsolation) {
  ASSERT_TRUE(
      w_.c.UpsertPolicy(Policy("iso", "from-other", {{"app", "a"}},
                               {IngressRule{{NsPeer({{std::string(kNamespaceNameLabel), "other"}})},
                                            {Tcp(9090)}}}))
          .ok());
  w_.Compile();
  const EndpointPolicy* ep = w_.Endpoint(kI1);
  EXPECT_EQ(ep->flags, uint32_t{CN_POL_F_DEFAULT_DENY | CN_POL_F_ISOLATED | CN_POL_F_ALLOW_SERVICE |
                                CN_POL_F_NETPOL});
  EXPECT_TRUE(w_.Allowed(kO1, kI1, 9090));
  EXPECT_TRUE(w_.Allowed(kI2, kI1, 1234)) << "isolation still admits its own namespace";
  PolicyVerdict v = w_.Ask(kO1, kI1, 6, 9091);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.reason, uint32_t{CN_R_DROP_POLICY}) << "a NetworkPolicy selects the pod";
}

TEST_F(IsolationTest, TogglingIsolationAndMovingPods) {
  ASSERT_TRUE(w_.c.UpsertNamespace(Ns("iso", {}, false)).ok());
  PolicyChanges ch = w_.Compile();
  EXPECT_TRUE(ch.endpoints.count(H(kI1)));
  EXPECT_EQ(w_.Endpoint(kI1), nullptr);
  EXPECT_TRUE(w_.Allowed(kO1, kI1, 5432));
  ASSERT_TRUE(w_.c.UpsertNamespace(Ns("iso", {}, true)).ok());
  w_.Compile();
  EXPECT_FALSE(w_.Allowed(kO1, kI1, 5432));
  // A pod joining the isolated namespace is admitted by its peers: only identities change for
  // a known label set, a new label set recompiles the namespace's endpoints.
  ASSERT_TRUE(w_.c.UpsertPod(Pod("iso", "i3", "10.0.2.2", {{"app", "b"}}, false)).ok());
  size_t before = w_.c.stats().endpoints_compiled;
  ch = w_.Compile();
  EXPECT_EQ(w_.c.stats().endpoints_compiled, before) << "existing label set: no recompile";
  EXPECT_THAT(ch.identities, ElementsAre(H("10.0.2.2")));
  EXPECT_THAT(ch.endpoints, IsEmpty());
  EXPECT_TRUE(w_.Allowed("10.0.2.2", kI1, 22));
  ASSERT_TRUE(w_.c.UpsertPod(Pod("iso", "i4", "10.0.2.3", {{"app", "new"}}, false)).ok());
  ch = w_.Compile();
  EXPECT_EQ(ch.endpoints, std::set<cni::IPAddress>{H(kI1)});
  EXPECT_TRUE(w_.Allowed("10.0.2.3", kI1, 22));
  // A pod leaving (deleted) loses its identity and access.
  ASSERT_TRUE(w_.c.DeletePod("iso", "i4").ok());
  w_.Compile();
  EXPECT_FALSE(w_.Allowed("10.0.2.3", kI1, 22));
  EXPECT_FALSE(w_.c.state().identities.count(H("10.0.2.3")));
}

// ---- identities, incrementality, slots ----

TEST(PolicyIdentities, OnePerNamespaceAndLabelSet) {
  World w;
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "p1", "10.0.0.1", {{"x", "1"}})).ok());
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "p2", "10.0.0.2", {{"x", "1"}})).ok());
  ASSERT_TRUE(w.c.UpsertPod(Pod("b", "p1", "10.0.0.3", {{"x", "1"}})).ok());
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "p3", "10.0.0.4", {{"x", "2"}})).ok());
  w.Compile();
  uint32_t a1 = *w.c.PodIdentity("a", "p1");
  EXPECT_EQ(*w.c.PodIdentity("a", "p2"), a1);
  EXPECT_NE(*w.c.PodIdentity("b", "p1"), a1);
  EXPECT_NE(*w.c.PodIdentity("a", "p3"), a1);
  EXPECT_GE(a1, CN_POL_ID_FIRST_POD);
  EXPECT_EQ(w.c.stats().identities, 3u);
  EXPECT_EQ(w.c.state().identities.at(H("10.0.0.2")), a1);
  EXPECT_EQ(w.c.PodIdentity("a", "nope").status().code(), absl::StatusCode::kNotFound);
  // Relabel p3 to x=1: it joins a1; identity x=2 disappears.
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "p3", "10.0.0.4", {{"x", "1"}})).ok());
  PolicyChanges ch = w.Compile();
  EXPECT_EQ(*w.c.PodIdentity("a", "p3"), a1);
  EXPECT_EQ(w.c.stats().identities, 2u);
  EXPECT_THAT(ch.identities, ElementsAre(H("10.0.0.4")));
  // Numbers are never reused within a compiler's life.
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "p3", "10.0.0.4", {{"x", "2"}})).ok());
  w.Compile();
  EXPECT_GT(*w.c.PodIdentity("a", "p3"), *w.c.PodIdentity("b", "p1"));
  // Unchanged upserts are no-ops.
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "p3", "10.0.0.4", {{"x", "2"}})).ok());
  EXPECT_TRUE(w.Compile().empty());
}

TEST(PolicyIncremental, ChangesTouchOnlyWhatTheyAffect) {
  World w;
  ASSERT_TRUE(w.c.UpsertNamespace(Ns("a")).ok());
  ASSERT_TRUE(w.c.UpsertNamespace(Ns("b")).ok());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(
        w.c.UpsertPod(Pod("a", StrCat("p", i), StrCat("10.0.1.", i + 1), {{"app", "x"}})).ok());
    ASSERT_TRUE(
        w.c.UpsertPod(Pod("b", StrCat("p", i), StrCat("10.0.2.", i + 1), {{"app", "y"}})).ok());
  }
  ASSERT_TRUE(w.c.UpsertPolicy(Policy("a", "p", {}, {IngressRule{{PodPeer({})}, {Tcp(80)}}})).ok());
  ASSERT_TRUE(
      w.c.UpsertPolicy(Policy("b", "p", {}, {IngressRule{{CidrPeer("192.0.2.0/24")}, {}}})).ok());
  PolicyChanges first = w.Compile();
  EXPECT_EQ(first.endpoints.size(), 40u);
  EXPECT_EQ(first.identities.size(), 40u);
  EXPECT_EQ(w.c.stats().endpoints, 40u);
  size_t n = w.c.stats().endpoints_compiled;

  // A policy change in b recompiles b's endpoints only.
  ASSERT_TRUE(
      w.c.UpsertPolicy(Policy("b", "p", {}, {IngressRule{{CidrPeer("192.0.2.0/25")}, {}}})).ok());
  PolicyChanges ch = w.Compile();
  EXPECT_EQ(w.c.stats().endpoints_compiled - n, 20u);
  EXPECT_EQ(ch.endpoints.size(), 20u);
  for (const cni::IPAddress& ip : ch.endpoints)
    EXPECT_TRUE(Pfx("10.0.2.0/24").Contains(ip)) << ip.ToString();
  EXPECT_EQ(ch.cidrs.size(), 2u) << "one prefix gone, one new";
  n = w.c.stats().endpoints_compiled;

  // A remote pod with a known label set: one identity entry, no endpoint.
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "remote", "10.0.9.1", {{"app", "x"}}, false)).ok());
  ch = w.Compile();
  EXPECT_EQ(w.c.stats().endpoints_compiled, n);
  EXPECT_THAT(ch.identities, ElementsAre(H("10.0.9.1")));
  EXPECT_THAT(ch.endpoints, IsEmpty());
  EXPECT_TRUE(w.Allowed("10.0.9.1", "10.0.1.1", 80));

  // A new label set in b: only endpoints whose rules use selectors (a's) are recompiled.
  ASSERT_TRUE(w.c.UpsertPod(Pod("b", "new", "10.0.2.200", {{"app", "z"}}, false)).ok());
  ch = w.Compile();
  EXPECT_EQ(w.c.stats().endpoints_compiled - n, 20u);
  EXPECT_THAT(ch.endpoints, IsEmpty()) << "recompiled, but nothing in a's maps changes";
  n = w.c.stats().endpoints_compiled;

  // Deleting a local pod removes its endpoint and identity.
  ASSERT_TRUE(w.c.DeletePod("a", "p0").ok());
  ch = w.Compile();
  EXPECT_EQ(ch.endpoints, std::set<cni::IPAddress>{H("10.0.1.1")});
  EXPECT_TRUE(ch.identities.count(H("10.0.1.1")));
  EXPECT_EQ(w.c.stats().endpoints, 39u);
}

TEST(PolicySlots, StableAcrossRecompilesFreedLateAndBounded) {
  World w(PolicyCompilerOptions{.counter_slots = 8});
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "p", "10.0.0.1", {{"app", "x"}})).ok());
  ASSERT_TRUE(w.c.UpsertPolicy(Policy("a", "p", {}, {IngressRule{{}, {Tcp(80)}}})).ok());
  PolicyChanges ch = w.Compile();
  EXPECT_EQ(ch.new_slots.size(), 3u);  // denied, from host, ingress[0]
  const uint32_t rule_slot = w.Endpoint("10.0.0.1")->rules[0].slot;
  // A change elsewhere keeps the rule's slot (and its counter).
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "p", "10.0.0.1", {{"app", "x"}, {"v", "2"}})).ok());
  ch = w.Compile();
  EXPECT_THAT(ch.new_slots, IsEmpty());
  EXPECT_EQ(w.Endpoint("10.0.0.1")->rules[0].slot, rule_slot);
  // An edited rule is another rule: a fresh (zeroed) counter.
  ASSERT_TRUE(w.c.UpsertPolicy(Policy("a", "p", {}, {IngressRule{{}, {Tcp(81)}}})).ok());
  ch = w.Compile();
  ASSERT_EQ(ch.new_slots.size(), 1u);
  const uint32_t edited_slot = w.Endpoint("10.0.0.1")->rules[0].slot;
  EXPECT_NE(edited_slot, rule_slot);
  // Removing the rule frees its slot, but only for the compile after next: the maps still
  // reference it until this compile's changes are written.
  ASSERT_TRUE(w.c.UpsertPolicy(Policy("a", "p", {}, {})).ok());
  w.Compile();
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "q", "10.0.0.2", {{"app", "x"}})).ok());
  ch = w.Compile();
  EXPECT_EQ(std::count(ch.new_slots.begin(), ch.new_slots.end(), rule_slot), 1)
      << "the slot freed two compiles ago is reused now";
  EXPECT_EQ(std::count(ch.new_slots.begin(), ch.new_slots.end(), edited_slot), 1);
  // 8 slots = 7 usable: a third endpoint overflows into the shared slot 0.
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "r", "10.0.0.3", {{"app", "x"}})).ok());
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "s", "10.0.0.4", {{"app", "x"}})).ok());
  w.Compile();
  EXPECT_GT(w.c.stats().slot_overflows, 0u);
  EXPECT_LE(w.c.stats().slots_in_use, 7u);
  EXPECT_FALSE(w.Allowed("10.0.0.9", "10.0.0.4", 80)) << "overflow changes counting, not policy";
}

TEST(PolicySlots, ReservedSlotsAndIdentityFloor) {
  World w;
  w.c.ReserveSlots({1, 2, 3});
  w.c.SetIdentityFloor(1000, 50);
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "p", "10.0.0.1", {})).ok());
  ASSERT_TRUE(
      w.c.UpsertPolicy(Policy("a", "p", {}, {IngressRule{{CidrPeer("192.0.2.0/24")}, {}}})).ok());
  PolicyChanges ch = w.Compile();
  for (uint32_t s : ch.new_slots) EXPECT_GT(s, 3u);
  EXPECT_GE(*w.c.PodIdentity("a", "p"), 1000u);
  EXPECT_EQ(*w.c.PrefixIdentity(Pfx("192.0.2.0/24")), (CN_POL_ID_CIDR_BIT | 50u));
  w.c.ReleaseReservedSlots();
  ASSERT_TRUE(w.c.UpsertPod(Pod("a", "q", "10.0.0.2", {})).ok());
  ch = w.Compile();
  EXPECT_TRUE(std::count(ch.new_slots.begin(), ch.new_slots.end(), 1u));
}

TEST(PolicyReplace, EqualsBuildingIncrementallyAndRemovesWhatIsGone) {
  PolicySnapshot snap;
  snap.namespaces = {Ns("iso", {}, true), Ns("web", {{"t", "w"}})};
  snap.pods = {Pod("iso", "i", "10.0.0.1", {}), Pod("web", "w", "10.0.0.2", {{"r", "api"}}),
               Pod("web", "x", "10.0.0.3", {{"r", "fe"}}, false)};
  snap.policies = {
      Policy("web", "p", {{"r", "api"}}, {IngressRule{{PodPeer({{"r", "fe"}})}, {Tcp(80)}}})};
  World inc;
  for (const auto& n : snap.namespaces) ASSERT_TRUE(inc.c.UpsertNamespace(n).ok());
  ASSERT_TRUE(inc.c.UpsertPod(Pod("web", "gone", "10.0.0.9", {}, true)).ok());
  ASSERT_TRUE(inc.c.UpsertPolicy(Policy("web", "gone", {}, {})).ok());
  inc.Compile();
  ASSERT_TRUE(inc.c.Replace(snap).ok());
  inc.Compile();
  World fresh;
  ASSERT_TRUE(fresh.c.Replace(snap).ok());
  fresh.Compile();
  EXPECT_EQ(inc.c.state().endpoints.size(), fresh.c.state().endpoints.size());
  EXPECT_EQ(inc.c.state().identities.size(), fresh.c.state().identities.size());
  EXPECT_EQ(inc.c.stats().pods, 3u);
  for (auto [src, dst, port] :
       std::vector<std::tuple<std::string, std::string, uint16_t>>{{"10.0.0.3", "10.0.0.2", 80},
                                                                   {"10.0.0.3", "10.0.0.2", 81},
                                                                   {"10.0.0.2", "10.0.0.1", 1},
                                                                   {"10.0.0.9", "10.0.0.3", 1},
                                                                   {"10.0.0.1", "10.0.0.9", 1}}) {
    EXPECT_EQ(inc.Allowed(src, dst, port), fresh.Allowed(src, dst, port)) << src << "->" << dst;
  }
  EXPECT_EQ(inc.Endpoint("10.0.0.9"), nullptr);
}

// ---- random worlds against a naive evaluator ----

// Kubernetes semantics written directly (no identities, no entries, no LPM).
struct Naive {
  const PolicySnapshot& s;
  const NamespaceInfo* Ns(const std::string& n) const {
    for (const auto& x : s.namespaces)
      if (x.name == n) return &x;
    return nullptr;
  }
  Labels NsLabels(const std::string& n) const {
    const NamespaceInfo* x = Ns(n);
    NamespaceInfo d;
    d.name = n;
    return x ? x->SelectorLabels() : d.SelectorLabels();
  }
  const PodInfo* PodOf(const cni::IPAddress& ip) const {
    const PodInfo* best = nullptr;
    for (const auto& p : s.pods) {
      for (const auto& a : p.addresses) {
        if (a == ip && (!best || p.Key() < best->Key())) best = &p;
      }
    }
    return best;
  }
  static bool InBlock(const IPBlock& b, const cni::IPAddress& ip) {
    if (!b.cidr.Masked().Contains(ip)) return false;  // Contains: same family only
    for (const auto& e : b.except)
      if (e.Masked().Contains(ip)) return false;
    return true;
  }
  bool PeerMatches(const NetworkPolicy& pol, const PolicyPeer& peer, const cni::IPAddress& src,
                   const PodInfo* sp) const {
    if (peer.ip_block) return InBlock(*peer.ip_block, src);
    if (!sp) return false;
    if (peer.namespace_selector) {
      if (!peer.namespace_selector->Matches(NsLabels(sp->namespace_name))) return false;
    } else if (sp->namespace_name != pol.namespace_name) {
      return false;
    }
    return !peer.pod_selector || peer.pod_selector->Matches(sp->labels);
  }
  static bool PortMatches(const std::vector<PolicyPort>& ports, uint8_t proto, uint16_t port) {
    if (ports.empty()) return true;
    for (const auto& p : ports) {
      if (static_cast<uint8_t>(p.protocol) != proto) continue;
      if (p.port == 0) return true;
      uint16_t hi = p.end_port ? p.end_port : p.port;
      if (port >= p.port && port <= hi) return true;
    }
    return false;
  }
  bool Allowed(const PolicyQuery& q) const {
    const PodInfo* dp = nullptr;
    for (const auto& p : s.pods) {
      if (!p.local) continue;
      for (const auto& a : p.addresses)
        if (a == q.dst && (!dp || p.Key() < dp->Key())) dp = &p;
    }
    if (!dp || q.from_host) return true;
    const NamespaceInfo* ns = Ns(dp->namespace_name);
    bool isolated = ns && ns->isolated;
    std::vector<const NetworkPolicy*> sel;
    for (const auto& pol : s.policies) {
      if (pol.namespace_name == dp->namespace_name && pol.AffectsIngress() &&
          pol.pod_selector.Matches(dp->labels))
        sel.push_back(&pol);
    }
    if (!isolated && sel.empty()) return true;
    if (isolated && q.via_service) return true;
    const PodInfo* sp = PodOf(q.src);
    if (isolated && sp && sp->namespace_name == dp->namespace_name) return true;
    for (const NetworkPolicy* pol : sel) {
      for (const auto& rule : pol->ingress) {
        bool from = rule.from.empty();
        for (const auto& peer : rule.from) from = from || PeerMatches(*pol, peer, q.src, sp);
        if (from && PortMatches(rule.ports, ToNumber(q.protocol), q.port)) return true;
      }
    }
    return false;
  }
};

TEST(PolicyRandomWorlds, CompiledVerdictsMatchTheNaiveEvaluator) {
  std::mt19937 rng(20240609);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::vector<std::string> nss = {"a", "b", "c", "d"};
  const std::vector<std::string> values = {"x", "y", "z"};
  auto labels = [&] {
    Labels l;
    if (rng() % 4) l["app"] = values[pick(3)];
    if (rng() % 2) l["tier"] = values[pick(3)];
    return l;
  };
  auto selector = [&] {
    LabelSelector s;
    int k = static_cast<int>(rng() % 4);
    if (k == 1) s.match_labels["app"] = values[pick(3)];
    if (k == 2)
      s.match_expressions.push_back({"tier", Op::kIn, {values[pick(3)], values[pick(3)]}});
    if (k == 3)
      s.match_expressions.push_back({"app", rng() % 2 ? Op::kExists : Op::kDoesNotExist, {}});
    return s;
  };
  std::vector<std::string> ips;  // Both families: dual-stack pods have two.
  // A block around a pod address, often with an except around another pod address inside it,
  // so that queries land in blocks and in excepts; sometimes a whole family (0.0.0.0/0, ::/0:
  // an IPv6 block covering the IPv4-mapped range must still not match IPv4 sources).
  auto prefix = [&]() -> std::pair<std::string, std::vector<std::string>> {
    cni::IPAddress around = Ip(ips[pick(ips.size())]);
    const int bits = around.bit_length();
    int len =
        around.is_v4() ? 12 + static_cast<int>(rng() % 13) : 28 + static_cast<int>(rng() % 40);
    if (rng() % 8 == 0) len = 0;
    cni::IPPrefix block = cni::IPPrefix(around, len).Masked();
    std::vector<std::string> ex;
    if (rng() % 3 != 0) {
      cni::IPAddress inner = Ip(ips[pick(ips.size())]);
      if (!block.Contains(inner)) inner = block.address();
      int elen = len + 1 + static_cast<int>(rng() % (bits - len));
      ex.push_back(cni::IPPrefix(inner, elen).Masked().ToString());
    }
    return {block.ToString(), ex};
  };
  int checked = 0, allowed = 0;
  for (int round = 0; round < 30; ++round) {
    PolicySnapshot s;
    for (const auto& n : nss) {
      Labels l;
      if (rng() % 2) l["env"] = rng() % 2 ? "prod" : "dev";
      s.namespaces.push_back(Ns(n, l, rng() % 3 == 0));
    }
    ips.clear();
    for (int i = 0; i < 24; ++i) {
      const uint32_t a = rng() % 3, b = rng() % 4;
      std::string ip = StrCat("10.", a, ".", b, ".", 1 + i);
      ips.push_back(ip);
      s.pods.push_back(Pod(nss[pick(4)], StrCat("p", i), ip, labels(), rng() % 3 != 0));
      if (rng() % 2) {
        std::string ip6 = StrCat("fd00:10:", a, ":", b, "::", 1 + i);
        ips.push_back(ip6);
        s.pods.back().addresses.push_back(Ip(ip6));
      }
    }
    for (int i = 0; i < 6; ++i) {
      NetworkPolicy p;
      p.namespace_name = nss[pick(4)];
      p.name = StrCat("np", i);
      p.pod_selector = selector();
      if (rng() % 5 == 0) p.policy_types = {PolicyType::kEgress};
      int rules = static_cast<int>(rng() % 3);
      for (int r = 0; r < rules; ++r) {
        IngressRule rule;
        int peers = static_cast<int>(rng() % 3);
        for (int j = 0; j < peers; ++j) {
          PolicyPeer peer;
          switch (rng() % 4) {
            case 0:
              peer.pod_selector = selector();
              break;
            case 1:
              peer.namespace_selector = LabelSelector{{{"env", rng() % 2 ? "prod" : "dev"}}, {}};
              break;
            case 2:
              peer.pod_selector = selector();
              peer.namespace_selector = selector();
              break;
            default: {
              auto [cidr, ex] = prefix();
              peer = CidrPeer(cidr, ex);
            }
          }
          rule.from.push_back(peer);
        }
        int ports = static_cast<int>(rng() % 3);
        for (int j = 0; j < ports; ++j) {
          uint16_t lo = static_cast<uint16_t>(rng() % 100);
          uint16_t end = rng() % 2 ? static_cast<uint16_t>(lo + rng() % 40) : 0;
          PolicyPort port{rng() % 3 ? PolicyProtocol::kTcp : PolicyProtocol::kUdp, lo, end};
          if (lo == 0) port.end_port = 0;
          rule.ports.push_back(port);
        }
        p.ingress.push_back(rule);
      }
      s.policies.push_back(p);
    }
    // Half the rounds build the world through incremental mutations in random order.
    World w;
    if (round % 2 == 0) {
      ASSERT_TRUE(w.c.Replace(s).ok());
      w.Compile();
    } else {
      std::vector<std::function<void()>> ops;
      for (const auto& n : s.namespaces) ops.push_back([&w, n] { (void)w.c.UpsertNamespace(n); });
      for (const auto& p : s.pods) ops.push_back([&w, p] { (void)w.c.UpsertPod(p); });
      for (const auto& p : s.policies) ops.push_back([&w, p] { (void)w.c.UpsertPolicy(p); });
      std::shuffle(ops.begin(), ops.end(), rng);
      for (size_t i = 0; i < ops.size(); ++i) {
        ops[i]();
        if (rng() % 4 == 0) w.Compile();
      }
      w.Compile();
    }
    Naive naive{s};
    for (int q = 0; q < 300; ++q) {
      PolicyQuery query;
      query.dst = Ip(ips[pick(ips.size())]);
      do {
        query.src = Ip(ips[pick(ips.size())]);
      } while (query.src.family() != query.dst.family());
      if (rng() % 5 == 0) {  // An address no pod has.
        query.src = query.dst.is_v4()
                        ? cni::IPAddress::V4((10u << 24) | (rng() & 0xffffff))
                        : Ip(StrCat("fd00:10:", rng() % 3, ":", rng() % 4, "::", rng() % 64));
      }
      query.protocol = rng() % 3 ? Protocol::kTcp : Protocol::kUdp;
      query.port = static_cast<uint16_t>(rng() % 150);
      query.via_service = rng() % 6 == 0;
      PolicyVerdict v = EvaluatePolicy(w.c.state(), query);
      ASSERT_EQ(v.allowed, naive.Allowed(query))
          << "round " << round << ": " << query.src.ToString() << " -> " << query.dst.ToString()
          << " proto " << query.protocol << " port " << query.port
          << " via_service=" << query.via_service;
      ++checked;
      allowed += v.allowed;
    }
  }
  EXPECT_EQ(checked, 30 * 300);
  // Both outcomes are well represented (the generator is not degenerate).
  EXPECT_GT(allowed, checked / 10);
  EXPECT_LT(allowed, checked * 9 / 10);
}

}  // namespace
}  // namespace cninet::datapath
