// Exhaustion: tiny conntrack and NAT maps and port ranges. New flows degrade with a counted
// reason; existing flows keep translating; nothing crashes.
#include <set>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "fixtures.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using topo::kB1;
using topo::kClient;
using topo::kNode;
using topo::kOutside;
using topo::kVipWeb;

std::unique_ptr<Datapath> Make(DatapathConfig c) {
  auto dp = Datapath::Create(c);
  EXPECT_TRUE(dp.ok()) << dp.status();
  if (!dp.ok()) return nullptr;
  EXPECT_TRUE(ApplyStandardSetup(**dp).ok());
  return std::move(*dp);
}

uint64_t Count(Datapath& dp, uint32_t reason) { return *dp.counters().Packets(reason); }

// Source port of the translated packet.
uint16_t SrcPort(const Bytes& p) { return static_cast<uint16_t>(p[34] << 8 | p[35]); }

TEST(Exhaustion, SnatPortRangeExhaustedDropsNewFlowsOnly) {
  CNINET_REQUIRE_ROOT();
  DatapathConfig c = StandardConfig();
  c.nat_port_min = 40000;
  c.nat_port_max = 40003;  // four ports
  c.nat_retries = 8;
  auto dp = Make(c);
  ASSERT_NE(dp, nullptr);
  std::set<uint16_t> ports;
  for (uint16_t sp = 1000; sp < 1004; ++sp) {
    auto r = dp->TestRun(Hook::kToWorld,
                         PacketBuilder().Ipv4(kClient, kOutside).Tcp(sp, 443, kSyn).Build());
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->retval, kTcOk) << "flow " << sp;
    uint16_t p = SrcPort(r->packet);
    EXPECT_GE(p, 40000);
    EXPECT_LE(p, 40003);
    ports.insert(p);
  }
  EXPECT_EQ(ports.size(), 4u) << "each flow got its own port";
  auto r = dp->TestRun(Hook::kToWorld,
                       PacketBuilder().Ipv4(kClient, kOutside).Tcp(1004, 443, kSyn).Build());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->retval, kTcShot);
  EXPECT_EQ(Count(*dp, CN_R_DROP_NAT_NO_PORT), 1u);
  EXPECT_GE(Count(*dp, CN_R_NAT_PORT_RETRY), 1u);
  // Existing flows still work both ways.
  for (uint16_t p : ports) {
    auto rep = dp->TestRun(Hook::kFromWorld,
                           PacketBuilder().Ipv4(kOutside, kNode).Tcp(443, p, kSyn | kAck).Build());
    ASSERT_TRUE(rep.ok());
    EXPECT_EQ(rep->retval, kTcOk);
    EXPECT_EQ(rep->packet[30], 10) << "reply to port " << p << " reaches the pod (10.244.1.10)";
  }
  auto stats = dp->nat().Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->egress, 4u);
  EXPECT_EQ(stats->ingress, 4u);
}

TEST(Exhaustion, SnatPortCollisionPicksAnotherPortInRange) {
  CNINET_REQUIRE_ROOT();
  auto dp = Make(StandardConfig());
  ASSERT_NE(dp, nullptr);
  auto a = dp->TestRun(Hook::kToWorld,
                       PacketBuilder().Ipv4(kClient, kOutside).Tcp(45000, 443, kSyn).Build());
  auto b = dp->TestRun(
      Hook::kToWorld, PacketBuilder().Ipv4(topo::kClient2, kOutside).Tcp(45000, 443, kSyn).Build());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(SrcPort(a->packet), 45000) << "first flow keeps its port";
  uint16_t pb = SrcPort(b->packet);
  EXPECT_NE(pb, 45000);
  EXPECT_GE(pb, 32768);
  auto rb = dp->TestRun(Hook::kFromWorld,
                        PacketBuilder().Ipv4(kOutside, kNode).Tcp(443, pb, kAck).Build());
  ASSERT_TRUE(rb.ok());
  Bytes want = PacketBuilder().Ipv4(kOutside, topo::kClient2).Tcp(443, 45000, kAck).Build();
  EXPECT_EQ(rb->packet, want) << HexDiff(rb->packet, want);
}

TEST(Exhaustion, NatMapFullDropsNewFlowsKeepsOld) {
  CNINET_REQUIRE_ROOT();
  DatapathConfig c = StandardConfig();
  c.map_sizes.nat = 16;  // 8 mappings (two entries each)
  auto dp = Make(c);
  ASSERT_NE(dp, nullptr);
  int ok = 0, dropped = 0;
  for (uint16_t sp = 33000; sp < 33020; ++sp) {
    auto r = dp->TestRun(Hook::kToWorld,
                         PacketBuilder().Ipv4(kClient, kOutside).Tcp(sp, 443, kSyn).Build());
    ASSERT_TRUE(r.ok());
    (r->retval == kTcOk ? ok : dropped)++;
  }
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(dropped, 12);
  EXPECT_EQ(Count(*dp, CN_R_DROP_NAT_FULL), 12u);
  for (uint16_t sp = 33000; sp < 33008; ++sp) {
    auto again = dp->TestRun(Hook::kToWorld,
                             PacketBuilder().Ipv4(kClient, kOutside).Tcp(sp, 443, kAck).Build());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->retval, kTcOk);
    EXPECT_EQ(SrcPort(again->packet), sp);
    auto rep = dp->TestRun(Hook::kFromWorld,
                           PacketBuilder().Ipv4(kOutside, kNode).Tcp(443, sp, kAck).Build());
    ASSERT_TRUE(rep.ok());
    Bytes want = PacketBuilder().Ipv4(kOutside, kClient).Tcp(443, sp, kAck).Build();
    EXPECT_EQ(rep->packet, want);
  }
}

TEST(Exhaustion, ConntrackHashFullDropsNewServiceFlowsKeepsOld) {
  CNINET_REQUIRE_ROOT();
  DatapathConfig c = StandardConfig();
  c.conntrack_map_type = ConntrackMapType::kHash;
  c.map_sizes.conntrack = 16;  // 8 flows (two entries each)
  auto dp = Make(c);
  ASSERT_NE(dp, nullptr);
  std::vector<Bytes> first;
  int ok = 0;
  for (uint16_t sp = 20000; sp < 20012; ++sp) {
    auto r = dp->TestRun(Hook::kFromPod,
                         PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(sp, 80, kSyn).Build());
    ASSERT_TRUE(r.ok());
    if (r->retval == kTcOk) {
      ++ok;
      first.push_back(r->packet);
    }
  }
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(Count(*dp, CN_R_DROP_CT_FULL), 4u);
  // Established flows still follow their entries, to the same backend as before.
  for (size_t i = 0; i < first.size(); ++i) {
    uint16_t sp = static_cast<uint16_t>(20000 + i);
    auto r = dp->TestRun(Hook::kFromPod,
                         PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(sp, 80, kAck).Build());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->retval, kTcOk);
    EXPECT_TRUE(std::equal(r->packet.begin() + 30, r->packet.begin() + 34, first[i].begin() + 30))
        << "flow " << sp;
  }
  auto stats = dp->conntrack().Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->entries, 16u);
}

TEST(Exhaustion, ConntrackLruEvictsButPairsStayConsistent) {
  CNINET_REQUIRE_ROOT();
  DatapathConfig c = StandardConfig();
  c.map_sizes.conntrack = 64;
  auto dp = Make(c);
  ASSERT_NE(dp, nullptr);
  for (uint16_t sp = 21000; sp < 21400; ++sp) {
    auto r = dp->TestRun(Hook::kFromPod,
                         PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(sp, 80, kSyn).Build());
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->retval, kTcOk) << "new flows keep working by evicting old ones";
  }
  EXPECT_EQ(Count(*dp, CN_R_DROP_CT_FULL), 0u);
  EXPECT_EQ(Count(*dp, CN_R_CT_NEW), 400u);
  auto all = dp->conntrack().Dump();
  ASSERT_TRUE(all.ok());
  EXPECT_LE(all->size(), 64u);
  EXPECT_GT(all->size(), 0u);
  // Whatever survived is coherent: a forward entry's reply entry (when present) restores the
  // ClusterIP and is keyed by the backend the forward entry names.
  for (const auto& e : *all) {
    if (e.reply) {
      EXPECT_EQ(e.nat_address.ToString(), kVipWeb);
      EXPECT_EQ(e.nat_port, 80);
      continue;
    }
    FlowTuple rt{e.nat_address, e.tuple.src, e.nat_port, e.tuple.src_port, Protocol::kTcp};
    auto r = dp->conntrack().Lookup(rt);
    ASSERT_TRUE(r.ok());
    if (r->has_value()) {
      EXPECT_TRUE((*r)->reply);
      EXPECT_EQ((*r)->nat_address, e.tuple.dst);
    }
  }
  // The newest flow is intact in both directions.
  auto last = dp->TestRun(Hook::kFromPod,
                          PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(21399, 80, kAck).Build());
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->retval, kTcOk);
}

}  // namespace
}  // namespace cninet::datapath::testing
