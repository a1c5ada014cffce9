// A client port reused across services that share a backend: the replies of a reopened
// connection must carry its own service address. Found by bench/compare (short connections to
// many ClusterIPs): before the fix, a SYN hitting the closing forward entry of an old connection
// kept that entry, whose reply partner had meanwhile been rewritten by a flow to another service,
// so the SYN-ACK came back from the wrong ClusterIP and the connection failed.
#include <memory>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "dp_test_util.h"
#include "fixtures.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

constexpr char kCli[] = "10.244.1.2";
constexpr char kVip1[] = "10.96.0.1";
constexpr char kVip2[] = "10.96.0.2";
constexpr char kBackend[] = "10.244.2.2";

class ReopenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    guard_ = std::make_unique<ThreadNetnsGuard>(ns_.path());
    ASSERT_TRUE(guard_->status().ok()) << guard_->status();
    auto dp = Datapath::Create(StandardConfig());
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    for (uint32_t id : {1u, 2u}) {
      Service s;
      s.id = id;
      s.maglev_size = 251;
      s.frontends.push_back(Frontend{*cni::IPAddress::Parse(id == 1 ? kVip1 : kVip2), 80,
                                     Protocol::kTcp, FrontendKind::kClusterIP});
      s.backends.push_back(Backend{*cni::IPAddress::Parse(kBackend), 8080});
      ASSERT_TRUE(dp_->services().Upsert(s).ok());
    }
  }
  // Runs a from-pod packet and returns the output (verdict must be TC_ACT_OK).
  Bytes Run(const Bytes& in) {
    auto r = dp_->TestRun(Hook::kFromPod, in);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    EXPECT_EQ(r->retval, kTcOk);
    return r->packet;
  }
  // One short connection from kCli:port to `vip`: SYN (DNAT checked), SYN-ACK (reverse NAT
  // checked), client RST.
  void Connect(const char* vip, uint16_t port) {
    SCOPED_TRACE(std::string("connection to ") + vip);
    Bytes syn = PacketBuilder().Ipv4(kCli, vip).Tcp(port, 80, kSyn).Build();
    Bytes syn_dnat = PacketBuilder().Ipv4(kCli, kBackend).Tcp(port, 8080, kSyn).Build();
    EXPECT_EQ(Run(syn), syn_dnat);
    Bytes synack = PacketBuilder().Ipv4(kBackend, kCli).Tcp(8080, port, kSyn | kAck).Build();
    Bytes synack_rev = PacketBuilder().Ipv4(vip, kCli).Tcp(80, port, kSyn | kAck).Build();
    Bytes got = Run(synack);
    EXPECT_EQ(got, synack_rev) << HexDiff(got, synack_rev);
    Bytes rst = PacketBuilder().Ipv4(kCli, vip).Tcp(port, 80, kRst | kAck).Build();
    Run(rst);
  }
  cninet::testing::ScopedNetns ns_{"dpre"};
  std::unique_ptr<ThreadNetnsGuard> guard_;
  std::unique_ptr<Datapath> dp_;
};

TEST_F(ReopenTest, ReusedClientPortAcrossServicesSharingABackend) {
  Connect(kVip1, 5000);
  Connect(kVip2, 5000);  // same client port, same backend: the reply key is shared
  Connect(kVip1, 5000);  // reopened while the first connection's entries are still closing
  auto created = dp_->counters().Packets(CN_R_CT_NEW);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(*created, 3u);  // the reopening SYN was tracked as a new connection
}

TEST_F(ReopenTest, RetransmittedSynOfALiveConnectionStaysOnItsEntry) {
  Bytes syn = PacketBuilder().Ipv4(kCli, kVip1).Tcp(5001, 80, kSyn).Build();
  Bytes syn_dnat = PacketBuilder().Ipv4(kCli, kBackend).Tcp(5001, 8080, kSyn).Build();
  EXPECT_EQ(Run(syn), syn_dnat);
  EXPECT_EQ(Run(syn), syn_dnat);  // retransmission: a conntrack hit, not a new flow
  auto created = dp_->counters().Packets(CN_R_CT_NEW);
  auto hits = dp_->counters().Packets(CN_R_CT_HIT);
  ASSERT_TRUE(created.ok() && hits.ok());
  EXPECT_EQ(*created, 1u);
  EXPECT_EQ(*hits, 1u);
}

}  // namespace
}  // namespace cninet::datapath::testing
