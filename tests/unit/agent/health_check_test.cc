// healthCheckNodePort: which services get one and their local endpoint counts (pure), and the
// server answering real HTTP over loopback in both families (no root needed).
#include "cninet/agent/health_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

v1::Service LocalSvc(const std::string& name, uint32_t hc_port) {
  v1::Service s;
  s.set_namespace_("default");
  s.set_name(name);
  s.set_type(v1::Service::NODE_PORT);
  s.set_external_traffic_policy(v1::Service::LOCAL);
  s.set_health_check_node_port(hc_port);
  return s;
}

v1::Endpoints EpsOn(const std::string& name, std::vector<std::pair<std::string, std::string>> b) {
  v1::Endpoints e;
  e.set_namespace_("default");
  e.set_name(name);
  for (const char* port : {"http", "https"}) {
    auto* p = e.add_ports();
    p->set_port_name(port);
    for (const auto& [ip, node] : b) {
      auto* x = p->add_backends();
      x->set_ip(ip);
      x->set_port(8080);
      x->set_node(node);
    }
  }
  return e;
}

TEST(PlanHealthChecksTest, CountsLocalEndpointAddressesOnce) {
  v1::Service a = LocalSvc("a", 31000), b = LocalSvc("b", 31001), c = LocalSvc("c", 31002);
  v1::Service cluster = LocalSvc("cluster", 31003);
  cluster.set_external_traffic_policy(v1::Service::CLUSTER);
  v1::Endpoints ea = EpsOn("a", {{"10.244.1.4", "n1"}, {"fd00::4", "n1"}, {"10.244.2.5", "n2"}});
  v1::Endpoints eb = EpsOn("b", {{"10.244.2.6", "n2"}});
  std::vector<const v1::Service*> svcs{&a, &b, &c, &cluster};
  std::vector<const v1::Endpoints*> eps{&ea, &eb};
  auto checks = PlanHealthChecks(svcs, eps, "n1");
  ASSERT_EQ(checks.size(), 3u) << "CLUSTER policy: no health check";
  EXPECT_EQ(checks[0], (HealthCheck{31000, "default", "a", 2}));  // two families, two ports
  EXPECT_EQ(checks[1], (HealthCheck{31001, "default", "b", 0}));
  EXPECT_EQ(checks[2], (HealthCheck{31002, "default", "c", 0}));  // no Endpoints object
  EXPECT_EQ(HealthCheckBody(checks[0]),
            R"({"service":{"namespace":"default","name":"a"},"localEndpoints":2,)"
            R"("serviceProxyHealthy":true})");
  // Terminating local endpoints count only when the service has no ready endpoint left.
  for (auto& p : *ea.mutable_ports()) {
    p.mutable_backends(0)->set_terminating(true);
    p.mutable_backends(0)->set_serving(true);
  }
  checks = PlanHealthChecks(svcs, eps, "n1");
  EXPECT_EQ(checks[0].local_endpoints, 1u);
  for (auto& p : *ea.mutable_ports()) {
    p.mutable_backends(1)->set_ready(false);
    p.mutable_backends(2)->set_ready(false);
  }
  checks = PlanHealthChecks(svcs, eps, "n1");
  EXPECT_EQ(checks[0].local_endpoints, 1u) << "the serving terminating one";
}

// A port nothing listens on (bound to 0 and released).
uint16_t FreePort() {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin6_port);
}

// GET / over loopback of `family`; the whole reply.
std::string Get(int family, uint16_t port) {
  int fd = socket(family, SOCK_STREAM, 0);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  }
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    (void)!write(fd, req.data(), req.size());
    char buf[512];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

TEST(HealthCheckServerTest, AnswersTwoHundredWithLocalEndpointsAndFiveOhThreeWithout) {
  HealthCheckServer server;
  uint16_t port = FreePort();
  ASSERT_TRUE(server.Update({HealthCheck{port, "default", "web", 1}}).ok());
  EXPECT_THAT(server.ports(), ElementsAre(port));
  for (int family : {AF_INET, AF_INET6}) {
    std::string r = Get(family, port);
    EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(r, HasSubstr("\"localEndpoints\":1"));
  }
  ASSERT_TRUE(server.Update({HealthCheck{port, "default", "web", 0}}).ok());
  EXPECT_THAT(Get(AF_INET6, port), StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  // A port in use is reported; the others are served.
  uint16_t other = FreePort();
  int squat = socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(other);
  ASSERT_EQ(bind(squat, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(squat, 1), 0);
  absl::Status s =
      server.Update({HealthCheck{port, "default", "web", 2}, HealthCheck{other, "a", "b", 1}});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(std::to_string(other)));
  EXPECT_THAT(Get(AF_INET, port), HasSubstr("\"localEndpoints\":2"));
  close(squat);
  // Gone from the list: the port is closed.
  ASSERT_TRUE(server.Update({}).ok());
  EXPECT_THAT(server.ports(), IsEmpty());
  EXPECT_EQ(Get(AF_INET, port), "");
}

}  // namespace
}  // namespace cninet::agent
