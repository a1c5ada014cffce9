// The ingress policy through BPF_PROG_TEST_RUN (root): the policy fixture table (allow, deny,
// port ranges, ipBlock except, replies of allowed flows, service-DNATed flows, isolation, host
// traffic, policy changes), per-rule counters, agreement of the datapath with the compiler's
// model on random flows, and PolicyTable's map writes (incremental, restart with pinned maps,
// a full map).
#include "policy_fixtures.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>

#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "cninet/datapath/types.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using ::testing::HasSubstr;

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }

std::map<std::pair<std::string, std::string>, uint64_t> CountersByRule(Datapath& dp) {
  std::map<std::pair<std::string, std::string>, uint64_t> out;
  auto c = dp.policy().ReadCounters();
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return out;
  for (const auto& x : *c) out[{x.endpoint.ToString(), x.rule}] += x.packets;
  return out;
}

class PolicyBpfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    guard_ = std::make_unique<ThreadNetnsGuard>(ns_.path());
    ASSERT_TRUE(guard_->status().ok()) << guard_->status();
  }
  // to-pod's verdict for a forwarded packet (-1 when the run fails).
  int Verdict(const Bytes& packet) {
    auto r = dp_->TestRun(Hook::kToPod, packet, 1, 0, kForwarded);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->retval : -1;
  }
  void Load(DatapathConfig cfg = StandardConfig()) {
    auto dp = Datapath::Create(cfg);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
  }
  cninet::testing::ScopedNetns ns_{"dppol"};
  std::unique_ptr<ThreadNetnsGuard> guard_;
  std::unique_ptr<Datapath> dp_;
};

TEST_F(PolicyBpfTest, FixtureTableAndPerRuleCounters) {
  ASSERT_NO_FATAL_FAILURE(Load());
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  std::vector<PolicyFixture> fixtures = StandardPolicyFixtures();
  ASSERT_GE(fixtures.size(), 40u);
  std::set<std::string> names;
  std::map<std::pair<std::string, std::string>, uint64_t> want;
  bool counters_checked = false;
  for (const auto& f : fixtures) {
    ASSERT_TRUE(names.insert(f.name).second) << "duplicate fixture " << f.name;
    if (f.before && !counters_checked) {
      // Every per-endpoint counter equals what the rows so far predict (zeros included),
      // before the first policy change renumbers rules.
      auto got = CountersByRule(*dp_);
      ASSERT_FALSE(got.empty());
      for (const auto& [key, n] : got) {
        auto it = want.find(key);
        EXPECT_EQ(n, it == want.end() ? 0u : it->second) << key.first << " " << key.second;
      }
      for (const auto& [key, n] : want)
        EXPECT_TRUE(got.count(key)) << key.first << " " << key.second;
      counters_checked = true;
    }
    SCOPED_TRACE(f.name + ": " + f.description);
    absl::Status s = RunPolicyFixture(*dp_, f);
    EXPECT_TRUE(s.ok()) << s.message();
    if (!f.counter_endpoint.empty()) ++want[{f.counter_endpoint, f.counter_rule}];
  }
  EXPECT_TRUE(counters_checked);
  // The restored rule counts afresh (its slot was freed and zeroed).
  auto after = CountersByRule(*dp_);
  EXPECT_EQ((after[{ptopo::kApi, "policy web/api-ingress ingress[0]"}]), 1u);
  auto c = dp_->counters().Packets(CN_R_POLICY_HOST);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, 3u);  // two from the node itself, one hairpinned
  // The admitted flow carries the policy-ok flag in conntrack (the one never admitted does not).
  FlowTuple admitted{Ip(ptopo::kFe), Ip(ptopo::kApi), 40001, 80, Protocol::kTcp};
  auto e = dp_->conntrack().Lookup(admitted);
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->has_value());
  EXPECT_TRUE((*e)->policy_ok);
  EXPECT_THAT((*e)->ToString(), HasSubstr("policy-ok"));
  auto denied = dp_->conntrack().Lookup(
      FlowTuple{Ip(ptopo::kOther), Ip(ptopo::kApi), 40002, 80, Protocol::kTcp});
  ASSERT_TRUE(denied.ok());
  EXPECT_FALSE(denied->has_value()) << "a denied flow leaves no conntrack entry";
}

TEST_F(PolicyBpfTest, DatapathAgreesWithTheCompilerOnRandomNewFlows) {
  ASSERT_NO_FATAL_FAILURE(Load());
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  // A second policy with more shapes: every pod of web admits ops on UDP 5000-5999 and a /8.
  NetworkPolicy more;
  more.namespace_name = "web";
  more.name = "more";
  PolicyPeer ops;
  ops.namespace_selector = LabelSelector{{{"team", "ops"}}, {}};
  PolicyPeer net;
  net.ip_block =
      IPBlock{*cni::IPPrefix::Parse("10.0.0.0/8"),
              {*cni::IPPrefix::Parse("10.244.1.0/24"), *cni::IPPrefix::Parse("10.9.0.0/16")}};
  more.ingress = {IngressRule{{ops}, {PolicyPort{PolicyProtocol::kUdp, 5000, 5999}}},
                  IngressRule{{net}, {PolicyPort{PolicyProtocol::kTcp, 22, 0}}}};
  ASSERT_TRUE(dp_->policy().UpsertPolicy(more).ok());
  ASSERT_TRUE(dp_->policy().Apply().ok());

  const std::vector<std::string> sources = {
      ptopo::kApi,   ptopo::kFe,  ptopo::kOther, ptopo::kIso1, ptopo::kIso2,
      ptopo::kMon,   "10.9.1.1",  "10.10.0.1",   "198.51.3.3", "198.51.100.9",
      "203.0.113.9", "192.0.2.7", "10.244.1.99", "10.244.2.77"};
  const std::vector<std::string> dests = {ptopo::kApi, ptopo::kFe, ptopo::kIso1, ptopo::kIso2,
                                          ptopo::kOther};
  const std::vector<uint16_t> ports = {22,   53,   80,   81,   443,  3868, 5000, 5432,
                                       5999, 6000, 7999, 8000, 8050, 8100, 8101};
  std::mt19937 rng(99);
  int allowed = 0, denied = 0;
  uint16_t sport = 20000;
  for (int i = 0; i < 600; ++i) {
    const std::string& src = sources[rng() % sources.size()];
    const std::string& dst = dests[rng() % dests.size()];
    uint16_t port = ports[rng() % ports.size()];
    uint8_t proto = std::array<uint8_t, 3>{6, 17, 1}[rng() % 3];
    Bytes pkt;
    PacketBuilder b;
    b.Ipv4(src, dst);
    if (proto == 6) b.Tcp(++sport, port, kSyn);
    if (proto == 17) b.Udp(++sport, port).Payload("x");
    if (proto == 1) {
      b.IcmpEcho(++sport, 1);
      port = 0;
    }
    auto r = dp_->TestRun(Hook::kToPod, b.Build(), 1, 0, kForwarded);
    ASSERT_TRUE(r.ok()) << r.status();
    PolicyQuery q;
    q.src = Ip(src);
    q.dst = Ip(dst);
    q.protocol = ProtocolFromNumber(proto);
    q.port = port;
    PolicyVerdict v = dp_->policy().Evaluate(q);
    ASSERT_EQ(r->retval, v.allowed ? kTcOk : kTcShot)
        << src << " -> " << dst << " proto " << int{proto} << " port " << port;
    (v.allowed ? allowed : denied)++;
  }
  EXPECT_GT(allowed, 60);
  EXPECT_GT(denied, 60);
}

TEST_F(PolicyBpfTest, MapsMirrorTheCompiledStateAndApplyWritesOnlyTheDifference) {
  ASSERT_NO_FATAL_FAILURE(Load());
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  auto check_mirror = [&] {
    auto maps = dp_->policy().ReadMaps();
    ASSERT_TRUE(maps.ok()) << maps.status();
    const PolicyState& want = dp_->policy().state();
    EXPECT_EQ(maps->identities, want.identities);
    EXPECT_EQ(maps->cidrs, want.cidrs);
    ASSERT_EQ(maps->endpoints.size(), want.endpoints.size());
    for (const auto& [ip, ep] : want.endpoints) {
      const EndpointPolicy& got = maps->endpoints.at(ip);
      EXPECT_TRUE(got.SameDatapathState(ep)) << ep.address.ToString();
    }
  };
  check_mirror();
  EXPECT_EQ(dp_->policy().state().endpoints.size(), 3u);  // api, iso/db, iso/cache

  // Nothing staged: nothing written.
  auto r = dp_->policy().Apply();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->total(), 0u);
  EXPECT_FALSE(r->full_sync);

  // A remote pod with a known label set: one identity entry.
  PodInfo mon2;
  mon2.namespace_name = "ops";
  mon2.name = "mon2";
  mon2.addresses = {Ip("10.244.3.5")};
  mon2.labels = {{"role", "monitor"}};
  ASSERT_TRUE(dp_->policy().UpsertPod(mon2).ok());
  r = dp_->policy().Apply();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->identities_written, 1u);
  EXPECT_EQ(r->total(), 1u);
  auto run = [&](std::string_view src, std::string_view dst, uint16_t port) {
    auto t = dp_->TestRun(Hook::kToPod, PacketBuilder().Ipv4(src, dst).Tcp(1234, port).Build(), 1,
                          0, kForwarded);
    EXPECT_TRUE(t.ok());
    return t.ok() ? t->retval : -1;
  };
  EXPECT_EQ(run("10.244.3.5", ptopo::kApi, 8050), kTcOk);
  // Another rule for the api: its entries only.
  NetworkPolicy extra;
  extra.namespace_name = "web";
  extra.name = "metrics";
  extra.pod_selector.match_labels = {{"role", "api"}};
  PolicyPeer any_pod;
  any_pod.namespace_selector = LabelSelector{};
  extra.ingress = {IngressRule{{any_pod}, {PolicyPort{PolicyProtocol::kTcp, 9090, 0}}}};
  EXPECT_EQ(run(ptopo::kIso2, ptopo::kApi, 9090), kTcShot);
  ASSERT_TRUE(dp_->policy().UpsertPolicy(extra).ok());
  r = dp_->policy().Apply();
  ASSERT_TRUE(r.ok());
  const size_t identities = dp_->policy().stats().identities;
  EXPECT_EQ(r->rules_written, identities) << "one entry per pod identity, port 9090";
  EXPECT_EQ(r->rules_deleted + r->identities_written + r->endpoints_written, 0u);
  EXPECT_EQ(run(ptopo::kIso2, ptopo::kApi, 9090), kTcOk);
  check_mirror();
  // And removing it deletes exactly those entries.
  ASSERT_TRUE(dp_->policy().DeletePolicy("web", "metrics").ok());
  r = dp_->policy().Apply();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rules_deleted, identities);
  EXPECT_EQ(r->total(), identities);
  EXPECT_EQ(run(ptopo::kIso2, ptopo::kApi, 9090), kTcShot);
  check_mirror();
}

TEST_F(PolicyBpfTest, RestartWithPinnedMapsResyncsWithoutReusingIdentitiesOrSlots) {
  ScopedBpffs fs;
  ASSERT_TRUE(fs.status().ok()) << fs.status();
  DatapathConfig cfg = StandardConfig();
  cfg.pin_maps = true;
  cfg.bpffs_root = fs.path();
  cfg.instance = "pol";
  ASSERT_NO_FATAL_FAILURE(Load(cfg));
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  std::set<uint32_t> old_ids, old_slots;
  for (const auto& [ip, id] : dp_->policy().state().identities) old_ids.insert(id);
  for (const auto& [ip, ep] : dp_->policy().state().endpoints) {
    for (const auto& r : ep.rules) old_slots.insert(r.slot);
    old_slots.insert(ep.deny_slot);
  }
  // Admit a flow before the restart: it must survive (conntrack and POLICY_OK are pinned).
  Bytes syn = PacketBuilder().Ipv4(ptopo::kFe, ptopo::kApi).Tcp(41000, 80, kSyn).Build();
  Bytes ack = PacketBuilder().Ipv4(ptopo::kFe, ptopo::kApi).Tcp(41000, 80, kAck).Build();
  ASSERT_EQ(Verdict(syn), kTcOk);

  // "Restart": a new Datapath on the same pins; the old one goes away.
  dp_.reset();
  ASSERT_NO_FATAL_FAILURE(Load(cfg));
  auto view = Datapath::OpenPinned(StrCat(fs.path(), "/cninet/pol"));
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_TRUE((*view)->policy().available());
  auto before = (*view)->policy().ReadMaps();
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->endpoints.size(), 3u) << "the previous process's policy is still enforced";
  EXPECT_EQ(Verdict(ack), kTcOk);

  ASSERT_TRUE(dp_->policy().Replace(StandardPolicyWorld()).ok());
  auto r = dp_->policy().Apply();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->full_sync);
  for (const auto& [ip, id] : dp_->policy().state().identities)
    EXPECT_FALSE(old_ids.count(id)) << "identity " << id << " reused";
  for (const auto& [ip, ep] : dp_->policy().state().endpoints) {
    for (const auto& rule : ep.rules) EXPECT_FALSE(old_slots.count(rule.slot));
  }
  // The maps hold exactly the new state (stale identities and entries removed).
  auto maps = dp_->policy().ReadMaps();
  ASSERT_TRUE(maps.ok());
  EXPECT_EQ(maps->identities, dp_->policy().state().identities);
  size_t entries = 0, want_entries = 0;
  for (const auto& [ip, ep] : maps->endpoints) entries += ep.entries.size();
  for (const auto& [ip, ep] : dp_->policy().state().endpoints) want_entries += ep.entries.size();
  EXPECT_EQ(entries, want_entries);
  EXPECT_GT(r->rules_deleted, 0u);
  // Same verdicts as before the restart; the established flow still passes.
  EXPECT_EQ(Verdict(ack), kTcOk);
  Bytes denied = PacketBuilder().Ipv4(ptopo::kOther, ptopo::kApi).Tcp(41001, 80, kSyn).Build();
  EXPECT_EQ(Verdict(denied), kTcShot);
  Bytes fresh = PacketBuilder().Ipv4(ptopo::kFe, ptopo::kApi).Tcp(41002, 80, kSyn).Build();
  EXPECT_EQ(Verdict(fresh), kTcOk);
  // A second apply has nothing left to do; freed slots of the old process are allocatable.
  r = dp_->policy().Apply();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->total(), 0u);
  view->reset();
  ASSERT_TRUE(dp_->Unpin().ok());
}

TEST_F(PolicyBpfTest, AFullRulesMapFailsTheApplyAndTheNextApplyRecovers) {
  DatapathConfig cfg = StandardConfig();
  cfg.map_sizes.policy_rules = 16;
  ASSERT_NO_FATAL_FAILURE(Load(cfg));
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  const size_t entries_before = [&] {
    size_t n = 0;
    for (const auto& [ip, ep] : dp_->policy().state().endpoints) n += ep.entries.size();
    return n;
  }();
  ASSERT_LE(entries_before, 16u);
  // 40 separate ports from everyone: more entries than the map holds.
  NetworkPolicy big;
  big.namespace_name = "web";
  big.name = "big";
  big.pod_selector.match_labels = {{"role", "api"}};
  IngressRule rule;
  for (uint16_t p = 1; p <= 40; ++p)
    rule.ports.push_back(PolicyPort{PolicyProtocol::kTcp, static_cast<uint16_t>(p * 3), 0});
  big.ingress = {rule};
  ASSERT_TRUE(dp_->policy().UpsertPolicy(big).ok());
  auto r = dp_->policy().Apply();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  // The existing policy is still enforced meanwhile.
  Bytes denied = PacketBuilder().Ipv4(ptopo::kOther, ptopo::kApi).Tcp(41001, 80, kSyn).Build();
  EXPECT_EQ(Verdict(denied), kTcShot);
  // Remove the oversized policy: the next Apply resyncs from the maps and converges.
  ASSERT_TRUE(dp_->policy().DeletePolicy("web", "big").ok());
  r = dp_->policy().Apply();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->full_sync);
  auto maps = dp_->policy().ReadMaps();
  ASSERT_TRUE(maps.ok());
  size_t entries = 0;
  for (const auto& [ip, ep] : maps->endpoints) entries += ep.entries.size();
  EXPECT_EQ(entries, entries_before);
  Bytes allowed = PacketBuilder().Ipv4(ptopo::kFe, ptopo::kApi).Tcp(41002, 80, kSyn).Build();
  EXPECT_EQ(Verdict(allowed), kTcOk);
  Bytes was_big = PacketBuilder().Ipv4(ptopo::kFe, ptopo::kApi).Tcp(41003, 3, kSyn).Build();
  EXPECT_EQ(Verdict(was_big), kTcShot);
}

TEST_F(PolicyBpfTest, ToPodPassesTheVerifierAndAttachesWithTheOtherPodHook) {
  ASSERT_NO_FATAL_FAILURE(Load());
  auto st = dp_->Stats(Hook::kToPod);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->name, "cn_to_pod");
  EXPECT_GT(st->verified_insns, 0u);
  EXPECT_LT(st->verified_insns, 1000000u);
  RecordProperty("to_pod_verified_insns", static_cast<int>(st->verified_insns));
  EXPECT_EQ(HookName(Hook::kToPod), "to-pod");

  auto r = ns_.Exec("ip link add pv0 type veth peer name pv1 && ip link set pv0 up");
  ASSERT_TRUE(r.ok()) << r.err;
  {
    auto a = dp_->AttachPod("pv0");
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->from_pod.hook(), Hook::kFromPod);
    EXPECT_EQ(a->to_pod.hook(), Hook::kToPod);
    std::string ingress = ns_.Exec("tc filter show dev pv0 ingress").out;
    std::string egress = ns_.Exec("tc filter show dev pv0 egress").out;
    EXPECT_THAT(ingress, HasSubstr("cn_from_pod"));
    EXPECT_THAT(egress, HasSubstr("cn_to_pod"));
  }
  EXPECT_THAT(ns_.Exec("tc filter show dev pv0 egress").out, ::testing::Not(HasSubstr("cn_to_pod")))
      << "detached when the attachments die";
  EXPECT_THAT(ns_.Exec("tc filter show dev pv0 ingress").out,
              ::testing::Not(HasSubstr("cn_from_pod")));
  // Release()d pod filters stay; DetachPodHooks() removes both.
  {
    auto a = dp_->AttachPod("pv0");
    ASSERT_TRUE(a.ok()) << a.status();
    a->Release();
  }
  EXPECT_THAT(ns_.Exec("tc filter show dev pv0 egress").out, HasSubstr("cn_to_pod"));
  EXPECT_THAT(ns_.Exec("tc filter show dev pv0 ingress").out, HasSubstr("cn_from_pod"));
  ASSERT_TRUE(DetachPodHooks("pv0").ok());
  EXPECT_THAT(ns_.Exec("tc filter show dev pv0 egress").out,
              ::testing::Not(HasSubstr("cn_to_pod")));
  EXPECT_THAT(ns_.Exec("tc filter show dev pv0 ingress").out,
              ::testing::Not(HasSubstr("cn_from_pod")));
  // DetachHook finds a Release()d to-pod filter.
  auto a = dp_->Attach(Hook::kToPod, "pv0");
  ASSERT_TRUE(a.ok());
  a->Release();
  EXPECT_THAT(ns_.Exec("tc filter show dev pv0 egress").out, HasSubstr("cn_to_pod"));
  ASSERT_TRUE(DetachHook(Hook::kToPod, "pv0").ok());
  EXPECT_THAT(ns_.Exec("tc filter show dev pv0 egress").out,
              ::testing::Not(HasSubstr("cn_to_pod")));
}

// Isolation rule (e) across nodes: the client's node DNATs a ClusterIP flow to a backend on
// another node and marks it (service_mark); the overlay (VXLAN GBP) carries the mark; the
// backend's node admits the marked new flow into the isolated pod as "through a Service". Here
// one datapath plays both nodes: from-pod towards a remote backend (kRemote is not a local
// endpoint), and to-pod for a flow from a pod of another node (ops/mon = kRemote) to iso/db.
constexpr char kVipRemote[] = "10.96.0.52";  // service 21: TCP 5432 -> ops/mon (remote):5432
constexpr uint32_t kMark = kDefaultServiceMark;

Bytes TcpPkt(std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport,
             uint8_t flags) {
  return PacketBuilder().Ipv4(src, dst).Tcp(sport, dport, flags).Build();
}

absl::Status AddRemoteService(Datapath& dp) {
  Service svc;
  svc.id = 21;
  svc.frontends = {Frontend{Ip(kVipRemote), 5432, Protocol::kTcp, FrontendKind::kClusterIP}};
  svc.backends = {Backend{Ip(ptopo::kMon), 5432}};
  svc.maglev_size = 251;
  return dp.services().Upsert(svc);
}

TEST_F(PolicyBpfTest, FromPodMarksServiceFlowsToRemoteBackendsOnly) {
  DatapathConfig cfg = StandardConfig();
  cfg.service_mark = kMark;
  ASSERT_NO_FATAL_FAILURE(Load(cfg));
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  ASSERT_TRUE(AddRemoteService(*dp_).ok());
  using namespace ptopo;

  // New flow to the remote backend: DNATed and marked.
  auto syn =
      dp_->TestRun(Hook::kFromPod, TcpPkt(kFe, 41001, kVipRemote, 5432, kSyn), 1, 0, kForwarded);
  ASSERT_TRUE(syn.ok()) << syn.status();
  EXPECT_EQ(syn->retval, kTcOk);
  EXPECT_EQ(syn->packet, TcpPkt(kFe, 41001, kMon, 5432, kSyn));
  EXPECT_EQ(syn->mark, kMark);
  // Established packets of it (conntrack hit) are marked too; other mark bits are kept.
  auto ack = dp_->TestRun(Hook::kFromPod, TcpPkt(kFe, 41001, kVipRemote, 5432, kAck), 1, 0,
                          kForwarded, 0x4);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->packet, TcpPkt(kFe, 41001, kMon, 5432, kAck));
  EXPECT_EQ(ack->mark, kMark | 0x4);
  auto e = dp_->conntrack().Lookup(FlowTuple{Ip(kFe), Ip(kVipRemote), 41001, 5432, Protocol::kTcp});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->has_value());
  EXPECT_TRUE((*e)->remote);
  EXPECT_THAT((*e)->ToString(), HasSubstr("remote"));

  // A local backend sees the DNAT in its own conntrack: no mark.
  auto local =
      dp_->TestRun(Hook::kFromPod, TcpPkt(kFe, 41002, kVipIso, 5432, kSyn), 1, 0, kForwarded);
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->packet, TcpPkt(kFe, 41002, kIso1, 5432, kSyn));
  EXPECT_EQ(local->mark, 0u);
  auto le = dp_->conntrack().Lookup(FlowTuple{Ip(kFe), Ip(kVipIso), 41002, 5432, Protocol::kTcp});
  ASSERT_TRUE(le.ok() && le->has_value());
  EXPECT_FALSE((*le)->remote);
  // A direct (not translated) flow to the same remote pod: no mark.
  auto direct =
      dp_->TestRun(Hook::kFromPod, TcpPkt(kFe, 41003, kMon, 5432, kSyn), 1, 0, kForwarded);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->mark, 0u);
  // The backend's reply, reverse-DNATed on the client's node, is not marked.
  auto reply =
      dp_->TestRun(Hook::kFromWorld, TcpPkt(kMon, 5432, kFe, 41001, kSyn | kAck), 1, 0, kForwarded);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->packet, TcpPkt(kVipRemote, 5432, kFe, 41001, kSyn | kAck));
  EXPECT_EQ(reply->mark, 0u);

  // NodePort from outside: a remote backend (also SNATed) is marked, a local one is not.
  auto np_remote = dp_->TestRun(
      Hook::kFromWorld, TcpPkt(topo::kExternal, 50100, topo::kNode, topo::kNodePortRemote, kSyn), 1,
      0, kForwarded);
  ASSERT_TRUE(np_remote.ok());
  EXPECT_EQ(np_remote->retval, kTcOk);
  EXPECT_EQ(np_remote->mark, kMark);
  auto np_local = dp_->TestRun(
      Hook::kFromWorld, TcpPkt(topo::kExternal, 50101, topo::kNode, topo::kNodePortLocal, kSyn), 1,
      0, kForwarded);
  ASSERT_TRUE(np_local.ok());
  EXPECT_EQ(np_local->retval, kTcOk);
  EXPECT_EQ(np_local->mark, 0u);
}

// Socket LB across nodes: a TCP connection socket LB addressed to a backend on another node
// (its tuple in cn_sock_flows, written by cn_sock_ops) leaves from-pod marked like a DNATed
// one, every packet of it; a local backend's to-pod reads the record itself (no mark), and a
// connection without a record is direct (no mark).
TEST_F(PolicyBpfTest, FromPodMarksSocketLbConnectionsToRemoteBackends) {
  DatapathConfig cfg = StandardConfig();
  cfg.service_mark = kMark;
  ASSERT_NO_FATAL_FAILURE(Load(cfg));
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  using namespace ptopo;
  auto record = [&](std::string_view dst, uint16_t sport) {
    cn_tuple t{};
    t.saddr = ToAbiAddr(Ip(kFe));
    t.daddr = ToAbiAddr(Ip(dst));
    t.sport = htons(sport);
    t.dport = htons(5432);
    t.proto = 6;
    ASSERT_TRUE(dp_->maps()->sock_flows.Update(t, cn_sock_flow{21, 0}).ok());
  };
  record(kMon, 41020);   // remote backend
  record(kIso1, 41021);  // local backend
  auto syn = dp_->TestRun(Hook::kFromPod, TcpPkt(kFe, 41020, kMon, 5432, kSyn), 1, 0, kForwarded);
  ASSERT_TRUE(syn.ok()) << syn.status();
  EXPECT_EQ(syn->retval, kTcOk);
  EXPECT_EQ(syn->packet, TcpPkt(kFe, 41020, kMon, 5432, kSyn)) << "never translated";
  EXPECT_EQ(syn->mark, kMark);
  auto ack =
      dp_->TestRun(Hook::kFromPod, TcpPkt(kFe, 41020, kMon, 5432, kAck), 1, 0, kForwarded, 0x4);
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->mark, kMark | 0x4);
  auto local =
      dp_->TestRun(Hook::kFromPod, TcpPkt(kFe, 41021, kIso1, 5432, kSyn), 1, 0, kForwarded);
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->mark, 0u);
  auto direct =
      dp_->TestRun(Hook::kFromPod, TcpPkt(kFe, 41022, kMon, 5432, kSyn), 1, 0, kForwarded);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->mark, 0u);
  // The local backend's to-pod admits the recorded connection as through a Service (rule e).
  uint64_t before = *dp_->counters().Packets(CN_R_POLICY_SERVICE);
  auto in = dp_->TestRun(Hook::kToPod, TcpPkt(kFe, 41021, kIso1, 5432, kSyn), 1, 0, kForwarded);
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->retval, kTcOk);
  EXPECT_EQ(*dp_->counters().Packets(CN_R_POLICY_SERVICE), before + 1);
  auto in_direct =
      dp_->TestRun(Hook::kToPod, TcpPkt(kFe, 41023, kIso1, 5432, kSyn), 1, 0, kForwarded);
  ASSERT_TRUE(in_direct.ok());
  EXPECT_EQ(in_direct->retval, kTcShot);
}

TEST_F(PolicyBpfTest, ServiceMarkOffLeavesPacketsUnmarkedAndIsIgnoredByToPod) {
  DatapathConfig wide = StandardConfig();
  wide.service_mark = 0x10000;  // beyond the 16 bits GBP carries
  EXPECT_EQ(wide.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wide.Validate().message()), HasSubstr("service_mark"));
  ASSERT_NO_FATAL_FAILURE(Load());  // StandardConfig(): service_mark 0
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  ASSERT_TRUE(AddRemoteService(*dp_).ok());
  using namespace ptopo;
  auto syn =
      dp_->TestRun(Hook::kFromPod, TcpPkt(kFe, 41101, kVipRemote, 5432, kSyn), 1, 0, kForwarded);
  ASSERT_TRUE(syn.ok());
  EXPECT_EQ(syn->packet, TcpPkt(kFe, 41101, kMon, 5432, kSyn));
  EXPECT_EQ(syn->mark, 0u);
  auto in =
      dp_->TestRun(Hook::kToPod, TcpPkt(kMon, 41102, kIso1, 5432, kSyn), 1, 0, kForwarded, kMark);
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->retval, kTcShot);
}

TEST_F(PolicyBpfTest, MarkedFlowFromAnotherNodeEntersAnIsolatedPodByRuleE) {
  DatapathConfig cfg = StandardConfig();
  cfg.service_mark = kMark;
  ASSERT_NO_FATAL_FAILURE(Load(cfg));
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  using namespace ptopo;
  auto counter = [&](uint32_t reason) {
    auto c = dp_->counters().Packets(reason);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : ~uint64_t{0};
  };
  auto to_pod = [&](const Bytes& pkt, uint32_t mark) {
    auto r = dp_->TestRun(Hook::kToPod, pkt, 1, 0, kForwarded, mark);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->retval : -1;
  };
  const std::pair<std::string, std::string> via_service{kIso1, "via service"};
  const std::pair<std::string, std::string> denied{kIso1, "denied"};

  // Without the mark: a direct connection from another namespace, refused (rule b).
  uint64_t isolated0 = counter(CN_R_DROP_ISOLATED);
  EXPECT_EQ(to_pod(TcpPkt(kMon, 42001, kIso1, 5432, kSyn), 0), kTcShot);
  EXPECT_EQ(counter(CN_R_DROP_ISOLATED), isolated0 + 1);
  // Another mark bit (kube-proxy's masquerade mark) is not the service mark.
  EXPECT_EQ(to_pod(TcpPkt(kMon, 42002, kIso1, 5432, kSyn), 0x4000), kTcShot);
  EXPECT_EQ(counter(CN_R_DROP_ISOLATED), isolated0 + 2);

  // With the mark: admitted by rule (e), counted as a service flow and in the endpoint's
  // "via service" slot; the flow is tracked as admitted.
  uint64_t service0 = counter(CN_R_POLICY_SERVICE);
  EXPECT_EQ(to_pod(TcpPkt(kMon, 42003, kIso1, 5432, kSyn), kMark), kTcOk);
  EXPECT_EQ(counter(CN_R_POLICY_SERVICE), service0 + 1);
  auto e = dp_->conntrack().Lookup(FlowTuple{Ip(kMon), Ip(kIso1), 42003, 5432, Protocol::kTcp});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->has_value());
  EXPECT_TRUE((*e)->policy_ok);
  // Its next packets pass through conntrack (GBP marks every packet, but they need not be).
  EXPECT_EQ(to_pod(TcpPkt(kMon, 42003, kIso1, 5432, kAck), 0), kTcOk);
  EXPECT_EQ(counter(CN_R_POLICY_SERVICE), service0 + 1);
  // A SYN reusing the tuple is checked again: without the mark it is a direct connection.
  EXPECT_EQ(to_pod(TcpPkt(kMon, 42003, kIso1, 5432, kSyn), 0), kTcShot);
  EXPECT_EQ(counter(CN_R_DROP_ISOLATED), isolated0 + 3);

  // As on the real path: from-world on the VXLAN device tracks the decapsulated flow first
  // (an inbound entry) and keeps the mark; to-pod then admits it on that entry.
  Bytes syn = TcpPkt(kMon, 42004, kIso1, 5432, kSyn);
  auto world = dp_->TestRun(Hook::kFromWorld, syn, 1, 0, kForwarded, kMark);
  ASSERT_TRUE(world.ok());
  EXPECT_EQ(world->retval, kTcOk);
  EXPECT_EQ(world->mark, kMark);
  EXPECT_EQ(to_pod(syn, kMark), kTcOk);
  EXPECT_EQ(counter(CN_R_POLICY_SERVICE), service0 + 2);
  auto in = dp_->conntrack().Lookup(FlowTuple{Ip(kMon), Ip(kIso1), 42004, 5432, Protocol::kTcp});
  ASSERT_TRUE(in.ok() && in->has_value());
  EXPECT_TRUE((*in)->inbound);
  EXPECT_TRUE((*in)->policy_ok);

  // The exception is isolation's only: NetworkPolicy rules are evaluated for marked flows as
  // for flows DNATed locally (web/api is selected by a policy, not isolated: port 9999 denied).
  uint64_t policy0 = counter(CN_R_DROP_POLICY);
  EXPECT_EQ(to_pod(TcpPkt(kMon, 42005, kApi, 9999, kSyn), kMark), kTcShot);
  EXPECT_EQ(counter(CN_R_DROP_POLICY), policy0 + 1);
  EXPECT_EQ(to_pod(TcpPkt(kMon, 42006, kApi, 8050, kSyn), kMark), kTcOk);  // ingress[1]

  auto by_rule = CountersByRule(*dp_);
  EXPECT_EQ(by_rule[via_service], 2u);
  EXPECT_EQ(by_rule[denied], 3u);
}

TEST_F(PolicyBpfTest, StagingBadInputKeepsTheAppliedPolicy) {
  ASSERT_NO_FATAL_FAILURE(Load());
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  NetworkPolicy broken = ApiPolicy();
  broken.ingress[1].ports[0].end_port = 10;  // < port 8000
  EXPECT_EQ(dp_->policy().UpsertPolicy(broken).code(), absl::StatusCode::kInvalidArgument);
  auto r = dp_->policy().Apply();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->total(), 0u);
  Bytes p = PacketBuilder().Ipv4(ptopo::kMon, ptopo::kApi).Tcp(41000, 8050, kSyn).Build();
  EXPECT_EQ(Verdict(p), kTcOk);
}

// Always on (no datapath run): every IPv4 policy row has exactly one IPv6 twin with the same hook,
// verdict, reason and counter rule, naming a per-endpoint counter exactly when the twin does.
TEST(Ipv6PolicyFixtureTable, TwinsEveryIpv4Row) {
  std::map<std::string, PolicyFixture> v4;
  for (auto& f : StandardPolicyFixtures()) v4[f.name] = f;
  std::map<std::string, int> twins;
  for (const auto& f : StandardIpv6PolicyFixtures()) {
    SCOPED_TRACE(f.name);
    ASSERT_TRUE(v4.count(f.twin_of));
    const PolicyFixture& t = v4.at(f.twin_of);
    ++twins[f.twin_of];
    EXPECT_EQ((f.input[12] << 8) | f.input[13], 0x86dd) << "not an IPv6 frame";
    EXPECT_EQ(f.hook, t.hook);
    EXPECT_EQ(f.expected_verdict, t.expected_verdict);
    EXPECT_EQ(f.counter_rule, t.counter_rule);
    EXPECT_EQ(f.counter_endpoint.empty(), t.counter_endpoint.empty());
    EXPECT_EQ(f.before != nullptr, t.before != nullptr);
    EXPECT_EQ(f.expected_output.has_value(), t.expected_output.has_value());
  }
  for (const auto& [name, f] : v4) {
    if (name == "ipv6_unmanaged_passed") continue;  // already IPv6 (no twin needed)
    EXPECT_EQ(twins[name], 1) << "IPv4 policy row " << name << " has no single IPv6 twin";
  }
}

// The IPv6 policy twins on the dual-stack world: one test per row
// (Ipv6PolicyFixtures/Ipv6PolicyFixtureTest.Row/v6_<twin>; the rows before it run first), and the
// whole table in one run with the per-rule counters checked as FixtureTableAndPerRuleCounters does.
class Ipv6PolicyBpfTest : public PolicyBpfTest {
 protected:
  void SetUp() override {
    PolicyBpfTest::SetUp();
    if (HasFatalFailure()) return;
    Load(StandardDualStackConfig());  // an IPv6 node address too (the hairpin SNAT address)
    if (HasFatalFailure()) return;    // no datapath: the rows are not run
    // Not fatal: the rows show what the datapath does with the packets all the same.
    absl::Status s = ApplyStandardDualStackPolicySetup(*dp_);
    EXPECT_TRUE(s.ok()) << "dual-stack policy setup: " << s;
  }
};
class Ipv6PolicyFixtureTest : public Ipv6PolicyBpfTest,
                              public ::testing::WithParamInterface<std::string> {};

std::vector<std::string> Ipv6PolicyRowNames() {
  std::vector<std::string> names;
  for (const auto& f : StandardIpv6PolicyFixtures()) names.push_back(f.name);
  return names;
}

TEST_P(Ipv6PolicyFixtureTest, Row) {
  std::vector<PolicyFixture> fixtures = StandardIpv6PolicyFixtures();
  auto it = std::find_if(fixtures.begin(), fixtures.end(),
                         [](const PolicyFixture& f) { return f.name == GetParam(); });
  ASSERT_NE(it, fixtures.end());
  for (auto p = fixtures.begin(); p != it; ++p) (void)RunPolicyFixture(*dp_, *p);
  SCOPED_TRACE(it->name + " (twin of " + it->twin_of + "): " + it->description);
  absl::Status s = RunPolicyFixture(*dp_, *it);
  EXPECT_TRUE(s.ok()) << s.message();
}

INSTANTIATE_TEST_SUITE_P(Ipv6PolicyFixtures, Ipv6PolicyFixtureTest,
                         ::testing::ValuesIn(Ipv6PolicyRowNames()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_F(Ipv6PolicyBpfTest, TableInOneRunAndPerRuleCounters) {
  std::vector<PolicyFixture> fixtures = StandardIpv6PolicyFixtures();
  std::map<std::pair<std::string, std::string>, uint64_t> want;
  bool counters_checked = false;
  for (const auto& f : fixtures) {
    if (f.before && !counters_checked) {
      // The IPv6 endpoints' counters equal what the rows so far predict.
      auto got = CountersByRule(*dp_);
      for (const auto& [key, n] : want) EXPECT_EQ(got[key], n) << key.first << " " << key.second;
      for (const auto& [key, n] : got) {
        if (Ip(key.first).is_v6()) {
          EXPECT_EQ(n, want[key]) << key.first << " " << key.second;
        }
      }
      counters_checked = true;
    }
    SCOPED_TRACE(f.name + ": " + f.description);
    absl::Status s = RunPolicyFixture(*dp_, f);
    EXPECT_TRUE(s.ok()) << s.message();
    if (!f.counter_endpoint.empty()) ++want[{f.counter_endpoint, f.counter_rule}];
  }
  EXPECT_TRUE(counters_checked);
  auto c = dp_->counters().Packets(CN_R_POLICY_HOST);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, 3u);  // two from the node itself, one hairpinned
  FlowTuple admitted{Ip(ptopo6::kFe), Ip(ptopo6::kApi), 40001, 80, Protocol::kTcp};
  auto e = dp_->conntrack().Lookup(admitted);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE(e->has_value());
  EXPECT_TRUE((*e)->policy_ok);
}

}  // namespace
}  // namespace cninet::datapath::testing

namespace cninet::datapath::testing {
namespace {

// A pod-to-pod flow no other program tracked is tracked by to-pod once admitted, under its own
// tuple in both families: its next packets pass through conntrack without another check.
TEST_F(Ipv6PolicyBpfTest, AdmittedFlowIsTrackedUnderItsOwnTupleInBothFamilies) {
  for (auto [src, dst] : {std::pair{ptopo::kIso2, ptopo::kIso1}, {ptopo6::kIso2, ptopo6::kIso1}}) {
    SCOPED_TRACE(src);
    auto run = [&](uint8_t flags) {
      PacketBuilder b;
      if (std::string_view(src).find(':') != std::string_view::npos) {
        b.Ipv6(src, dst);
      } else {
        b.Ipv4(src, dst);
      }
      auto r = dp_->TestRun(Hook::kToPod, b.Tcp(43001, 5432, flags).Build(), 1, 0, kForwarded);
      EXPECT_TRUE(r.ok()) << r.status();
      return r.ok() ? r->retval : -1;
    };
    const std::pair<std::string, std::string> rule{dst, "isolation of namespace iso"};
    uint64_t before = CountersByRule(*dp_)[rule];
    EXPECT_EQ(run(kSyn), kTcOk);
    auto e = dp_->conntrack().Lookup(FlowTuple{Ip(src), Ip(dst), 43001, 5432, Protocol::kTcp});
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE(e->has_value()) << "no conntrack entry under the flow's tuple";
    EXPECT_TRUE((*e)->policy_ok);
    EXPECT_EQ(run(kAck), kTcOk);
    EXPECT_EQ(CountersByRule(*dp_)[rule], before + 1) << "the ACK was checked again";
  }
}

}  // namespace
}  // namespace cninet::datapath::testing
