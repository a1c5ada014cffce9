// The standard fixture table through BPF_PROG_TEST_RUN: every packet's verdict and output bytes.
#include "fixtures.h"

#include <map>
#include <string>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

class FixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    auto dp = Datapath::Create(StandardConfig());
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    ASSERT_TRUE(ApplyStandardSetup(*dp_).ok());
  }
  std::unique_ptr<Datapath> dp_;
};

TEST_F(FixtureTest, StandardTable) {
  std::vector<PacketFixture> fixtures = StandardFixtures();
  ASSERT_GE(fixtures.size(), 40u);
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.name + ": " + f.description);
    absl::Status s = RunFixture(*dp_, f);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  // Every packet was counted under exactly one verdict reason.
  auto counters = dp_->counters().Read();
  ASSERT_TRUE(counters.ok());
  uint64_t verdicts = 0;
  std::map<std::string, uint64_t> by_name;
  for (const auto& c : *counters) {
    if (!c.is_event) verdicts += c.packets;
    by_name[std::string(c.name)] = c.packets;
  }
  EXPECT_EQ(verdicts, fixtures.size());
  size_t malformed = 0, rejects = 0;
  for (const auto& f : fixtures) {
    malformed += f.name.rfind("malformed_", 0) == 0;
    rejects += f.expected_verdict == kTcRedirect;
  }
  EXPECT_EQ(by_name["drop_malformed"], malformed);
  EXPECT_EQ(by_name["reject_no_backend"], rejects);
  EXPECT_EQ(by_name["pass_ipv6"], 1u);
  EXPECT_EQ(by_name["pass_fragment"], 1u);
  EXPECT_EQ(by_name["pass_non_ip"], 1u);
  EXPECT_GE(by_name["event_affinity_hit"], 1u);
  EXPECT_EQ(by_name["event_icmp_error_xlated"], 2u);
}

TEST_F(FixtureTest, ConntrackTableShowsTheServiceFlow) {
  std::vector<PacketFixture> fixtures = StandardFixtures();
  ASSERT_TRUE(RunFixturesThrough(*dp_, fixtures, "clusterip_established").ok());
  FlowTuple fwd{*cni::IPAddress::Parse(topo::kClient), *cni::IPAddress::Parse(topo::kVipWeb), 40001,
                80, 6};
  auto e = dp_->conntrack().Lookup(fwd);
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->has_value());
  EXPECT_TRUE((*e)->service);
  EXPECT_FALSE((*e)->reply);
  EXPECT_TRUE((*e)->established);
  EXPECT_EQ((*e)->nat_port, 8080);
  EXPECT_EQ((*e)->packets, 2u);
  EXPECT_EQ((*e)->service_id, 1u);
  // Its reply entry is keyed by backend -> client and restores the ClusterIP.
  FlowTuple rep{(*e)->nat_address, fwd.src, 8080, 40001, 6};
  auto r = dp_->conntrack().Lookup(rep);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_TRUE((*r)->reply);
  EXPECT_EQ((*r)->nat_address.ToString(), topo::kVipWeb);
  EXPECT_EQ((*r)->nat_port, 80);
  EXPECT_GT((*e)->expires_in_s, 3600);  // established lifetime, not the SYN one
  auto stats = dp_->conntrack().Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->entries, 2u);
  EXPECT_EQ(stats->service, 2u);
  EXPECT_THAT((*e)->ToString(), ::testing::HasSubstr("backend="));
}

TEST_F(FixtureTest, TcpRstMovesBothDirectionsToClosing) {
  std::vector<PacketFixture> fixtures = StandardFixtures();
  ASSERT_TRUE(RunFixturesThrough(*dp_, fixtures, "clusterip_established").ok());
  Bytes rst =
      PacketBuilder().Ipv4(topo::kClient, topo::kVipWeb).Tcp(40001, 80, kRst | kAck).Build();
  auto r = dp_->TestRun(Hook::kFromPod, rst);
  ASSERT_TRUE(r.ok());
  auto all = dp_->conntrack().Dump();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  for (const auto& e : *all) {
    EXPECT_TRUE(e.closing) << e.ToString();
    EXPECT_LE(e.expires_in_s, 10) << e.ToString();
  }
}

}  // namespace
}  // namespace cninet::datapath::testing
