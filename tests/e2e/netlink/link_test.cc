// Links, bridges, addresses, routes, neighbours and FDB entries against the real kernel, in
// namespaces the test creates ("node" and "pod"); the root namespace is never touched.
#include <linux/if_link.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>

#include "cninet/base/strings.h"
#include "cninet/netlink/handle.h"
#include "cninet/netlink/netns.h"
#include "cninet/netlink/rollback.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::netlink {
namespace {

using ::testing::HasSubstr;

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }
cni::IPPrefix Pfx(std::string_view s) { return *cni::IPPrefix::Parse(s); }
MacAddress Mac(std::string_view s) { return *MacAddress::Parse(s); }

class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    auto n = NamedNetns::Create(cninet::testing::UniqueName("nlnode"));
    ASSERT_TRUE(n.ok()) << n.status();
    node_ = std::make_unique<NamedNetns>(std::move(*n));
    auto p = NamedNetns::Create(cninet::testing::UniqueName("nlpod"));
    ASSERT_TRUE(p.ok()) << p.status();
    pod_ = std::make_unique<NamedNetns>(std::move(*p));
    auto hn = Handle::OpenIn(node_->ns());
    ASSERT_TRUE(hn.ok()) << hn.status();
    hnode_ = std::make_unique<Handle>(std::move(*hn));
    auto hp = Handle::OpenIn(pod_->ns());
    ASSERT_TRUE(hp.ok()) << hp.status();
    hpod_ = std::make_unique<Handle>(std::move(*hp));
  }
  void TearDown() override {
    hnode_.reset();
    hpod_.reset();
    node_.reset();
    pod_.reset();
  }

  // A veth "vh" (node) <-> "eth0" (pod).
  Link MakeVeth(uint32_t mtu = 0) {
    VethSpec spec{.name = "vh0", .peer_name = "eth0", .peer_netns = &pod_->ns(), .mtu = mtu};
    auto l = hnode_->CreateVeth(spec);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? *l : Link{};
  }

  std::vector<std::string> NodeLinkNames() {
    std::vector<std::string> out;
    auto links = hnode_->ListLinks();
    EXPECT_TRUE(links.ok()) << links.status();
    if (links.ok()) {
      for (const auto& l : *links) out.push_back(l.name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::unique_ptr<NamedNetns> node_, pod_;
  std::unique_ptr<Handle> hnode_, hpod_;
};

TEST_F(KernelTest, VethPeerIsCreatedInTheTargetNamespace) {
  VethSpec spec{.name = "vh0",
                .peer_name = "eth0",
                .peer_netns = &pod_->ns(),
                .mtu = 1400,
                .mac = Mac("02:00:00:00:aa:01"),
                .peer_mac = Mac("02:00:00:00:bb:01")};
  auto host = hnode_->CreateVeth(spec);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->kind, "veth");
  EXPECT_EQ(host->name, "vh0");
  EXPECT_EQ(host->mtu, 1400u);
  EXPECT_EQ(host->mac, Mac("02:00:00:00:aa:01"));
  EXPECT_TRUE(host->peer_netnsid.has_value());  // The peer lives elsewhere.

  auto peer = hpod_->GetLink("eth0");
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->kind, "veth");
  EXPECT_EQ(peer->mtu, 1400u);
  EXPECT_EQ(peer->mac, Mac("02:00:00:00:bb:01"));
  EXPECT_EQ(peer->index, host->peer_index);
  EXPECT_EQ(peer->peer_index, host->index);
  EXPECT_EQ(hnode_->GetLink("eth0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(hpod_->GetLink("vh0").status().code(), absl::StatusCode::kNotFound);

  auto by_index = hnode_->GetLinkByIndex(host->index);
  ASSERT_TRUE(by_index.ok());
  EXPECT_EQ(by_index->name, "vh0");

  // Deleting one end removes the pair.
  ASSERT_TRUE(hnode_->DeleteLink(host->index).ok());
  EXPECT_EQ(hpod_->GetLink("eth0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(hnode_->DeleteLink(host->index).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(hnode_->DeleteLinkByName("vh0").code(), absl::StatusCode::kNotFound);
}

TEST_F(KernelTest, NameClashesAreAlreadyExistsAndLeaveNothingBehind) {
  Link host = MakeVeth();
  ASSERT_GT(host.index, 0);
  auto before = NodeLinkNames();
  // Host name taken.
  VethSpec same_host{.name = "vh0", .peer_name = "eth1", .peer_netns = &pod_->ns()};
  EXPECT_EQ(hnode_->CreateVeth(same_host).status().code(), absl::StatusCode::kAlreadyExists);
  // Peer name taken in the pod.
  VethSpec same_peer{.name = "vh1", .peer_name = "eth0", .peer_netns = &pod_->ns()};
  auto st = hnode_->CreateVeth(same_peer).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists) << st;
  EXPECT_EQ(NodeLinkNames(), before);
  auto pod_links = hpod_->ListLinks();
  ASSERT_TRUE(pod_links.ok());
  EXPECT_EQ(pod_links->size(), 2u);  // lo + eth0.
}

TEST_F(KernelTest, LinkAttributes) {
  Link host = MakeVeth();
  ASSERT_GT(host.index, 0);
  ASSERT_TRUE(hnode_->SetLinkUp(host.index).ok());
  EXPECT_TRUE(hnode_->GetLinkByIndex(host.index)->admin_up);
  ASSERT_TRUE(hnode_->SetMtu(host.index, 9000).ok());
  EXPECT_EQ(hnode_->GetLinkByIndex(host.index)->mtu, 9000u);
  ASSERT_TRUE(hnode_->SetMac(host.index, Mac("0a:58:0a:00:00:09")).ok());
  EXPECT_EQ(hnode_->GetLinkByIndex(host.index)->mac, Mac("0a:58:0a:00:00:09"));
  ASSERT_TRUE(hnode_->SetPromisc(host.index, true).ok());
  EXPECT_TRUE(hnode_->GetLinkByIndex(host.index)->promisc);
  ASSERT_TRUE(hnode_->SetPromisc(host.index, false).ok());
  EXPECT_FALSE(hnode_->GetLinkByIndex(host.index)->promisc);

  // The kernel refuses an MTU above the veth maximum and says why.
  absl::Status bad = hnode_->SetMtu(host.index, 70000);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
  EXPECT_THAT(bad.message(), HasSubstr("mtu 70000"));
  EXPECT_THAT(bad.message(), HasSubstr("kernel:"));

  ASSERT_TRUE(hnode_->SetLinkUp(host.index, false).ok());
  ASSERT_TRUE(hnode_->Rename(host.index, "vhx").ok());
  EXPECT_EQ(hnode_->GetLinkByIndex(host.index)->name, "vhx");
  EXPECT_EQ(hnode_->Rename(host.index, "bad/name").code(), absl::StatusCode::kInvalidArgument);

  auto missing = hnode_->GetLink("nosuch0");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nosuch0"));
}

TEST_F(KernelTest, MoveToNetns) {
  // Both ends start in the node; one is then moved into the pod.
  auto d = hnode_->CreateVeth({.name = "mv0", .peer_name = "mv1", .mtu = 1234});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->peer_netnsid.has_value());
  auto mv1 = hnode_->GetLink("mv1");
  ASSERT_TRUE(mv1.ok());
  ASSERT_TRUE(hnode_->MoveToNetns(mv1->index, pod_->ns()).ok());
  EXPECT_EQ(hnode_->GetLink("mv1").status().code(), absl::StatusCode::kNotFound);
  auto moved = hpod_->GetLink("mv1");
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->mtu, 1234u);
  EXPECT_TRUE(hnode_->GetLink("mv0")->peer_netnsid.has_value());
  // Bridges are namespace-local: the kernel refuses, and says so.
  auto br = hnode_->CreateBridge({.name = "brx"});
  ASSERT_TRUE(br.ok());
  EXPECT_FALSE(hnode_->MoveToNetns(br->index, pod_->ns()).ok());
}

TEST_F(KernelTest, BridgeAttachDetachHairpin) {
  auto br = hnode_->CreateBridge({.name = "br0", .mtu = 1450});
  ASSERT_TRUE(br.ok()) << br.status();
  EXPECT_EQ(br->kind, "bridge");
  EXPECT_EQ(br->mtu, 1450u);
  Link host = MakeVeth(1450);
  ASSERT_GT(host.index, 0);
  ASSERT_TRUE(hnode_->SetMaster(host.index, br->index).ok());
  auto port = hnode_->GetLinkByIndex(host.index);
  ASSERT_TRUE(port.ok());
  EXPECT_EQ(port->master_index, br->index);
  EXPECT_EQ(port->slave_kind, "bridge");
  ASSERT_TRUE(port->hairpin.has_value());
  EXPECT_FALSE(*port->hairpin);
  ASSERT_TRUE(hnode_->SetHairpin(host.index, true).ok());
  EXPECT_EQ(hnode_->GetLinkByIndex(host.index)->hairpin, std::optional<bool>(true));
  ASSERT_TRUE(hnode_->SetHairpin(host.index, false).ok());
  EXPECT_EQ(hnode_->GetLinkByIndex(host.index)->hairpin, std::optional<bool>(false));
  ASSERT_TRUE(hnode_->ClearMaster(host.index).ok());
  port = hnode_->GetLinkByIndex(host.index);
  EXPECT_EQ(port->master_index, 0);
  EXPECT_FALSE(port->hairpin.has_value());
  // Hairpin only exists on bridge ports.
  EXPECT_FALSE(hnode_->SetHairpin(host.index, true).ok());
  EXPECT_EQ(hnode_->CreateBridge({.name = "br0"}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(KernelTest, Addresses) {
  Link host = MakeVeth();
  ASSERT_GT(host.index, 0);
  ASSERT_TRUE(hnode_->SetLinkUp(host.index).ok());
  ASSERT_TRUE(hnode_->AddAddress(host.index, Pfx("10.9.0.1/24")).ok());
  EXPECT_EQ(hnode_->AddAddress(host.index, Pfx("10.9.0.1/24")).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(hnode_->AddAddress(host.index, Pfx("10.9.0.1/24"), {.replace = true}).ok());
  ASSERT_TRUE(hnode_->AddAddress(host.index, Pfx("fd00:9::1/64"), {.nodad = true}).ok());
  ASSERT_TRUE(hnode_->AddAddress(host.index, Pfx("10.9.1.1/32"), {.scope = kScopeLink}).ok());

  auto v4 = hnode_->ListAddresses(host.index, AF_INET);
  ASSERT_TRUE(v4.ok()) << v4.status();
  ASSERT_EQ(v4->size(), 2u);
  std::map<std::string, Address> by_prefix;
  for (const auto& a : *v4) by_prefix[a.prefix.ToString()] = a;
  ASSERT_EQ(by_prefix.count("10.9.0.1/24"), 1u);
  ASSERT_EQ(by_prefix.count("10.9.1.1/32"), 1u);
  EXPECT_EQ(by_prefix["10.9.0.1/24"].scope, kScopeUniverse);
  EXPECT_EQ(by_prefix["10.9.1.1/32"].scope, kScopeLink);
  EXPECT_EQ(by_prefix["10.9.1.1/32"].ifindex, host.index);
  auto v6 = hnode_->ListAddresses(host.index, AF_INET6);
  ASSERT_TRUE(v6.ok());
  bool found = false;
  for (const auto& a : *v6) {
    if (a.prefix == Pfx("fd00:9::1/64")) {
      found = true;
      EXPECT_TRUE(a.flags & 0x02) << "IFA_F_NODAD expected, flags=" << a.flags;
    }
  }
  EXPECT_TRUE(found);
  // The connected route of the /24 exists (no noprefixroute).
  auto routes = hnode_->ListRoutes({.family = AF_INET, .oif = host.index});
  ASSERT_TRUE(routes.ok());
  EXPECT_TRUE(std::any_of(routes->begin(), routes->end(),
                          [](const Route& r) { return r.dst == Pfx("10.9.0.0/24"); }));

  ASSERT_TRUE(hnode_->DeleteAddress(host.index, Pfx("10.9.0.1/24")).ok());
  EXPECT_EQ(hnode_->DeleteAddress(host.index, Pfx("10.9.0.1/24")).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(hnode_->ListAddresses(host.index, AF_INET)->size(), 1u);
  EXPECT_FALSE(hnode_->AddAddress(host.index, cni::IPPrefix(Ip("10.0.0.1"), 33)).ok());
}

TEST_F(KernelTest, Routes) {
  Link host = MakeVeth();
  ASSERT_GT(host.index, 0);
  auto up = hnode_->GetLinkByIndex(host.index);
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE(hnode_->SetLinkUp(up->index).ok());
  ASSERT_TRUE(hpod_->SetLinkUp(hpod_->GetLink("eth0")->index).ok());
  ASSERT_TRUE(hnode_->AddAddress(up->index, Pfx("10.50.0.1/24")).ok());
  ASSERT_TRUE(hnode_->AddAddress(up->index, Pfx("fd00:50::1/64"), {.nodad = true}).ok());

  Route via{.dst = Pfx("10.60.0.0/16"),
            .gateway = Ip("10.50.0.254"),
            .oif = up->index,
            .metric = 50,
            .src = Ip("10.50.0.1"),
            .mtu = 1300};
  ASSERT_TRUE(hnode_->AddRoute(via).ok());
  EXPECT_EQ(hnode_->AddRoute(via).code(), absl::StatusCode::kAlreadyExists);
  auto find = [&](const cni::IPPrefix& dst, uint32_t table = kTableMain) -> std::optional<Route> {
    auto rs = hnode_->ListRoutes({.table = table});
    EXPECT_TRUE(rs.ok()) << rs.status();
    if (!rs.ok()) return std::nullopt;
    for (const auto& r : *rs) {
      if (r.dst == dst) return r;
    }
    return std::nullopt;
  };
  auto got = find(Pfx("10.60.0.0/16"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->gateway, Ip("10.50.0.254"));
  EXPECT_EQ(got->oif, up->index);
  EXPECT_EQ(got->metric, 50u);
  EXPECT_EQ(got->src, Ip("10.50.0.1"));
  EXPECT_EQ(got->mtu, 1300u);
  EXPECT_EQ(got->scope, std::optional<uint8_t>(kScopeUniverse));

  via.mtu = 1200;
  ASSERT_TRUE(hnode_->ReplaceRoute(via).ok());
  EXPECT_EQ(find(Pfx("10.60.0.0/16"))->mtu, 1200u);

  // A gateway outside every subnet needs onlink.
  Route far{.dst = Pfx("10.70.0.0/16"), .gateway = Ip("192.0.2.1"), .oif = up->index};
  absl::Status unreachable = hnode_->AddRoute(far);
  EXPECT_FALSE(unreachable.ok());
  EXPECT_THAT(unreachable.message(), HasSubstr("kernel:"));
  far.onlink = true;
  ASSERT_TRUE(hnode_->AddRoute(far).ok());
  EXPECT_TRUE(find(Pfx("10.70.0.0/16"))->onlink);

  // Scope link (no gateway), another table, a default route.
  Route direct{.dst = Pfx("10.80.0.5/32"), .oif = up->index};
  ASSERT_TRUE(hnode_->AddRoute(direct).ok());
  EXPECT_EQ(find(Pfx("10.80.0.5/32"))->scope, std::optional<uint8_t>(kScopeLink));
  Route in_table{.dst = Pfx("10.90.0.0/24"), .gateway = Ip("10.50.0.2"), .table = 100};
  ASSERT_TRUE(hnode_->AddRoute(in_table).ok());
  EXPECT_FALSE(find(Pfx("10.90.0.0/24")).has_value());
  EXPECT_TRUE(find(Pfx("10.90.0.0/24"), 100).has_value());
  Route def{.dst = Pfx("0.0.0.0/0"), .gateway = Ip("10.50.0.254")};
  ASSERT_TRUE(hnode_->AddRoute(def).ok());
  EXPECT_EQ(find(Pfx("0.0.0.0/0"))->gateway, Ip("10.50.0.254"));

  // IPv6, via gateway.
  Route v6{.dst = Pfx("fd00:60::/48"), .gateway = Ip("fd00:50::fe"), .oif = up->index, .metric = 7};
  ASSERT_TRUE(hnode_->AddRoute(v6).ok());
  auto got6 = find(Pfx("fd00:60::/48"));
  ASSERT_TRUE(got6.has_value());
  EXPECT_EQ(got6->gateway, Ip("fd00:50::fe"));
  EXPECT_EQ(got6->metric, 7u);

  // Mixed families are refused before anything is sent.
  Route mixed{.dst = Pfx("10.1.0.0/16"), .gateway = Ip("fd00::1")};
  EXPECT_EQ(hnode_->AddRoute(mixed).code(), absl::StatusCode::kInvalidArgument);

  for (const Route& r : {via, far, direct, in_table, def, v6}) {
    ASSERT_TRUE(hnode_->DeleteRoute(r).ok()) << r.ToString();
    EXPECT_EQ(hnode_->DeleteRoute(r).code(), absl::StatusCode::kNotFound) << r.ToString();
  }
  EXPECT_FALSE(find(Pfx("10.60.0.0/16")).has_value());
}

TEST_F(KernelTest, PermanentNeighbours) {
  Link host = MakeVeth();
  ASSERT_GT(host.index, 0);
  ASSERT_TRUE(hnode_->SetLinkUp(host.index).ok());
  ASSERT_TRUE(
      hnode_
          ->SetNeighbor(
              {.ifindex = host.index, .ip = Ip("10.9.0.7"), .mac = Mac("02:00:00:00:00:07")})
          .ok());
  ASSERT_TRUE(
      hnode_
          ->SetNeighbor(
              {.ifindex = host.index, .ip = Ip("fd00:9::7"), .mac = Mac("02:00:00:00:00:08")})
          .ok());
  // Replace keeps one entry per IP.
  ASSERT_TRUE(
      hnode_
          ->SetNeighbor(
              {.ifindex = host.index, .ip = Ip("10.9.0.7"), .mac = Mac("02:00:00:00:00:09")})
          .ok());
  auto ns = hnode_->ListNeighbors(host.index);
  ASSERT_TRUE(ns.ok()) << ns.status();
  int v4 = 0, v6 = 0;
  for (const auto& n : *ns) {
    if (n.ip == Ip("10.9.0.7")) {
      ++v4;
      EXPECT_EQ(n.mac, Mac("02:00:00:00:00:09"));
      EXPECT_EQ(n.state, kNudPermanent);
    }
    if (n.ip == Ip("fd00:9::7")) {
      ++v6;
      EXPECT_EQ(n.mac, Mac("02:00:00:00:00:08"));
    }
  }
  EXPECT_EQ(v4, 1);
  EXPECT_EQ(v6, 1);
  ASSERT_TRUE(hnode_->DeleteNeighbor(host.index, Ip("10.9.0.7")).ok());
  EXPECT_EQ(hnode_->DeleteNeighbor(host.index, Ip("10.9.0.7")).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(hnode_->ListNeighbors(host.index, AF_INET)->size(), 0u);
}

TEST_F(KernelTest, VxlanAttributesAndFdb) {
  auto up = hnode_->CreateBridge({.name = "up0"});
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE(hnode_->AddAddress(up->index, Pfx("192.168.50.1/24")).ok());
  auto vx = hnode_->CreateVxlan({.name = "vx0",
                                 .vni = 4242,
                                 .port = 8472,
                                 .local = Ip("192.168.50.1"),
                                 .underlay_index = up->index,
                                 .mtu = 1450});
  ASSERT_TRUE(vx.ok()) << vx.status();
  EXPECT_EQ(vx->kind, "vxlan");
  EXPECT_EQ(vx->mtu, 1450u);
  ASSERT_TRUE(vx->vxlan.has_value());
  EXPECT_EQ(vx->vxlan->vni, 4242u);
  EXPECT_EQ(vx->vxlan->port, 8472);
  EXPECT_EQ(vx->vxlan->local, Ip("192.168.50.1"));
  EXPECT_EQ(vx->vxlan->underlay_index, up->index);
  EXPECT_FALSE(vx->vxlan->learning);
  EXPECT_TRUE(vx->vxlan->udp_csum);

  MacAddress zero;
  ASSERT_TRUE(hnode_->AddFdb({.ifindex = vx->index, .mac = zero, .dst = Ip("192.168.50.2")}).ok());
  ASSERT_TRUE(hnode_->AddFdb({.ifindex = vx->index, .mac = zero, .dst = Ip("192.168.50.3")}).ok());
  MacAddress remote = Mac("0a:00:00:00:00:02");
  ASSERT_TRUE(
      hnode_->AddFdb({.ifindex = vx->index, .mac = remote, .dst = Ip("192.168.50.2")}).ok());
  // Re-adding a specific MAC replaces its remote.
  ASSERT_TRUE(
      hnode_->AddFdb({.ifindex = vx->index, .mac = remote, .dst = Ip("192.168.50.4")}).ok());

  auto count = [&](const MacAddress& mac, std::string_view dst) {
    auto es = hnode_->ListFdb(vx->index);
    EXPECT_TRUE(es.ok()) << es.status();
    int n = 0;
    for (const auto& e : *es) {
      if (e.mac == mac && e.dst == Ip(dst)) {
        ++n;
        EXPECT_TRUE(e.self);
        EXPECT_EQ(e.state & kNudPermanent, kNudPermanent);
      }
    }
    return n;
  };
  EXPECT_EQ(count(zero, "192.168.50.2"), 1);
  EXPECT_EQ(count(zero, "192.168.50.3"), 1);
  EXPECT_EQ(count(remote, "192.168.50.2"), 0);
  EXPECT_EQ(count(remote, "192.168.50.4"), 1);

  ASSERT_TRUE(
      hnode_->DeleteFdb({.ifindex = vx->index, .mac = zero, .dst = Ip("192.168.50.2")}).ok());
  EXPECT_EQ(count(zero, "192.168.50.2"), 0);
  EXPECT_EQ(count(zero, "192.168.50.3"), 1);
  // A remote that is already gone is a no-op (the kernel's semantics); an unknown MAC is NotFound.
  EXPECT_TRUE(
      hnode_->DeleteFdb({.ifindex = vx->index, .mac = zero, .dst = Ip("192.168.50.2")}).ok());
  EXPECT_EQ(count(zero, "192.168.50.3"), 1);
  EXPECT_EQ(hnode_->DeleteFdb({.ifindex = vx->index, .mac = Mac("0a:00:00:00:00:99")}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(hnode_->CreateVxlan({.name = "vx1", .vni = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(KernelTest, RollbackRemovesWhatWasCreated) {
  auto before = NodeLinkNames();
  {
    Rollback rb;
    for (const char* name : {"rb0", "rb1", "rb2"}) {
      auto d = hnode_->CreateBridge({.name = name});
      ASSERT_TRUE(d.ok()) << d.status();
      int index = d->index;
      rb.Add(cninet::StrCat("bridge ", name), [this, index] { return hnode_->DeleteLink(index); });
    }
    EXPECT_EQ(NodeLinkNames().size(), before.size() + 3);
  }  // Not committed: undone.
  EXPECT_EQ(NodeLinkNames(), before);
  {
    Rollback rb;
    auto d = hnode_->CreateBridge({.name = "rbkeep"});
    ASSERT_TRUE(d.ok());
    int index = d->index;
    rb.Add("dummy rbkeep", [this, index] { return hnode_->DeleteLink(index); });
    rb.Commit();
  }
  EXPECT_TRUE(hnode_->GetLink("rbkeep").ok());
}

}  // namespace
}  // namespace cninet::netlink
