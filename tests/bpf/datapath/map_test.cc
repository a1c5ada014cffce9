// Typed Map<K, V> operations and the table helpers (delete-by-filter, flush, endpoints,
// counters reset) on the real maps of a loaded datapath.
#include "cninet/datapath/map.h"

#include <set>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "fixtures.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

class MapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    auto dp = Datapath::Create(StandardConfig());
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
  }
  std::unique_ptr<Datapath> dp_;
};

TEST_F(MapTest, TypedOperations) {
  Map<uint32_t, cn_backend>& m = dp_->maps()->backends;
  EXPECT_EQ(m.info().max_entries, StandardConfig().map_sizes.backends);
  EXPECT_EQ(m.Lookup(7).status().code(), absl::StatusCode::kNotFound);
  cn_backend v{};
  v.port = 42;
  ASSERT_TRUE(m.Update(7, v).ok());
  EXPECT_EQ(m.Update(7, v, UpdateMode::kNoExist).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(m.Update(8, v, UpdateMode::kExist).code(), absl::StatusCode::kNotFound);
  auto got = m.Lookup(7);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->port, 42u);

  std::vector<uint32_t> keys;
  std::vector<cn_backend> vals;
  for (uint32_t k = 100; k < 200; ++k) {
    keys.push_back(k);
    cn_backend e{};
    e.port = static_cast<uint16_t>(k * 2);
    vals.push_back(e);
  }
  ASSERT_TRUE(m.UpdateBatch(keys, vals).ok());
  EXPECT_EQ(*m.Size(), 101u);
  auto dump = m.Dump();
  ASSERT_TRUE(dump.ok());
  for (const auto& [k, e] : *dump) EXPECT_EQ(e.port, k == 7 ? 42u : k * 2);
  size_t visited = 0;
  ASSERT_TRUE(m.ForEach([&](const uint32_t&, const cn_backend&) { return ++visited < 10; }).ok());
  EXPECT_EQ(visited, 10u) << "ForEach stops when the callback returns false";
  std::vector<uint32_t> del = {100, 101, 102, 9999};
  auto n = m.DeleteBatch(del);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3u) << "absent keys are skipped";
  EXPECT_EQ(m.Delete(100).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*m.Size(), 98u);
  std::vector<uint32_t> short_keys = {1, 2};
  std::vector<cn_backend> one_val(1);
  EXPECT_EQ(m.UpdateBatch(short_keys, one_val).code(), absl::StatusCode::kInvalidArgument);

  // A wrongly typed view is refused.
  auto dup = m.raw().Dup();
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ((Map<uint64_t, cn_backend>::Wrap(std::move(*dup)).status().code()),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(MapTest, PerCpuCountersAndReset) {
  ASSERT_TRUE(ApplyStandardSetup(*dp_).ok());
  Bytes syn = PacketBuilder().Ipv4(topo::kClient, topo::kVipWeb).Tcp(1, 80, kSyn).Build();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(dp_->TestRun(Hook::kFromPod, syn).ok());
  auto pc = dp_->maps()->counters.Lookup(CN_R_CT_HIT);
  ASSERT_TRUE(pc.ok());
  EXPECT_EQ(pc->values.size(), static_cast<size_t>(PossibleCpus()));
  uint64_t hits = 0;
  for (const auto& c : pc->values) hits += c.packets;
  EXPECT_EQ(hits, 4u);
  EXPECT_EQ(*dp_->counters().Packets(CN_R_DNAT), 5u);
  ASSERT_TRUE(dp_->counters().Reset().ok());
  EXPECT_EQ(*dp_->counters().Packets(CN_R_DNAT), 0u);
}

TEST_F(MapTest, ConntrackAndNatDeleteIfAndFlush) {
  ASSERT_TRUE(ApplyStandardSetup(*dp_).ok());
  for (uint16_t sp = 1; sp <= 10; ++sp) {
    ASSERT_TRUE(
        dp_->TestRun(Hook::kFromPod,
                     PacketBuilder().Ipv4(topo::kClient, topo::kVipWeb).Tcp(sp, 80, kSyn).Build())
            .ok());
    ASSERT_TRUE(dp_->TestRun(Hook::kToWorld, PacketBuilder()
                                                 .Ipv4(topo::kClient, topo::kOutside)
                                                 .Tcp(40000 + sp, 443, kSyn)
                                                 .Build())
                    .ok());
  }
  EXPECT_EQ(dp_->conntrack().Dump()->size(), 20u);
  auto n = dp_->conntrack().DeleteIf([](const ConntrackEntry& e) { return e.reply; });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 10u);
  auto left = dp_->conntrack().Dump();
  ASSERT_TRUE(left.ok());
  for (const auto& e : *left) EXPECT_FALSE(e.reply);
  EXPECT_EQ(*dp_->conntrack().Flush(), 10u);
  EXPECT_EQ(dp_->conntrack().Dump()->size(), 0u);
  auto stats = dp_->nat().Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->egress, 10u);
  EXPECT_EQ(stats->ingress, 10u);
  auto only5 =
      dp_->nat().DeleteIf([](const NatEntry& e) { return e.egress && e.tuple.src_port == 40005; });
  ASSERT_TRUE(only5.ok());
  EXPECT_EQ(*only5, 1u);
  EXPECT_EQ(*dp_->nat().Flush(), 19u);
}

TEST_F(MapTest, EndpointTable) {
  Endpoint ep{*cni::IPAddress::Parse("10.244.9.9"), 17, {2, 0, 0, 0, 9, 9}};
  ASSERT_TRUE(dp_->endpoints().Upsert(ep).ok());
  auto list = dp_->endpoints().List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().address, ep.address);
  EXPECT_EQ(list->front().ifindex, 17u);
  EXPECT_EQ(list->front().mac, ep.mac);
  ASSERT_TRUE(dp_->endpoints().Delete(ep.address).ok());
  EXPECT_EQ(dp_->endpoints().Delete(ep.address).code(), absl::StatusCode::kNotFound);
  // IPv6 endpoints share the map (keys are 16-byte addresses, IPv4 mapped).
  Endpoint v6{*cni::IPAddress::Parse("fd00::1"), 3, {2, 0, 0, 0, 9, 10}};
  ASSERT_TRUE(dp_->endpoints().Upsert(v6).ok());
  ASSERT_TRUE(dp_->endpoints().Upsert(ep).ok());
  list = dp_->endpoints().List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  std::set<cni::IPAddress> seen;
  for (const auto& e : *list) seen.insert(e.address);
  EXPECT_EQ(seen, (std::set<cni::IPAddress>{ep.address, v6.address}));
  ASSERT_TRUE(dp_->endpoints().Delete(v6.address).ok());
}

}  // namespace
}  // namespace cninet::datapath::testing
