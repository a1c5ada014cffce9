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
  EXPECT_EQ(s.maglev_size, 251u);  // sized to 2 backends: the smallest table
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

TEST(PlanServicesTest, MaglevTablesAreSizedToTheBackendsUnlessFixed) {
  EXPECT_EQ(AdaptiveMaglevSize(0), 251u);
  EXPECT_EQ(AdaptiveMaglevSize(12), 251u);  // 20.9 slots per backend
  EXPECT_EQ(AdaptiveMaglevSize(13), 509u);
  EXPECT_EQ(AdaptiveMaglevSize(100), 2039u);
  EXPECT_EQ(AdaptiveMaglevSize(4095), 65521u);  // capped at the largest table
  for (size_t n : {1, 10, 51, 400, 3000}) {
    uint32_t m = AdaptiveMaglevSize(n);
    EXPECT_TRUE(dp::IsPrime(m)) << m;
    if (n <= 3276) {
      EXPECT_GE(m, 20 * n);
    }
  }
  std::vector<std::pair<std::string, uint32_t>> many;
  for (int i = 0; i < 30; ++i) many.push_back({StrCat("10.244.1.", i + 2), 8080});
  std::vector<v1::Service> svcs = {Svc("web", "10.96.0.10", 80)};
  std::vector<v1::Endpoints> eps = {Eps("web", "", many)};
  EXPECT_EQ(PlanServices(svcs, eps, {}, nullptr)[0].service.maglev_size, 1021u);
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
