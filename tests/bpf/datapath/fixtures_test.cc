// The standard fixture table through BPF_PROG_TEST_RUN: every packet's verdict and output bytes.
#include "fixtures.h"

#include <map>
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
  // IPv6 is translated and tracked like IPv4: the plain IPv6 flow of the table passes as "pass".
  EXPECT_EQ(by_name["pass_ipv6"], 0u);
  EXPECT_EQ(by_name["pass_fragment"], 1u);
  EXPECT_EQ(by_name["pass_non_ip"], 1u);
  EXPECT_GE(by_name["event_affinity_hit"], 1u);
  EXPECT_EQ(by_name["event_icmp_error_xlated"], 2u);
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

}  // namespace
}  // namespace cninet::datapath::testing
