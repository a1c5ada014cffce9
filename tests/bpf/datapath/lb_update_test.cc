// LB table updates against the real maps and programs (issue 16): a change that keeps a table's
// size is rewritten in place (the outer cn_lb_tables slot keeps its inner map, no grace period) and
// seen by the next selection; a size change swaps a fresh table in; concurrent new flows only ever
// get a live backend of the old or the new set; the automatic Maglev size survives a restart.
#include <bpf/bpf.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "cninet/base/fd.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "cninet/datapath/maglev.h"
#include "dp_test_util.h"
#include "fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using topo::kB1;
using topo::kB2;
using topo::kB3;
using topo::kClient;
using topo::kVipWeb;
constexpr char kB4[] = "10.244.1.24";

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }

std::string Dst(const Bytes& p) {
  return FromV4Net(p[30] | p[31] << 8 | p[32] << 16 | uint32_t(p[33]) << 24).ToString();
}

// The id of the inner map cn_lb_tables holds for service `id` (0 when none).
uint32_t InnerId(Datapath& dp, uint32_t id) {
  uint32_t inner = 0;
  if (!dp.maps()->lb_tables.Lookup(&id, &inner).ok()) return 0;
  return inner;
}

// New TCP flows (source ports `first`..) to the web VIP: destination per source port.
std::map<uint16_t, std::string> NewFlows(Datapath& dp, uint16_t first, int count) {
  std::map<uint16_t, std::string> out;
  for (int i = 0; i < count; ++i) {
    uint16_t sp = static_cast<uint16_t>(first + i);
    auto r = dp.TestRun(Hook::kFromPod,
                        PacketBuilder().Ipv4(kClient, kVipWeb).Tcp(sp, 80, kSyn).Build());
    EXPECT_TRUE(r.ok());
    if (!r.ok()) continue;
    EXPECT_EQ(r->retval, kTcOk);
    out[sp] = Dst(r->packet);
  }
  return out;
}

Service Web(std::vector<std::string_view> backends, LbAlgorithm algo = LbAlgorithm::kMaglev) {
  Service s = StandardServices()[0];
  s.maglev_size = kMaglevAutoSize;
  s.algorithm = algo;
  s.backends.clear();
  for (auto b : backends) s.backends.push_back(Backend{Ip(b), 8080});
  return s;
}

TEST(LbUpdate, ReplacingABackendRewritesTheLiveTableAndSelectionSeesIt) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  ServiceTable& st = (*dp)->services();
  ASSERT_TRUE(st.Upsert(Web({kB1, kB2})).ok());
  EXPECT_EQ(*st.TableSize(1), MaglevSizeFor(2));
  const uint32_t inner = InnerId(**dp, 1);
  ASSERT_NE(inner, 0u);
  const auto swapped = st.stats().tables_swapped;

  ASSERT_TRUE(st.Upsert(Web({kB1, kB3})).ok());
  EXPECT_EQ(InnerId(**dp, 1), inner) << "a same-size change must not swap the outer slot";
  EXPECT_EQ(st.stats().tables_swapped, swapped);
  EXPECT_EQ(st.stats().tables_rewritten, 1u);
  // About half the slots changed owner (B2's), no more.
  EXPECT_GT(st.stats().slots_rewritten, 0u);
  EXPECT_LT(st.stats().slots_rewritten, *st.TableSize(1) * 0.7);
  EXPECT_EQ(*(*dp)->maps()->backends.Size(), 2u) << "B2's entry is deleted after the rewrite";

  // New flows: B1 and B3 only, each where the Maglev table (as PredictBackend computes it) says.
  std::set<std::string> seen;
  for (const auto& [sp, dst] : NewFlows(**dp, 2000, 64)) {
    seen.insert(dst);
    auto want = st.PredictBackend(1, FlowTuple{Ip(kClient), Ip(kVipWeb), sp, 80, Protocol::kTcp});
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_EQ(dst, want->address.ToString()) << "source port " << sp;
  }
  EXPECT_EQ(seen, (std::set<std::string>{kB1, kB3}));
  EXPECT_EQ(*(*dp)->counters().Packets(CN_R_DROP_BACKEND_GONE), 0u);
}

TEST(LbUpdate, MaglevKeepsMostFlowsOnTheirBackendAcrossAOneBackendChange) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  ServiceTable& st = (*dp)->services();
  ASSERT_TRUE(st.Upsert(Web({kB1, kB2, kB3})).ok());
  auto before = NewFlows(**dp, 3000, 300);
  // Remove B3 (the automatic M stays, so the table is rewritten in place): only B3's flows move.
  const uint32_t inner = InnerId(**dp, 1);
  ASSERT_TRUE(st.Upsert(Web({kB1, kB2})).ok());
  EXPECT_EQ(InnerId(**dp, 1), inner);
  // The same flows again, as new flows (their conntrack entries flushed), through BPF.
  ASSERT_TRUE(st.FlushConntrack(1).ok());
  auto after = NewFlows(**dp, 3000, 300);
  int moved = 0, on_b3 = 0;
  for (const auto& [sp, dst] : before) {
    if (dst == kB3) ++on_b3;
    if (after[sp] != dst) ++moved;
    EXPECT_NE(after[sp], kB3);
  }
  EXPECT_GT(on_b3, 0);
  EXPECT_EQ(moved, on_b3) << "only the removed backend's flows may move";
}

TEST(LbUpdate, ASizeChangeSwapsAFreshTable) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  ServiceTable& st = (*dp)->services();
  // Random selection: the table is the backend list, so a count change is a size change.
  ASSERT_TRUE(st.Upsert(Web({kB1, kB2}, LbAlgorithm::kRandom)).ok());
  const uint32_t first = InnerId(**dp, 1);
  const auto swapped = st.stats().tables_swapped;
  ASSERT_TRUE(st.Upsert(Web({kB1, kB2, kB3}, LbAlgorithm::kRandom)).ok());
  EXPECT_NE(InnerId(**dp, 1), first);
  EXPECT_EQ(st.stats().tables_swapped, swapped + 1);
  EXPECT_EQ(*st.TableSize(1), 3u);
  std::set<std::string> seen;
  for (const auto& [sp, dst] : NewFlows(**dp, 4000, 96)) seen.insert(dst);
  EXPECT_EQ(seen, (std::set<std::string>{kB1, kB2, kB3}));
  // An explicit Maglev size change (251 -> 509) is a size change too.
  Service m = Web({kB1, kB2});
  m.maglev_size = 251;
  ASSERT_TRUE(st.Upsert(m).ok());
  const uint32_t m251 = InnerId(**dp, 1);
  m.maglev_size = 509;
  ASSERT_TRUE(st.Upsert(m).ok());
  EXPECT_NE(InnerId(**dp, 1), m251);
  EXPECT_EQ(*st.TableSize(1), 509u);
  seen.clear();
  for (const auto& [sp, dst] : NewFlows(**dp, 5000, 64)) seen.insert(dst);
  EXPECT_EQ(seen, (std::set<std::string>{kB1, kB2}));
}

// Concurrent new flows while every update replaces the whole backend set in place and deletes
// the old backends' entries: each flow gets a live backend of the old or the new set, never a
// drop. The single-backend random table makes every update hit the slot every flow reads, so a
// reader that read an id just before it was replaced and deleted exercises cn_lb_select's re-read.
TEST(LbUpdate, ConcurrentNewFlowsNeverSeeAVanishedBackend) {
  CNINET_REQUIRE_ROOT();
  for (LbAlgorithm algo : {LbAlgorithm::kRandom, LbAlgorithm::kMaglev}) {
    auto dp = Datapath::Create(StandardConfig());
    ASSERT_TRUE(dp.ok()) << dp.status();
    ServiceTable& st = (*dp)->services();
    const std::vector<Service> sets = {Web({kB1}, algo), Web({kB2}, algo), Web({kB3}, algo),
                                       Web({kB4}, algo)};
    ASSERT_TRUE(st.Upsert(sets[0]).ok());
    const uint32_t inner = InnerId(**dp, 1);
    std::atomic<bool> stop{false};
    std::atomic<int> runs{0}, bad{0};
    std::set<std::string> seen;
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
    for (int i = 1; i <= 400 || runs.load() < 400; ++i) {
      ASSERT_TRUE(st.Upsert(sets[i % sets.size()]).ok());
      if (i > 20000) break;
    }
    stop = true;
    traffic.join();
    EXPECT_EQ(InnerId(**dp, 1), inner) << "every update was in place";
    EXPECT_EQ(bad.load(), 0);
    for (const auto& d : seen) EXPECT_THAT(d, ::testing::AnyOf(kB1, kB2, kB3, kB4));
    EXPECT_EQ(*(*dp)->counters().Packets(CN_R_DROP_BACKEND_GONE), 0u);
    EXPECT_EQ(*(*dp)->counters().Packets(CN_R_REJECT), 0u);
    EXPECT_EQ(*(*dp)->maps()->backends.Size(), 1u);
  }
}

TEST(LbUpdate, AutomaticSizeGrowsOnlyWhenTheBackendsOutgrowIt) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  ServiceTable& st = (*dp)->services();
  Service s = Web({});
  auto with = [&](int n) {
    s.backends.clear();
    for (int i = 0; i < n; ++i)
      s.backends.push_back(
          Backend{cni::IPAddress::V4((10u << 24 | 244u << 16 | 2u << 8) + i + 1), 8080});
    return s;
  };
  ASSERT_TRUE(st.Upsert(with(10)).ok());
  EXPECT_EQ(*st.TableSize(1), 1021u);
  const uint32_t inner = InnerId(**dp, 1);
  ASSERT_TRUE(st.Upsert(with(11)).ok());  // target 2039 is one step up: stay
  ASSERT_TRUE(st.Upsert(with(9)).ok());
  EXPECT_EQ(*st.TableSize(1), 1021u);
  EXPECT_EQ(InnerId(**dp, 1), inner);
  ASSERT_TRUE(st.Upsert(with(40)).ok());  // target 4093: grow
  EXPECT_EQ(*st.TableSize(1), 4093u);
  EXPECT_NE(InnerId(**dp, 1), inner);
  EXPECT_EQ(st.Get(1)->maglev_size, kMaglevAutoSize);
  EXPECT_EQ(LbDescription(*st.Get(1)), "maglev/auto");
}

TEST(LbUpdate, RestartKeepsTheAutomaticSizeAndUpdatesInPlace) {
  CNINET_REQUIRE_ROOT();
  ScopedBpffs fs;
  ASSERT_TRUE(fs.status().ok()) << fs.status();
  DatapathConfig c = StandardConfig();
  c.pin_maps = true;
  c.bpffs_root = fs.path();
  c.instance = "lbupdate";
  Service fixed = Web({kB1, kB2});
  fixed.id = 2;
  fixed.frontends = {Frontend{Ip("10.96.0.99"), 80, Protocol::kTcp, FrontendKind::kClusterIP}};
  fixed.maglev_size = 509;
  {
    auto dp = Datapath::Create(c);
    ASSERT_TRUE(dp.ok()) << dp.status();
    ASSERT_TRUE((*dp)->services().Upsert(Web({kB1, kB2})).ok());
    ASSERT_TRUE((*dp)->services().Upsert(fixed).ok());
  }
  auto dp = Datapath::Create(c);
  ASSERT_TRUE(dp.ok()) << dp.status();
  ServiceTable& st = (*dp)->services();
  EXPECT_EQ(st.Get(1)->maglev_size, kMaglevAutoSize);
  EXPECT_EQ(*st.TableSize(1), 251u);
  EXPECT_EQ(st.Get(2)->maglev_size, 509u);
  const uint32_t inner = InnerId(**dp, 1);
  ASSERT_TRUE(st.Upsert(Web({kB1, kB3})).ok());
  EXPECT_EQ(InnerId(**dp, 1), inner);
  EXPECT_EQ(st.stats().tables_rewritten, 1u);
  std::set<std::string> seen;
  for (const auto& [sp, dst] : NewFlows(**dp, 6000, 64)) seen.insert(dst);
  EXPECT_EQ(seen, (std::set<std::string>{kB1, kB3}));
}

// Batches of >= 256 services plan and fill their tables on several threads: the result is the
// same as one by one, and an invalid service anywhere in the batch leaves the maps untouched.
TEST(LbUpdate, LargeBatchesProgramEveryServiceAndRejectAsAWhole) {
  CNINET_REQUIRE_ROOT();
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  ServiceTable& st = (*dp)->services();
  std::vector<Service> batch;
  for (uint32_t i = 0; i < 600; ++i) {
    Service s;
    s.id = i + 2;
    s.frontends = {Frontend{cni::IPAddress::V4((10u << 24 | 97u << 16) + i), 80, Protocol::kTcp,
                            FrontendKind::kClusterIP}};
    for (uint32_t b = 0; b < 3; ++b)
      s.backends.push_back(
          Backend{cni::IPAddress::V4((10u << 24 | 244u << 16 | 9u << 8) + i % 200 + b), 8080});
    batch.push_back(std::move(s));
  }
  Service bad = batch[450];
  batch[450].maglev_size = 1000;  // not prime
  EXPECT_EQ(st.UpsertBatch(batch).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*(*dp)->maps()->services.Size(), 0u);
  EXPECT_EQ(*(*dp)->maps()->backends.Size(), 0u);
  EXPECT_EQ(InnerId(**dp, 2), 0u);
  batch[450] = bad;
  ASSERT_TRUE(st.UpsertBatch(batch).ok());
  EXPECT_EQ(st.List().size(), 600u);
  EXPECT_EQ(st.stats().tables_swapped, 600u);
  // The web service too, then new flows through BPF follow the tables.
  ASSERT_TRUE(st.Upsert(Web({kB1, kB2, kB3})).ok());
  for (const auto& [sp, dst] : NewFlows(**dp, 7000, 32)) {
    auto want = st.PredictBackend(1, FlowTuple{Ip(kClient), Ip(kVipWeb), sp, 80, Protocol::kTcp});
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(dst, want->address.ToString());
  }
  // Every table holds M = 509 (3 backends) ids of its own service.
  for (uint32_t id : {2u, 301u, 601u}) {
    EXPECT_EQ(*st.TableSize(id), 509u);
    UniqueFd inner(bpf_map_get_fd_by_id(InnerId(**dp, id)));
    ASSERT_TRUE(inner);
    for (uint32_t k : {1u, 254u, 509u}) {
      uint32_t bid = 0;
      ASSERT_EQ(bpf_map_lookup_elem(inner.get(), &k, &bid), 0);
      EXPECT_EQ(bid >> 12, id);
    }
  }
  // A second identical batch is all in place and changes nothing.
  const auto slots = st.stats().slots_rewritten;
  ASSERT_TRUE(st.UpsertBatch(batch).ok());
  EXPECT_EQ(st.stats().tables_swapped, 601u);
  EXPECT_EQ(st.stats().slots_rewritten, slots);
}

}  // namespace
}  // namespace cninet::datapath::testing
