// The agent's reconcilers against the real kernel (root): the overlay reconciler's routes,
// neighbours, FDB entries and VXLAN device in a test namespace; the service reconciler on real
// (pinned) datapath maps, including id recovery by a "restarted" reconciler; the endpoint
// reconciler's stale-entry rules.
#include <sys/socket.h>

#include <set>

#include "cninet/agent/overlay.h"
#include "cninet/agent/pods.h"
#include "cninet/agent/services.h"
#include "cninet/datapath/datapath.h"
#include "cninet/netlink/netlink.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "packet_builder.h"
#include "testing/test_util.h"

namespace cninet::agent {
namespace {

namespace dp = ::cninet::datapath;
namespace nl = ::cninet::netlink;
using ::cninet::testing::ScopedNetns;
using ::testing::IsEmpty;
using ::testing::SizeIs;

cni::IPAddress Ip(const char* s) { return *cni::IPAddress::Parse(s); }
cni::IPPrefix Net(const char* s) { return *cni::IPPrefix::Parse(s); }
nl::MacAddress Mac(const char* s) { return *nl::MacAddress::Parse(s); }
constexpr uint8_t kProto = 73;

class OverlayReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(node_
                    .Exec("ip link add eth0 type veth peer name eth0p && ip link set eth0p up && "
                          "ip addr add 192.168.1.11/24 dev eth0 "
                          "&& ip link set eth0 up")
                    .ok());
    auto ns = nl::Netns::Open(node_.path());
    ASSERT_TRUE(ns.ok()) << ns.status();
    auto h = nl::Handle::OpenIn(*ns);
    ASSERT_TRUE(h.ok()) << h.status();
    handle_.emplace(*std::move(h));
    auto up = handle_->GetLink("eth0");
    ASSERT_TRUE(up.ok());
    uplink_ = up->index;
    vx_.name = "cninet-vxlan";
    vx_.vni = 7;
    vx_.port = 8472;
    vx_.local = Ip("192.168.1.11");
    vx_.underlay_index = uplink_;
    vx_.mac = VtepMacFor(vx_.local);
    vx_.address = Ip("10.244.0.0");
  }

  OverlayPeer Vxlan(const char* node, const char* cidr, const char* vtep, const char* mac) {
    OverlayPeer p;
    p.node = node;
    p.pod_cidr = Net(cidr);
    p.mode = PeerMode::kVxlan;
    p.gateway = Net(cidr).address();
    p.vtep = Ip(vtep);
    p.vtep_mac = Mac(mac);
    return p;
  }

  std::vector<nl::Route> OurRoutes() {
    std::vector<nl::Route> out;
    auto routes = handle_->ListRoutes({.family = AF_INET});
    EXPECT_TRUE(routes.ok());
    for (const auto& r : *routes) {
      if (r.protocol == kProto) out.push_back(r);
    }
    return out;
  }

  ScopedNetns node_{"ovl"};
  std::optional<nl::Handle> handle_;
  int uplink_ = 0;
  VxlanDeviceConfig vx_;
};

TEST_F(OverlayReconcilerTest, AppliesPlansIdempotentlyAndRemovesWhatIsNoLongerPlanned) {
  OverlayReconciler r(&*handle_, vx_, uplink_, kProto);
  ASSERT_TRUE(r.EnsureDevice().ok());
  auto link = handle_->GetLink("cninet-vxlan");
  ASSERT_TRUE(link.ok());
  ASSERT_TRUE(link->vxlan.has_value());
  EXPECT_EQ(link->vxlan->vni, 7u);
  EXPECT_FALSE(link->vxlan->learning);
  EXPECT_EQ(link->mac, vx_.mac);
  EXPECT_EQ(link->mtu, 1450u);
  // A route of someone else's must survive every pass.
  ASSERT_TRUE(node_.Exec("ip route add 172.16.0.0/16 via 192.168.1.1").ok());

  OverlayPlan plan;
  plan.peers = {Vxlan("n2", "10.244.1.0/24", "192.168.1.12", "0e:c1:00:00:00:02"),
                Vxlan("n3", "10.244.2.0/24", "203.0.113.3", "0e:c1:00:00:00:03")};
  auto ch = r.Apply(plan);
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_EQ(ch->routes_set, 2);
  EXPECT_EQ(ch->neighbors_set, 2);
  EXPECT_EQ(ch->fdb_set, 2);
  std::vector<nl::Route> routes = OurRoutes();
  ASSERT_THAT(routes, SizeIs(2));
  EXPECT_EQ(routes[0].oif, r.vxlan_index());
  EXPECT_EQ(*routes[0].gateway, Ip("10.244.1.0"));
  auto fdb = handle_->ListFdb(r.vxlan_index());
  ASSERT_TRUE(fdb.ok());
  std::set<std::string> remotes;
  for (const auto& e : *fdb) {
    if (e.dst) remotes.insert(e.mac.ToString() + ">" + e.dst->ToString());
  }
  EXPECT_EQ(remotes, (std::set<std::string>{"0e:c1:00:00:00:02>192.168.1.12",
                                            "0e:c1:00:00:00:03>203.0.113.3"}));
  auto again = r.Apply(plan);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->any()) << "a second pass over an unchanged plan changed the kernel";

  // n2 becomes direct, n3 leaves, n3's VTEP moved (publicIP changed) before it left.
  OverlayPlan next;
  OverlayPeer direct;
  direct.node = "n2";
  direct.pod_cidr = Net("10.244.1.0/24");
  direct.mode = PeerMode::kDirect;
  direct.gateway = Ip("192.168.1.12");
  next.peers = {direct};
  ch = r.Apply(next);
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_EQ(ch->routes_set, 1);
  EXPECT_EQ(ch->routes_removed, 1);
  EXPECT_EQ(ch->neighbors_removed, 2);
  EXPECT_EQ(ch->fdb_removed, 2);
  routes = OurRoutes();
  ASSERT_THAT(routes, SizeIs(1));
  EXPECT_EQ(routes[0].dst, Net("10.244.1.0/24"));
  EXPECT_EQ(routes[0].oif, uplink_);
  EXPECT_EQ(*routes[0].gateway, Ip("192.168.1.12"));
  auto neigh = handle_->ListNeighbors(r.vxlan_index(), AF_INET);
  ASSERT_TRUE(neigh.ok());
  for (const auto& n : *neigh) EXPECT_FALSE(n.state & nl::kNudPermanent) << n.ip.ToString();
  EXPECT_THAT(node_.Exec("ip route show 172.16.0.0/16").out, ::testing::HasSubstr("172.16.0.0/16"));

  // Adopting the existing device keeps it; other settings recreate it.
  int index = r.vxlan_index();
  OverlayReconciler same(&*handle_, vx_, uplink_, kProto);
  ASSERT_TRUE(same.EnsureDevice().ok());
  EXPECT_EQ(same.vxlan_index(), index);
  VxlanDeviceConfig other = vx_;
  other.vni = 8;
  OverlayReconciler changed(&*handle_, other, uplink_, kProto);
  ASSERT_TRUE(changed.EnsureDevice().ok());
  EXPECT_EQ(handle_->GetLink("cninet-vxlan")->vxlan->vni, 8u);

  ASSERT_TRUE(changed.Teardown().ok());
  EXPECT_THAT(OurRoutes(), IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(handle_->GetLink("cninet-vxlan").status()));
  EXPECT_TRUE(changed.Teardown().ok());  // idempotent
}

class ServiceReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    Load();
  }
  void Load() {
    services_.reset();
    dp_.reset();
    dp::DatapathConfig c;
    c.bpffs_root = fs_.path();
    c.instance = "svc";
    c.cluster_cidr = Net("10.244.0.0/16");
    c.node_addresses = {Ip("192.168.1.11")};
    c.map_sizes = {.conntrack = 1024,
                   .nat = 1024,
                   .services = 256,
                   .service_slots = 64,
                   .backends = 1024,
                   .affinity = 64,
                   .endpoints = 64};
    auto d = dp::Datapath::Create(c);
    ASSERT_TRUE(d.ok()) << d.status();
    dp_ = *std::move(d);
    auto r = ServiceReconciler::Create(&dp_->services(), /*id_limit=*/56);
    ASSERT_TRUE(r.ok()) << r.status();
    services_ = *std::move(r);
  }
  static PlannedService Planned(const std::string& name, const char* vip,
                                std::vector<const char*> backends) {
    PlannedService p;
    p.key = {"default", name, ""};
    p.service.maglev_size = 251;
    p.service.frontends = {{Ip(vip), 80, dp::Protocol::kTcp, dp::FrontendKind::kClusterIP}};
    for (const char* b : backends) p.service.backends.push_back({Ip(b), 8080});
    return p;
  }
  std::map<std::string, uint32_t> Ids() {
    std::map<std::string, uint32_t> out;
    for (const auto& [id, p] : services_->programmed()) out[p.key.ToString()] = id;
    return out;
  }

  datapath::testing::ScopedBpffs fs_;
  std::unique_ptr<dp::Datapath> dp_;
  std::unique_ptr<ServiceReconciler> services_;
};

TEST_F(ServiceReconcilerTest, WritesOnlyDifferencesAndKeepsIdsAcrossARestart) {
  std::vector<PlannedService> want = {Planned("a", "10.96.0.1", {"10.244.1.1", "10.244.2.1"}),
                                      Planned("b", "10.96.0.2", {"10.244.1.2"}),
                                      Planned("c", "10.96.0.3", {})};
  auto ch = services_->Apply(want);
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_EQ(ch->upserted, 3u);
  std::map<std::string, uint32_t> ids = Ids();
  EXPECT_EQ(
      ids, (std::map<std::string, uint32_t>{{"default/a", 1}, {"default/b", 2}, {"default/c", 3}}));
  auto a = dp_->services().Get(1);
  ASSERT_TRUE(a.ok());
  EXPECT_THAT(a->backends, SizeIs(2));

  ch = services_->Apply(want);
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(ch->upserted, 0u);
  EXPECT_EQ(ch->unchanged, 3u);

  // Change b, drop c, add d: d must not take c's frontend id in the same pass by accident.
  want[1] = Planned("b", "10.96.0.2", {"10.244.1.2", "10.244.1.3"});
  want.pop_back();
  want.push_back(Planned("d", "10.96.0.4", {"10.244.3.1"}));
  ch = services_->Apply(want);
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(ch->upserted, 2u);
  EXPECT_EQ(ch->deleted, 1u);
  EXPECT_EQ(Ids()["default/b"], 2u);
  EXPECT_TRUE(absl::IsNotFound(dp_->services().Get(3).status()) ||
              dp_->services().Get(3)->frontends[0].address == Ip("10.96.0.4"));
  EXPECT_THAT(dp_->services().Get(2)->backends, SizeIs(2));

  // Someone else's service (cninet-ebpf hostPort range) is never touched.
  dp::Service foreign = Planned("x", "192.168.1.11", {"10.244.1.9"}).service;
  foreign.id = 60;
  foreign.frontends[0].kind = dp::FrontendKind::kExternalIP;
  ASSERT_TRUE(dp_->services().Upsert(foreign).ok());
  ASSERT_TRUE(services_->Apply(want).ok());
  EXPECT_TRUE(dp_->services().Get(60).ok());

  // "Restart": new Datapath on the pinned maps, new reconciler; the same plan changes nothing
  // and every service keeps its id.
  std::map<std::string, uint32_t> before = Ids();
  ASSERT_NO_FATAL_FAILURE(Load());
  EXPECT_EQ(services_->size(), 3u);  // recovered, keys unknown yet
  ch = services_->Apply(want);
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(ch->upserted, 0u);
  EXPECT_EQ(ch->deleted, 0u);
  EXPECT_EQ(ch->unchanged, 3u);
  EXPECT_EQ(Ids(), before);
  EXPECT_TRUE(dp_->services().Get(60).ok());
}

TEST_F(ServiceReconcilerTest, ARefusedServiceDoesNotStopTheOthers) {
  PlannedService bad = Planned("bad", "10.96.0.9", {"10.244.1.1", "10.244.1.1"});  // duplicate
  auto ch = services_->Apply(
      {Planned("a", "10.96.0.1", {"10.244.1.1"}), bad, Planned("c", "10.96.0.3", {"10.244.1.3"})});
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_EQ(ch->upserted, 2u);
  EXPECT_EQ(ch->failed, 1u);
  EXPECT_EQ(dp_->services().List().size(), 2u);
}

// kube-proxy's UDP conntrack flush: a connected UDP socket keeps its 5-tuple, so a flow whose
// backend went away (or whose service was deleted) must lose its entries, or its datagrams keep
// going to the old backend.
TEST_F(ServiceReconcilerTest, UdpFlowsOfRemovedBackendsAndDeletedServicesAreFlushed) {
  auto udp = [](const char* name, std::vector<const char*> backends) {
    PlannedService p = Planned(name, "10.96.0.53", backends);
    p.service.frontends[0].protocol = dp::Protocol::kUdp;
    p.service.frontends[0].port = 53;
    return p;
  };
  ASSERT_TRUE(services_->Apply({udp("dns", {"10.244.1.1", "10.244.1.2"})}).ok());
  // Flows from 16 client ports: conntrack pairs to both backends.
  std::set<std::string> used;
  for (uint16_t port = 40000; port < 40016; ++port) {
    auto r = dp_->TestRun(dp::Hook::kFromPod, datapath::testing::PacketBuilder()
                                                  .Ipv4("10.244.2.9", "10.96.0.53")
                                                  .Udp(port, 53)
                                                  .Payload("q")
                                                  .Build());
    ASSERT_TRUE(r.ok()) << r.status();
  }
  auto flows_to = [&](const char* backend) {
    size_t n = 0;
    auto dump = dp_->conntrack().Dump();  // (a range-for over *Dump() would dangle)
    EXPECT_TRUE(dump.ok()) << dump.status();
    for (const auto& e : dump.ok() ? *dump : std::vector<dp::ConntrackEntry>{}) {
      if (e.service && !e.reply && e.nat_address == Ip(backend)) ++n;
    }
    return n;
  };
  const size_t to1 = flows_to("10.244.1.1"), to2 = flows_to("10.244.1.2");
  ASSERT_EQ(to1 + to2, 16u);
  ASSERT_GT(to1, 0u);
  ASSERT_GT(to2, 0u);
  auto ch = services_->Apply({udp("dns", {"10.244.1.2"})});
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_EQ(ch->conntrack_flushed, 2 * to1) << "both entries of each flow to 10.244.1.1";
  EXPECT_EQ(flows_to("10.244.1.1"), 0u);
  EXPECT_EQ(flows_to("10.244.1.2"), to2) << "flows to the remaining backend are kept";
  ch = services_->Apply({});
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_EQ(ch->deleted, 1u);
  EXPECT_EQ(ch->conntrack_flushed, 2 * to2);
  auto left = dp_->conntrack().Dump();
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  // TCP is not flushed (its connections end on their own, as kube-proxy leaves them).
  ASSERT_TRUE(services_->Apply({Planned("web", "10.96.0.80", {"10.244.1.1"})}).ok());
  ASSERT_TRUE(dp_->TestRun(dp::Hook::kFromPod, datapath::testing::PacketBuilder()
                                                   .Ipv4("10.244.2.9", "10.96.0.80")
                                                   .Tcp(41000, 80, 0x02)
                                                   .Build())
                  .ok());
  ch = services_->Apply({Planned("web", "10.96.0.80", {"10.244.1.3"})});
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(ch->conntrack_flushed, 0u);
}

class EndpointReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(node_.Exec("ip link add veth1 type veth peer name veth1p").ok());
    auto ns = nl::Netns::Open(node_.path());
    ASSERT_TRUE(ns.ok());
    auto h = nl::Handle::OpenIn(*ns);
    ASSERT_TRUE(h.ok());
    handle_.emplace(*std::move(h));
    veth_ = handle_->GetLink("veth1")->index;
    dp::DatapathConfig c;
    c.pin_maps = false;
    c.cluster_cidr = Net("10.244.0.0/16");
    c.node_addresses = {Ip("192.168.1.11")};
    c.map_sizes = {.conntrack = 64,
                   .nat = 64,
                   .services = 4,
                   .service_slots = 4,
                   .backends = 4,
                   .affinity = 4,
                   .endpoints = 64};
    auto d = dp::Datapath::Create(c);
    ASSERT_TRUE(d.ok()) << d.status();
    dp_ = *std::move(d);
  }
  ScopedNetns node_{"epr"};
  std::optional<nl::Handle> handle_;
  int veth_ = 0;
  std::unique_ptr<dp::Datapath> dp_;
};

TEST_F(EndpointReconcilerTest, KeepsDesiredEntriesAndRemovesOnlyAccountableStaleOnes) {
  EndpointReconciler r(&dp_->endpoints(), Net("10.244.0.0/24"),
                       [&](int ifindex) { return handle_->GetLinkByIndex(ifindex).ok(); });
  auto& table = dp_->endpoints();
  ASSERT_TRUE(table.Upsert({Ip("10.244.0.9"), 999999, {}}).ok());           // interface gone
  ASSERT_TRUE(table.Upsert({Ip("10.244.0.8"), uint32_t(veth_), {}}).ok());  // unreported pod
  ASSERT_TRUE(table.Upsert({Ip("10.244.7.7"), 999999, {}}).ok());           // not our podCIDR
  ASSERT_TRUE(table.Upsert({Ip("10.244.0.6"), uint32_t(veth_), {}}).ok());  // forgotten pod
  PlannedEndpoint want;
  want.pod = "default/a";
  want.endpoint = {Ip("10.244.0.5"), uint32_t(veth_), {0x0a, 0x58, 0, 0, 0, 5}};
  auto ch = r.Apply(std::vector<PlannedEndpoint>{want}, {Ip("10.244.0.6")});
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_EQ(ch->upserted, 1u);
  EXPECT_EQ(ch->deleted, 2u);
  auto list = table.List();
  ASSERT_TRUE(list.ok());
  std::set<std::string> left;
  for (const auto& e : *list) left.insert(e.address.ToString());
  EXPECT_EQ(left, (std::set<std::string>{"10.244.0.5", "10.244.0.8", "10.244.7.7"}));
  ch = r.Apply(std::vector<PlannedEndpoint>{want}, {});
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(ch->upserted, 0u);
  EXPECT_EQ(ch->unchanged, 1u);
}

}  // namespace
}  // namespace cninet::agent
