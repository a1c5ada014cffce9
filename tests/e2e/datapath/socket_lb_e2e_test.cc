// Socket-level load balancing with real sockets: cgroup programs attached to a cgroup v2 the test
// creates, translating only for the network namespaces the instance serves.
//
// Topology (all namespaces created by the test; the datapath runs in this process, maps pinned in
// a private bpffs):
//   [node] (served) 192.168.77.1 on lo; the ClusterIP 10.96.0.10 is also a local address
//          of the node with a listener "VIP" on :80, so an untranslated connect shows
//   client pod c 10.244.1.10 (served) --veth hc--  [node]  --veth hb1-- b1 10.244.1.21
//                                                          --veth hb2-- b2 10.244.1.22
//   (pods also have fd00:244:1::N; IPv6 ClusterIP fd00:96::10)
//   [other] (NOT served) holds 10.96.0.10 itself with a listener "OTHER" on :80.
// Clients run in forked child processes that move themselves into the test cgroup (or not) and
// enter a namespace with setns (cgroup membership is per process).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/line_server.h"
#include "testing/scoped_cgroup.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using ::cninet::testing::CommandResult;
using ::cninet::testing::ScopedNetns;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

constexpr char kVip[] = "10.96.0.10";
constexpr char kVip6[] = "fd00:96::10";
constexpr char kVipEmpty[] = "10.96.0.11";  // a service without backends
constexpr char kVipIso[] = "10.96.0.20";    // -> b1 only (policy case)
constexpr char kNodeIp[] = "192.168.77.1";
constexpr char kClient[] = "10.244.1.10";
constexpr char kB1[] = "10.244.1.21";
constexpr char kB2[] = "10.244.1.22";

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }
std::string V6(std::string_view v4) { return StrCat("fd00:244:1::", v4.substr(v4.rfind('.') + 1)); }

// "ip:port" or "[ip]:port" of a socket address.
std::string Str(const sockaddr_storage& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &s->sin_addr, buf, sizeof(buf));
    return StrCat(buf, ":", ntohs(s->sin_port));
  }
  const auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
  inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof(buf));
  return StrCat("[", buf, "]:", ntohs(s->sin6_port));
}

// The socket address of ip:port; an IPv4 `ip` with `v6` gives the IPv4-mapped address.
socklen_t Sockaddr(const std::string& ip, uint16_t port, bool v6, sockaddr_storage* out) {
  *out = {};
  if (!v6) {
    auto* s = reinterpret_cast<sockaddr_in*>(out);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &s->sin_addr);
    return sizeof(*s);
  }
  auto* s = reinterpret_cast<sockaddr_in6*>(out);
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  std::string a = ip.find(':') == std::string::npos ? "::ffff:" + ip : ip;
  inet_pton(AF_INET6, a.c_str(), &s->sin6_addr);
  return sizeof(*s);
}

// TCP client: "peer=ADDR reply=LINE mark=SO_MARK" or "error=ERRNO".
std::string TcpExchange(const std::string& ip, uint16_t port, bool v6) {
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_storage a;
  socklen_t len = Sockaddr(ip, port, v6, &a);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) return StrCat("error=", errno);
  sockaddr_storage peer{};
  socklen_t plen = sizeof(peer);
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
  std::string out = StrCat("peer=", Str(peer), " reply=");
  if (write(fd, "hi\n", 3) != 3) return out + "write failed";
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') out.push_back(c);
  int mark = 0;
  socklen_t mlen = sizeof(mark);
  getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &mlen);
  close(fd);
  return StrCat(out, " mark=", mark);
}

// UDP client: unconnected sendto/recvfrom ("from=ADDR reply=DATA"), or connected send/recv with
// getpeername ("peer=ADDR from=ADDR reply=DATA").
std::string UdpExchange(const std::string& ip, uint16_t port, bool v6, bool connected) {
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_storage a;
  socklen_t len = Sockaddr(ip, port, v6, &a);
  std::string out;
  if (connected) {
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) return StrCat("error=", errno);
    sockaddr_storage peer{};
    socklen_t plen = sizeof(peer);
    getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
    out = StrCat("peer=", Str(peer), " ");
    if (send(fd, "ping", 4, 0) != 4) return StrCat("error=", errno);
  } else if (sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&a), len) != 4) {
    return StrCat("error=", errno);
  }
  char buf[256];
  sockaddr_storage from{};
  socklen_t flen = sizeof(from);
  ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
  close(fd);
  if (n < 0) return StrCat("error=", errno);
  return StrCat(out, "from=", Str(from), " reply=", std::string(buf, n));
}

using ::cninet::testing::InChild;

// The shared TCP line server ("NAME PEER LINE").
struct LineServer : ::cninet::testing::LineServer {
  LineServer(const std::string& netns_path, const std::string& ip, uint16_t port, std::string name)
      : ::cninet::testing::LineServer(::cninet::testing::LineServerOptions{
            .netns_path = netns_path, .address = ip, .port = port, .name = std::move(name)}) {
    EXPECT_TRUE(status().ok()) << status();
  }
};

// A UDP server answering each datagram with "NAME PEER".
class UdpServer {
 public:
  UdpServer(const std::string& netns_path, const std::string& ip, uint16_t port, std::string name)
      : name_(std::move(name)) {
    bool v6 = ip.find(':') != std::string::npos;
    absl::Status s = RunInNetns(netns_path, [&]() -> absl::Status {
      fd_ = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_storage a;
      socklen_t len = Sockaddr(ip, port, v6, &a);
      if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0)
        return absl::InternalError(StrCat("bind ", ip, ": ", strerror(errno)));
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd pfd{fd_, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0) continue;
        char buf[256];
        sockaddr_storage from{};
        socklen_t flen = sizeof(from);
        if (recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen) < 0)
          continue;
        std::string reply = StrCat(name_, " ", Str(from));
        sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
      }
    });
  }
  ~UdpServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }

 private:
  std::string name_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class SocketLbE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    ASSERT_TRUE(cgroup_.status().ok()) << cgroup_.status();
    Must(
        node_.Exec("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                   "net.ipv4.conf.default.rp_filter=0 net.ipv6.conf.all.forwarding=1 "
                   "net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 && "
                   "ip addr add 192.168.77.1/32 dev lo && ip addr add 10.96.0.10/32 dev lo"));
    Must(other_.Exec("ip addr add 10.96.0.10/32 dev lo"));
    AddPod(client_, "hc", kClient);
    AddPod(b1_, "hb1", kB1);
    AddPod(b2_, "hb2", kB2);

    DatapathConfig cfg;
    cfg.bpffs_root = fs_.path();
    cfg.instance = "socklb";
    cfg.cluster_cidrs = {*cni::IPPrefix::Parse("10.244.0.0/16"),
                         *cni::IPPrefix::Parse("fd00:244::/48")};
    cfg.node_addresses = {Ip(kNodeIp)};
    cfg.map_sizes.conntrack = 4096;
    cfg.map_sizes.nat = 1024;
    cfg.map_sizes.services = 64;
    cfg.map_sizes.service_slots = 64;
    cfg.map_sizes.backends = 256;
    cfg.map_sizes.affinity = 64;
    cfg.map_sizes.endpoints = 64;
    cfg.service_mark = kDefaultServiceMark;
    auto dp = Datapath::Create(cfg);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);

    AddService(1, kVip, 80, Protocol::kTcp, {kB1, kB2}, 8080);
    AddService(2, kVip, 53, Protocol::kUdp, {kB1, kB2}, 5353);
    AddService(3, kVip6, 80, Protocol::kTcp, {V6(kB1), V6(kB2)}, 8080);
    AddService(4, kVip6, 53, Protocol::kUdp, {V6(kB1), V6(kB2)}, 5353);
    AddService(5, kVipEmpty, 80, Protocol::kTcp, {}, 0);
    AddService(8, kVipEmpty, 80, Protocol::kUdp, {}, 0);
    AddService(6, kVipIso, 80, Protocol::kTcp, {kB1}, 8080);
    datapath::Service np;
    np.id = 7;
    np.frontends = {Frontend{Ip("0.0.0.0"), 30080, Protocol::kTcp, FrontendKind::kNodePort}};
    np.backends = {Backend{Ip(kB2), 8080}};
    np.maglev_size = 251;
    auto st = dp_->services().Upsert(np);
    ASSERT_TRUE(st.ok()) << st;

    auto c1 = dp_->ServeNetnsForSocketLb(node_.path());
    ASSERT_TRUE(c1.ok()) << c1.status();
    auto c2 = dp_->ServeNetnsForSocketLb(client_.path());
    ASSERT_TRUE(c2.ok()) << c2.status();
    auto att = dp_->AttachSocketLb(cgroup_.path());
    ASSERT_TRUE(att.ok()) << att.status();
    attachment_ = std::move(*att);
  }

  void TearDown() override {
    if (dp_) {
      // Detach (unpin) before the cgroup goes; Unpin() also removes any left-over link pins.
      EXPECT_TRUE(attachment_.Detach().ok());
      EXPECT_TRUE(dp_->Unpin().ok());
    }
  }

  void Must(const CommandResult& r) { ASSERT_TRUE(r.ok()) << r.out << r.err; }

  void AddPod(ScopedNetns& pod, const std::string& host_if, const std::string& ip) {
    Must(node_.Exec(StrCat(
        "ip link add ", host_if, " type veth peer name eth0 netns ", pod.name(),
        " && ip addr add 10.244.1.1/32 dev ", host_if, " && ip -6 addr add fd00:244:1::1/128 dev ",
        host_if, " nodad && ip link set ", host_if, " up && ip route add ", ip, "/32 dev ", host_if,
        " && ip -6 route add ", V6(ip), "/128 dev ", host_if)));
    Must(pod.Exec(StrCat("ip addr add ", ip, "/32 dev eth0 && ip -6 addr add ", V6(ip),
                         "/128 dev eth0 nodad && ip link set eth0 up && ip route add 10.244.1.1 "
                         "dev eth0 && ip route add default via 10.244.1.1 && ip -6 route add "
                         "fd00:244:1::1 dev eth0 && ip -6 route add default via fd00:244:1::1")));
  }

  void AddService(uint32_t id, const std::string& vip, uint16_t port, Protocol proto,
                  const std::vector<std::string>& backends, uint16_t backend_port) {
    datapath::Service s;
    s.id = id;
    s.frontends = {Frontend{Ip(vip), port, proto, FrontendKind::kClusterIP}};
    for (const std::string& b : backends) s.backends.push_back(Backend{Ip(b), backend_port});
    s.maglev_size = 251;
    auto st = dp_->services().Upsert(s);
    ASSERT_TRUE(st.ok()) << st;
  }

  uint64_t Count(uint32_t reason) { return *dp_->counters().Packets(reason); }

  // Declaration order = reverse destruction order: the bpffs and the cgroup go last.
  ScopedBpffs fs_;
  ::cninet::testing::ScopedCgroup cgroup_{"cnsocklb"};
  ScopedNetns node_{"sln"}, client_{"slc"}, b1_{"slb"}, b2_{"slb"}, other_{"slo"};
  std::unique_ptr<Datapath> dp_;
  SocketLbAttachment attachment_;
};

TEST_F(SocketLbE2eTest, TcpConnectToTheClusterIpReachesABackendAndGetpeernameShowsTheClusterIp) {
  LineServer vip(node_.path(), kVip, 80, "VIP");
  LineServer s1(b1_.path(), kB1, 8080, "B1"), s2(b2_.path(), kB2, 8080, "B2");
  uint64_t before = Count(CN_R_SOCK_CONNECT);
  std::set<std::string> seen;
  for (int i = 0; i < 12; ++i) {
    std::string r =
        InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kVip, 80, false); });
    EXPECT_THAT(r, StartsWith("peer=10.96.0.10:80 reply=B")) << r;
    if (r.size() > 27) seen.insert(r.substr(25, 2));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"B1", "B2"})) << "Maglev should spread the sockets";
  // No backend is a registered local endpoint here: the sockets carry the service mark (SO_MARK)
  // for the backend's node.
  std::string marked =
      InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kVip, 80, false); });
  EXPECT_THAT(marked, ::testing::EndsWith(StrCat(" mark=", kDefaultServiceMark))) << marked;
  EXPECT_GE(Count(CN_R_SOCK_CONNECT), before + 12);
  EXPECT_GE(Count(CN_R_SOCK_REVERSE), 12u) << "getpeername showed the ClusterIP";

  // An IPv6 socket connecting to the IPv4-mapped ClusterIP (connect6 + getpeername6).
  std::string m =
      InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kVip, 80, /*v6=*/true); });
  EXPECT_THAT(m, StartsWith("peer=[::ffff:10.96.0.10]:80 reply=B")) << m;
}

TEST_F(SocketLbE2eTest, Ipv6TcpConnectToTheClusterIpReachesABackend) {
  LineServer s1(b1_.path(), "::", 8080, "B1"), s2(b2_.path(), "::", 8080, "B2");
  for (int i = 0; i < 4; ++i) {
    std::string r =
        InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kVip6, 80, true); });
    EXPECT_THAT(r, StartsWith("peer=[fd00:96::10]:80 reply=B")) << r;
  }
}

TEST_F(SocketLbE2eTest, UnconnectedUdpRecvfromReportsTheClusterIp) {
  UdpServer u1(b1_.path(), kB1, 5353, "B1"), u2(b2_.path(), kB2, 5353, "B2");
  uint64_t before = Count(CN_R_SOCK_SENDMSG);
  for (int i = 0; i < 4; ++i) {
    std::string r = InChild(cgroup_.path(), node_.path(),
                            [] { return UdpExchange(kVip, 53, false, /*connected=*/false); });
    EXPECT_THAT(r, StartsWith("from=10.96.0.10:53 reply=B")) << r;
  }
  EXPECT_GE(Count(CN_R_SOCK_SENDMSG), before + 4);
  // Connected UDP: connect once, getpeername and recvfrom show the ClusterIP.
  std::string c = InChild(cgroup_.path(), node_.path(),
                          [] { return UdpExchange(kVip, 53, false, /*connected=*/true); });
  EXPECT_THAT(c, StartsWith("peer=10.96.0.10:53 from=10.96.0.10:53 reply=B")) << c;
}

TEST_F(SocketLbE2eTest, Ipv6UnconnectedUdpRecvfromReportsTheClusterIp) {
  UdpServer u1(b1_.path(), V6(kB1), 5353, "B1"), u2(b2_.path(), V6(kB2), 5353, "B2");
  std::string r = InChild(cgroup_.path(), node_.path(),
                          [] { return UdpExchange(kVip6, 53, true, /*connected=*/false); });
  EXPECT_THAT(r, StartsWith("from=[fd00:96::10]:53 reply=B")) << r;
}

TEST_F(SocketLbE2eTest, NodePortOnANodeAddressReachesTheBackend) {
  LineServer s2(b2_.path(), kB2, 8080, "B2");
  // b2 is a local endpoint: its to-pod sees the connection itself, so no service mark.
  ASSERT_TRUE(dp_->endpoints().Upsert(Endpoint{Ip(kB2), 0}).ok());
  std::string r =
      InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kNodeIp, 30080, false); });
  EXPECT_THAT(r, StartsWith("peer=192.168.77.1:30080 reply=B2")) << r;
  EXPECT_THAT(r, ::testing::EndsWith(" mark=0")) << r;
}

TEST_F(SocketLbE2eTest, ServiceWithoutBackendsIsRefusedAtOnce) {
  uint64_t before = Count(CN_R_SOCK_REFUSED);
  auto start = Clock::now();
  std::string r =
      InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kVipEmpty, 80, false); });
  auto took = Clock::now() - start;
  EXPECT_EQ(r, StrCat("error=", ECONNREFUSED));
  EXPECT_LT(took, std::chrono::milliseconds(500));
  EXPECT_EQ(Count(CN_R_SOCK_REFUSED), before + 1);
  // Unconnected UDP to it: sendto fails the same way.
  std::string u = InChild(cgroup_.path(), node_.path(),
                          [] { return UdpExchange(kVipEmpty, 80, false, false); });
  EXPECT_EQ(u, StrCat("error=", ECONNREFUSED));
}

// Must show 2: sockets outside the cgroup, and sockets in the cgroup but outside the served
// namespaces, are not translated.
TEST_F(SocketLbE2eTest, OnlySocketsOfTheCgroupInServedNamespacesAreTranslated) {
  LineServer vip(node_.path(), kVip, 80, "VIP"), other(other_.path(), kVip, 80, "OTHER");
  LineServer s1(b1_.path(), kB1, 8080, "B1"), s2(b2_.path(), kB2, 8080, "B2");
  uint64_t before = Count(CN_R_SOCK_CONNECT);
  // Outside the cgroup, in the served node namespace: reaches the ClusterIP's own listener.
  std::string outside_cg = InChild("", node_.path(), [] { return TcpExchange(kVip, 80, false); });
  EXPECT_THAT(outside_cg, StartsWith("peer=10.96.0.10:80 reply=VIP ")) << outside_cg;
  EXPECT_THAT(outside_cg, ::testing::EndsWith(" mark=0")) << outside_cg;
  // In the cgroup, in a namespace the instance does not serve: untouched as well.
  std::string unserved =
      InChild(cgroup_.path(), other_.path(), [] { return TcpExchange(kVip, 80, false); });
  EXPECT_THAT(unserved, StartsWith("peer=10.96.0.10:80 reply=OTHER ")) << unserved;
  EXPECT_EQ(Count(CN_R_SOCK_CONNECT), before) << "nothing was translated";
  // The control: in the cgroup and in the served namespace, the same connect is translated.
  std::string served =
      InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kVip, 80, false); });
  EXPECT_THAT(served, StartsWith("peer=10.96.0.10:80 reply=B")) << served;
  // A namespace no longer served is untouched again.
  ASSERT_TRUE(dp_->StopServingNetnsForSocketLb(node_.path()).ok());
  std::string stopped =
      InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kVip, 80, false); });
  EXPECT_THAT(stopped, StartsWith("peer=10.96.0.10:80 reply=VIP ")) << stopped;
  auto cookies = dp_->SocketLbNetns();
  ASSERT_TRUE(cookies.ok());
  EXPECT_EQ(cookies->size(), 1u);  // the client pod's namespace
}

// Isolation rule (e): a socket-LB'd connection arrives at the backend already addressed to it;
// the sock_ops record makes the backend's to-pod policy admit it as "through a Service".
TEST_F(SocketLbE2eTest, IsolatedBackendAdmitsSocketLbConnectionsButNotDirectOnes) {
  std::vector<PodAttachment> pods;
  absl::Status s = RunInNetns(node_.path(), [&]() -> absl::Status {
    for (const char* ifname : {"hc", "hb1"}) {
      auto a = dp_->AttachPod(ifname);
      if (!a.ok()) return a.status();
      pods.push_back(std::move(*a));
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  PolicySnapshot world;
  world.namespaces = {NamespaceInfo{"iso", {}, true}, NamespaceInfo{"other", {}, false}};
  PodInfo b1{"iso", "b1", {Ip(kB1)}, {{"app", "db"}}, true};
  PodInfo c{"other", "c", {Ip(kClient)}, {{"app", "client"}}, true};
  world.pods = {b1, c};
  ASSERT_TRUE(dp_->policy().Replace(world).ok());
  auto applied = dp_->policy().Apply();
  ASSERT_TRUE(applied.ok()) << applied.status();

  LineServer s1(b1_.path(), kB1, 8080, "B1");
  uint64_t via_service = Count(CN_R_POLICY_SERVICE);
  uint64_t flows = Count(CN_R_SOCK_FLOW);
  std::string r =
      InChild(cgroup_.path(), client_.path(), [] { return TcpExchange(kVipIso, 80, false); });
  EXPECT_THAT(r, StartsWith("peer=10.96.0.20:80 reply=B1 10.244.1.10")) << r;
  EXPECT_GE(Count(CN_R_SOCK_FLOW), flows + 1);
  EXPECT_GE(Count(CN_R_POLICY_SERVICE), via_service + 1);
  // The record goes with the connection (sock_ops state change to TCP_CLOSE).
  size_t left = 1;
  for (int i = 0; i < 40 && left != 0; ++i) {
    auto recorded = dp_->maps()->sock_flows.Dump();
    ASSERT_TRUE(recorded.ok()) << recorded.status();
    left = recorded->size();
    if (left != 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(left, 0u) << "the closed connection's cn_sock_flows entry is still there";
  // The same pod connecting to the backend directly is refused by the isolation.
  uint64_t isolated = Count(CN_R_DROP_ISOLATED);
  std::string direct =
      InChild(cgroup_.path(), client_.path(), [] { return TcpExchange(kB1, 8080, false); });
  EXPECT_THAT(direct, StartsWith("error=")) << direct;
  EXPECT_GE(Count(CN_R_DROP_ISOLATED), isolated + 1);
}

// The links are pinned: released, they keep translating after the attachment object is gone;
// ListSocketLb() shows them and DetachSocketLb() removes them.
TEST_F(SocketLbE2eTest, PinnedLinksOutliveTheAttachmentUntilDetached) {
  LineServer vip(node_.path(), kVip, 80, "VIP");
  LineServer s1(b1_.path(), kB1, 8080, "B1"), s2(b2_.path(), kB2, 8080, "B2");
  attachment_.Release();
  auto listed = ListSocketLb(dp_->layout());
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].cgroup_id, *CgroupId(cgroup_.path()));
  EXPECT_EQ((*listed)[0].hooks.size(), 9u);
  // cninet-dp (another process, on the pinned maps) shows the attachment and the namespaces.
  CommandResult st = ::cninet::testing::Run(
      {std::string(CNINET_TOOL_DIR) + "/cninet-dp", "--pin-dir", dp_->pin_dir(), "status"});
  EXPECT_TRUE(st.ok()) << st.err;
  EXPECT_THAT(st.out, ::testing::AllOf(HasSubstr("socket LB cgroups: 1"),
                                       HasSubstr(StrCat("cgroup id ", *CgroupId(cgroup_.path()))),
                                       HasSubstr("connect4(prog "), HasSubstr("sock_ops(prog "),
                                       HasSubstr("socket LB netns cookies: 2")));
  std::string r =
      InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kVip, 80, false); });
  EXPECT_THAT(r, StartsWith("peer=10.96.0.10:80 reply=B")) << r;
  // Attaching again (a restarted agent) updates the pinned links in place.
  auto again = dp_->AttachSocketLb(cgroup_.path());
  ASSERT_TRUE(again.ok()) << again.status();
  again->Release();
  ASSERT_TRUE(DetachSocketLb(dp_->layout(), cgroup_.path()).ok());
  EXPECT_TRUE(ListSocketLb(dp_->layout())->empty());
  std::string after =
      InChild(cgroup_.path(), node_.path(), [] { return TcpExchange(kVip, 80, false); });
  EXPECT_THAT(after, StartsWith("peer=10.96.0.10:80 reply=VIP ")) << after;
}

TEST_F(SocketLbE2eTest, ProgramsStayFarBelowTheVerifierLimit) {
  auto stats = dp_->SocketLbStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->size(), 9u);
  for (const ProgramStats& s : *stats) {
    std::printf("%-22s verified %u insns, %u bytes jited\n", s.name.c_str(), s.verified_insns,
                s.jited_bytes);
    EXPECT_LT(s.verified_insns, 100000u) << s.name;
  }
}

}  // namespace
}  // namespace cninet::datapath::testing
