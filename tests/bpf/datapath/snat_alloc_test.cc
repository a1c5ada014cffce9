// SNAT port allocation per destination (bpf/lib/nat.h): a node port is in conflict only with a
// mapping to the same remote address:port/proto, so two destinations share a node port and the
// replies of both are reversed to their own pod; at 90 % occupancy toward one destination the
// port index finds a free port with few retries; a stale index never blocks allocation.
#include <arpa/inet.h>

#include <random>
#include <set>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "fixtures.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

struct Family {
  const char* name;
  const char* client;
  const char* client2;
  const char* node;
  const char* outside;
  const char* outside2;  // a second server outside the cluster
};

const Family kV4{"v4", topo::kClient, topo::kClient2, topo::kNode, topo::kOutside, "198.51.100.81"};
const Family kV6{"v6",         topo6::kClient,  topo6::kClient2,
                 topo6::kNode, topo6::kOutside, "2001:db8:51:100::81"};

PacketBuilder Ip(const Family& f, std::string_view src, std::string_view dst) {
  PacketBuilder b;
  if (f.name[1] == '6')
    b.Ipv6(src, dst);
  else
    b.Ipv4(src, dst);
  return b;
}

bool IsV6(const Bytes& p) { return (p[14] >> 4) == 6; }
size_t L4(const Bytes& p) { return IsV6(p) ? 54 : 34; }
uint16_t SrcPort(const Bytes& p) { return static_cast<uint16_t>(p[L4(p)] << 8 | p[L4(p) + 1]); }

cn_addr Abi(std::string_view ip) { return ToAbiAddr(*cni::IPAddress::Parse(ip)); }

uint64_t Count(Datapath& dp, uint32_t reason) { return *dp.counters().Packets(reason); }

class SnatAllocTest : public ::testing::TestWithParam<const Family*> {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    DatapathConfig c = StandardDualStackConfig();
    c.map_sizes.nat = 131072;  // room for 90 % of the range as mapping pairs
    auto dp = Datapath::Create(c);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    ASSERT_TRUE(ApplyStandardSetup(*dp_).ok());
    ASSERT_TRUE(ApplyStandardIpv6Setup(*dp_).ok());
  }
  const Family& f() const { return *GetParam(); }

  // Takes `ports` toward f().outside:443/tcp as live mapping pairs of other pods, as a busy node
  // would have them, and the port index as the programs keep it.
  void Occupy(const std::vector<uint16_t>& ports) {
    absl::Status st = OccupySnatPorts(*dp_, *cni::IPAddress::Parse(f().node),
                                      *cni::IPAddress::Parse(f().outside), ports, 3600);
    ASSERT_TRUE(st.ok()) << st;
  }

  std::unique_ptr<Datapath> dp_;
};

TEST_P(SnatAllocTest, OneNodePortServesTwoDestinationsAndRepliesReachTheirOwnPod) {
  // Two pods, the same source port, two servers: both keep port 45000 (no conflict: the
  // destinations differ), as nf_conntrack would do.
  auto a =
      dp_->TestRun(Hook::kToWorld, Ip(f(), f().client, f().outside).Tcp(45000, 443, kSyn).Build());
  auto b = dp_->TestRun(Hook::kToWorld,
                        Ip(f(), f().client2, f().outside2).Tcp(45000, 443, kSyn).Build());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->retval, kTcOk);
  ASSERT_EQ(b->retval, kTcOk);
  EXPECT_EQ(SrcPort(a->packet), 45000);
  EXPECT_EQ(SrcPort(b->packet), 45000) << "the node port is reused for another destination";
  EXPECT_EQ(Count(*dp_, CN_R_NAT_PORT_RETRY), 0u);

  // Replies from each server to node:45000 go back to their own pod.
  auto ra = dp_->TestRun(Hook::kFromWorld,
                         Ip(f(), f().outside, f().node).Tcp(443, 45000, kSyn | kAck).Build());
  auto rb = dp_->TestRun(Hook::kFromWorld,
                         Ip(f(), f().outside2, f().node).Tcp(443, 45000, kSyn | kAck).Build());
  ASSERT_TRUE(ra.ok() && rb.ok());
  Bytes want_a = Ip(f(), f().outside, f().client).Tcp(443, 45000, kSyn | kAck).Build();
  Bytes want_b = Ip(f(), f().outside2, f().client2).Tcp(443, 45000, kSyn | kAck).Build();
  EXPECT_EQ(ra->packet, want_a) << HexDiff(ra->packet, want_a);
  EXPECT_EQ(rb->packet, want_b) << HexDiff(rb->packet, want_b);

  // A third pod with the same port to the first server conflicts: another port, still correct.
  auto c =
      dp_->TestRun(Hook::kToWorld, Ip(f(), f().client2, f().outside).Tcp(45000, 443, kSyn).Build());
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->retval, kTcOk);
  const uint16_t pc = SrcPort(c->packet);
  EXPECT_NE(pc, 45000);
  EXPECT_EQ(pc >> 6, 45000 >> 6) << "a free port of the same block, found through the index";
  auto rc =
      dp_->TestRun(Hook::kFromWorld, Ip(f(), f().outside, f().node).Tcp(443, pc, kAck).Build());
  ASSERT_TRUE(rc.ok());
  Bytes want_c = Ip(f(), f().outside, f().client2).Tcp(443, 45000, kAck).Build();
  EXPECT_EQ(rc->packet, want_c) << HexDiff(rc->packet, want_c);
}

TEST_P(SnatAllocTest, NinetyPercentOfPortsToOneDestinationTakenFewRetriesNoDrops) {
  const auto& cfg = dp_->config();
  std::vector<uint16_t> ports;
  for (uint32_t p = cfg.nat_port_min; p <= cfg.nat_port_max; ++p)
    ports.push_back(static_cast<uint16_t>(p));
  std::mt19937 rng(16);
  std::shuffle(ports.begin(), ports.end(), rng);
  ports.resize(ports.size() * 90 / 100);
  std::set<uint16_t> taken(ports.begin(), ports.end());
  Occupy(ports);
  if (HasFailure()) return;

  constexpr int kFlows = 512;
  std::set<uint16_t> got;
  for (int i = 0; i < kFlows; ++i) {
    // Original ports spread over the range: most are among the taken ones.
    const uint16_t sp = static_cast<uint16_t>(32768 + (i * 7919) % 32768);
    auto r =
        dp_->TestRun(Hook::kToWorld, Ip(f(), f().client, f().outside).Tcp(sp, 443, kSyn).Build());
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->retval, kTcOk) << "flow " << i << " dropped";
    const uint16_t p = SrcPort(r->packet);
    EXPECT_FALSE(taken.count(p)) << "port " << p << " belongs to a live mapping";
    EXPECT_TRUE(got.insert(p).second) << "port " << p << " given twice";
  }
  EXPECT_EQ(Count(*dp_, CN_R_DROP_NAT_NO_PORT), 0u);
  const double retries = static_cast<double>(Count(*dp_, CN_R_NAT_PORT_RETRY)) / kFlows;
  EXPECT_LE(retries, 0.5) << "retries per flow";
  RecordProperty("retries_per_flow", std::to_string(retries));

  // Another destination is not affected by the first one's occupancy: the original port is kept.
  auto o = dp_->TestRun(Hook::kToWorld,
                        Ip(f(), f().client, f().outside2).Tcp(ports[0], 443, kSyn).Build());
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(SrcPort(o->packet), ports[0]);
}

TEST_P(SnatAllocTest, StaleIndexBitsNeverBlockAFreePort) {
  // A tiny range whose index claims every port taken (bits whose clear was lost): the blind
  // candidate of a "full" block still finds the free ports, and Gc/SyncPortIndex repairs it.
  DatapathConfig c = StandardDualStackConfig();
  c.nat_port_min = 40000;
  c.nat_port_max = 40003;
  c.nat_retries = 16;
  auto dp = Datapath::Create(c);
  ASSERT_TRUE(dp.ok()) << dp.status();
  ASSERT_TRUE(ApplyStandardSetup(**dp).ok());
  ASSERT_TRUE(ApplyStandardIpv6Setup(**dp).ok());
  cn_nat_ports_key k{};
  k.node = Abi(f().node);
  k.remote = Abi(f().outside);
  k.rport = htons(443);
  k.proto = 6;
  k.block = 40000 >> 6;
  ASSERT_TRUE((*dp)->maps()->nat_ports.Update(k, ~uint64_t{0}).ok());
  std::set<uint16_t> got;
  for (uint16_t sp = 1000; sp < 1004; ++sp) {
    auto r =
        (*dp)->TestRun(Hook::kToWorld, Ip(f(), f().client, f().outside).Tcp(sp, 443, kSyn).Build());
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->retval, kTcOk) << "flow " << sp;
    got.insert(SrcPort(r->packet));
  }
  EXPECT_EQ(got, (std::set<uint16_t>{40000, 40001, 40002, 40003}));
  // The range is now really full: a fifth flow is a counted drop.
  auto r =
      (*dp)->TestRun(Hook::kToWorld, Ip(f(), f().client, f().outside).Tcp(1004, 443, kSyn).Build());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->retval, kTcShot);
  EXPECT_EQ(Count(**dp, CN_R_DROP_NAT_NO_PORT), 1u);
  // Deleting the mappings clears the index (DeleteIf rebuilds it from cn_nat).
  auto n = (*dp)->nat().Flush();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 8u);
  EXPECT_TRUE(absl::IsNotFound((*dp)->maps()->nat_ports.Lookup(k).status()));
}

TEST_P(SnatAllocTest, ABlockIsIndexedFromItsFirstConflictAndGcClearsIt) {
  cn_nat_ports_key k{};
  k.node = Abi(f().node);
  k.remote = Abi(f().outside);
  k.rport = htons(443);
  k.proto = 6;
  k.block = 45001 >> 6;
  // A flow that meets no conflict adds no index entry (no insert on the common path).
  auto a =
      dp_->TestRun(Hook::kToWorld, Ip(f(), f().client, f().outside).Tcp(45001, 443, kSyn).Build());
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->retval, kTcOk);
  EXPECT_TRUE(absl::IsNotFound(dp_->maps()->nat_ports.Lookup(k).status()));
  // The same port from another pod to the same server conflicts: the block gets its entry, and
  // the next round finds a free port of the block through it (one retry).
  auto b =
      dp_->TestRun(Hook::kToWorld, Ip(f(), f().client2, f().outside).Tcp(45001, 443, kSyn).Build());
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->retval, kTcOk);
  const uint16_t pb = SrcPort(b->packet);
  EXPECT_NE(pb, 45001);
  EXPECT_EQ(pb >> 6, 45001 >> 6);
  auto bits = dp_->maps()->nat_ports.Lookup(k);
  ASSERT_TRUE(bits.ok()) << bits.status();
  EXPECT_EQ(*bits, (uint64_t{1} << (45001 & 63)) | (uint64_t{1} << (pb & 63)));
  EXPECT_EQ(Count(*dp_, CN_R_NAT_PORT_RETRY), 1u);
  // Expire the pairs, then Gc: mappings and their index bits go.
  auto all = dp_->maps()->nat.Dump();
  ASSERT_TRUE(all.ok());
  for (auto [key, v] : *all) {
    v.expires_s = 1;
    ASSERT_TRUE(dp_->maps()->nat.Update(key, v).ok());
  }
  auto gc = dp_->nat().Gc();
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->deleted, 4u);
  EXPECT_TRUE(absl::IsNotFound(dp_->maps()->nat_ports.Lookup(k).status()));
}

INSTANTIATE_TEST_SUITE_P(Families, SnatAllocTest, ::testing::Values(&kV4, &kV6),
                         [](const auto& p) { return std::string(p.param->name); });

}  // namespace
}  // namespace cninet::datapath::testing
