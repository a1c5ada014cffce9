// The flow monitor through BPF_PROG_TEST_RUN (root): a policy drop sends exactly one event with
// its reason, tuple, hook, interface and deny slot, for IPv4 and IPv6; sampling off sends no
// flow event for a new flow, sampling 1-in-1 sends one for its first packet only; a full ring
// buffer counts the lost events.
#include "cninet/datapath/monitor.h"

#include <algorithm>
#include <string>
#include <vector>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/counters.h"
#include "cninet/datapath/datapath.h"
#include "dp_test_util.h"
#include "gtest/gtest.h"
#include "policy_fixtures.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

constexpr uint32_t kLoIfindex = 1;

class MonitorBpfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    guard_ = std::make_unique<ThreadNetnsGuard>(ns_.path());
    ASSERT_TRUE(guard_->status().ok()) << guard_->status();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
  }
  void Load(uint32_t ring_bytes = 1u << 16) {
    DatapathConfig cfg = StandardDualStackConfig();
    cfg.pin_maps = true;
    cfg.bpffs_root = fs_.path();
    cfg.instance = "mon";
    cfg.map_sizes.monitor_ring_bytes = ring_bytes;
    auto dp = Datapath::Create(cfg);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    FlowMonitorOptions opts;
    auto mon = FlowMonitor::Open(dp_->layout(), opts,
                                 [this](const FlowEvent& e) { events_.push_back(e); });
    ASSERT_TRUE(mon.ok()) << mon.status();
    mon_ = std::move(*mon);
  }
  int Run(Hook hook, const Bytes& packet, uint32_t ingress_ifindex = kForwarded) {
    auto r = dp_->TestRun(hook, packet, 1, kLoIfindex, ingress_ifindex);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->retval : -1;
  }
  std::vector<FlowEvent> Drain() {
    events_.clear();
    auto n = mon_->Drain();
    EXPECT_TRUE(n.ok()) << n.status();
    return events_;
  }
  uint32_t DenySlot(std::string_view endpoint) {
    auto c = dp_->policy().ReadCounters();
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return 0;
    for (const auto& x : *c)
      if (x.endpoint.ToString() == endpoint && x.rule == "denied") return x.slot;
    return 0;
  }

  cninet::testing::ScopedNetns ns_{"dpmon"};
  std::unique_ptr<ThreadNetnsGuard> guard_;
  ScopedBpffs fs_;
  std::unique_ptr<Datapath> dp_;
  std::unique_ptr<FlowMonitor> mon_;
  std::vector<FlowEvent> events_;
};

TEST_F(MonitorBpfTest, PolicyDropSendsExactlyOneEventPerFamily) {
  ASSERT_NO_FATAL_FAILURE(Load());
  ASSERT_TRUE(ApplyStandardDualStackPolicySetup(*dp_).ok());
  struct Case {
    const char* src;
    const char* dst;
    Bytes syn;
  };
  const Case cases[] = {
      {ptopo::kOther, ptopo::kApi,
       PacketBuilder().Ipv4(ptopo::kOther, ptopo::kApi).Tcp(40002, 80, kSyn).Build()},
      {ptopo6::kOther, ptopo6::kApi,
       PacketBuilder().Ipv6(ptopo6::kOther, ptopo6::kApi).Tcp(40002, 80, kSyn).Build()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dst);
    ASSERT_EQ(Run(Hook::kToPod, c.syn), kTcShot);
    std::vector<FlowEvent> got = Drain();
    ASSERT_EQ(got.size(), 1u);
    const FlowEvent& e = got[0];
    EXPECT_TRUE(e.dropped);
    EXPECT_FALSE(e.sampled_flow);
    EXPECT_EQ(e.reason, CN_R_DROP_POLICY);
    EXPECT_EQ(e.reason_name, "drop_policy");
    EXPECT_EQ(e.hook, "to-pod");
    EXPECT_EQ(e.ipv6, std::string_view(c.dst).find(':') != std::string_view::npos);
    EXPECT_EQ(e.src.ToString(), c.src);
    EXPECT_EQ(e.dst.ToString(), c.dst);
    EXPECT_EQ(e.sport, 40002);
    EXPECT_EQ(e.dport, 80);
    EXPECT_EQ(e.protocol, 6);
    EXPECT_EQ(e.tcp_flags, kSyn);
    EXPECT_EQ(e.length, c.syn.size());
    EXPECT_EQ(e.ifindex, kLoIfindex);
    EXPECT_EQ(e.interface, "lo");
    EXPECT_NE(e.rule_slot, 0u);
    EXPECT_EQ(e.rule_slot, DenySlot(c.dst));
    EXPECT_NE(e.rule.find("default deny"), std::string::npos) << e.rule;
    EXPECT_NE(e.Text().find("DROP drop_policy tcp"), std::string::npos) << e.Text();
    EXPECT_NE(e.Json().find("\"reason\":\"drop_policy\""), std::string::npos) << e.Json();
  }
  // An admitted SYN sends nothing (sampling is off by default).
  ASSERT_EQ(
      Run(Hook::kToPod, PacketBuilder().Ipv4(ptopo::kFe, ptopo::kApi).Tcp(40003, 80, kSyn).Build()),
      kTcOk);
  EXPECT_TRUE(Drain().empty());
}

TEST_F(MonitorBpfTest, SamplingOffSendsNoFlowEventsAndOnSendsTheFirstPacketOnly) {
  ASSERT_NO_FATAL_FAILURE(Load());
  Bytes syn = PacketBuilder().Ipv4(topo::kClient, topo::kB2).Tcp(42000, 80, kSyn).Build();
  ASSERT_EQ(Run(Hook::kFromPod, syn, 0), kTcOk);
  EXPECT_TRUE(Drain().empty()) << "sampling off: no flow events";

  ASSERT_TRUE(dp_->SetMonitorSample(1).ok());
  Bytes syn2 = PacketBuilder().Ipv4(topo::kClient, topo::kB2).Tcp(42001, 80, kSyn).Build();
  Bytes ack2 = PacketBuilder().Ipv4(topo::kClient, topo::kB2).Tcp(42001, 80, kAck).Build();
  ASSERT_EQ(Run(Hook::kFromPod, syn2, 0), kTcOk);
  ASSERT_EQ(Run(Hook::kFromPod, ack2, 0), kTcOk);
  std::vector<FlowEvent> got = Drain();
  ASSERT_EQ(got.size(), 1u) << "one event for the new flow, none for its next packet";
  EXPECT_TRUE(got[0].sampled_flow);
  EXPECT_FALSE(got[0].dropped);
  EXPECT_EQ(got[0].hook, "from-pod");
  EXPECT_EQ(got[0].TupleText(), "tcp 10.244.1.10:42001 -> 10.244.1.22:80");
  EXPECT_EQ(dp_->config().monitor_sample, 1);
}

TEST_F(MonitorBpfTest, FilterAndLostEventsAreCounted) {
  ASSERT_NO_FATAL_FAILURE(Load(4096));
  ASSERT_TRUE(ApplyStandardPolicySetup(*dp_).ok());
  // 4096 bytes hold fewer than 4096 / (72 + 8) events: the rest are lost and counted.
  for (uint16_t i = 0; i < 100; ++i) {
    Bytes syn = PacketBuilder().Ipv4(ptopo::kOther, ptopo::kApi).Tcp(30000 + i, 80, kSyn).Build();
    ASSERT_EQ(Run(Hook::kToPod, syn), kTcShot);
  }
  auto lost = dp_->counters().Packets(CN_R_MONITOR_LOST);
  ASSERT_TRUE(lost.ok());
  size_t got = Drain().size();
  EXPECT_GT(got, 0u);
  EXPECT_EQ(got + *lost, 100u);
  EXPECT_EQ(ReasonName(CN_R_MONITOR_LOST), "event_monitor_lost");

  FlowFilter f;
  f.reasons = {"drop_policy"};
  f.dropped = true;
  f.addresses = {*cni::IPPrefix::Parse("10.244.1.21/32")};
  FlowEvent e;
  e.dropped = true;
  e.reason_name = "drop_policy";
  e.src = *cni::IPAddress::Parse(ptopo::kOther);
  e.dst = *cni::IPAddress::Parse(ptopo::kApi);
  EXPECT_TRUE(f.Matches(e));
  e.dst = *cni::IPAddress::Parse("fd00::1");
  EXPECT_FALSE(f.Matches(e));
  f.reasons = {"no_such_reason"};
  EXPECT_EQ(f.Validate().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cninet::datapath::testing
