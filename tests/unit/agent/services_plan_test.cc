// PlanServices: Services + Endpoints -> datapath services (frontends per kind, backends by port
// name, affinity, skipped input), and the normalization used to detect changes.
#include "cninet/agent/services.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/maglev.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::agent {
namespace {

namespace dp = ::cninet::datapath;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

cni::IPAddress Ip(const char* s) { return *cni::IPAddress::Parse(s); }

v1::Service Svc(const std::string& name, const std::string& ip, uint32_t port,
                const std::string& port_name = "") {
  v1::Service s;
  s.set_namespace_("default");
  s.set_name(name);
  s.set_cluster_ip(ip);
  auto* p = s.add_ports();
  p->set_name(port_name);
  p->set_port(port);
  return s;
}

v1::Endpoints Eps(const std::string& name, const std::string& port_name,
                  std::vector<std::pair<std::string, uint32_t>> backends) {
  v1::Endpoints e;
  e.set_namespace_("default");
  e.set_name(name);
  auto* p = e.add_ports();
  p->set_port_name(port_name);
  for (const auto& [ip, port] : backends) {
    auto* b = p->add_backends();
    b->set_ip(ip);
    b->set_port(port);
  }
  return e;
}

std::string Warnings(const std::vector<PlanWarning>& w) {
  std::string out;
  for (const auto& x : w) out += x.object + ": " + x.message + "\n";
  return out;
}

TEST(PlanServicesTest, ClusterIpServiceWithItsBackends) {
  std::vector<PlanWarning> w;
  auto planned = PlanServices(
      std::vector<v1::Service>{Svc("web", "10.96.0.10", 80)},
      std::vector<v1::Endpoints>{Eps("web", "", {{"10.244.2.5", 8080}, {"10.244.1.4", 8080}})}, {},
      &w);
  EXPECT_THAT(w, IsEmpty()) << Warnings(w);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].key.ToString(), "default/web");
  const dp::Service& s = planned[0].service;
  ASSERT_EQ(s.frontends.size(), 1u);
  EXPECT_EQ(s.frontends[0].address, Ip("10.96.0.10"));
  EXPECT_EQ(s.frontends[0].port, 80);
  EXPECT_EQ(s.frontends[0].kind, dp::FrontendKind::kClusterIP);
  EXPECT_EQ(s.frontends[0].protocol, dp::Protocol::kTcp);
  // Sorted: normalized for comparison.
  EXPECT_THAT(s.backends, ElementsAre(dp::Backend{Ip("10.244.1.4"), 8080},
                                      dp::Backend{Ip("10.244.2.5"), 8080}));
  EXPECT_EQ(s.algorithm, dp::LbAlgorithm::kMaglev);
  EXPECT_EQ(s.maglev_size, dp::kMaglevAutoSize);  // the datapath sizes it (MaglevSizeFor)
  EXPECT_EQ(s.affinity_timeout.count(), 0);
}

TEST(PlanServicesTest, NodePortExternalIpsAffinityAndNamedPorts) {
  v1::Service s = Svc("np", "10.96.0.11", 80, "http");
  s.set_type(v1::Service::NODE_PORT);
  s.mutable_ports(0)->set_node_port(30080);
  auto* dns = s.add_ports();
  dns->set_name("dns");
  dns->set_port(53);
  dns->set_protocol(v1::UDP);
  s.add_external_ips("192.0.2.10");
  s.set_session_affinity(v1::Service::CLIENT_IP);
  v1::Endpoints e = Eps("np", "http", {{"10.244.1.4", 8080}});
  auto* p = e.add_ports();
  p->set_port_name("dns");
  p->set_protocol(v1::UDP);
  auto* b = p->add_backends();
  b->set_ip("10.244.1.4");
  b->set_port(5353);
  std::vector<PlanWarning> w;
  auto planned = PlanServices(std::vector<v1::Service>{s}, std::vector<v1::Endpoints>{e}, {}, &w);
  EXPECT_THAT(w, IsEmpty()) << Warnings(w);
  ASSERT_EQ(planned.size(), 2u);
  EXPECT_EQ(planned[0].key.ToString(), "default/np:dns");
  EXPECT_EQ(planned[1].key.ToString(), "default/np:http");
  const dp::Service& dns_svc = planned[0].service;
  EXPECT_EQ(dns_svc.frontends.size(), 2u);  // ClusterIP + externalIP, no nodePort
  for (const auto& f : dns_svc.frontends) EXPECT_EQ(f.protocol, dp::Protocol::kUdp);
  EXPECT_THAT(dns_svc.backends, ElementsAre(dp::Backend{Ip("10.244.1.4"), 5353}));
  const dp::Service& http = planned[1].service;
  EXPECT_THAT(http.frontends, Contains(Field(&dp::Frontend::kind, dp::FrontendKind::kNodePort)));
  EXPECT_THAT(http.frontends, Contains(Field(&dp::Frontend::kind, dp::FrontendKind::kExternalIP)));
  EXPECT_EQ(http.frontends.size(), 3u);
  EXPECT_EQ(http.affinity_timeout.count(), 10800);  // Kubernetes' default
}

TEST(PlanServicesTest, TerminatingAndDuplicateBackendsAreLeftOut) {
  v1::Endpoints e =
      Eps("web", "", {{"10.244.1.4", 8080}, {"10.244.1.4", 8080}, {"10.244.1.5", 8080}});
  e.mutable_ports(0)->mutable_backends(2)->set_terminating(true);
  auto planned = PlanServices(std::vector<v1::Service>{Svc("web", "10.96.0.10", 80)},
                              std::vector<v1::Endpoints>{e}, {}, nullptr);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_THAT(planned[0].service.backends, ElementsAre(dp::Backend{Ip("10.244.1.4"), 8080}));
}

TEST(PlanServicesTest, ServiceWithoutEndpointsIsProgrammedWithoutBackends) {
  auto planned =
      PlanServices(std::vector<v1::Service>{Svc("web", "10.96.0.10", 80)}, {}, {}, nullptr);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_THAT(planned[0].service.backends, IsEmpty());
}

TEST(PlanServicesTest, UnusableInputIsSkippedWithWarnings) {
  v1::Service sctp = Svc("sctp", "10.96.0.12", 9000);
  sctp.mutable_ports(0)->set_protocol(v1::SCTP);
  v1::Service v6 = Svc("v6", "fd00::10", 80);
  v1::Service headless = Svc("headless", "", 80);
  v1::Service np = Svc("np", "10.96.0.13", 80);
  np.set_type(v1::Service::NODE_PORT);
  np.mutable_ports(0)->set_node_port(80);  // outside 30000-32767
  v1::Service clash_a = Svc("a-owner", "10.96.0.14", 80);
  v1::Service clash_b = Svc("b-clash", "10.96.0.14", 80);
  std::vector<PlanWarning> w;
  auto planned =
      PlanServices(std::vector<v1::Service>{sctp, v6, headless, np, clash_b, clash_a},
                   std::vector<v1::Endpoints>{Eps("np", "other", {{"10.244.1.4", 80}})}, {}, &w);
  std::string all = Warnings(w);
  EXPECT_THAT(all, HasSubstr("default/sctp: port 9000/SCTP"));
  EXPECT_THAT(all, Not(HasSubstr("default/v6")));  // IPv6 is planned (dual_stack_test.cc)
  EXPECT_THAT(all, HasSubstr("default/headless: port default/headless has no clusterIP"));
  EXPECT_THAT(all, HasSubstr("default/np: nodePort 80 is outside 30000-32767"));
  EXPECT_THAT(all,
              HasSubstr("default/b-clash: 10.96.0.14:80/tcp already belongs to default/a-owner"));
  // Programmed: a-owner, np (its ClusterIP, without backends: the port name does not match),
  // v6 (its own IPv6 service).
  ASSERT_EQ(planned.size(), 3u);
  EXPECT_EQ(planned[0].key.name, "a-owner");
  EXPECT_EQ(planned[1].key.name, "np");
  EXPECT_EQ(planned[2].key.ToString(), "default/v6@IPv6");
  EXPECT_EQ(planned[1].service.frontends.size(), 1u);
  EXPECT_THAT(planned[1].service.backends, IsEmpty());
}

TEST(PlanServicesTest, EndpointsWithAnotherProtocolGiveNoBackends) {
  v1::Endpoints e = Eps("web", "", {{"10.244.1.4", 8080}});
  e.mutable_ports(0)->set_protocol(v1::UDP);
  std::vector<PlanWarning> w;
  auto planned = PlanServices(std::vector<v1::Service>{Svc("web", "10.96.0.10", 80)},
                              std::vector<v1::Endpoints>{e}, {}, &w);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_THAT(planned[0].service.backends, IsEmpty());
  EXPECT_THAT(Warnings(w), HasSubstr("another protocol"));
}

// The agent leaves the size to the datapath (automatic: MaglevSizeFor, stable across small
// changes) unless the operator fixed one.
TEST(PlanServicesTest, MaglevTablesAreSizedByTheDatapathUnlessFixed) {
  std::vector<std::pair<std::string, uint32_t>> many;
  for (int i = 0; i < 30; ++i) many.push_back({StrCat("10.244.1.", i + 2), 8080});
  std::vector<v1::Service> svcs = {Svc("web", "10.96.0.10", 80)};
  std::vector<v1::Endpoints> eps = {Eps("web", "", many)};
  EXPECT_EQ(PlanServices(svcs, eps, {}, nullptr)[0].service.maglev_size, dp::kMaglevAutoSize);
  ServicePlanOptions fixed;
  fixed.maglev_size = 16381;
  EXPECT_EQ(PlanServices(svcs, eps, fixed, nullptr)[0].service.maglev_size, 16381u);
}

TEST(SameProgrammingTest, ComparesWhatTheDatapathStores) {
  dp::Service a;
  a.frontends = {{Ip("10.96.0.10"), 80, dp::Protocol::kTcp, dp::FrontendKind::kClusterIP}};
  a.backends = {{Ip("10.244.1.5"), 80}, {Ip("10.244.1.4"), 80}};
  dp::Service b = a;
  std::reverse(b.backends.begin(), b.backends.end());
  b.id = 7;
  Normalize(&a);
  Normalize(&b);
  EXPECT_TRUE(SameProgramming(a, b));  // order and id do not matter
  b.maglev_size = 251;
  EXPECT_FALSE(SameProgramming(a, b));
  b = a;
  b.backends.pop_back();
  EXPECT_FALSE(SameProgramming(a, b));
  // Without backends there is no Maglev table, so its size is irrelevant.
  dp::Service c = a, d = a;
  c.backends.clear();
  d.backends.clear();
  d.maglev_size = 251;
  EXPECT_TRUE(SameProgramming(c, d));
}

}  // namespace
}  // namespace cninet::agent

namespace cninet::agent {
namespace {

// Backends on nodes n1 (this node) and n2, with conditions.
v1::Endpoints NodeEps(const std::string& name) {
  v1::Endpoints e = Eps(name, "", {{"10.244.1.4", 8080}, {"10.244.2.5", 8080}});
  e.mutable_ports(0)->mutable_backends(0)->set_node("n1");
  e.mutable_ports(0)->mutable_backends(1)->set_node("n2");
  return e;
}

v1::Service NodePortSvc(const std::string& name) {
  v1::Service s = Svc(name, "10.96.0.20", 80);
  s.set_type(v1::Service::NODE_PORT);
  s.mutable_ports(0)->set_node_port(30080);
  s.add_external_ips("192.0.2.10");
  return s;
}

std::vector<PlannedService> PlanOnN1(const v1::Service& s, const v1::Endpoints& e,
                                     std::vector<PlanWarning>* w) {
  ServicePlanOptions o;
  o.node_name = "n1";
  return PlanServices(std::vector<v1::Service>{s}, std::vector<v1::Endpoints>{e}, o, w);
}

std::vector<dp::FrontendKind> Kinds(const dp::Service& s) {
  std::vector<dp::FrontendKind> out;
  for (const auto& f : s.frontends) out.push_back(f.kind);
  return out;
}

TEST(TrafficPolicyPlanTest, ExternalLocalSplitsTheExternalFrontendsOntoLocalBackends) {
  v1::Service s = NodePortSvc("web");
  s.set_external_traffic_policy(v1::Service::LOCAL);
  std::vector<PlanWarning> w;
  auto planned = PlanOnN1(s, NodeEps("web"), &w);
  EXPECT_THAT(w, IsEmpty()) << Warnings(w);
  ASSERT_EQ(planned.size(), 2u);
  EXPECT_EQ(planned[0].key.ToString(), "default/web");
  EXPECT_EQ(planned[1].key.ToString(), "default/web/external");
  // The ClusterIP: every endpoint, rejected when none.
  EXPECT_THAT(Kinds(planned[0].service), ElementsAre(dp::FrontendKind::kClusterIP));
  EXPECT_EQ(planned[0].service.backends.size(), 2u);
  EXPECT_TRUE(planned[0].service.reject_without_backends);
  // nodePort + externalIP: this node's endpoint only, dropped when none.
  EXPECT_THAT(Kinds(planned[1].service),
              ElementsAre(dp::FrontendKind::kExternalIP, dp::FrontendKind::kNodePort));
  EXPECT_THAT(planned[1].service.backends, ElementsAre(dp::Backend{Ip("10.244.1.4"), 8080}));
  EXPECT_FALSE(planned[1].service.reject_without_backends);
  // A node without local endpoints programs the external part without backends (drop).
  ServicePlanOptions o;
  o.node_name = "n3";
  auto n3 =
      PlanServices(std::vector<v1::Service>{s}, std::vector<v1::Endpoints>{NodeEps("web")}, o, &w);
  ASSERT_EQ(n3.size(), 2u);
  EXPECT_THAT(n3[1].service.backends, IsEmpty());
  EXPECT_THAT(dp::ToString(n3[1].service), HasSubstr("(none: drop)"));
}

TEST(TrafficPolicyPlanTest, InternalLocalKeepsTheClusterIpOnLocalBackends) {
  v1::Service s = NodePortSvc("web");
  s.set_internal_traffic_policy(v1::Service::LOCAL);
  std::vector<PlanWarning> w;
  auto planned = PlanOnN1(s, NodeEps("web"), &w);
  ASSERT_EQ(planned.size(), 2u);
  EXPECT_THAT(planned[0].service.backends, ElementsAre(dp::Backend{Ip("10.244.1.4"), 8080}));
  EXPECT_FALSE(planned[0].service.reject_without_backends);
  EXPECT_EQ(planned[1].service.backends.size(), 2u);
  // Both LOCAL: one datapath service again, on local backends.
  s.set_external_traffic_policy(v1::Service::LOCAL);
  planned = PlanOnN1(s, NodeEps("web"), &w);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].service.frontends.size(), 3u);
  EXPECT_THAT(planned[0].service.backends, ElementsAre(dp::Backend{Ip("10.244.1.4"), 8080}));
}

TEST(TrafficPolicyPlanTest, TerminatingEndpointsServeOnlyWhenNoneIsReady) {
  v1::Endpoints e = NodeEps("web");
  auto* term = e.mutable_ports(0)->mutable_backends(0);
  term->set_terminating(true);
  term->set_serving(true);
  std::vector<PlanWarning> w;
  auto planned = PlanOnN1(Svc("web", "10.96.0.20", 80), e, &w);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_THAT(planned[0].service.backends, ElementsAre(dp::Backend{Ip("10.244.2.5"), 8080}))
      << "a ready endpoint remains: the terminating one gets no new connections";
  // The ready one goes (not ready, not serving): the serving terminating one takes over.
  auto* other = e.mutable_ports(0)->mutable_backends(1);
  other->set_ready(false);
  planned = PlanOnN1(Svc("web", "10.96.0.20", 80), e, &w);
  EXPECT_THAT(planned[0].service.backends, ElementsAre(dp::Backend{Ip("10.244.1.4"), 8080}));
  // Terminating and no longer serving: nothing left (rejected).
  term->set_serving(false);
  planned = PlanOnN1(Svc("web", "10.96.0.20", 80), e, &w);
  EXPECT_THAT(planned[0].service.backends, IsEmpty());
  EXPECT_TRUE(planned[0].service.reject_without_backends);
  // Conditions default as Kubernetes': ready unless terminating, serving as ready.
  v1::Backend b;
  EXPECT_TRUE(BackendConditions::Of(b).ready);
  b.set_terminating(true);
  EXPECT_FALSE(BackendConditions::Of(b).ready);
  EXPECT_FALSE(BackendConditions::Of(b).serving);
}

TEST(TrafficPolicyPlanTest, LoadBalancerIpsAreExternalFrontendsAndOnePortServesTcpAndUdp) {
  v1::Service s = Svc("dns", "10.96.0.53", 53, "dns-udp");
  s.mutable_ports(0)->set_protocol(v1::UDP);
  auto* tcp = s.add_ports();
  tcp->set_name("dns-tcp");
  tcp->set_port(53);
  tcp->set_protocol(v1::TCP);
  s.set_type(v1::Service::LOAD_BALANCER);
  s.add_load_balancer_ips("198.51.100.53");
  v1::Endpoints e = Eps("dns", "dns-udp", {{"10.244.1.9", 5353}});
  e.mutable_ports(0)->set_protocol(v1::UDP);
  auto* te = e.add_ports();
  te->set_port_name("dns-tcp");
  te->set_protocol(v1::TCP);
  auto* tb = te->add_backends();
  tb->set_ip("10.244.1.9");
  tb->set_port(5353);
  std::vector<PlanWarning> w;
  auto planned = PlanServices(std::vector<v1::Service>{s}, std::vector<v1::Endpoints>{e}, {}, &w);
  EXPECT_THAT(w, IsEmpty()) << Warnings(w);
  ASSERT_EQ(planned.size(), 2u);
  for (const auto& p : planned) {
    SCOPED_TRACE(p.key.ToString());
    ASSERT_EQ(p.service.frontends.size(), 2u);
    EXPECT_EQ(p.service.frontends[1].address, Ip("198.51.100.53"));
    EXPECT_EQ(p.service.frontends[1].kind, dp::FrontendKind::kExternalIP);
    EXPECT_EQ(p.service.frontends[0].protocol,
              p.key.port == "dns-udp" ? dp::Protocol::kUdp : dp::Protocol::kTcp);
    EXPECT_EQ(p.service.backends.size(), 1u);
  }
  // Not a LOAD_BALANCER: the status addresses are not served.
  s.set_type(v1::Service::CLUSTER_IP);
  planned = PlanServices(std::vector<v1::Service>{s}, std::vector<v1::Endpoints>{e}, {}, &w);
  EXPECT_EQ(planned[0].service.frontends.size(), 1u);
}

}  // namespace
}  // namespace cninet::agent
