// Kubernetes sig-network Service e2e tests (test/e2e/network/service.go), mirrored with real TCP
// and UDP in network namespaces through the programs cninet-dp attaches, for both families. Each
// test is named after the upstream test it mirrors and runs once per family.
//
// Topology (all namespaces created by the test, dual-stack):
//   client (10.244.1.10, fd00:244::10) --veth-- [hc  node  hs] --veth-- self (10.244.1.30,
//                                               [            ]          fd00:244::30)
//                                               [up0 192.168.77.1, fd00:77::1] --veth-- outside
// Services (cninet-dp service upsert):
//   10.96.0.20 / fd00:96::20 ports 80/tcp and 53/udp: no backends (rejected).
//   10.96.0.30 / fd00:96::30 80/tcp -> self:8080, 53/udp -> self:5353 (only the pod itself).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/counters.h"
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
  std::string Frontend(const char* vip, int port, const char* proto) const {
    std::string a = af == AF_INET6 ? std::string("[") + vip + "]" : vip;
    return "clusterip:" + a + ":" + std::to_string(port) + "/" + proto;
  }
  std::string Endpoint(const char* ip, int port) const {
    std::string a = af == AF_INET6 ? std::string("[") + ip + "]" : ip;
    return a + ":" + std::to_string(port);
  }
};

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

// A UDP server on the family's wildcard address in a namespace, answering each datagram with
// "NAME PEER DATA".
class UdpServer {
 public:
  UdpServer(const std::string& netns_path, int af, uint16_t port, std::string name)
      : name_(std::move(name)) {
    absl::Status s = RunInNetns(netns_path, [&]() -> absl::Status {
      fd_ = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      socklen_t len = 0;
      sockaddr_storage a = SockAddr(af, af == AF_INET ? "0.0.0.0" : "::", port, &len);
      if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0)
        return absl::UnavailableError(std::string("bind: ") + strerror(errno));
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    thread_ = std::thread([this] { Loop(); });
  }
  ~UdpServer() {
    stop_ = true;
    thread_.join();
    if (fd_ >= 0) close(fd_);
  }

 private:
  void Loop() {
    char buf[512];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      sockaddr_storage peer{};
      socklen_t len = sizeof(peer);
      ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &len);
      if (n < 0) continue;
      std::string out = name_ + " " + PeerText(peer) + " " + std::string(buf, n);
      (void)!sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&peer), len);
    }
  }
  std::string name_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
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
Outcome TcpAsk(const std::string& netns_path, int af, const char* ip, uint16_t port,
               const std::string& line) {
  Outcome o;
  absl::Status st = RunInNetns(netns_path, [&]() -> absl::Status {
    int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
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
    char buf[512];
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        send(fd, data.data(), data.size(), 0) < 0) {
      o.err = errno;
    } else {
      o.local = LocalText(fd);
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n < 0)
        o.err = errno;
      else
        o.reply.assign(buf, n);
    }
    o.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    close(fd);
    return absl::OkStatus();
  });
  EXPECT_TRUE(st.ok()) << st;
  return o;
}

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
    Must(node_.Exec("ip link add up0 type veth peer name eth0 netns " + outside_.name() +
                    " && ip addr add 192.168.77.1/24 dev up0 && ip -6 addr add fd00:77::1/64 dev "
                    "up0 nodad && ip link set up0 up"));
    Must(outside_.Exec(
        "ip addr add 192.168.77.2/24 dev eth0 && ip -6 addr add fd00:77::2/64 dev eth0 nodad && "
        "ip link set eth0 up"));
    Dp("load --cluster-cidr 10.244.0.0/16 --cluster-cidr fd00:244::/64 --node-ip 192.168.77.1 "
       "--node-ip fd00:77::1 --from-pod hc,hs --uplink up0");
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

  void Must(const CommandResult& r) { ASSERT_TRUE(r.ok()) << r.out << r.err; }

  void AddPod(ScopedNetns& pod, const std::string& host_if, const std::string& ip4,
              const std::string& ip6) {
    Must(node_.Exec("ip link add " + host_if + " type veth peer name eth0 netns " + pod.name() +
                    " && ip addr add 10.244.1.1/32 dev " + host_if +
                    " && ip -6 addr add fd00:244::1/128 dev " + host_if + " nodad && ip link set " +
                    host_if + " up && ip route add " + ip4 + "/32 dev " + host_if +
                    " && ip -6 route add " + ip6 + "/128 dev " + host_if));
    Must(pod.Exec("ip addr add " + ip4 + "/32 dev eth0 && ip -6 addr add " + ip6 +
                  "/128 dev eth0 nodad && ip link set eth0 up && ip route add 10.244.1.1 dev eth0 "
                  "&& ip route add default via 10.244.1.1 dev eth0 && ip -6 route add "
                  "fd00:244::1 dev eth0 && ip -6 route add default via fd00:244::1 dev eth0"));
  }

  CommandResult Dp(const std::string& args) {
    CommandResult r = node_.Exec(Tool() + " --pin-dir " + pin_dir_ + " " + args);
    EXPECT_TRUE(r.ok()) << "cninet-dp " << args << ": " << r.out << r.err;
    return r;
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

INSTANTIATE_TEST_SUITE_P(Family, ServicesE2eTest, ::testing::Values(kV4, kV6),
                         [](const ::testing::TestParamInfo<Family>& p) {
                           return std::string(p.param.name);
                         });

}  // namespace
}  // namespace cninet::datapath::testing
