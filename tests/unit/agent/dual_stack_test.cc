// Dual-stack rules of the agent without a kernel: Kubernetes' clusterIP/clusterIPs/ipFamilies/
// ipFamilyPolicy validation, PlanServices per family (a ClusterIP balanced over its family's
// backends only, nodePorts and externalIPs per family), IPv6 overlay entries (VXLAN over the
// IPv4 underlay, direct IPv6 routes), IPv6 podCIDRs from the store, the conflist's two ranges and
// policy pods with both addresses.
#include "cninet/agent/cni_config.h"
#include "cninet/agent/embedded_store.h"
#include "cninet/agent/overlay.h"
#include "cninet/agent/pod_cidr_store.h"
#include "cninet/agent/policy.h"
#include "cninet/agent/services.h"
#include "cninet/agent/state.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_util.h"

namespace cninet::agent {
namespace {

namespace dp = ::cninet::datapath;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using V6 = cni::IPAddress::Family;

cni::IPAddress Ip(const char* s) { return *cni::IPAddress::Parse(s); }
cni::IPPrefix Net(const char* s) { return *cni::IPPrefix::Parse(s); }

v1::Service DualSvc(const std::string& name) {
  v1::Service s;
  s.set_namespace_("default");
  s.set_name(name);
  s.set_cluster_ip("10.96.0.10");
  s.add_cluster_ips("10.96.0.10");
  s.add_cluster_ips("fd00:96::10");
  s.add_ip_families(v1::IPV4);
  s.add_ip_families(v1::IPV6);
  s.set_ip_family_policy(v1::Service::REQUIRE_DUAL_STACK);
  auto* p = s.add_ports();
  p->set_port(80);
  return s;
}

v1::Endpoints DualEps(const std::string& name) {
  v1::Endpoints e;
  e.set_namespace_("default");
  e.set_name(name);
  auto* p = e.add_ports();
  for (const char* ip : {"10.244.1.4", "fd00:244:1::4", "10.244.2.5", "fd00:244:2::5"}) {
    auto* b = p->add_backends();
    b->set_ip(ip);
    b->set_port(8080);
  }
  return e;
}

std::string Message(const absl::Status& st) { return std::string(st.message()); }

// ---- validation ----

TEST(DualStackValidateTest, ADualStackServiceIsValid) {
  EXPECT_TRUE(Validate(DualSvc("web")).ok()) << Validate(DualSvc("web"));
  v1::Service only_ips = DualSvc("web");
  only_ips.clear_cluster_ip();
  only_ips.clear_ip_families();
  EXPECT_TRUE(Validate(only_ips).ok()) << Validate(only_ips);
  EXPECT_THAT(ServiceClusterIPs(only_ips), ElementsAre("10.96.0.10", "fd00:96::10"));
  v1::Service legacy;
  legacy.set_namespace_("default");
  legacy.set_name("old");
  legacy.set_cluster_ip("10.96.0.11");
  EXPECT_TRUE(Validate(legacy).ok());
  EXPECT_THAT(ServiceClusterIPs(legacy), ElementsAre("10.96.0.11"));
}

TEST(DualStackValidateTest, InconsistentCombinationsAreRejected) {
  struct Case {
    const char* what;
    std::function<void(v1::Service*)> edit;
    const char* error;
  };
  std::vector<Case> cases = {
      {"clusterIP differs from clusterIPs[0]",
       [](v1::Service* s) { s->set_cluster_ip("10.96.0.9"); }, "must equal clusterIP"},
      {"two of one family",
       [](v1::Service* s) {
         s->set_cluster_ips(1, "10.96.0.11");
         s->clear_ip_families();
       },
       "same family"},
      {"ipFamilies out of order", [](v1::Service* s) { s->set_ip_families(0, v1::IPV6); },
       "does not match"},
      {"SINGLE_STACK with two",
       [](v1::Service* s) { s->set_ip_family_policy(v1::Service::SINGLE_STACK); },
       "SINGLE_STACK allows one family"},
      {"no policy with two",
       [](v1::Service* s) { s->set_ip_family_policy(v1::Service::IP_FAMILY_POLICY_UNSPECIFIED); },
       "must be PREFER_DUAL_STACK or REQUIRE_DUAL_STACK"},
      {"REQUIRE_DUAL_STACK with one",
       [](v1::Service* s) {
         s->mutable_cluster_ips()->RemoveLast();
         s->mutable_ip_families()->RemoveLast();
       },
       "needs two families"},
      {"three clusterIPs", [](v1::Service* s) { s->add_cluster_ips("fd00:96::11"); },
       "at most two"},
      {"a bad clusterIPs entry", [](v1::Service* s) { s->set_cluster_ips(1, "nope"); },
       "clusterIPs"},
  };
  for (const Case& c : cases) {
    v1::Service s = DualSvc("web");
    c.edit(&s);
    absl::Status st = Validate(s);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << c.what << ": " << st;
    EXPECT_THAT(Message(st), HasSubstr(c.error)) << c.what;
  }
  v1::Service prefer = DualSvc("web");
  prefer.set_ip_family_policy(v1::Service::PREFER_DUAL_STACK);
  prefer.mutable_cluster_ips()->RemoveLast();
  prefer.mutable_ip_families()->RemoveLast();
  EXPECT_TRUE(Validate(prefer).ok()) << Validate(prefer);
}

TEST(DualStackValidateTest, BackendFamilyMustMatchItsAddress) {
  v1::Endpoints e = DualEps("web");
  EXPECT_TRUE(Validate(e).ok());
  e.mutable_ports(0)->mutable_backends(1)->set_ip_family(v1::IPV6);
  EXPECT_TRUE(Validate(e).ok());
  e.mutable_ports(0)->mutable_backends(0)->set_ip_family(v1::IPV6);
  EXPECT_THAT(Message(Validate(e)), HasSubstr("ipFamily"));
}

TEST(DualStackValidateTest, ClusterConfigIPv6Fields) {
  v1::ClusterConfig c;
  c.set_cluster_cidr("10.244.0.0/16");
  c.set_cluster_cidr_ipv6("fd00:244::/56");
  c.set_service_cidr_ipv6("fd00:96::/112");
  EXPECT_TRUE(Validate(c).ok()) << Validate(c);
  ApplyDefaults(&c);
  EXPECT_EQ(c.node_cidr_mask_size(), 24u);
  EXPECT_EQ(c.node_cidr_mask_size_ipv6(), 64u);
  c.set_node_cidr_mask_size_ipv6(48);
  EXPECT_THAT(Message(Validate(c)), HasSubstr("nodeCIDRMaskSizeIPv6"));
  c.set_node_cidr_mask_size_ipv6(64);
  c.set_cluster_cidr_ipv6("10.0.0.0/8");
  EXPECT_THAT(Message(Validate(c)), HasSubstr("not an IPv6 prefix"));
  // Stored JSON spells the fields like Kubernetes and old objects still decode.
  v1::ClusterConfig d;
  d.set_cluster_cidr_ipv6("fd00:244::/56");
  auto json = EncodeObject(ObjectKind::kClusterConfig, d);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("clusterCIDRIPv6"));
}

// ---- services ----

TEST(DualStackPlanTest, OneDatapathServicePerFamilyWithItsFamilysBackends) {
  std::vector<PlanWarning> w;
  auto planned = PlanServices(std::vector<v1::Service>{DualSvc("web")},
                              std::vector<v1::Endpoints>{DualEps("web")}, {}, &w);
  EXPECT_THAT(w, IsEmpty());
  ASSERT_EQ(planned.size(), 2u);
  EXPECT_EQ(planned[0].key.family, V6::kV4);
  EXPECT_EQ(planned[0].key.ToString(), "default/web");
  EXPECT_THAT(planned[0].service.frontends,
              ElementsAre(dp::Frontend{Ip("10.96.0.10"), 80, dp::Protocol::kTcp,
                                       dp::FrontendKind::kClusterIP}));
  EXPECT_THAT(planned[0].service.backends, ElementsAre(dp::Backend{Ip("10.244.1.4"), 8080},
                                                       dp::Backend{Ip("10.244.2.5"), 8080}));
  EXPECT_EQ(planned[1].key.family, V6::kV6);
  EXPECT_EQ(planned[1].key.ToString(), "default/web@IPv6");
  EXPECT_THAT(planned[1].service.frontends,
              ElementsAre(dp::Frontend{Ip("fd00:96::10"), 80, dp::Protocol::kTcp,
                                       dp::FrontendKind::kClusterIP}));
  EXPECT_THAT(planned[1].service.backends, ElementsAre(dp::Backend{Ip("fd00:244:1::4"), 8080},
                                                       dp::Backend{Ip("fd00:244:2::5"), 8080}));
}

TEST(DualStackPlanTest, NodePortsAndExternalIPsPerFamily) {
  v1::Service s = DualSvc("web");
  s.set_type(v1::Service::NODE_PORT);
  s.mutable_ports(0)->set_node_port(30080);
  s.add_external_ips("fd00:1::7");
  s.add_external_ips("192.0.2.7");
  std::vector<PlanWarning> w;
  auto planned = PlanServices(std::vector<v1::Service>{s}, {}, {}, &w);
  EXPECT_THAT(w, IsEmpty());
  ASSERT_EQ(planned.size(), 2u);
  EXPECT_THAT(planned[0].service.frontends,
              ElementsAre(Field(&dp::Frontend::address, Ip("10.96.0.10")),
                          Field(&dp::Frontend::address, Ip("192.0.2.7")),
                          Field(&dp::Frontend::kind, dp::FrontendKind::kNodePort)));
  EXPECT_THAT(planned[1].service.frontends,
              ElementsAre(Field(&dp::Frontend::address, Ip("fd00:96::10")),
                          Field(&dp::Frontend::address, Ip("fd00:1::7")),
                          Field(&dp::Frontend::address, Ip("::"))));
  // The IPv6 nodePort does not collide with the IPv4 one.
  EXPECT_EQ(planned[1].service.frontends[2].kind, dp::FrontendKind::kNodePort);
  EXPECT_EQ(planned[1].service.frontends[2].port, 30080);
}

TEST(DualStackPlanTest, ExternalIPOfAFamilyTheServiceLacksIsSkipped) {
  v1::Service s = DualSvc("web");
  s.mutable_cluster_ips()->RemoveLast();
  s.mutable_ip_families()->RemoveLast();
  s.set_ip_family_policy(v1::Service::SINGLE_STACK);
  s.add_external_ips("fd00:1::7");
  std::vector<PlanWarning> w;
  auto planned = PlanServices(std::vector<v1::Service>{s}, {}, {}, &w);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_THAT(w, ElementsAre(Field(&PlanWarning::message, HasSubstr("no IPv6 ClusterIP"))));
}

TEST(DualStackPlanTest, IPv6OnlyServiceAndTheIPv4OnlyDatapathGate) {
  v1::Service s;
  s.set_namespace_("default");
  s.set_name("v6");
  s.add_cluster_ips("fd00:96::20");
  s.add_ports()->set_port(53);
  std::vector<PlanWarning> w;
  auto planned =
      PlanServices(std::vector<v1::Service>{s}, std::vector<v1::Endpoints>{DualEps("v6")}, {}, &w);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].key.family, V6::kV6);
  EXPECT_EQ(planned[0].service.backends.size(), 2u);
  ServicePlanOptions v4only;
  v4only.ipv6 = false;
  w.clear();
  planned = PlanServices(std::vector<v1::Service>{s, DualSvc("web")}, {}, v4only, &w);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].key.ToString(), "default/web");
  EXPECT_EQ(w.size(), 2u);
  EXPECT_THAT(w[0].message, HasSubstr("IPv4 services only"));
}

// ---- overlay ----

v1::Node DualNode(const std::string& name, const std::string& ip, const std::string& ip6,
                  const std::string& cidr, const std::string& cidr6, bool direct,
                  const std::string& mac) {
  v1::Node n;
  n.set_name(name);
  for (const std::string& a : {ip, ip6}) {
    if (a.empty()) continue;
    auto* addr = n.add_addresses();
    addr->set_type(v1::NodeAddress::INTERNAL_IP);
    addr->set_address(a);
  }
  n.add_pod_cidrs(cidr);
  if (!cidr6.empty()) n.add_pod_cidrs(cidr6);
  n.set_direct_routing(direct);
  n.set_vtep_mac(mac);
  return n;
}

OverlaySelf DualSelf(bool direct) {
  OverlaySelf self{"n1", Net("192.168.1.11/24"), Net("10.244.0.0/24"), direct};
  self.underlay_v6 = Net("fd00:1::11/64");
  self.pod_cidr_v6 = Net("fd00:244::/64");
  return self;
}

TEST(DualStackOverlayTest, IPv6PodCIDRsGoThroughTheVxlanDeviceOverTheIPv4Underlay) {
  std::vector<v1::Node> nodes = {DualNode("n2", "192.168.1.12", "", "10.244.1.0/24",
                                          "fd00:244:0:1::/64", false, "0e:c1:c0:a8:01:0c")};
  OverlayPlan plan = PlanOverlay(DualSelf(false), nodes);
  ASSERT_EQ(plan.peers.size(), 2u);
  EXPECT_EQ(plan.peers[0].pod_cidr, Net("10.244.1.0/24"));
  const OverlayPeer& p = plan.peers[1];
  EXPECT_EQ(p.pod_cidr, Net("fd00:244:0:1::/64"));
  EXPECT_EQ(p.mode, PeerMode::kVxlan);
  EXPECT_EQ(p.vtep, Ip("192.168.1.12"));  // IPv6 inner, IPv4 underlay
  EXPECT_EQ(p.vtep_mac.ToString(), "0e:c1:c0:a8:01:0c");
  EXPECT_EQ(p.gateway, Ip("fe80::cc1:c0ff:fea8:10c"));
  EXPECT_THAT(plan.skipped, IsEmpty());
}

TEST(DualStackOverlayTest, DirectIPv6RoutesNeedIPv6UnderlayAddressesOnTheSameSubnet) {
  std::vector<v1::Node> nodes = {DualNode("n2", "192.168.1.12", "fd00:1::12", "10.244.1.0/24",
                                          "fd00:244:0:1::/64", true, "0e:c1:c0:a8:01:0c"),
                                 DualNode("n3", "192.168.1.13", "", "10.244.2.0/24",
                                          "fd00:244:0:2::/64", true, "0e:c1:c0:a8:01:0d")};
  OverlayPlan plan = PlanOverlay(DualSelf(true), nodes);
  ASSERT_EQ(plan.peers.size(), 4u);
  EXPECT_EQ(plan.peers[1].mode, PeerMode::kDirect);
  EXPECT_EQ(plan.peers[1].gateway, Ip("fd00:1::12"));
  // n3 has no IPv6 underlay: IPv4 goes direct, IPv6 through VXLAN.
  EXPECT_EQ(plan.peers[2].mode, PeerMode::kDirect);
  EXPECT_EQ(plan.peers[3].mode, PeerMode::kVxlan);
  EXPECT_EQ(plan.peers[3].vtep, Ip("192.168.1.13"));
}

TEST(DualStackOverlayTest, IPv6ProblemsAreSkippedWithAReasonAndIPv4StillPlanned) {
  std::vector<v1::Node> nodes = {DualNode("n2", "192.168.1.12", "", "10.244.1.0/24",
                                          "fd00:244::/64", false, "0e:c1:c0:a8:01:0c")};
  OverlayPlan plan = PlanOverlay(DualSelf(false), nodes);
  ASSERT_EQ(plan.peers.size(), 1u);
  EXPECT_THAT(plan.skipped, ElementsAre(Field(&SkippedPeer::reason, HasSubstr("IPv6: podCIDR"))));
  OverlaySelf v4only{"n1", Net("192.168.1.11/24"), Net("10.244.0.0/24"), false};
  plan = PlanOverlay(v4only, nodes);
  ASSERT_EQ(plan.peers.size(), 1u);
  EXPECT_THAT(plan.skipped, ElementsAre(Field(&SkippedPeer::reason, HasSubstr("no IPv6 podCIDR"))));
}

// ---- podCIDRs and the conflist ----

TEST(DualStackNodeTest, EachNodeGetsAnIPv6PodCIDRFromItsOwnPool) {
  ::cninet::testing::TempDir dir;
  EmbeddedStoreOptions o;
  o.dir = dir.Sub("store");
  o.sync = false;
  auto store = OpenEmbeddedStore(o);
  ASSERT_TRUE(store.ok()) << store.status();
  v1::ClusterConfig c;
  c.set_cluster_cidr("10.244.0.0/22");
  c.set_cluster_cidr_ipv6("fd00:244::/62");
  ApplyDefaults(&c);
  auto a4 = AllocatePodCIDR(**store, c, "node-a", std::nullopt);
  auto a6 = AllocatePodCIDR(**store, c, "node-a", std::nullopt, V6::kV6);
  auto b6 = AllocatePodCIDR(**store, c, "node-b", std::nullopt, V6::kV6);
  auto b4 = AllocatePodCIDR(**store, c, "node-b", std::nullopt);
  ASSERT_TRUE(a4.ok() && a6.ok() && b4.ok() && b6.ok())
      << a4.status() << a6.status() << b4.status() << b6.status();
  EXPECT_EQ(*a4, Net("10.244.0.0/24"));
  EXPECT_EQ(*b4, Net("10.244.1.0/24"));
  EXPECT_EQ(*a6, Net("fd00:244::/64"));
  EXPECT_EQ(*b6, Net("fd00:244:0:1::/64"));
  EXPECT_EQ(*AllocatePodCIDR(**store, c, "node-a", std::nullopt, V6::kV6), *a6);
  v1::ClusterConfig v4only;
  v4only.set_cluster_cidr("10.244.0.0/22");
  ApplyDefaults(&v4only);
  EXPECT_FALSE(AllocatePodCIDR(**store, v4only, "node-a", std::nullopt, V6::kV6).ok());
}

TEST(DualStackNodeTest, TheConflistGivesHostLocalOneRangePerFamily) {
  ConflistParams p;
  p.pod_cidr = Net("10.244.1.0/24");
  p.pod_cidr_v6 = Net("fd00:244:0:1::/64");
  p.cluster_cidr = Net("10.244.0.0/16");
  auto j = nlohmann::json::parse(BuildConflist(p));
  const auto& ranges = j["plugins"][0]["ipam"]["ranges"];
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0][0]["subnet"], "10.244.1.0/24");
  EXPECT_EQ(ranges[1][0]["subnet"], "fd00:244:0:1::/64");
  p.pod_cidr_v6.reset();
  j = nlohmann::json::parse(BuildConflist(p));
  EXPECT_EQ(j["plugins"][0]["ipam"]["ranges"].size(), 1u);
}

// ---- policy ----

TEST(DualStackPolicyTest, PodsKeepBothAddressesAndIPv6BlocksReachThePolicyTable) {
  v1::Pod pod;
  pod.set_namespace_("default");
  pod.set_name("a");
  pod.set_node("n1");
  pod.add_ips("10.244.0.5");
  pod.add_ips("fd00:244::5");
  auto info = ToPolicyPod(pod, "n1");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->addresses, ElementsAre(Ip("10.244.0.5"), Ip("fd00:244::5")));
  v1::NetworkPolicy np;
  np.set_namespace_("default");
  np.set_name("p");
  auto* block = np.add_ingress()->add_from()->mutable_ip_block();
  block->set_cidr("fd00:1::/64");
  block->add_except("fd00:1::/96");
  auto pol = ToPolicy(np);
  ASSERT_TRUE(pol.ok()) << pol.status();
  ASSERT_TRUE(pol->ingress[0].from[0].ip_block.has_value());
  EXPECT_EQ(pol->ingress[0].from[0].ip_block->cidr, Net("fd00:1::/64"));
  EXPECT_THAT(pol->ingress[0].from[0].ip_block->except, ElementsAre(Net("fd00:1::/96")));
}

}  // namespace
}  // namespace cninet::agent
