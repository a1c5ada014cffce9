// Kubernetes sig-network Service e2e tests (test/e2e/network/service.go), mirrored with real TCP
// and UDP in network namespaces through the programs cninet-dp attaches, for both families. Each
// test is named after the upstream test it mirrors and runs once per family.
//
// Topology (all namespaces created by the test, dual-stack):
//   client (10.244.1.10, fd00:244::10) --veth-- [hc  node  hs] --veth-- self (10.244.1.30,
//                                               [            ]          fd00:244::30)
//                                               [up0 192.168.77.1, fd00:77::1] --veth-- outside
//                                               [hb1 hb2 hb3] --veth-- backends b1..b3
//                                               (10.244.1.41-43,
//                                                                      fd00:244::41-43)
// Services (cninet-dp service upsert):
//   10.96.0.20 / fd00:96::20 ports 80/tcp and 53/udp: no backends (rejected).
//   10.96.0.30 / fd00:96::30 80/tcp -> self:8080, 53/udp -> self:5353 (only the pod itself).
// Other cases program their own services (ids from 100, ClusterIPs 10.96.0.N / fd00:96::N,
// NodePorts from `outside` to 192.168.77.1 / fd00:77::1) on the backends b1..b3, which serve TCP
// and UDP as the case needs ("B1", "UB1", ...). The socket LB cases have cninet-dp attach the
// cgroup programs to a cgroup the test makes under /sys/fs/cgroup/unified (serving the node's
// namespace); the node's processes run in forked children that join it (or a child of it).
// Everything the test makes (namespaces, links, bpffs with the pins, cgroups, children) is removed
// also when a case fails.
//
// Through the agent only (tests/e2e/services/services_cluster_e2e_test.cc, the same cases on 3
// nodes with a real etcd): terminating and unready endpoints (the agent chooses the backends from
// the EndpointSlice conditions; the datapath only sees the result) and the healthCheckNodePort
// server (the agent's HTTP listener). externalTrafficPolicy and internalTrafficPolicy Local are
// covered here as the agent programs them: a frontend with only the node's local endpoints that
// drops new flows when it has none (--drop-when-empty).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/counters.h"
#include "cninet/datapath/datapath.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/line_server.h"
#include "testing/scoped_cgroup.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using ::cninet::testing::CommandResult;
using ::cninet::testing::LineServer;
using ::cninet::testing::LineServerOptions;
using ::cninet::testing::ScopedNetns;
using ::testing::HasSubstr;

std::string Tool() { return std::string(CNINET_TOOL_DIR) + "/cninet-dp"; }

// The addresses of one family's run.
struct Family {
  const char* name;
  int af;
  const char* client;       // client pod
  const char* self;         // pod behind the hairpin service
  const char* node;         // node address (the hairpin SNAT address)
  const char* empty_vip;    // service without endpoints
  const char* hairpin_vip;  // service whose only endpoint is `self`
  std::string Frontend(const std::string& vip, int port, const char* proto) const {
    std::string a = af == AF_INET6 ? std::string("[") + vip + "]" : vip;
    return "clusterip:" + a + ":" + std::to_string(port) + "/" + proto;
  }
  std::string Endpoint(const std::string& ip, int port) const {
    std::string a = af == AF_INET6 ? std::string("[") + ip + "]" : ip;
    return a + ":" + std::to_string(port);
  }
  // Pod address 10.244.1.N / fd00:244::N.
  std::string Pod(int n) const {
    return (af == AF_INET ? "10.244.1." : "fd00:244::") + std::to_string(n);
  }
  // ClusterIP 10.96.0.N / fd00:96::N.
  std::string Vip(int n) const {
    return (af == AF_INET ? "10.96.0." : "fd00:96::") + std::to_string(n);
  }
  // The wildcard address a server binds.
  const char* Any() const { return af == AF_INET ? "0.0.0.0" : "::"; }
};

// gtest prints the family's name (not the struct's bytes) in test names and failures.
void PrintTo(const Family& f, std::ostream* os) { *os << f.name; }

// The backend pods b1..b3 of the cases that program their own services: pod addresses
// 10.244.1.41-43 / fd00:244::41-43, host interfaces hb1..hb3.
constexpr int kBackends = 3;
constexpr int kFirstBackendHost = 41;

const Family kV4{"IPv4",         AF_INET,      "10.244.1.10", "10.244.1.30",
                 "192.168.77.1", "10.96.0.20", "10.96.0.30"};
const Family kV6{"IPv6",       AF_INET6,      "fd00:244::10", "fd00:244::30",
                 "fd00:77::1", "fd00:96::20", "fd00:96::30"};

sockaddr_storage SockAddr(int af, const char* ip, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (af == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    *len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    *len = sizeof(sockaddr_in6);
  }
  return ss;
}

std::string PeerText(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
  return std::string("[") + buf + "]:" + std::to_string(ntohs(a->sin6_port));
}

// The shared UDP line server ("NAME PEER DATA"); failing to bind fails the test.
struct UdpServer : ::cninet::testing::UdpLineServer {
  UdpServer(const std::string& netns_path, int af, uint16_t port, std::string name)
      : UdpLineServer(netns_path, af, port, std::move(name)) {
    EXPECT_TRUE(status().ok()) << status();
  }
};

// What a client saw: the errno of its failure (0 on success), the reply, how long it took.
struct Outcome {
  int err = 0;
  std::string reply;
  std::string local;  // the client's own address:port
  std::chrono::milliseconds took{0};
};

std::string LocalText(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return PeerText(a);
}

// A TCP connect from inside `netns_path` to ip:port, then one line sent and its reply read.
// `timeout` bounds the connect, the write and the read.
Outcome TcpAsk(const std::string& netns_path, int af, const char* ip, uint16_t port,
               const std::string& line,
               std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  Outcome o;
  absl::Status st = RunInNetns(netns_path, [&]() -> absl::Status {
    int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    socklen_t len = 0;
    sockaddr_storage a = SockAddr(af, ip, port, &len);
    auto start = std::chrono::steady_clock::now();
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
      o.err = errno;
    } else {
      o.local = LocalText(fd);
      std::string msg = line + "\n";
      if (write(fd, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) o.err = errno;
      char ch;
      while (o.err == 0 && (o.reply.empty() || o.reply.back() != '\n')) {
        ssize_t n = read(fd, &ch, 1);
        if (n <= 0) {
          o.err = n == 0 ? EPIPE : errno;
          break;
        }
        o.reply.push_back(ch);
      }
      if (!o.reply.empty() && o.reply.back() == '\n') o.reply.pop_back();
    }
    o.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    close(fd);
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  return o;
}

// Sends one datagram on connected UDP socket `fd` and waits for one reply (the socket's
// receive timeout): errno, the socket's own address and the reply go to `o`.
void UdpExchange(int fd, const std::string& data, Outcome* o) {
  char buf[512];
  if (send(fd, data.data(), data.size(), 0) < 0) {
    o->err = errno;
    return;
  }
  o->local = LocalText(fd);
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  if (n < 0)
    o->err = errno;
  else
    o->reply.assign(buf, n);
}

// A datagram from a new UDP socket connected to ip:port, then one recv() (3 s timeout).
Outcome UdpAsk(const std::string& netns_path, int af, const char* ip, uint16_t port,
               const std::string& data) {
  Outcome o;
  absl::Status st = RunInNetns(netns_path, [&]() -> absl::Status {
    int fd = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    socklen_t len = 0;
    sockaddr_storage a = SockAddr(af, ip, port, &len);
    auto start = std::chrono::steady_clock::now();
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0)
      o.err = errno;
    else
      UdpExchange(fd, data, &o);
    o.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    close(fd);
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  return o;
}

// One UDP socket connected to ip:port from inside `netns_path`, kept for several datagrams (the
// same 5-tuple every time).
class UdpClient {
 public:
  UdpClient(const std::string& netns_path, int af, const std::string& ip, uint16_t port) {
    absl::Status st = RunInNetns(netns_path, [&]() -> absl::Status {
      fd_ = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd_ < 0) return absl::UnavailableError(std::string("socket: ") + strerror(errno));
      timeval tv{3, 0};
      setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      socklen_t len = 0;
      sockaddr_storage a = SockAddr(af, ip.c_str(), port, &len);
      if (connect(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0)
        return absl::UnavailableError(std::string("connect: ") + strerror(errno));
      return absl::OkStatus();
    });
    EXPECT_TRUE(st.ok()) << st;
  }
  ~UdpClient() {
    if (fd_ >= 0) close(fd_);
  }
  UdpClient(const UdpClient&) = delete;
  UdpClient& operator=(const UdpClient&) = delete;

  // Sends `data` and waits for one reply (3 s).
  Outcome Ask(const std::string& data) {
    Outcome o;
    auto start = std::chrono::steady_clock::now();
    UdpExchange(fd_, data, &o);
    o.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    return o;
  }

 private:
  int fd_ = -1;
};

// The first word of a reply: the name of the server that answered.
std::string Who(const Outcome& o) { return o.reply.substr(0, o.reply.find(' ')); }

class ServicesE2eTest : public ::testing::TestWithParam<Family> {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    pin_dir_ = fs_.path() + "/cninet/svc";
    // No DAD on the veths' link-local addresses (a tentative one delays the first IPv6
    // neighbour resolution by a second).
    Must(
        node_.Exec("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                   "net.ipv4.conf.default.rp_filter=0 net.ipv6.conf.all.forwarding=1 "
                   "net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0"));
    AddPod(client_, "hc", kV4.client, kV6.client);
    AddPod(self_, "hs", kV4.self, kV6.self);
    for (int i = 0; i < kBackends; ++i)
      AddPod(backends_[i], "hb" + std::to_string(i + 1), kV4.Pod(kFirstBackendHost + i),
             kV6.Pod(kFirstBackendHost + i));
    Must(node_.Exec("ip link add up0 type veth peer name eth0 netns " + outside_.name() +
                    " && ip addr add 192.168.77.1/24 dev up0 && ip -6 addr add fd00:77::1/64 dev "
                    "up0 nodad && ip link set up0 up"));
    // As the agent's node setup: a NodePort flow to a backend that is not a local endpoint is
    // SNATed to the node's own address at the uplink's ingress, which IPv4 would drop as a
    // martian without accept_local.
    Must(node_.Exec("sysctl -qw net.ipv4.conf.up0.accept_local=1"));
    Must(outside_.Exec(
        "ip addr add 192.168.77.2/24 dev eth0 && ip -6 addr add fd00:77::2/64 dev eth0 nodad && "
        "ip link set eth0 up"));
    Dp("load --cluster-cidr 10.244.0.0/16 --cluster-cidr fd00:244::/64 --node-ip 192.168.77.1 "
       "--node-ip fd00:77::1 --from-pod hc,hs,hb1,hb2,hb3 --uplink up0");
    int id = 1;
    for (const Family* f : {&kV4, &kV6}) {
      // Frontends without endpoints.
      Dp("service upsert --id " + std::to_string(id++) + " --frontend " +
         f->Frontend(f->empty_vip, 80, "tcp"));
      Dp("service upsert --id " + std::to_string(id++) + " --frontend " +
         f->Frontend(f->empty_vip, 53, "udp"));
      // The pod itself as the only endpoint.
      Dp("service upsert --id " + std::to_string(id++) + " --frontend " +
         f->Frontend(f->hairpin_vip, 80, "tcp") + " --backend " + f->Endpoint(f->self, 8080));
      Dp("service upsert --id " + std::to_string(id++) + " --frontend " +
         f->Frontend(f->hairpin_vip, 53, "udp") + " --backend " + f->Endpoint(f->self, 5353));
    }
  }

  void TearDown() override {
    // The socket LB links go before the cgroup (and the cgroup before the bpffs).
    if (cgroup_ && socklb_attached_) {
      CommandResult r =
          ::cninet::testing::Run({"nsenter", "--net=" + node_.path(), Tool(), "--pin-dir", pin_dir_,
                                  "socklb", "detach", "--cgroup", cgroup_->path()});
      EXPECT_TRUE(r.ok()) << r.out << r.err;
    }
  }

  void Must(const CommandResult& r) { ASSERT_TRUE(r.ok()) << r.out << r.err; }

  // Makes a cgroup and has cninet-dp attach socket LB to it, serving the node's namespace. Run
  // with nsenter: `ip netns exec` remounts /sys, hiding the cgroup v2 mount.
  void AttachSocketLb() {
    cgroup_ = std::make_unique<::cninet::testing::ScopedCgroup>("cnsvc");
    ASSERT_TRUE(cgroup_->status().ok()) << cgroup_->status();
    CommandResult r = ::cninet::testing::Run({"nsenter", "--net=" + node_.path(), Tool(),
                                              "--pin-dir", pin_dir_, "socklb", "attach", "--cgroup",
                                              cgroup_->path(), "--netns", node_.path()});
    ASSERT_TRUE(r.ok()) << r.out << r.err;
    socklb_attached_ = true;
  }

  void AddPod(ScopedNetns& pod, const std::string& host_if, const std::string& ip4,
              const std::string& ip6) {
    Must(::cninet::testing::WireDualStackPod(node_, pod, host_if, ip4, ip6));
  }

  CommandResult Dp(const std::string& args) {
    CommandResult r = node_.Exec(Tool() + " --pin-dir " + pin_dir_ + " " + args);
    EXPECT_TRUE(r.ok()) << "cninet-dp " << args << ": " << r.out << r.err;
    return r;
  }

  // Address of backend pod i (0-based) of the family.
  std::string Backend(const Family& f, int i) const { return f.Pod(kFirstBackendHost + i); }

  // TCP servers on `port` in backends [0, n), named PREFIX1.., answering "NAME CLIENT LINE".
  std::vector<std::unique_ptr<LineServer>> TcpBackends(const Family& f, uint16_t port, int n,
                                                       const std::string& prefix = "B") {
    std::vector<std::unique_ptr<LineServer>> servers;
    for (int i = 0; i < n; ++i) {
      servers.push_back(
          std::make_unique<LineServer>(LineServerOptions{.netns_path = backends_[i].path(),
                                                         .address = f.Any(),
                                                         .port = port,
                                                         .name = prefix + std::to_string(i + 1),
                                                         .peer_port = true}));
      EXPECT_TRUE(servers.back()->status().ok()) << servers.back()->status();
    }
    return servers;
  }

  // UDP servers on `port` in backends [0, n), named UB1.., answering "NAME CLIENT DATA".
  std::vector<std::unique_ptr<UdpServer>> UdpBackends(const Family& f, uint16_t port, int n) {
    std::vector<std::unique_ptr<UdpServer>> servers;
    for (int i = 0; i < n; ++i)
      servers.push_back(std::make_unique<UdpServer>(backends_[i].path(), f.af, port,
                                                    "UB" + std::to_string(i + 1)));
    return servers;
  }

  // `cninet-dp service upsert` of one frontend and the backends (ADDR:PORT) with extra flags.
  void Upsert(int id, const std::string& frontend, const std::vector<std::string>& backends,
              const std::string& extra = "") {
    std::string args = "service upsert --id " + std::to_string(id) + " --frontend " + frontend;
    for (const auto& b : backends) args += " --backend " + b;
    if (!extra.empty()) args += " " + extra;
    Must(Dp(args));
  }

  uint64_t Counter(uint32_t reason) {
    auto view = Datapath::OpenPinned(pin_dir_);
    EXPECT_TRUE(view.ok()) << view.status();
    if (!view.ok()) return 0;
    auto n = (*view)->counters().Packets(reason);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : 0;
  }

  ScopedBpffs fs_;
  std::string pin_dir_;
  ScopedNetns node_{"svn"}, client_{"svc"}, self_{"svs"}, outside_{"svo"};
  ScopedNetns backends_[kBackends] = {ScopedNetns("svb"), ScopedNetns("svb"), ScopedNetns("svb")};
  // Socket LB cases only (AttachSocketLb); removed before the namespaces and the bpffs.
  std::unique_ptr<::cninet::testing::ScopedCgroup> cgroup_;
  bool socklb_attached_ = false;
};

// Upstream: "should be rejected when no endpoints exist" (kube-proxy's REJECT): a TCP connect
// fails with ECONNREFUSED at once, a connected UDP socket's recv() gets ECONNREFUSED.
TEST_P(ServicesE2eTest, ShouldBeRejectedWhenNoEndpointsExist) {
  const Family& f = GetParam();
  for (int i = 0; i < 3; ++i) {
    uint64_t rejects = Counter(CN_R_REJECT);
    Outcome tcp = TcpAsk(client_.path(), f.af, f.empty_vip, 80, "hello");
    EXPECT_EQ(tcp.err, ECONNREFUSED) << strerror(tcp.err) << " reply: " << tcp.reply;
    EXPECT_LT(tcp.took.count(), 1000) << "TCP connect took " << tcp.took.count() << " ms";
    EXPECT_GT(Counter(CN_R_REJECT), rejects);

    rejects = Counter(CN_R_REJECT);
    Outcome udp = UdpAsk(client_.path(), f.af, f.empty_vip, 53, "query");
    EXPECT_EQ(udp.err, ECONNREFUSED) << strerror(udp.err) << " reply: " << udp.reply;
    EXPECT_LT(udp.took.count(), 1000) << "UDP recv took " << udp.took.count() << " ms";
    EXPECT_GT(Counter(CN_R_REJECT), rejects);
  }
  EXPECT_EQ(Counter(CN_R_DROP_NO_BACKEND), 0u);
}

// Upstream: "should allow pods to hairpin back to themselves through services": the pod behind
// a ClusterIP whose only endpoint is itself connects to the ClusterIP and gets its own server's
// answer; the server sees the connection come from the node address (the hairpin SNAT), the
// client's socket sees the ClusterIP.
TEST_P(ServicesE2eTest, ShouldAllowPodsToHairpinBackToThemselvesThroughServices) {
  const Family& f = GetParam();
  ::cninet::testing::LineServer tcp_server(
      ::cninet::testing::LineServerOptions{.netns_path = self_.path(),
                                           .address = f.af == AF_INET ? "0.0.0.0" : "::",
                                           .port = 8080,
                                           .name = "SELF",
                                           .peer_port = true});
  ASSERT_TRUE(tcp_server.status().ok()) << tcp_server.status();
  UdpServer udp_server(self_.path(), f.af, 5353, "USELF");
  std::string from_node =
      f.af == AF_INET ? std::string(f.node) + ":" : std::string("[") + f.node + "]:";
  for (int i = 0; i < 3; ++i) {
    Outcome tcp = TcpAsk(self_.path(), f.af, f.hairpin_vip, 80, "hairpin " + std::to_string(i));
    ASSERT_EQ(tcp.err, 0) << strerror(tcp.err);
    EXPECT_THAT(tcp.reply, HasSubstr("SELF " + from_node));
    EXPECT_THAT(tcp.reply, HasSubstr("hairpin " + std::to_string(i)));

    Outcome udp = UdpAsk(self_.path(), f.af, f.hairpin_vip, 53, "uhairpin " + std::to_string(i));
    ASSERT_EQ(udp.err, 0) << strerror(udp.err);
    EXPECT_THAT(udp.reply, HasSubstr("USELF " + from_node));
    EXPECT_THAT(udp.reply, HasSubstr("uhairpin " + std::to_string(i)));
  }
  // Another pod reaching the same service is not hairpinned: the server sees its own address.
  Outcome other = TcpAsk(client_.path(), f.af, f.hairpin_vip, 80, "other");
  ASSERT_EQ(other.err, 0) << strerror(other.err);
  EXPECT_THAT(other.reply, HasSubstr("SELF " + other.local + " other"));
}

// Upstream: "should serve a basic endpoint from pods": a ClusterIP with one endpoint serves it,
// then with a second endpoint added both serve, then with the first removed only the second; the
// backend always sees the client's own address and port (no SNAT between pods).
TEST_P(ServicesE2eTest, ShouldServeABasicEndpointFromPods) {
  const Family& f = GetParam();
  auto servers = TcpBackends(f, 8080, 2);
  const std::string vip = f.Vip(70);
  const std::string fe = f.Frontend(vip, 80, "tcp");
  Upsert(100, fe, {f.Endpoint(Backend(f, 0), 8080)});
  uint64_t dnat = Counter(CN_R_DNAT);
  for (int i = 0; i < 3; ++i) {
    std::string line = "one " + std::to_string(i);
    Outcome o = TcpAsk(client_.path(), f.af, vip.c_str(), 80, line);
    ASSERT_EQ(o.err, 0) << strerror(o.err);
    EXPECT_EQ(o.reply, "B1 " + o.local + " " + line);
  }
  EXPECT_GT(Counter(CN_R_DNAT), dnat);

  Upsert(100, fe, {f.Endpoint(Backend(f, 0), 8080), f.Endpoint(Backend(f, 1), 8080)});
  std::set<std::string> seen;
  for (int i = 0; i < 16; ++i) {
    std::string line = "two " + std::to_string(i);
    Outcome o = TcpAsk(client_.path(), f.af, vip.c_str(), 80, line);
    ASSERT_EQ(o.err, 0) << strerror(o.err);
    EXPECT_EQ(o.reply, Who(o) + " " + o.local + " " + line);
    seen.insert(Who(o));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"B1", "B2"}));

  Upsert(100, fe, {f.Endpoint(Backend(f, 1), 8080)});
  for (int i = 0; i < 3; ++i) {
    std::string line = "last " + std::to_string(i);
    Outcome o = TcpAsk(client_.path(), f.af, vip.c_str(), 80, line);
    ASSERT_EQ(o.err, 0) << strerror(o.err);
    EXPECT_EQ(o.reply, "B2 " + o.local + " " + line);
  }
}

// Upstream: "should serve multiport endpoints from pods": one ClusterIP with two ports, 80 to
// target port 8080 and 81 to target port 8081 (one cninet-dp service per service port, as
// kube-proxy programs them); each port reaches its own target port on the endpoints.
TEST_P(ServicesE2eTest, ShouldServeMultiportEndpointsFromPods) {
  const Family& f = GetParam();
  auto port1 = TcpBackends(f, 8080, 2, "P8080-B");
  auto port2 = TcpBackends(f, 8081, 2, "P8081-B");
  const std::string vip = f.Vip(71);
  Upsert(100, f.Frontend(vip, 80, "tcp"),
         {f.Endpoint(Backend(f, 0), 8080), f.Endpoint(Backend(f, 1), 8080)});
  Upsert(101, f.Frontend(vip, 81, "tcp"),
         {f.Endpoint(Backend(f, 0), 8081), f.Endpoint(Backend(f, 1), 8081)});
  for (int i = 0; i < 4; ++i) {
    Outcome a = TcpAsk(client_.path(), f.af, vip.c_str(), 80, "a");
    ASSERT_EQ(a.err, 0) << strerror(a.err);
    EXPECT_THAT(a.reply, ::testing::StartsWith("P8080-B"));
    EXPECT_THAT(a.reply, ::testing::EndsWith(" " + a.local + " a"));
    Outcome b = TcpAsk(client_.path(), f.af, vip.c_str(), 81, "b");
    ASSERT_EQ(b.err, 0) << strerror(b.err);
    EXPECT_THAT(b.reply, ::testing::StartsWith("P8081-B"));
    EXPECT_THAT(b.reply, ::testing::EndsWith(" " + b.local + " b"));
  }
}

// Upstream: "should serve endpoints on same port and different protocols": one ClusterIP port 53
// as a TCP service to b1 and a UDP service to b2 (both backends listen on both protocols); each
// protocol reaches its own backend.
TEST_P(ServicesE2eTest, ShouldServeEndpointsOnSamePortAndDifferentProtocols) {
  const Family& f = GetParam();
  auto tcp_servers = TcpBackends(f, 5353, 2);
  auto udp_servers = UdpBackends(f, 5353, 2);
  const std::string vip = f.Vip(72);
  Upsert(100, f.Frontend(vip, 53, "tcp"), {f.Endpoint(Backend(f, 0), 5353)});
  Upsert(101, f.Frontend(vip, 53, "udp"), {f.Endpoint(Backend(f, 1), 5353)});
  for (int i = 0; i < 3; ++i) {
    std::string n = std::to_string(i);
    Outcome tcp = TcpAsk(client_.path(), f.af, vip.c_str(), 53, "tcp " + n);
    ASSERT_EQ(tcp.err, 0) << strerror(tcp.err);
    EXPECT_EQ(tcp.reply, "B1 " + tcp.local + " tcp " + n);
    Outcome udp = UdpAsk(client_.path(), f.af, vip.c_str(), 53, "udp " + n);
    ASSERT_EQ(udp.err, 0) << strerror(udp.err);
    EXPECT_EQ(udp.reply, "UB2 " + udp.local + " udp " + n);
  }
}

// Upstream: "should be able to switch session affinity for service with type clusterIP":
// with ClientIP affinity every connection of the client goes to one backend (and the datapath
// counts affinity hits); switched off, the connections spread over the backends; switched on
// again, they stick to one backend again.
TEST_P(ServicesE2eTest, ShouldBeAbleToSwitchSessionAffinityForService) {
  const Family& f = GetParam();
  auto servers = TcpBackends(f, 8080, kBackends);
  const std::string vip = f.Vip(73);
  const std::string fe = f.Frontend(vip, 80, "tcp");
  std::vector<std::string> eps;
  for (int i = 0; i < kBackends; ++i) eps.push_back(f.Endpoint(Backend(f, i), 8080));
  constexpr int kTries = 12;
  auto backends_seen = [&](const std::string& tag) {
    std::set<std::string> seen;
    for (int i = 0; i < kTries; ++i) {
      Outcome o = TcpAsk(client_.path(), f.af, vip.c_str(), 80, tag + std::to_string(i));
      EXPECT_EQ(o.err, 0) << strerror(o.err);
      if (o.err == 0) seen.insert(Who(o));
    }
    return seen;
  };

  Upsert(100, fe, eps, "--affinity 10800");
  uint64_t hits = Counter(CN_R_AFFINITY_HIT);
  EXPECT_EQ(backends_seen("on").size(), 1u);
  EXPECT_GE(Counter(CN_R_AFFINITY_HIT) - hits, uint64_t{kTries - 1});

  Upsert(100, fe, eps);
  hits = Counter(CN_R_AFFINITY_HIT);
  EXPECT_GE(backends_seen("off").size(), 2u);
  EXPECT_EQ(Counter(CN_R_AFFINITY_HIT), hits);

  Upsert(100, fe, eps, "--affinity 10800");
  EXPECT_EQ(backends_seen("again").size(), 1u);
}

// Upstream: "should have session affinity timeout work for service with type clusterIP": with a
// 2 s ClientIP affinity the client sticks to one backend; after 3.2 s without a connection the
// affinity has expired (the next connection is no affinity hit) and the choice is free again:
// within at most 10 expiry rounds a connection lands on another backend (3 backends: each round
// keeps the old one with probability about 1/3; usually the first or second round moves).
TEST_P(ServicesE2eTest, ShouldHaveSessionAffinityTimeoutWork) {
  const Family& f = GetParam();
  auto servers = TcpBackends(f, 8080, kBackends);
  const std::string vip = f.Vip(74);
  std::vector<std::string> eps;
  for (int i = 0; i < kBackends; ++i) eps.push_back(f.Endpoint(Backend(f, i), 8080));
  Upsert(100, f.Frontend(vip, 80, "tcp"), eps, "--affinity 2");

  auto ask = [&](const std::string& line) {
    Outcome o = TcpAsk(client_.path(), f.af, vip.c_str(), 80, line);
    EXPECT_EQ(o.err, 0) << strerror(o.err);
    return Who(o);
  };
  const std::string first = ask("first");
  ASSERT_FALSE(first.empty());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ask("sticky " + std::to_string(i)), first);

  std::string affine = first;
  bool moved = false;
  for (int round = 0; round < 10 && !moved; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3200));
    uint64_t hits = Counter(CN_R_AFFINITY_HIT);
    std::string now = ask("expired " + std::to_string(round));
    ASSERT_FALSE(now.empty());
    EXPECT_EQ(Counter(CN_R_AFFINITY_HIT), hits) << "round " << round << ": affinity not expired";
    // The new choice is sticky again.
    EXPECT_EQ(ask("renewed " + std::to_string(round)), now);
    EXPECT_GT(Counter(CN_R_AFFINITY_HIT), hits);
    moved = now != affine;
    affine = now;
  }
  EXPECT_TRUE(moved) << "every connection after expiry went to " << first;
}

// Upstream: "should be able to up and down services": two services work; the first deleted, a
// connection to its ClusterIP fails fast with no route (nothing translates it any more: the dnat
// counter stays) while the second still works; a new service on the same ClusterIP works again.
TEST_P(ServicesE2eTest, ShouldBeAbleToUpAndDownServices) {
  const Family& f = GetParam();
  auto servers = TcpBackends(f, 8080, kBackends);
  const std::string vip1 = f.Vip(75), vip2 = f.Vip(76);
  Upsert(100, f.Frontend(vip1, 80, "tcp"), {f.Endpoint(Backend(f, 0), 8080)});
  Upsert(101, f.Frontend(vip2, 80, "tcp"), {f.Endpoint(Backend(f, 1), 8080)});
  auto expect_served = [&](const std::string& vip, const std::string& by) {
    for (int i = 0; i < 3; ++i) {
      Outcome o = TcpAsk(client_.path(), f.af, vip.c_str(), 80, "up");
      ASSERT_EQ(o.err, 0) << vip << ": " << strerror(o.err);
      EXPECT_EQ(o.reply, by + " " + o.local + " up");
    }
  };
  expect_served(vip1, "B1");
  expect_served(vip2, "B2");

  Must(Dp("service delete --id 100"));
  uint64_t dnat = Counter(CN_R_DNAT);
  Outcome gone = TcpAsk(client_.path(), f.af, vip1.c_str(), 80, "down");
  EXPECT_NE(gone.err, 0) << "reply: " << gone.reply;
  EXPECT_TRUE(gone.err == ECONNREFUSED || gone.err == EHOSTUNREACH || gone.err == ENETUNREACH)
      << strerror(gone.err);
  // The node answers the SYN with ICMP unreachable (no route to the ClusterIP); an error that
  // arrives while connect() still owns the socket only aborts it on the SYN's retransmission
  // (1 s initial RTO), so "at once" here is well under the 5 s connect timeout.
  EXPECT_LT(gone.took.count(), 3000) << "connect took " << gone.took.count() << " ms";
  EXPECT_EQ(Counter(CN_R_DNAT), dnat);
  expect_served(vip2, "B2");

  Upsert(102, f.Frontend(vip1, 80, "tcp"), {f.Endpoint(Backend(f, 2), 8080)});
  expect_served(vip1, "B3");
  expect_served(vip2, "B2");
}

// Upstream (conntrack): "should be able to preserve UDP traffic when server pod cycles for a
// ClusterIP service": one connected UDP socket (one 5-tuple) talks to a ClusterIP with two
// backends; the backend it reaches is removed with --flush-removed, and the next datagrams of
// the same socket reach the remaining backend (no stale conntrack entry keeps the old one).
TEST_P(ServicesE2eTest, ShouldBeAbleToPreserveUdpTrafficWhenServerPodCyclesForAClusterIpService) {
  const Family& f = GetParam();
  auto servers = UdpBackends(f, 5353, 2);
  const std::string vip = f.Vip(77);
  const std::string fe = f.Frontend(vip, 53, "udp");
  const std::string ep1 = f.Endpoint(Backend(f, 0), 5353), ep2 = f.Endpoint(Backend(f, 1), 5353);
  Upsert(100, fe, {ep1, ep2});
  UdpClient client(client_.path(), f.af, vip, 53);
  Outcome o = client.Ask("d0");
  ASSERT_EQ(o.err, 0) << strerror(o.err);
  const std::string hit = Who(o);
  ASSERT_TRUE(hit == "UB1" || hit == "UB2") << o.reply;
  for (int i = 1; i < 4; ++i) {
    std::string d = "d" + std::to_string(i);
    o = client.Ask(d);
    ASSERT_EQ(o.err, 0) << strerror(o.err);
    EXPECT_EQ(o.reply, hit + " " + o.local + " " + d);
  }

  const std::string remaining = hit == "UB1" ? "UB2" : "UB1";
  Upsert(100, fe, {hit == "UB1" ? ep2 : ep1}, "--flush-removed");
  for (int i = 4; i < 8; ++i) {
    std::string d = "d" + std::to_string(i);
    o = client.Ask(d);
    ASSERT_EQ(o.err, 0) << strerror(o.err);
    EXPECT_EQ(o.reply, remaining + " " + o.local + " " + d);
  }
}

// Upstream: "should be able to create a functioning NodePort service": a NodePort service (TCP
// and UDP) on backends b1 and b2 is reached from the `outside` namespace on the node's uplink
// address of the family; both backends answer, and (not being local endpoints of this node) they
// see the node's address: the NodePort SNAT that brings their replies back through the node.
TEST_P(ServicesE2eTest, ShouldBeAbleToCreateAFunctioningNodePortService) {
  const Family& f = GetParam();
  auto tcp_servers = TcpBackends(f, 8080, 2);
  auto udp_servers = UdpBackends(f, 5353, 2);
  Upsert(100, "nodeport:30080/tcp",
         {f.Endpoint(Backend(f, 0), 8080), f.Endpoint(Backend(f, 1), 8080)});
  Upsert(101, "nodeport:30053/udp",
         {f.Endpoint(Backend(f, 0), 5353), f.Endpoint(Backend(f, 1), 5353)});
  const std::string from_node = f.Endpoint(f.node, 0).substr(0, f.Endpoint(f.node, 0).size() - 1);
  uint64_t dnat = Counter(CN_R_DNAT);
  std::set<std::string> tcp_seen, udp_seen;
  for (int i = 0; i < 12; ++i) {
    std::string n = std::to_string(i);
    Outcome tcp = TcpAsk(outside_.path(), f.af, f.node, 30080, "np " + n);
    ASSERT_EQ(tcp.err, 0) << strerror(tcp.err);
    EXPECT_THAT(tcp.reply, HasSubstr(" " + from_node)) << "not SNATed to the node";
    EXPECT_THAT(tcp.reply, ::testing::EndsWith(" np " + n));
    tcp_seen.insert(Who(tcp));
    Outcome udp = UdpAsk(outside_.path(), f.af, f.node, 30053, "unp " + n);
    ASSERT_EQ(udp.err, 0) << strerror(udp.err);
    EXPECT_THAT(udp.reply, HasSubstr(" " + from_node)) << "not SNATed to the node";
    EXPECT_THAT(udp.reply, ::testing::EndsWith(" unp " + n));
    udp_seen.insert(Who(udp));
  }
  EXPECT_EQ(tcp_seen, (std::set<std::string>{"B1", "B2"}));
  EXPECT_EQ(udp_seen, (std::set<std::string>{"UB1", "UB2"}));
  EXPECT_GT(Counter(CN_R_DNAT), dnat);
}

// Upstream (ESIPP): "should work for type=NodePort" with externalTrafficPolicy Local, as the
// agent programs it: the ClusterIP keeps every endpoint (b1, b2), the nodePort only this node's
// local endpoint b1 (registered with `cninet-dp endpoint add`) and drops new flows when it has
// none (--drop-when-empty). From `outside`, b1 answers and sees the client's own address and port
// (no SNAT); reprogrammed as on a node without local endpoints, the nodePort drops the SYN (the
// connect times out, nothing refuses it) while the ClusterIP still serves the pods.
TEST_P(ServicesE2eTest, ShouldPreserveSourceIpForExternalTrafficPolicyLocal) {
  const Family& f = GetParam();
  auto servers = TcpBackends(f, 8080, 2);
  CommandResult link = node_.Exec("ip -o link show hb1");
  Must(link);
  Must(Dp("endpoint add " + Backend(f, 0) + " " + link.out.substr(0, link.out.find(':'))));
  const std::string vip = f.Vip(78);
  Upsert(100, f.Frontend(vip, 80, "tcp"),
         {f.Endpoint(Backend(f, 0), 8080), f.Endpoint(Backend(f, 1), 8080)});
  Upsert(101, "nodeport:30090/tcp", {f.Endpoint(Backend(f, 0), 8080)}, "--drop-when-empty");
  for (int i = 0; i < 5; ++i) {
    std::string line = "etp " + std::to_string(i);
    Outcome o = TcpAsk(outside_.path(), f.af, f.node, 30090, line);
    ASSERT_EQ(o.err, 0) << strerror(o.err);
    EXPECT_EQ(o.reply, "B1 " + o.local + " " + line);
  }

  Upsert(101, "nodeport:30090/tcp", {}, "--drop-when-empty");
  uint64_t drops = Counter(CN_R_DROP_NO_BACKEND), rejects = Counter(CN_R_REJECT);
  Outcome dropped =
      TcpAsk(outside_.path(), f.af, f.node, 30090, "none", std::chrono::milliseconds(700));
  // connect() gave up after its timeout (EINPROGRESS): dropped, not refused.
  EXPECT_EQ(dropped.err, EINPROGRESS) << strerror(dropped.err) << " reply: " << dropped.reply;
  EXPECT_GT(Counter(CN_R_DROP_NO_BACKEND), drops);
  EXPECT_EQ(Counter(CN_R_REJECT), rejects);
  std::set<std::string> seen;
  for (int i = 0; i < 12; ++i) {
    Outcome o = TcpAsk(client_.path(), f.af, vip.c_str(), 80, "cluster");
    ASSERT_EQ(o.err, 0) << strerror(o.err);
    EXPECT_EQ(o.reply, Who(o) + " " + o.local + " cluster");
    seen.insert(Who(o));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"B1", "B2"}));
}

// Upstream: "should respect internalTrafficPolicy=Local Pod to Pod", as the agent programs it:
// the ClusterIP has only this node's endpoint b1 and drops new flows when it has none
// (--drop-when-empty). The client pod always reaches b1 (never b2, which also serves);
// reprogrammed as on a node without local endpoints, the connect times out (dropped, not
// refused as a Service without any endpoint is).
TEST_P(ServicesE2eTest, ShouldRespectInternalTrafficPolicyLocal) {
  const Family& f = GetParam();
  auto servers = TcpBackends(f, 8080, 2);
  const std::string vip = f.Vip(79);
  const std::string fe = f.Frontend(vip, 80, "tcp");
  Upsert(100, fe, {f.Endpoint(Backend(f, 0), 8080)}, "--drop-when-empty");
  for (int i = 0; i < 10; ++i) {
    Outcome o = TcpAsk(client_.path(), f.af, vip.c_str(), 80, "local");
    ASSERT_EQ(o.err, 0) << strerror(o.err);
    EXPECT_EQ(o.reply, "B1 " + o.local + " local");
  }
  Upsert(100, fe, {}, "--drop-when-empty");
  uint64_t drops = Counter(CN_R_DROP_NO_BACKEND), rejects = Counter(CN_R_REJECT);
  for (int i = 0; i < 2; ++i) {
    Outcome o =
        TcpAsk(client_.path(), f.af, vip.c_str(), 80, "none", std::chrono::milliseconds(700));
    EXPECT_EQ(o.err, EINPROGRESS) << strerror(o.err) << " reply: " << o.reply;
  }
  EXPECT_GT(Counter(CN_R_DROP_NO_BACKEND), drops);
  EXPECT_EQ(Counter(CN_R_REJECT), rejects);
}

// In a forked child (InChild): TCP to ip:port, one line exchanged: "peer=ADDR reply=LINE" (peer
// from getpeername), or "error=MESSAGE".
std::string ChildTcp(int af, const std::string& ip, uint16_t port) {
  int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("error=socket: ") + strerror(errno);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  socklen_t len = 0;
  sockaddr_storage a = SockAddr(af, ip.c_str(), port, &len);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    std::string e = std::string("error=connect: ") + strerror(errno);
    close(fd);
    return e;
  }
  sockaddr_storage peer{};
  socklen_t plen = sizeof(peer);
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
  std::string out = "peer=" + PeerText(peer) + " reply=";
  if (write(fd, "hello\n", 6) != 6) {
    close(fd);
    return std::string("error=write: ") + strerror(errno);
  }
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') out.push_back(c);
  close(fd);
  return out;
}

// In a forked child: one unconnected UDP datagram to ip:port (sendto/recvfrom):
// "from=ADDR reply=DATA", or "error=MESSAGE".
std::string ChildUdp(int af, const std::string& ip, uint16_t port) {
  int fd = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("error=socket: ") + strerror(errno);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  socklen_t len = 0;
  sockaddr_storage a = SockAddr(af, ip.c_str(), port, &len);
  if (sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&a), len) != 4) {
    std::string e = std::string("error=sendto: ") + strerror(errno);
    close(fd);
    return e;
  }
  char buf[512];
  sockaddr_storage from{};
  socklen_t flen = sizeof(from);
  ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
  close(fd);
  if (n < 0) return std::string("error=recvfrom: ") + strerror(errno);
  return "from=" + PeerText(from) + " reply=" + std::string(buf, static_cast<size_t>(n));
}

// The server named in a ChildTcp/ChildUdp result ("" when it got no reply).
std::string ChildWho(const std::string& result) {
  size_t at = result.find(" reply=");
  if (at == std::string::npos) return "";
  std::string reply = result.substr(at + 7);
  return reply.substr(0, reply.find(' '));
}

// Upstream: "should be able to connect to ClusterIP from the node's own namespace" (the
// Granular Checks' "should function for node-Service: http"): socket LB attached by cninet-dp to
// a cgroup the test made, serving the node's namespace. A process of the node in that cgroup
// connects to the ClusterIP (the node has no route to it): its connect is translated to b1 or b2,
// both answer over 12 connections, and getpeername still shows the ClusterIP. A process of the
// node outside the cgroup is not translated (no route: it fails; the socket-connect counter stays).
TEST_P(ServicesE2eTest, ShouldBeAbleToConnectToClusterIpFromTheNodesOwnNamespace) {
  const Family& f = GetParam();
  auto servers = TcpBackends(f, 8080, 2);
  const std::string vip = f.Vip(80);
  Upsert(100, f.Frontend(vip, 80, "tcp"),
         {f.Endpoint(Backend(f, 0), 8080), f.Endpoint(Backend(f, 1), 8080)});
  ASSERT_NO_FATAL_FAILURE(AttachSocketLb());
  uint64_t connects = Counter(CN_R_SOCK_CONNECT);
  std::set<std::string> seen;
  for (int i = 0; i < 12; ++i) {
    std::string r = ::cninet::testing::InChild(cgroup_->path(), node_.path(),
                                               [&] { return ChildTcp(f.af, vip, 80); });
    EXPECT_THAT(r, ::testing::StartsWith("peer=" + f.Endpoint(vip, 80) + " reply=B")) << r;
    seen.insert(ChildWho(r));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"B1", "B2"}));
  EXPECT_GE(Counter(CN_R_SOCK_CONNECT), connects + 12);

  connects = Counter(CN_R_SOCK_CONNECT);
  std::string outside =
      ::cninet::testing::InChild("", node_.path(), [&] { return ChildTcp(f.af, vip, 80); });
  EXPECT_THAT(outside, ::testing::StartsWith("error=connect")) << outside;
  EXPECT_EQ(Counter(CN_R_SOCK_CONNECT), connects);
}

// Upstream: "should function for node-Service: http" and "...: udp" (Granular Checks: Services)
// from a hostNetwork pod: a process in the node's namespace inside a child cgroup of the one
// socket LB is attached to (as a pod's cgroup under the node's) reaches the ClusterIP over TCP
// (getpeername shows the ClusterIP) and over unconnected UDP (sendmsg hook; the recvmsg hook makes
// the replies come from the ClusterIP).
TEST_P(ServicesE2eTest, ShouldBeAbleToConnectToClusterIpFromAHostNetworkProcess) {
  const Family& f = GetParam();
  auto tcp_servers = TcpBackends(f, 8080, 2);
  auto udp_servers = UdpBackends(f, 5353, 2);
  const std::string vip = f.Vip(81);
  Upsert(100, f.Frontend(vip, 80, "tcp"),
         {f.Endpoint(Backend(f, 0), 8080), f.Endpoint(Backend(f, 1), 8080)});
  Upsert(101, f.Frontend(vip, 53, "udp"),
         {f.Endpoint(Backend(f, 0), 5353), f.Endpoint(Backend(f, 1), 5353)});
  ASSERT_NO_FATAL_FAILURE(AttachSocketLb());
  ::cninet::testing::ScopedCgroup pod_cgroup("hostnet", cgroup_->path());
  ASSERT_TRUE(pod_cgroup.status().ok()) << pod_cgroup.status();
  std::set<std::string> tcp_seen, udp_seen;
  for (int i = 0; i < 8; ++i) {
    std::string tcp = ::cninet::testing::InChild(pod_cgroup.path(), node_.path(),
                                                 [&] { return ChildTcp(f.af, vip, 80); });
    EXPECT_THAT(tcp, ::testing::StartsWith("peer=" + f.Endpoint(vip, 80) + " reply=B")) << tcp;
    tcp_seen.insert(ChildWho(tcp));
    std::string udp = ::cninet::testing::InChild(pod_cgroup.path(), node_.path(),
                                                 [&] { return ChildUdp(f.af, vip, 53); });
    EXPECT_THAT(udp, ::testing::StartsWith("from=" + f.Endpoint(vip, 53) + " reply=UB")) << udp;
    udp_seen.insert(ChildWho(udp));
  }
  EXPECT_FALSE(tcp_seen.empty());
  EXPECT_FALSE(udp_seen.empty());
  for (const auto& who : tcp_seen) EXPECT_TRUE(who == "B1" || who == "B2") << who;
  for (const auto& who : udp_seen) EXPECT_TRUE(who == "UB1" || who == "UB2") << who;
}

INSTANTIATE_TEST_SUITE_P(Family, ServicesE2eTest, ::testing::Values(kV4, kV6),
                         [](const ::testing::TestParamInfo<Family>& p) {
                           return std::string(p.param.name);
                         });

}  // namespace
}  // namespace cninet::datapath::testing
