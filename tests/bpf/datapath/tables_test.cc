// ServiceTable / ConntrackTable / NatTable behaviour against the real maps and programs:
// atomic table switches, GC, pinned maps across a restart, attach/detach in a namespace.
#include <endian.h>
#include <netinet/in.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <thread>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "dp_test_util.h"
#include "fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using cninet::testing::ScopedNetns;
using cninet::testing::TempDir;
using topo::kB1;
using topo::kB2;
using topo::kB3;
using topo::kClient;
using topo::kVipWeb;

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }

std::string Dst(const Bytes& p) {
  return FromV4Net(p[30] | p[31] << 8 | p[32] << 16 | uint32_t(p[33]) << 24).ToString();
}

TEST(ServiceTable, SwitchIsAtomicForConcurrentNewFlows) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  Service svc = StandardServices()[0];
  svc.maglev_size = 16381;
  ASSERT_TRUE((*dp)->services().Upsert(svc).ok());
  std::atomic<bool> stop{false};
  std::set<std::string> seen;
  int bad = 0, runs = 0;
  std::thread traffic([&] {
    uint16_t sp = 1;
    while (!stop.load()) {
      auto r = (*dp)->TestRun(Hook::kFromPod,
                              PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(sp++, 80, kSyn).Build());
      ++runs;
      if (!r.ok() || r->retval != kTcOk) {
        ++bad;
        continue;
      }
      seen.insert(Dst(r->packet));
    }
  });
  Service a = svc, b = svc;
  a.backends = {Backend{Ip(kB1), 8080}, Backend{Ip(kB2), 8080}};
  b.backends = {Backend{Ip(kB3), 8080}};
  for (int i = 0; i < 200; ++i) ASSERT_TRUE((*dp)->services().Upsert(i % 2 ? a : b).ok());
  stop = true;
  traffic.join();
  EXPECT_GT(runs, 200);
  EXPECT_EQ(bad, 0) << "a new flow saw a half-written table";
  for (const auto& d : seen) EXPECT_THAT(d, ::testing::AnyOf(kB1, kB2, kB3));
  EXPECT_EQ(*(*dp)->counters().Packets(CN_R_DROP_BACKEND_GONE), 0u);
  EXPECT_EQ(*(*dp)->counters().Packets(CN_R_REJECT), 0u);
}

TEST(ServiceTable, RandomSelectionSpreadsAndDeleteRemovesEverything) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok());
  Service s = StandardServices()[0];
  s.algorithm = LbAlgorithm::kRandom;
  ASSERT_TRUE((*dp)->services().Upsert(s).ok());
  std::set<std::string> seen;
  for (uint16_t sp = 1; sp <= 64; ++sp) {
    auto r = (*dp)->TestRun(Hook::kFromPod,
                            PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(sp, 80, kSyn).Build());
    ASSERT_TRUE(r.ok());
    seen.insert(Dst(r->packet));
  }
  EXPECT_EQ(seen, (std::set<std::string>{kB1, kB2}));
  auto got = (*dp)->services().Get(1);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->backends.size(), 2u);
  ASSERT_TRUE((*dp)->services().Delete(1).ok());
  EXPECT_EQ((*dp)->services().Delete(1).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*(*dp)->maps()->services.Size(), 0u);
  EXPECT_EQ(*(*dp)->maps()->backends.Size(), 0u);
  // New flows to the former VIP are no longer translated.
  Bytes in = PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(999, 80, kSyn).Build();
  auto r = (*dp)->TestRun(Hook::kFromPod, in);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->packet, in);
}

TEST(ServiceTable, RejectsInvalidServicesWithoutTouchingMaps) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok());
  Service s = StandardServices()[0];
  s.maglev_size = 1000;  // not prime
  EXPECT_EQ((*dp)->services().Upsert(s).code(), absl::StatusCode::kInvalidArgument);
  s = StandardServices()[0];
  s.id = 0;
  EXPECT_EQ((*dp)->services().Upsert(s).code(), absl::StatusCode::kInvalidArgument);
  s = StandardServices()[0];
  s.backends.push_back(s.backends[0]);
  EXPECT_EQ((*dp)->services().Upsert(s).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*(*dp)->maps()->services.Size(), 0u);
  EXPECT_EQ(*(*dp)->maps()->backends.Size(), 0u);
}

// A datapath with node addresses of both families (dual-stack NodePorts).
absl::StatusOr<std::unique_ptr<Datapath>> DualStackNode() {
  DatapathConfig cfg = StandardConfig();
  cfg.cluster_cidrs.push_back(*cni::IPPrefix::Parse(topo6::kClusterCidr));
  cfg.node_addresses = {Ip(topo::kNode), Ip(topo6::kNode)};
  return Datapath::Create(cfg);
}

// A NodePort-only service on TCP `port` (drop when empty, as for externalTrafficPolicy Local),
// with one backend on 8080 unless `backend` is null.
Service NodePortOnly(uint32_t id, uint16_t port, const char* backend,
                     std::optional<cni::IPAddress::Family> family = std::nullopt) {
  Service s;
  s.id = id;
  s.frontends = {Frontend{cni::IPAddress(), port, Protocol::kTcp, FrontendKind::kNodePort}};
  if (backend != nullptr) s.backends = {Backend{Ip(backend), 8080}};
  s.maglev_size = 251;
  s.reject_without_backends = false;
  s.family = family;
  return s;
}

// The service id the frontend key node:port/tcp leads to (0: none).
uint32_t NodePortOwner(Datapath& dp, const char* node, uint16_t port) {
  cn_svc_key k{};
  k.addr = ToAbiAddr(Ip(node));
  k.port = htobe16(port);
  k.proto = IPPROTO_TCP;
  auto e = dp.maps()->services.Lookup(k);
  return e.ok() ? e->svc_id : 0;
}

// A dual-stack NodePort programmed as the agent does (one service per family, externalTraffic-
// Policy Local: drop when empty): both services start without backends, so both hold the node
// addresses of both families; when each gets its family's backends, the key it gives up belongs
// to the other service already and must stay (deleting it left the other family's nodePort
// unprogrammed, answered by the node's stack with a reset, until the next resync).
TEST(ServiceTable, AKeyGivenUpThatAnotherServiceTookStays) {
  CNINET_REQUIRE_ROOT();
  auto dp = DualStackNode();
  ASSERT_TRUE(dp.ok()) << dp.status();
  ASSERT_TRUE((*dp)->services().Upsert(NodePortOnly(40, 30090, nullptr)).ok());
  ASSERT_TRUE((*dp)->services().Upsert(NodePortOnly(41, 30090, nullptr)).ok());
  ASSERT_TRUE((*dp)->services().Upsert(NodePortOnly(40, 30090, topo::kB1)).ok());
  ASSERT_TRUE((*dp)->services().Upsert(NodePortOnly(41, 30090, topo6::kB1)).ok());
  auto owner = [&](const char* node) { return NodePortOwner(**dp, node, 30090); };
  EXPECT_EQ(owner(topo::kNode), 40u) << "the IPv4 nodePort is gone";
  EXPECT_EQ(owner(topo6::kNode), 41u) << "the IPv6 nodePort is gone";
  // Deleting one family's service leaves the other's keys.
  ASSERT_TRUE((*dp)->services().Delete(41).ok());
  EXPECT_EQ(owner(topo::kNode), 40u);
  EXPECT_EQ(owner(topo6::kNode), 0u);
}

// The same dual-stack NodePort when only one family ever gets a backend (a node with local
// endpoints of one family under externalTrafficPolicy Local): with Service::family each empty
// service holds only its own family's node address, so the empty IPv6 service never takes the
// IPv4 nodePort from the one with a backend; the family survives a reload from the maps, and a
// family contradicting the backends is refused.
TEST(ServiceTable, AnEmptyServiceOfOneFamilyHoldsOnlyThatFamilysNodePorts) {
  CNINET_REQUIRE_ROOT();
  auto dp = DualStackNode();
  ASSERT_TRUE(dp.ok()) << dp.status();
  auto node_port = [](uint32_t id, cni::IPAddress::Family family, const char* backend) {
    return NodePortOnly(id, 30091, backend, family);
  };
  auto owner = [&](const char* node) { return NodePortOwner(**dp, node, 30091); };
  using F = cni::IPAddress::Family;
  ASSERT_TRUE((*dp)->services().Upsert(node_port(50, F::kV4, topo::kB1)).ok());
  ASSERT_TRUE((*dp)->services().Upsert(node_port(51, F::kV6, nullptr)).ok());
  EXPECT_EQ(owner(topo::kNode), 50u) << "the empty IPv6 service took the IPv4 nodePort";
  EXPECT_EQ(owner(topo6::kNode), 51u);
  // Re-upserted (the agent's next pass), still so.
  ASSERT_TRUE((*dp)->services().Upsert(node_port(51, F::kV6, nullptr)).ok());
  EXPECT_EQ(owner(topo::kNode), 50u);
  // A table loaded from the maps (a restarted agent) knows the empty service's family.
  auto loaded = ServiceTable::Load((*dp)->maps());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto got = (*loaded)->Get(51);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->family, F::kV6);
  EXPECT_EQ((*loaded)->Get(50)->family, std::nullopt) << "recorded only where it matters";
  Service wrong = node_port(52, F::kV6, topo::kB1);
  absl::Status st = (*dp)->services().Upsert(wrong);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("family"));
}

TEST(ServiceTable, RemovingABackendCanFlushItsConntrackEntries) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok());
  Service s = StandardServices()[0];
  ASSERT_TRUE((*dp)->services().Upsert(s).ok());
  for (uint16_t sp = 100; sp < 140; ++sp)
    ASSERT_TRUE((*dp)
                    ->TestRun(Hook::kFromPod,
                              PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(sp, 80, kSyn).Build())
                    .ok());
  auto to_b1 = [&] {
    size_t n = 0;
    auto dump = (*dp)->conntrack().Dump();
    EXPECT_TRUE(dump.ok());
    for (const auto& e : *dump)
      n += e.service &&
           ((!e.reply && e.nat_address == Ip(kB1)) || (e.reply && e.tuple.src == Ip(kB1)));
    return n;
  };
  ASSERT_GT(to_b1(), 0u);
  Service only_b2 = s;
  only_b2.backends = {Backend{Ip(kB2), 8080}};
  ASSERT_TRUE((*dp)
                  ->services()
                  .Upsert(only_b2, UpsertOptions{.flush_conntrack_of_removed_backends = true})
                  .ok());
  EXPECT_EQ(to_b1(), 0u);
  // Flows to B2 were left alone.
  size_t remaining = (*dp)->conntrack().Dump()->size();
  EXPECT_GT(remaining, 0u);
  EXPECT_LT(remaining, 80u);
}

TEST(Conntrack, GcRemovesOnlyExpiredEntriesAndNatGcKeepsLivePairs) {
  CNINET_REQUIRE_ROOT();
  DatapathConfig c = StandardConfig();
  c.timeouts.tcp_syn = std::chrono::seconds(1);
  auto dp = Datapath::Create(c);
  ASSERT_TRUE(dp.ok());
  ASSERT_TRUE(ApplyStandardSetup(**dp).ok());
  ASSERT_TRUE((*dp)
                  ->TestRun(Hook::kFromPod,
                            PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(3000, 80, kSyn).Build())
                  .ok());
  ASSERT_TRUE(
      (*dp)
          ->TestRun(Hook::kToWorld,
                    PacketBuilder().Ipv4(kClient, topo::kOutside).Tcp(3001, 443, kSyn).Build())
          .ok());
  // A UDP flow (60 s lifetime) must survive the GC.
  ASSERT_TRUE((*dp)
                  ->TestRun(Hook::kFromPod,
                            PacketBuilder().Ipv4(kClient, topo::kVipDns).Udp(3002, 53).Build())
                  .ok());
  auto gc0 = (*dp)->conntrack().Gc();
  ASSERT_TRUE(gc0.ok());
  EXPECT_EQ(gc0->deleted, 0u);
  EXPECT_EQ(gc0->scanned, 4u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2300));
  auto gc1 = (*dp)->conntrack().Gc();
  ASSERT_TRUE(gc1.ok());
  EXPECT_EQ(gc1->deleted, 2u);
  auto left = (*dp)->conntrack().Dump();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 2u);
  EXPECT_EQ(left->front().tuple.protocol, Protocol::kUdp);
  auto ngc = (*dp)->nat().Gc();
  ASSERT_TRUE(ngc.ok());
  EXPECT_EQ(ngc->deleted, 2u) << "the SYN-only SNAT mapping expired in both directions";
  EXPECT_EQ((*dp)->nat().Dump()->size(), 0u);
}

TEST(Datapath, PinnedMapsSurviveARestart) {
  CNINET_REQUIRE_ROOT();
  ScopedBpffs fs;
  ASSERT_TRUE(fs.status().ok()) << fs.status();
  DatapathConfig c = StandardConfig();
  c.pin_maps = true;
  c.bpffs_root = fs.path();
  c.instance = "restart";
  std::string first_backend;
  {
    auto dp = Datapath::Create(c);
    ASSERT_TRUE(dp.ok()) << dp.status();
    ASSERT_TRUE(ApplyStandardSetup(**dp).ok());
    auto r = (*dp)->TestRun(Hook::kFromPod,
                            PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(5000, 80, kSyn).Build());
    ASSERT_TRUE(r.ok());
    first_backend = Dst(r->packet);
  }
  // A new instance reuses the pins: services and flows are still there.
  auto dp = Datapath::Create(c);
  ASSERT_TRUE(dp.ok()) << dp.status();
  auto svc = (*dp)->services().Get(1);
  ASSERT_TRUE(svc.ok()) << svc.status();
  EXPECT_EQ(svc->backends.size(), 2u);
  EXPECT_EQ(svc->maglev_size, 251u);
  EXPECT_EQ((*dp)->services().List().size(), StandardServices().size());
  // Switch the service to B3 only: the old flow still goes to its backend via conntrack.
  Service b3 = *svc;
  b3.backends = {Backend{Ip(kB3), 8080}};
  ASSERT_TRUE((*dp)->services().Upsert(b3).ok());
  auto r = (*dp)->TestRun(Hook::kFromPod,
                          PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(5000, 80, kAck).Build());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Dst(r->packet), first_backend);
  // A read-only view of the same pins decodes the configuration.
  auto view = Datapath::OpenPinned(c.PinDir());
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ((*view)->config().cluster_cidr.ToString(), "10.244.0.0/16");
  EXPECT_EQ((*view)->config().node_addresses.at(0).ToString(), topo::kNode);
  EXPECT_EQ((*view)->config().map_sizes.conntrack, c.map_sizes.conntrack);
  EXPECT_EQ((*view)->conntrack().Dump()->size(), 2u);
  EXPECT_EQ((*view)->Attach(Hook::kFromPod, "lo").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Incompatible sizes are refused, not silently recreated.
  DatapathConfig other = c;
  other.map_sizes.conntrack = 8192;
  EXPECT_EQ(Datapath::Create(other).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*dp)->Unpin().ok());
  EXPECT_FALSE(std::filesystem::exists(c.PinDir()));
}

TEST(Datapath, ProgramsPassTheVerifierWithinTheInstructionLimit) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  for (Hook h : {Hook::kFromPod, Hook::kFromWorld, Hook::kToWorld, Hook::kToPod}) {
    auto s = (*dp)->Stats(h);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_GT(s->verified_insns, 0u) << HookName(h);
    EXPECT_LT(s->verified_insns, 1000000u) << HookName(h);
    EXPECT_GT(s->jited_bytes, 0u) << HookName(h);
    ::testing::Test::RecordProperty(std::string(HookName(h)) + "_verified_insns",
                                    static_cast<int>(s->verified_insns));
    std::cout << HookName(h) << ": verified_insns=" << s->verified_insns
              << " xlated=" << s->xlated_bytes << " jited=" << s->jited_bytes << "\n";
  }
}

TEST(Datapath, TestRunFloorPassesThePacketUntouchedAndCountsNothing) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  // A ClusterIP SYN: the from-pod program would DNAT it; the floor program leaves it as it is.
  Bytes in = PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(4242, 80, kSyn).Build();
  auto floor = (*dp)->TestRunFloor(in, 10);
  ASSERT_TRUE(floor.ok()) << floor.status();
  EXPECT_EQ(floor->retval, 0);  // TC_ACT_OK
  EXPECT_EQ(floor->packet, in);
  auto ct = (*dp)->conntrack().Dump();
  ASSERT_TRUE(ct.ok()) << ct.status();
  EXPECT_TRUE(ct->empty());
}

TEST(Datapath, PinningNeedsABpfFilesystem) {
  CNINET_REQUIRE_ROOT();
  TempDir dir;
  DatapathConfig c = StandardConfig();
  c.pin_maps = true;
  c.bpffs_root = dir.path();
  auto dp = Datapath::Create(c);
  EXPECT_EQ(dp.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(dp.status().message()), ::testing::HasSubstr("mount -t bpf"));
}

TEST(Datapath, AttachAndDetachInANamespace) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok());
  ScopedNetns ns("dpat");
  ASSERT_TRUE(ns.Exec("ip link add up0 type veth peer name up1 && ip link set up0 up").ok());
  TcAttachment in, out;
  absl::Status s = RunInNetns(ns.path(), [&]() -> absl::Status {
    auto a = (*dp)->Attach(Hook::kFromWorld, "up0");
    if (!a.ok()) return a.status();
    in = std::move(*a);
    auto b = (*dp)->Attach(Hook::kToWorld, "up0");
    if (!b.ok()) return b.status();
    out = std::move(*b);
    return (*dp)->Attach(Hook::kFromPod, "nosuchif").status();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_THAT(ns.Exec("tc filter show dev up0 ingress").out, ::testing::HasSubstr("cn_from_world"));
  EXPECT_THAT(ns.Exec("tc filter show dev up0 egress").out, ::testing::HasSubstr("cn_to_world"));
  // Detach from this (root-namespace) thread: the attachment goes back to its namespace.
  ASSERT_TRUE(in.Detach().ok());
  EXPECT_THAT(ns.Exec("tc filter show dev up0 ingress").out,
              ::testing::Not(::testing::HasSubstr("cn_from_world")));
  EXPECT_THAT(ns.Exec("tc filter show dev up0 egress").out, ::testing::HasSubstr("cn_to_world"));
  out = TcAttachment();  // destructor path
  EXPECT_THAT(ns.Exec("tc filter show dev up0 egress").out,
              ::testing::Not(::testing::HasSubstr("cn_to_world")));
}

}  // namespace
}  // namespace cninet::datapath::testing
