// The standard fixture table through BPF_PROG_TEST_RUN: every packet's verdict, output bytes and
// counter reason, and its IPv6 twins (Ipv6Fixtures/...).
#include "fixtures.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

// Packets run from inside a fresh network namespace: the programs' FIB lookups (NodePort replies)
// then see no host routes and leave those packets to the stack, as the table expects.
class FixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    guard_ = std::make_unique<ThreadNetnsGuard>(ns_.path());
    ASSERT_TRUE(guard_->status().ok()) << guard_->status();
    auto dp = Datapath::Create(StandardConfig());
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    ASSERT_TRUE(ApplyStandardSetup(*dp_).ok());
  }
  cninet::testing::ScopedNetns ns_{"dpfx"};
  std::unique_ptr<ThreadNetnsGuard> guard_;
  std::unique_ptr<Datapath> dp_;
};

TEST_F(FixtureTest, StandardTable) {
  std::vector<PacketFixture> fixtures = StandardFixtures();
  ASSERT_GE(fixtures.size(), 40u);
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.name + ": " + f.description);
    EXPECT_TRUE(f.expected_reason.has_value()) << f.name << " names no counter reason";
    absl::Status s = RunFixtureCounted(*dp_, f);
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
    rejects += f.expected_reason == CN_R_REJECT;
  }
  EXPECT_EQ(by_name["drop_malformed"], malformed);
  EXPECT_EQ(by_name["reject_no_backend"], rejects);
  // IPv6 is translated and tracked like IPv4: the plain IPv6 flow of the table passes as "pass".
  EXPECT_EQ(by_name["pass_ipv6"], 0u);
  EXPECT_EQ(by_name["pass_fragment"], 1u);
  EXPECT_EQ(by_name["pass_non_ip"], 1u);
  EXPECT_GE(by_name["event_affinity_hit"], 1u);
  EXPECT_EQ(by_name["event_icmp_error_xlated"], 3u);
}

TEST_F(FixtureTest, ConntrackTableShowsTheServiceFlow) {
  std::vector<PacketFixture> fixtures = StandardFixtures();
  ASSERT_TRUE(RunFixturesThrough(*dp_, fixtures, "clusterip_established").ok());
  FlowTuple fwd{*cni::IPAddress::Parse(topo::kClient), *cni::IPAddress::Parse(topo::kVipWeb), 40001,
                80, Protocol::kTcp};
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
  FlowTuple rep{(*e)->nat_address, fwd.src, 8080, 40001, Protocol::kTcp};
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

// With a route and a neighbour, a NodePort reply (source restored to the node address) is routed
// by the program itself: TTL decremented, MACs from the neighbour, redirected to the egress device
// (the stack would drop a packet arriving with a local source address).
TEST_F(FixtureTest, NodePortReplyIsRoutedAroundTheStack) {
  auto r = ns_.Exec(
      "sysctl -qw net.ipv4.ip_forward=1 && ip link add fx0 type veth peer name fx1 && "
      "ip addr add 198.51.100.1/24 dev fx0 && ip link set fx0 up && ip link set fx1 up && "
      "ip neigh replace 198.51.100.7 lladdr 02:00:00:00:00:77 dev fx0 nud permanent && "
      "cat /sys/class/net/fx0/address");
  ASSERT_TRUE(r.ok()) << r.err;
  std::string fx0_mac = r.out.substr(0, 17);
  std::vector<PacketFixture> fixtures = StandardFixtures();
  ASSERT_TRUE(RunFixturesThrough(*dp_, fixtures, "nodeport_local").ok());
  Bytes reply =
      PacketBuilder().Ipv4(topo::kB1, topo::kExternal).Tcp(8080, 50000, kSyn | kAck).Build();
  auto out = dp_->TestRun(Hook::kFromPod, reply);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->retval, kTcRedirect);
  Bytes want = PacketBuilder()
                   .Eth(fx0_mac, "02:00:00:00:00:77")
                   .Ipv4(topo::kNode, topo::kExternal)
                   .Ttl(63)
                   .Tcp(topo::kNodePortLocal, 50000, kSyn | kAck)
                   .Build();
  EXPECT_EQ(out->packet, want) << HexDiff(out->packet, want);
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

// Always on (no datapath run): every IPv4 row has exactly one IPv6 twin (or is listed without
// one), and every IPv6 row is an IPv6 frame with a counter reason and an expected output unless
// it is dropped.
TEST(Ipv6FixtureTable, TwinsEveryIpv4Row) {
  std::vector<PacketFixture> v4 = StandardFixtures();
  std::vector<PacketFixture> v6 = StandardIpv6Fixtures();
  std::map<std::string, std::string> no_twin;
  for (const auto& [name, why] : Ipv4RowsWithoutTwin()) no_twin[name] = why;
  std::map<std::string, int> twins;
  std::set<std::string> names;
  for (const auto& f : v6) {
    SCOPED_TRACE(f.name);
    EXPECT_TRUE(names.insert(f.name).second) << "duplicate";
    EXPECT_EQ(f.name.rfind("v6_", 0), 0u);
    ASSERT_GE(f.input.size(), 14u);
    EXPECT_EQ((f.input[12] << 8) | f.input[13], 0x86dd) << "not an IPv6 frame";
    EXPECT_TRUE(f.expected_reason.has_value());
    EXPECT_EQ(f.expected_output.has_value(), f.expected_verdict != kTcShot);
    if (!f.twin_of.empty()) ++twins[f.twin_of];
  }
  for (const auto& f : v4) {
    if (no_twin.count(f.name)) {
      EXPECT_EQ(twins.count(f.name), 0u) << f.name;
      continue;
    }
    EXPECT_EQ(twins[f.name], 1) << "IPv4 row " << f.name << " has no single IPv6 twin";
  }
  EXPECT_EQ(twins.size(), v4.size() - no_twin.size());
}

// The IPv6 twins, one test per row (Ipv6Fixtures/Ipv6FixtureTest.Row/v6_<twin>), on a dual-stack
// datapath in a fresh namespace: the rows before it run first (their results are their own
// tests'), then the row's verdict, bytes and counter reason are checked.
class DualStackFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    guard_ = std::make_unique<ThreadNetnsGuard>(ns_.path());
    ASSERT_TRUE(guard_->status().ok()) << guard_->status();
    auto dp = Datapath::Create(StandardDualStackConfig());
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    ASSERT_TRUE(ApplyStandardSetup(*dp_).ok());
    // Not fatal: the rows show what the datapath does with the packets all the same.
    absl::Status v6 = ApplyStandardIpv6Setup(*dp_);
    EXPECT_TRUE(v6.ok()) << "IPv6 setup: " << v6;
  }
  cninet::testing::ScopedNetns ns_{"dpfx6"};
  std::unique_ptr<ThreadNetnsGuard> guard_;
  std::unique_ptr<Datapath> dp_;
};
class Ipv6FixtureTest : public DualStackFixtureTest,
                        public ::testing::WithParamInterface<std::string> {};

std::vector<std::string> Ipv6RowNames() {
  std::vector<std::string> names;
  for (const auto& f : StandardIpv6Fixtures()) names.push_back(f.name);
  return names;
}

TEST_P(Ipv6FixtureTest, Row) {
  std::vector<PacketFixture> fixtures = StandardIpv6Fixtures();
  auto it = std::find_if(fixtures.begin(), fixtures.end(),
                         [](const PacketFixture& f) { return f.name == GetParam(); });
  ASSERT_NE(it, fixtures.end());
  for (auto p = fixtures.begin(); p != it; ++p) (void)RunFixture(*dp_, *p);
  SCOPED_TRACE(it->name + " (twin of " + (it->twin_of.empty() ? "none" : it->twin_of) +
               "): " + it->description);
  absl::Status s = RunFixtureCounted(*dp_, *it);
  EXPECT_TRUE(s.ok()) << s.message();
}

INSTANTIATE_TEST_SUITE_P(Ipv6Fixtures, Ipv6FixtureTest, ::testing::ValuesIn(Ipv6RowNames()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// The whole IPv6 table in one run, counted as StandardTable counts the IPv4 one; every row passes.
TEST_F(DualStackFixtureTest, Ipv6TableInOneRun) {
  std::vector<PacketFixture> fixtures = StandardIpv6Fixtures();
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.name + ": " + f.description);
    absl::Status s = RunFixtureCounted(*dp_, f);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  auto counters = dp_->counters().Read();
  ASSERT_TRUE(counters.ok());
  std::map<std::string, uint64_t> by_name;
  uint64_t verdicts = 0;
  for (const auto& c : *counters) {
    if (!c.is_event) verdicts += c.packets;
    by_name[std::string(c.name)] = c.packets;
  }
  EXPECT_EQ(verdicts, fixtures.size());
  EXPECT_EQ(by_name["pass_ipv6"], 0u) << "IPv6 passed untouched for being IPv6";
  EXPECT_EQ(by_name["pass_fragment"], 1u);
  EXPECT_GE(by_name["event_affinity_hit"], 1u);
  EXPECT_EQ(by_name["event_icmp_error_xlated"], 3u);
}

}  // namespace
}  // namespace cninet::datapath::testing
