// End to end in network namespaces with real TCP: Contrail isolation rules (a)-(e), a
// NetworkPolicy admitting only role=frontend on port 80 (over IPv4 and over IPv6), host-originated
// traffic, and a policy change applying to new connections right after PolicyTable::Apply()
// returns.
//
// Topology (all namespaces created by the test; the datapath runs in this process, unpinned):
//   pods (dual-stack: each 10.244.1.x/32 and fd00:244:1::x/128, default routes via 10.244.1.1
//   and fd00:244:1::1 on its veth) --veth-- [node]
//     iso/i1 .21  iso/i2 .22   (namespace iso, isolated)
//     iso2/j1 .23              (namespace iso2, isolated)
//     other/o1 .10             (role=frontend, namespace without policy)
//     web/api .31 (role=api)  web/fe .32 (role=frontend)  web/be .33 (role=backend)
//   services: 10.96.0.20:80 -> i1:8080, 10.96.0.21:80 -> o1:8080, 10.96.0.22:80 -> j1:8080
// The node attaches from-pod (tc ingress) and to-pod (tc egress) to every pod veth
// (Datapath::AttachPod). The policy world is given to dp.policy() as an agent would.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/line_server.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using ::cninet::testing::CommandResult;
using ::cninet::testing::ScopedNetns;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr char kI1[] = "10.244.1.21", kI2[] = "10.244.1.22", kJ1[] = "10.244.1.23",
               kO1[] = "10.244.1.10", kApi[] = "10.244.1.31", kFe[] = "10.244.1.32",
               kBe[] = "10.244.1.33";
constexpr char kVipIso[] = "10.96.0.20", kVipOther[] = "10.96.0.21", kVipIso2[] = "10.96.0.22";
// How long a connection attempt may take before it counts as refused (a dropped SYN gets no
// answer at all). Allowed connections answer within milliseconds here.
constexpr auto kDeniedAfter = std::chrono::milliseconds(800);
constexpr auto kAllowedWithin = std::chrono::seconds(5);

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }

// The IPv6 address of a pod: fd00:244:1:: plus the last octet of its IPv4 address.
std::string V6(std::string_view v4) { return StrCat("fd00:244:1::", v4.substr(v4.rfind('.') + 1)); }

// An owned socket.
struct Sock {
  int fd = -1;
  Sock() = default;
  Sock(Sock&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Sock& operator=(Sock&& o) noexcept {
    if (fd >= 0) close(fd);
    fd = std::exchange(o.fd, -1);
    return *this;
  }
  ~Sock() {
    if (fd >= 0) close(fd);
  }
};

// The shared line server ("NAME PEER LINE") on 0.0.0.0 or, with `v6`, on ::; failing to listen
// fails the test.
struct Server : ::cninet::testing::LineServer {
  Server(const std::string& netns_path, uint16_t port, std::string name, bool v6 = false)
      : LineServer(::cninet::testing::LineServerOptions{.netns_path = netns_path,
                                                        .address = v6 ? "::" : "0.0.0.0",
                                                        .port = port,
                                                        .name = std::move(name)}) {
    EXPECT_TRUE(status().ok()) << status();
  }
};

// Connects from inside `netns_path` within `timeout` (DeadlineExceeded when nothing answers).
absl::StatusOr<Sock> Connect(const std::string& netns_path, const std::string& ip, uint16_t port,
                             std::chrono::milliseconds timeout) {
  Sock s;
  absl::Status st = RunInNetns(netns_path, [&]() -> absl::Status {
    auto [a, alen] = ::cninet::testing::SockAddr(ip, port);
    s.fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (connect(s.fd, reinterpret_cast<sockaddr*>(&a), alen) != 0 && errno != EINPROGRESS)
      return absl::UnavailableError(StrCat("connect: ", strerror(errno)));
    pollfd p{s.fd, POLLOUT, 0};
    int n = poll(&p, 1, static_cast<int>(timeout.count()));
    if (n == 0) return absl::DeadlineExceededError("no answer (SYN dropped?)");
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return absl::UnavailableError(StrCat("connect: ", strerror(err)));
    fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{5, 0};
    setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return s;
}

// Sends a line and returns the reply line.
absl::StatusOr<std::string> Ask(const Sock& s, const std::string& line) {
  std::string msg = line + "\n";
  if (write(s.fd, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size()))
    return absl::UnavailableError(StrCat("write: ", strerror(errno)));
  std::string got;
  char c;
  while (got.empty() || got.back() != '\n') {
    ssize_t n = read(s.fd, &c, 1);
    if (n <= 0) return absl::UnavailableError("no reply");
    got.push_back(c);
  }
  got.pop_back();
  return got;
}

PodInfo Pod(std::string ns, std::string name, std::string_view ip, Labels labels) {
  PodInfo p;
  p.namespace_name = std::move(ns);
  p.name = std::move(name);
  p.addresses = {Ip(ip), Ip(V6(ip))};
  p.labels = std::move(labels);
  p.local = true;
  return p;
}

class PolicyE2eTest : public ::testing::Test {
 protected:
  struct PodNs {
    std::string name;
    std::string ip;
    std::string host_if;
    std::unique_ptr<ScopedNetns> ns;
  };

  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    Must(
        node_.Exec("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                   "net.ipv4.conf.default.rp_filter=0 net.ipv6.conf.all.forwarding=1 "
                   // No DAD on the veths' link-local addresses: a tentative one holds the first
                   // neighbour resolution (and the first SYN) for a second.
                   "net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0"));
    DatapathConfig cfg;
    cfg.pin_maps = false;
    cfg.cluster_cidrs = {*cni::IPPrefix::Parse("10.244.0.0/16"),
                         *cni::IPPrefix::Parse("fd00:244::/48")};
    cfg.node_addresses = {Ip("192.168.77.1"), Ip("fd00:77::1")};
    cfg.map_sizes.conntrack = 4096;
    cfg.map_sizes.nat = 1024;
    cfg.map_sizes.services = 64;
    cfg.map_sizes.service_slots = 64;
    cfg.map_sizes.backends = 256;
    cfg.map_sizes.affinity = 64;
    cfg.map_sizes.endpoints = 64;
    auto dp = Datapath::Create(cfg);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    for (auto [name, ip] : std::vector<std::pair<std::string, std::string>>{{"i1", kI1},
                                                                            {"i2", kI2},
                                                                            {"j1", kJ1},
                                                                            {"o1", kO1},
                                                                            {"api", kApi},
                                                                            {"fe", kFe},
                                                                            {"be", kBe}}) {
      AddPod(name, ip);
    }
    AddService(1, kVipIso, kI1);
    AddService(2, kVipOther, kO1);
    AddService(3, kVipIso2, kJ1);
    ASSERT_TRUE(dp_->policy().Replace(World()).ok());
    auto r = dp_->policy().Apply();
    ASSERT_TRUE(r.ok()) << r.status();
  }

  static PolicySnapshot World() {
    PolicySnapshot s;
    s.namespaces = {NamespaceInfo{"iso", {}, true}, NamespaceInfo{"iso2", {}, true},
                    NamespaceInfo{"other", {}, false}, NamespaceInfo{"web", {}, false}};
    s.pods = {Pod("iso", "i1", kI1, {{"app", "db"}}),
              Pod("iso", "i2", kI2, {{"app", "app"}}),
              Pod("iso2", "j1", kJ1, {{"app", "db"}}),
              Pod("other", "o1", kO1, {{"role", "frontend"}}),
              Pod("web", "api", kApi, {{"role", "api"}}),
              Pod("web", "fe", kFe, {{"role", "frontend"}}),
              Pod("web", "be", kBe, {{"role", "backend"}})};
    return s;
  }

  static NetworkPolicy FrontendOnPort80() {
    NetworkPolicy p;
    p.namespace_name = "web";
    p.name = "api-from-frontend";
    p.pod_selector.match_labels = {{"role", "api"}};
    PolicyPeer fe;
    fe.pod_selector = LabelSelector{{{"role", "frontend"}}, {}};
    p.ingress = {IngressRule{{fe}, {PolicyPort{PolicyProtocol::kTcp, 80, 0}}}};
    return p;
  }

  void Must(const CommandResult& r) { ASSERT_TRUE(r.ok()) << r.out << r.err; }

  void AddPod(const std::string& name, const std::string& ip) {
    PodNs p;
    p.name = name;
    p.ip = ip;
    p.host_if = StrCat("hp", name);
    p.ns = std::make_unique<ScopedNetns>(StrCat("pp", name));
    Must(node_.Exec(StrCat("ip link add ", p.host_if, " type veth peer name eth0 netns ",
                           p.ns->name(), " && ip addr add 10.244.1.1/32 dev ", p.host_if,
                           " && ip -6 addr add fd00:244:1::1/128 dev ", p.host_if,
                           " nodad && ip link set ", p.host_if, " up && ip route add ", ip,
                           "/32 dev ", p.host_if, " && ip -6 route add ", V6(ip), "/128 dev ",
                           p.host_if)));
    Must(p.ns->Exec(StrCat("ip addr add ", ip, "/32 dev eth0 && ip -6 addr add ", V6(ip),
                           "/128 dev eth0 nodad && ip link set eth0 up && ip route add 10.244.1.1 "
                           "dev eth0 && ip route add default via 10.244.1.1 && ip -6 route add "
                           "fd00:244:1::1 dev eth0 && ip -6 route add default via fd00:244:1::1")));
    absl::Status s = RunInNetns(node_.path(), [&]() -> absl::Status {
      auto a = dp_->AttachPod(p.host_if);
      if (!a.ok()) return a.status();
      attachments_.push_back(std::move(*a));
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << s;
    pods_[name] = std::move(p);
  }

  void AddService(uint32_t id, const std::string& vip, const std::string& backend) {
    datapath::Service s;
    s.id = id;
    s.frontends = {Frontend{Ip(vip), 80, Protocol::kTcp, FrontendKind::kClusterIP}};
    s.backends = {Backend{Ip(backend), 8080}};
    s.maglev_size = 251;
    ASSERT_TRUE(dp_->services().Upsert(s).ok());
  }

  std::string NsOf(const std::string& pod) { return pods_.at(pod).ns->path(); }

  // A full exchange from `pod` to ip:port; the server's answer line, or the failure.
  absl::StatusOr<std::string> Talk(const std::string& from_ns, const std::string& ip, uint16_t port,
                                   std::chrono::milliseconds timeout = kAllowedWithin) {
    auto c = Connect(from_ns, ip, port, timeout);
    if (!c.ok()) return c.status();
    return Ask(*c, "hello");
  }
  // Expects pod -> ip:port to work; returns the server's answer.
  std::string ExpectReach(const std::string& pod, const std::string& ip, uint16_t port) {
    auto r = Talk(NsOf(pod), ip, port);
    EXPECT_TRUE(r.ok()) << pod << " -> " << ip << ":" << port << ": " << r.status();
    return r.ok() ? *r : "";
  }
  // Expects pod -> ip:port to be dropped, counted under `reason`.
  void ExpectBlocked(const std::string& pod, const std::string& ip, uint16_t port,
                     uint32_t reason) {
    uint64_t before = *dp_->counters().Packets(reason);
    auto r = Talk(NsOf(pod), ip, port, kDeniedAfter);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
        << pod << " -> " << ip << ":" << port
        << " should be dropped: " << (r.ok() ? *r : r.status().ToString());
    EXPECT_GE(*dp_->counters().Packets(reason), before + 1)
        << "the SYN was not dropped by the policy (" << ReasonName(reason) << ")";
  }

  uint64_t Counter(const std::string& ip, const std::string& rule) {
    auto c = dp_->policy().ReadCounters();
    EXPECT_TRUE(c.ok());
    uint64_t n = 0;
    if (c.ok()) {
      for (const auto& x : *c)
        if (x.endpoint.ToString() == ip && x.rule == rule) n += x.packets;
    }
    return n;
  }

  // Declaration order = reverse destruction order: attachments go before the namespaces.
  ScopedNetns node_{"ppnode"};
  std::map<std::string, PodNs> pods_;
  std::unique_ptr<Datapath> dp_;
  std::vector<PodAttachment> attachments_;
};

TEST_F(PolicyE2eTest, IsolationA_PodsOfAnIsolatedNamespaceReachEachOther) {
  Server s1(NsOf("i1"), 8080, "I1"), s2(NsOf("i2"), 8080, "I2");
  EXPECT_THAT(ExpectReach("i2", kI1, 8080), HasSubstr(StrCat("I1 ", kI2, " hello")));
  EXPECT_THAT(ExpectReach("i1", kI2, 8080), HasSubstr(StrCat("I2 ", kI1, " hello")));
  EXPECT_EQ(Counter(kI1, "isolation of namespace iso"), 1u);
}

TEST_F(PolicyE2eTest, IsolationB_OtherNamespacesCannotReachIsolatedPodsDirectly) {
  Server s1(NsOf("i1"), 8080, "I1");
  ExpectBlocked("o1", kI1, 8080, CN_R_DROP_ISOLATED);
  ExpectBlocked("fe", kI1, 8080, CN_R_DROP_ISOLATED);
  ExpectBlocked("j1", kI1, 8080, CN_R_DROP_ISOLATED);  // another isolated namespace
  EXPECT_GE(Counter(kI1, "denied"), 3u);
}

TEST_F(PolicyE2eTest, IsolationC_IsolatedPodsReachPodsOfOtherNamespaces) {
  Server o(NsOf("o1"), 8080, "O1"), be(NsOf("be"), 8080, "BE");
  EXPECT_THAT(ExpectReach("i1", kO1, 8080), HasSubstr(StrCat("O1 ", kI1, " hello")));
  EXPECT_THAT(ExpectReach("i2", kBe, 8080), HasSubstr(StrCat("BE ", kI2, " hello")));
  // The replies entered the isolated pods through conntrack, not through a rule.
  EXPECT_EQ(*dp_->counters().Packets(CN_R_DROP_ISOLATED), 0u);
}

TEST_F(PolicyE2eTest, IsolationD_IsolatedPodsReachEveryService) {
  Server o(NsOf("o1"), 8080, "O1"), j(NsOf("j1"), 8080, "J1"), i(NsOf("i1"), 8080, "I1");
  // A service backed by a pod of a namespace without policy...
  EXPECT_THAT(ExpectReach("i2", kVipOther, 80), HasSubstr(StrCat("O1 ", kI2, " hello")));
  // ... by a pod of another isolated namespace (not reachable directly) ...
  EXPECT_THAT(ExpectReach("i2", kVipIso2, 80), HasSubstr(StrCat("J1 ", kI2, " hello")));
  ExpectBlocked("i2", kJ1, 8080, CN_R_DROP_ISOLATED);
  // ... and by a pod of its own namespace.
  EXPECT_THAT(ExpectReach("i2", kVipIso, 80), HasSubstr(StrCat("I1 ", kI2, " hello")));
}

TEST_F(PolicyE2eTest, IsolationE_OtherNamespacesReachIsolatedPodsThroughAClusterIp) {
  Server i(NsOf("i1"), 8080, "I1");
  // The backend sees the real client (no SNAT): the policy check after DNAT knew the flow came
  // through the service.
  EXPECT_THAT(ExpectReach("o1", kVipIso, 80), HasSubstr(StrCat("I1 ", kO1, " hello")));
  EXPECT_THAT(ExpectReach("fe", kVipIso, 80), HasSubstr(StrCat("I1 ", kFe, " hello")));
  EXPECT_EQ(Counter(kI1, "via service"), 2u);
  ExpectBlocked("o1", kI1, 8080, CN_R_DROP_ISOLATED);
}

TEST_F(PolicyE2eTest, NetworkPolicyAdmitsExactlyFrontendOnPort80) {
  Server web(NsOf("api"), 80, "API80"), alt(NsOf("api"), 8080, "API8080");
  // Before the policy everything reaches the api.
  ExpectReach("be", kApi, 8080);
  ASSERT_TRUE(dp_->policy().UpsertPolicy(FrontendOnPort80()).ok());
  ASSERT_TRUE(dp_->policy().Apply().ok());
  EXPECT_THAT(ExpectReach("fe", kApi, 80), HasSubstr(StrCat("API80 ", kFe, " hello")));
  ExpectBlocked("fe", kApi, 8080, CN_R_DROP_POLICY);  // right source, wrong port
  ExpectBlocked("be", kApi, 80, CN_R_DROP_POLICY);    // wrong label
  ExpectBlocked("o1", kApi, 80, CN_R_DROP_POLICY);    // role=frontend in another namespace
  ExpectBlocked("i1", kApi, 80, CN_R_DROP_POLICY);
  EXPECT_EQ(Counter(kApi, "policy web/api-from-frontend ingress[0]"), 1u);
  EXPECT_GE(Counter(kApi, "denied"), 4u);
  // The node itself (kubelet probes) is never filtered.
  auto probe = Talk(node_.path(), kApi, 8080);
  EXPECT_TRUE(probe.ok()) << probe.status();
  EXPECT_GE(Counter(kApi, "from host"), 1u);  // every host packet is counted
}

// The same policy over IPv6: each family of the api pod is its own endpoint with its own
// counters, and the IPv6 frontend is the one peer admitted.
TEST_F(PolicyE2eTest, Ipv6NetworkPolicyAdmitsExactlyFrontendOnPort80) {
  Server web(NsOf("api"), 80, "API80", /*v6=*/true), alt(NsOf("api"), 8080, "API8080", true);
  const std::string api = V6(kApi);
  ExpectReach("be", api, 8080);
  ASSERT_TRUE(dp_->policy().UpsertPolicy(FrontendOnPort80()).ok());
  ASSERT_TRUE(dp_->policy().Apply().ok());
  EXPECT_THAT(ExpectReach("fe", api, 80), HasSubstr(StrCat("API80 ", V6(kFe), " hello")));
  ExpectBlocked("fe", api, 8080, CN_R_DROP_POLICY);  // right source, wrong port
  ExpectBlocked("be", api, 80, CN_R_DROP_POLICY);    // wrong label
  ExpectBlocked("o1", api, 80, CN_R_DROP_POLICY);    // role=frontend in another namespace
  EXPECT_EQ(Counter(api, "policy web/api-from-frontend ingress[0]"), 1u);
  EXPECT_GE(Counter(api, "denied"), 3u);
  EXPECT_EQ(Counter(kApi, "denied"), 0u) << "the IPv4 endpoint counts apart";
  auto probe = Talk(node_.path(), api, 8080);  // the node itself is never filtered
  EXPECT_TRUE(probe.ok()) << probe.status();
  EXPECT_GE(Counter(api, "from host"), 1u);
}

TEST_F(PolicyE2eTest, Ipv6IsolationFollowsTheSameRules) {
  Server i(NsOf("i1"), 8080, "I1", /*v6=*/true);
  EXPECT_THAT(ExpectReach("i2", V6(kI1), 8080), HasSubstr(StrCat("I1 ", V6(kI2), " hello")));
  EXPECT_EQ(Counter(V6(kI1), "isolation of namespace iso"), 1u) << "the SYN, once";
  ExpectBlocked("o1", V6(kI1), 8080, CN_R_DROP_ISOLATED);
}

TEST_F(PolicyE2eTest, HostOriginatedTrafficReachesIsolatedPods) {
  Server i(NsOf("i1"), 8080, "I1");
  auto probe = Talk(node_.path(), kI1, 8080);
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_THAT(*probe, HasSubstr("I1 10.244.1.1 hello"));
  EXPECT_GE(*dp_->counters().Packets(CN_R_POLICY_HOST), 1u);
}

TEST_F(PolicyE2eTest, PolicyChangesApplyToNewConnectionsRightAfterApply) {
  Server web(NsOf("api"), 80, "API80");
  ASSERT_TRUE(dp_->policy().UpsertPolicy(FrontendOnPort80()).ok());
  ASSERT_TRUE(dp_->policy().Apply().ok());
  auto open = Connect(NsOf("fe"), kApi, 80, kAllowedWithin);
  ASSERT_TRUE(open.ok()) << open.status();
  ASSERT_TRUE(Ask(*open, "first").ok());

  // Deny everything: measured from the PolicyTable call (the agent's store write comes later).
  NetworkPolicy deny = FrontendOnPort80();
  deny.ingress.clear();
  auto t0 = Clock::now();
  ASSERT_TRUE(dp_->policy().UpsertPolicy(deny).ok());
  auto applied = dp_->policy().Apply();
  auto apply_done = Clock::now();
  ASSERT_TRUE(applied.ok()) << applied.status();
  // The first new connection after Apply() returns is already refused ...
  ExpectBlocked("fe", kApi, 80, CN_R_DROP_POLICY);
  // ... while the established one continues (conntrack admits it).
  auto again = Ask(*open, "still there");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(*again, HasSubstr("still there"));

  // Allow again: the first new connection after Apply() returns gets through.
  auto t1 = Clock::now();
  ASSERT_TRUE(dp_->policy().UpsertPolicy(FrontendOnPort80()).ok());
  ASSERT_TRUE(dp_->policy().Apply().ok());
  auto t2 = Clock::now();
  auto c = Connect(NsOf("fe"), kApi, 80, kAllowedWithin);
  auto t3 = Clock::now();
  ASSERT_TRUE(c.ok()) << "first connection after re-allowing: " << c.status();
  ASSERT_TRUE(Ask(*c, "back").ok());
  auto us = [](auto d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); };
  // Reported, not asserted (wall clock): Apply() latency and call-to-connected time.
  RecordProperty("deny_apply_us", static_cast<int>(us(apply_done - t0)));
  RecordProperty("allow_apply_us", static_cast<int>(us(t2 - t1)));
  RecordProperty("allow_call_to_connected_us", static_cast<int>(us(t3 - t1)));
  std::printf(
      "policy change: deny Apply() %lld us; allow Apply() %lld us; allow call -> new "
      "connection established %lld us\n",
      static_cast<long long>(us(apply_done - t0)), static_cast<long long>(us(t2 - t1)),
      static_cast<long long>(us(t3 - t1)));
}

}  // namespace
}  // namespace cninet::datapath::testing
