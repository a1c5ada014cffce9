// PlanOverlay: which route each remote node gets (VXLAN or direct), publicIP as the VTEP, and
// the nodes that are skipped with a reason.
#include "cninet/agent/overlay.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

cni::IPAddress Ip(const char* s) { return *cni::IPAddress::Parse(s); }
cni::IPPrefix Net(const char* s) { return *cni::IPPrefix::Parse(s); }

v1::Node MakeNode(const std::string& name, const std::string& ip, const std::string& cidr,
                  bool direct = false, const std::string& mac = "0e:c1:c0:a8:01:0c") {
  v1::Node n;
  n.set_name(name);
  auto* a = n.add_addresses();
  a->set_type(v1::NodeAddress::INTERNAL_IP);
  a->set_address(ip);
  if (!cidr.empty()) n.add_pod_cidrs(cidr);
  n.set_direct_routing(direct);
  n.set_vtep_mac(mac);
  return n;
}

OverlaySelf Self(bool direct = false) {
  return {"n1", Net("192.168.1.11/24"), Net("10.244.0.0/24"), direct};
}

TEST(PlanOverlayTest, RemoteNodesGetVxlanEntriesAndSelfIsSkipped) {
  std::vector<v1::Node> nodes = {MakeNode("n2", "192.168.1.12", "10.244.1.0/24"),
                                 MakeNode("n1", "192.168.1.11", "10.244.0.0/24")};
  OverlayPlan plan = PlanOverlay(Self(), nodes);
  ASSERT_EQ(plan.peers.size(), 1u);
  const OverlayPeer& p = plan.peers[0];
  EXPECT_EQ(p.node, "n2");
  EXPECT_EQ(p.mode, PeerMode::kVxlan);
  EXPECT_EQ(p.pod_cidr, Net("10.244.1.0/24"));
  EXPECT_EQ(p.gateway, Ip("10.244.1.0"));  // the peer's overlay address
  EXPECT_EQ(p.vtep, Ip("192.168.1.12"));
  EXPECT_EQ(p.vtep_mac.ToString(), "0e:c1:c0:a8:01:0c");
  EXPECT_THAT(plan.skipped, IsEmpty());
}

TEST(PlanOverlayTest, DirectRoutingNeedsBothNodesAndASharedSubnet) {
  std::vector<v1::Node> nodes = {MakeNode("both", "192.168.1.12", "10.244.1.0/24", true),
                                 MakeNode("peer-only", "192.168.1.13", "10.244.2.0/24", false),
                                 MakeNode("other-subnet", "192.168.2.14", "10.244.3.0/24", true)};
  OverlayPlan plan = PlanOverlay(Self(/*direct=*/true), nodes);
  ASSERT_EQ(plan.peers.size(), 3u);
  EXPECT_EQ(plan.peers[0].node, "both");
  EXPECT_EQ(plan.peers[0].mode, PeerMode::kDirect);
  EXPECT_EQ(plan.peers[0].gateway, Ip("192.168.1.12"));
  EXPECT_EQ(plan.peers[1].node, "other-subnet");
  EXPECT_EQ(plan.peers[1].mode, PeerMode::kVxlan);
  EXPECT_EQ(plan.peers[2].node, "peer-only");
  EXPECT_EQ(plan.peers[2].mode, PeerMode::kVxlan);
  // This node without directRouting: VXLAN to everyone.
  OverlayPlan plain = PlanOverlay(Self(false), nodes);
  for (const OverlayPeer& p : plain.peers) EXPECT_EQ(p.mode, PeerMode::kVxlan) << p.node;
}

TEST(PlanOverlayTest, PublicIpIsTheUnderlayAddress) {
  v1::Node n = MakeNode("n2", "10.0.0.12", "10.244.1.0/24");
  n.set_public_ip("203.0.113.7");
  OverlayPlan plan = PlanOverlay(Self(), std::vector<v1::Node>{n});
  ASSERT_EQ(plan.peers.size(), 1u);
  EXPECT_EQ(plan.peers[0].vtep, Ip("203.0.113.7"));
  // An IPv6 publicIP cannot carry the IPv4 overlay.
  n.set_public_ip("2001:db8::7");
  plan = PlanOverlay(Self(), std::vector<v1::Node>{n});
  EXPECT_THAT(plan.peers, IsEmpty());
  ASSERT_EQ(plan.skipped.size(), 1u);
  EXPECT_THAT(plan.skipped[0].reason, HasSubstr("publicIP"));
}

TEST(PlanOverlayTest, UnusableNodesAreSkippedWithAReason) {
  v1::Node no_cidr = MakeNode("a-no-cidr", "192.168.1.20", "");
  v1::Node no_addr = MakeNode("b-no-addr", "192.168.1.21", "10.244.5.0/24");
  no_addr.clear_addresses();
  v1::Node no_mac = MakeNode("c-no-mac", "192.168.1.22", "10.244.6.0/24", false, "");
  v1::Node overlaps_self = MakeNode("d-overlap", "192.168.1.23", "10.244.0.0/25");
  v1::Node first = MakeNode("e-first", "192.168.1.24", "10.244.7.0/24");
  v1::Node dup = MakeNode("f-dup", "192.168.1.25", "10.244.7.0/24");
  v1::Node v6only = MakeNode("g-v6", "192.168.1.26", "fd00:1::/64");
  OverlayPlan plan = PlanOverlay(
      Self(), std::vector<v1::Node>{dup, no_mac, first, overlaps_self, no_addr, no_cidr, v6only});
  EXPECT_THAT(plan.peers, ElementsAre(Field(&OverlayPeer::node, "e-first")));
  ASSERT_EQ(plan.skipped.size(), 6u);
  EXPECT_THAT(plan.skipped[0].reason, HasSubstr("no IPv4 podCIDR"));
  EXPECT_THAT(plan.skipped[1].reason, HasSubstr("INTERNAL_IP"));
  EXPECT_THAT(plan.skipped[2].reason, HasSubstr("vtepMAC"));
  EXPECT_THAT(plan.skipped[3].reason, HasSubstr("overlaps this node's"));
  EXPECT_THAT(plan.skipped[4].reason, HasSubstr("overlaps node e-first"));
  EXPECT_EQ(plan.skipped[5].node, "g-v6");
}

TEST(PlanOverlayTest, DirectPeersNeedNoVtepMac) {
  v1::Node n = MakeNode("n2", "192.168.1.12", "10.244.1.0/24", true, "");
  OverlayPlan plan = PlanOverlay(Self(true), std::vector<v1::Node>{n});
  ASSERT_EQ(plan.peers.size(), 1u);
  EXPECT_EQ(plan.peers[0].mode, PeerMode::kDirect);
}

TEST(PlanOverlayTest, VtepMacIsDerivedFromTheUnderlayAddress) {
  EXPECT_EQ(VtepMacFor(Ip("192.168.50.11")).ToString(), "0e:c1:c0:a8:32:0b");
  EXPECT_TRUE(VtepMacFor(Ip("10.0.0.1")).IsUnicast());
}

}  // namespace
}  // namespace cninet::agent
