// Real traffic over VXLAN between two "node" namespaces, each with a "pod" namespace, built
// entirely with the netlink component: veth, addresses, routes (onlink), permanent neighbours,
// VXLAN devices and FDB entries, sysctls. Nothing outside the test's namespaces is touched.
#include <sys/socket.h>

#include "cninet/netlink/handle.h"
#include "cninet/netlink/netns.h"
#include "cninet/netlink/sysctl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net_testing.h"
#include "testing/test_util.h"

namespace cninet::netlink {
namespace {

using ::testing::HasSubstr;

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }
cni::IPPrefix Pfx(std::string_view s) { return *cni::IPPrefix::Parse(s); }

// One node namespace with one pod namespace behind a veth.
struct Site {
  std::unique_ptr<NamedNetns> node, pod;
  std::unique_ptr<Handle> hnode, hpod;
  Link vx;        // VXLAN device in the node.
  Link pod_veth;  // Host side of the pod's veth.
};

class VxlanTrafficTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    for (Site* s : {&a_, &b_}) {
      auto n = NamedNetns::Create(cninet::testing::UniqueName("vxnode"));
      ASSERT_TRUE(n.ok()) << n.status();
      s->node = std::make_unique<NamedNetns>(std::move(*n));
      auto p = NamedNetns::Create(cninet::testing::UniqueName("vxpod"));
      ASSERT_TRUE(p.ok()) << p.status();
      s->pod = std::make_unique<NamedNetns>(std::move(*p));
      auto hn = Handle::OpenIn(s->node->ns());
      ASSERT_TRUE(hn.ok());
      s->hnode = std::make_unique<Handle>(std::move(*hn));
      auto hp = Handle::OpenIn(s->pod->ns());
      ASSERT_TRUE(hp.ok());
      s->hpod = std::make_unique<Handle>(std::move(*hp));
    }
  }
  void TearDown() override {
    for (Site* s : {&a_, &b_}) {
      s->hnode.reset();
      s->hpod.reset();
      s->node.reset();
      s->pod.reset();
    }
  }

  // The underlay: a veth between the two nodes, with `a_ip`/`b_ip` on it.
  void Underlay(const cni::IPPrefix& a_ip, const cni::IPPrefix& b_ip, int* a_index, int* b_index) {
    VethSpec spec{.name = "ul0", .peer_name = "ul0", .peer_netns = &b_.node->ns()};
    ASSERT_OK_AND_ASSIGN(Link ul, a_.hnode->CreateVeth(spec));
    ASSERT_OK_AND_ASSIGN(Link ul_b, b_.hnode->GetLink("ul0"));
    ASSERT_OK(a_.hnode->AddAddress(ul.index, a_ip, {.nodad = true}));
    ASSERT_OK(b_.hnode->AddAddress(ul_b.index, b_ip, {.nodad = true}));
    ASSERT_OK(a_.hnode->SetLinkUp(ul.index));
    ASSERT_OK(b_.hnode->SetLinkUp(ul_b.index));
    *a_index = ul.index;
    *b_index = ul_b.index;
  }

  // Flannel-style L3 overlay: each pod is routed (ptp) on its node; nodes route the other node's
  // pod subnet via the remote VXLAN device's address (onlink), with a permanent neighbour for that
  // address and an FDB entry mapping its MAC to the remote underlay IP. Pods 10.244.1.2 (a_) and
  // 10.244.2.2 (b_); the VXLAN devices are created with `gbp`.
  void BuildL3Overlay(bool gbp) {
    int ul_a = 0, ul_b = 0;
    ASSERT_NO_FATAL_FAILURE(Underlay(Pfx("192.168.77.1/24"), Pfx("192.168.77.2/24"), &ul_a, &ul_b));
    struct Plan {
      Site* s;
      int underlay;
      const char* underlay_ip;
      const char* vtep;    // The VXLAN device's address, x.x.N.0/32.
      const char* gw;      // Pod gateway on the node side.
      const char* pod_ip;  // Pod address.
      const char* subnet;  // This node's pod subnet.
    };
    Plan plans[] = {
        {&a_, ul_a, "192.168.77.1", "10.244.1.0/32", "10.244.1.1", "10.244.1.2/24",
         "10.244.1.0/24"},
        {&b_, ul_b, "192.168.77.2", "10.244.2.0/32", "10.244.2.1", "10.244.2.2/24",
         "10.244.2.0/24"},
    };
    for (auto& p : plans) {
      Site& s = *p.s;
      ASSERT_OK(SetIpForward(s.node->ns(), false, true));
      ASSERT_OK_AND_ASSIGN(s.vx, s.hnode->CreateVxlan({.name = "vx0",
                                                       .vni = 1,
                                                       .local = Ip(p.underlay_ip),
                                                       .underlay_index = p.underlay,
                                                       .gbp = gbp,
                                                       .mtu = 1450}));
      ASSERT_OK(s.hnode->AddAddress(s.vx.index, Pfx(p.vtep)));
      ASSERT_OK(s.hnode->SetLinkUp(s.vx.index));

      // The pod: routed veth, default route via the node-side gateway.
      VethSpec veth{.name = "vpod0", .peer_name = "eth0", .peer_netns = &s.pod->ns(), .mtu = 1450};
      ASSERT_OK_AND_ASSIGN(s.pod_veth, s.hnode->CreateVeth(veth));
      ASSERT_OK_AND_ASSIGN(Link eth0, s.hpod->GetLink("eth0"));
      ASSERT_OK(s.hpod->AddAddress(eth0.index, Pfx(p.pod_ip)));
      ASSERT_OK(s.hpod->SetLinkUp(eth0.index));
      ASSERT_OK(s.hnode->AddAddress(s.pod_veth.index, cni::IPPrefix(Ip(p.gw), 32)));
      ASSERT_OK(s.hnode->SetLinkUp(s.pod_veth.index));
      ASSERT_OK(
          s.hpod->AddRoute({.dst = Pfx("0.0.0.0/0"), .gateway = Ip(p.gw), .oif = eth0.index}));
      // A static neighbour for the gateway instead of ARP.
      ASSERT_OK(
          s.hpod->SetNeighbor({.ifindex = eth0.index, .ip = Ip(p.gw), .mac = s.pod_veth.mac}));
      ASSERT_OK(s.hnode->AddRoute({.dst = cni::IPPrefix(Pfx(p.pod_ip).address(), 32),
                                   .oif = s.pod_veth.index,
                                   .scope = kScopeLink}));
    }
    // Cross-programming: each node learns the other's VTEP MAC, address and underlay IP.
    for (int i = 0; i < 2; ++i) {
      Site& here = *plans[i].s;
      const Plan& there = plans[1 - i];
      cni::IPAddress remote_vtep = Pfx(there.vtep).address();
      ASSERT_OK(here.hnode->AddRoute({.dst = Pfx(there.subnet),
                                      .gateway = remote_vtep,
                                      .oif = here.vx.index,
                                      .onlink = true}));
      ASSERT_OK(here.hnode->SetNeighbor(
          {.ifindex = here.vx.index, .ip = remote_vtep, .mac = there.s->vx.mac}));
      ASSERT_OK(here.hnode->AddFdb(
          {.ifindex = here.vx.index, .mac = there.s->vx.mac, .dst = Ip(there.underlay_ip)}));
    }
  }

  Site a_, b_;
};

// The Flannel-style L3 overlay (BuildL3Overlay) carries TCP and UDP both ways.
TEST_F(VxlanTrafficTest, L3OverlayCarriesTcpBetweenPods) {
  ASSERT_NO_FATAL_FAILURE(BuildL3Overlay(false));
  auto ex = cninet::testing::TcpExchange(b_.pod->ns(), Ip("10.244.2.2"), 8080, a_.pod->ns(),
                                         "hello over vxlan");
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_EQ(ex->reply, "echo:hello over vxlan");
  EXPECT_EQ(ex->client_addr, "10.244.1.2");  // Routed end to end, no NAT.

  // The reverse direction, UDP, and pod-to-remote-node.
  auto back =
      cninet::testing::UdpExchange(a_.pod->ns(), Ip("10.244.1.2"), 5353, b_.pod->ns(), "ping");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->reply, "echo:ping");
  EXPECT_EQ(back->client_addr, "10.244.2.2");

  // Without the FDB entry the overlay has no way to reach the remote VTEP: traffic stops.
  ASSERT_OK(
      a_.hnode->DeleteFdb({.ifindex = a_.vx.index, .mac = b_.vx.mac, .dst = Ip("192.168.77.2")}));
  auto cut = cninet::testing::TcpExchange(b_.pod->ns(), Ip("10.244.2.2"), 8081, a_.pod->ns(),
                                          "lost", std::chrono::milliseconds(1500));
  EXPECT_FALSE(cut.ok());
}

// A VXLAN device with Group Based Policy carries the low 16 bits of skb->mark: node a_ marks the
// pod's packets (nftables, prerouting) before they are encapsulated; node b_ sees the mark on the
// decapsulated packets it forwards to its pod, and lets only marked ones through. Without GBP the
// mark stays on node a_ (the same rules then drop everything).
TEST_F(VxlanTrafficTest, GbpCarriesTheMarkAcrossTheOverlay) {
  ASSERT_NO_FATAL_FAILURE(BuildL3Overlay(true));
  ASSERT_TRUE(a_.vx.vxlan.has_value());
  EXPECT_TRUE(a_.vx.vxlan->gbp);
  ASSERT_OK_AND_ASSIGN(Link again, b_.hnode->GetLink("vx0"));
  ASSERT_TRUE(again.vxlan.has_value());
  EXPECT_TRUE(again.vxlan->gbp);

  auto nft = [](const NamedNetns& ns, const std::string& script) {
    return cninet::testing::Run({"ip", "netns", "exec", ns.name(), "nft", "-f", "-"}, script);
  };
  auto a_rules = nft(*a_.node,
                     "table ip gbptest {\n"
                     "  chain pre { type filter hook prerouting priority 0; policy accept;\n"
                     "    ip saddr 10.244.1.2 meta mark set 0x1234\n"
                     "  }\n"
                     "}\n");
  ASSERT_TRUE(a_rules.ok()) << a_rules.err;
  auto b_rules = nft(*b_.node,
                     "table ip gbptest {\n"
                     "  chain fw { type filter hook forward priority 0; policy accept;\n"
                     "    ip saddr 10.244.1.2 meta mark 0x1234 counter accept\n"
                     "    ip saddr 10.244.1.2 counter drop\n"
                     "  }\n"
                     "}\n");
  ASSERT_TRUE(b_rules.ok()) << b_rules.err;

  auto ex =
      cninet::testing::TcpExchange(b_.pod->ns(), Ip("10.244.2.2"), 8080, a_.pod->ns(), "marked");
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_EQ(ex->reply, "echo:marked");
  auto listed = cninet::testing::Run(
      {"ip", "netns", "exec", b_.node->name(), "nft", "list", "chain", "ip", "gbptest", "fw"});
  ASSERT_TRUE(listed.ok()) << listed.err;
  // The accept rule counted the connection's packets; the drop rule none.
  EXPECT_THAT(listed.out, ::testing::ContainsRegex("mark 0x00001234 counter packets [1-9]"));
  EXPECT_THAT(listed.out, HasSubstr("counter packets 0 bytes 0 drop"));
}

TEST_F(VxlanTrafficTest, WithoutGbpTheMarkStaysOnTheSendingNode) {
  ASSERT_NO_FATAL_FAILURE(BuildL3Overlay(false));
  ASSERT_TRUE(a_.vx.vxlan.has_value());
  EXPECT_FALSE(a_.vx.vxlan->gbp);
  auto nft = [](const NamedNetns& ns, const std::string& script) {
    return cninet::testing::Run({"ip", "netns", "exec", ns.name(), "nft", "-f", "-"}, script);
  };
  ASSERT_TRUE(nft(*a_.node,
                  "table ip gbptest {\n"
                  "  chain pre { type filter hook prerouting priority 0; policy accept;\n"
                  "    ip saddr 10.244.1.2 meta mark set 0x1234\n"
                  "  }\n"
                  "}\n")
                  .ok());
  ASSERT_TRUE(nft(*b_.node,
                  "table ip gbptest {\n"
                  "  chain fw { type filter hook forward priority 0; policy accept;\n"
                  "    ip saddr 10.244.1.2 meta mark 0x1234 counter accept\n"
                  "    ip saddr 10.244.1.2 counter drop\n"
                  "  }\n"
                  "}\n")
                  .ok());
  auto cut = cninet::testing::TcpExchange(b_.pod->ns(), Ip("10.244.2.2"), 8080, a_.pod->ns(),
                                          "unmarked", std::chrono::milliseconds(1500));
  EXPECT_FALSE(cut.ok());
  auto listed = cninet::testing::Run(
      {"ip", "netns", "exec", b_.node->name(), "nft", "list", "chain", "ip", "gbptest", "fw"});
  ASSERT_TRUE(listed.ok()) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("counter packets 0 bytes 0 accept"));
  EXPECT_THAT(listed.out,
              ::testing::ContainsRegex("counter packets [1-9][0-9]* bytes [0-9]+ drop"));
}

// L2 overlay over an IPv6 underlay: a bridge per node with the VXLAN device and the pod veth as
// ports; the all-zeros FDB entry floods ARP and unknown unicast to the remote VTEP.
TEST_F(VxlanTrafficTest, L2FloodEntryCarriesUdpOverIpv6Underlay) {
  int ul_a = 0, ul_b = 0;
  ASSERT_NO_FATAL_FAILURE(Underlay(Pfx("fd00:77::1/64"), Pfx("fd00:77::2/64"), &ul_a, &ul_b));
  struct Plan {
    Site* s;
    int underlay;
    const char* local;
    const char* remote;
    const char* pod_ip;
  };
  Plan plans[] = {{&a_, ul_a, "fd00:77::1", "fd00:77::2", "10.88.0.1/24"},
                  {&b_, ul_b, "fd00:77::2", "fd00:77::1", "10.88.0.2/24"}};
  for (auto& p : plans) {
    Site& s = *p.s;
    ASSERT_OK_AND_ASSIGN(Link br, s.hnode->CreateBridge({.name = "br0"}));
    ASSERT_OK_AND_ASSIGN(s.vx, s.hnode->CreateVxlan({.name = "vx0",
                                                     .vni = 77,
                                                     .local = Ip(p.local),
                                                     .underlay_index = p.underlay,
                                                     .mtu = 1430}));
    EXPECT_EQ(s.vx.vxlan->local, Ip(p.local));
    VethSpec veth{.name = "vpod0", .peer_name = "eth0", .peer_netns = &s.pod->ns(), .mtu = 1430};
    ASSERT_OK_AND_ASSIGN(s.pod_veth, s.hnode->CreateVeth(veth));
    ASSERT_OK(s.hnode->SetMtu(br.index, 1430));
    ASSERT_OK(s.hnode->SetMaster(s.vx.index, br.index));
    ASSERT_OK(s.hnode->SetMaster(s.pod_veth.index, br.index));
    for (int idx : {br.index, s.vx.index, s.pod_veth.index}) ASSERT_OK(s.hnode->SetLinkUp(idx));
    ASSERT_OK(s.hnode->AddFdb({.ifindex = s.vx.index, .mac = MacAddress(), .dst = Ip(p.remote)}));
    ASSERT_OK_AND_ASSIGN(Link eth0, s.hpod->GetLink("eth0"));
    ASSERT_OK(s.hpod->AddAddress(eth0.index, Pfx(p.pod_ip)));
    ASSERT_OK(s.hpod->SetLinkUp(eth0.index));
  }
  auto ex = cninet::testing::UdpExchange(b_.pod->ns(), Ip("10.88.0.2"), 4000, a_.pod->ns(),
                                         "flooded arp, then unicast");
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_EQ(ex->reply, "echo:flooded arp, then unicast");
  auto tcp = cninet::testing::TcpExchange(a_.pod->ns(), Ip("10.88.0.1"), 4001, b_.pod->ns(), "tcp");
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  EXPECT_EQ(tcp->reply, "echo:tcp");

  // Remove node A's flood entry: with learning off, A has no other way to reach B.
  ASSERT_OK(
      a_.hnode->DeleteFdb({.ifindex = a_.vx.index, .mac = MacAddress(), .dst = Ip("fd00:77::2")}));
  auto cut = cninet::testing::UdpExchange(b_.pod->ns(), Ip("10.88.0.2"), 4002, a_.pod->ns(), "lost",
                                          std::chrono::milliseconds(1500));
  EXPECT_FALSE(cut.ok());
}

}  // namespace
}  // namespace cninet::netlink
