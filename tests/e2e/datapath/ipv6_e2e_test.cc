// IPv6 end to end in network namespaces: real TCP and UDP from a client pod to an IPv6 ClusterIP
// spread over three backend pods, and masqueraded IPv6 pod egress to an "outside" namespace,
// through the programs cninet-dp attaches (the kernel drops segments and datagrams with bad
// checksums, so a working exchange proves every rewrite kept them valid).
//
// Topology (all namespaces created by the test, IPv6 only):
//   client (fd00:244::10) --veth-- [hc  node  hb1] --veth-- b1 (fd00:244::21)
//                                  [    node  hb2] --veth-- b2 (fd00:244::22)
//                                  [    node  hb3] --veth-- b3 (fd00:244::23)
//                                  [up0 fd00:77::1] --veth-- outside (fd00:77::2)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>

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

constexpr char kVip[] = "fd00:96::10";
constexpr char kClient[] = "fd00:244::10";
constexpr char kB1[] = "fd00:244::21";
constexpr char kB2[] = "fd00:244::22";
constexpr char kB3[] = "fd00:244::23";
constexpr char kNodeIp[] = "fd00:77::1";
constexpr char kOutsideIp[] = "fd00:77::2";

std::string Tool() { return std::string(CNINET_TOOL_DIR) + "/cninet-dp"; }

sockaddr_in6 Addr6(const char* ip, uint16_t port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return a;
}

std::string PeerText(const sockaddr_in6& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof(buf));
  return std::string("[") + buf + "]:" + std::to_string(ntohs(a.sin6_port));
}

// A TCP server on [ip]:port in a namespace answering each line with "NAME [PEER]:PORT LINE",
// one connection at a time.
class Server6 {
 public:
  Server6(const std::string& netns_path, const char* ip, uint16_t port, std::string name)
      : name_(std::move(name)) {
    absl::Status s = RunInNetns(netns_path, [&]() -> absl::Status {
      fd_ = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in6 a = Addr6(ip, port);
      if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd_, 64) != 0)
        return absl::UnavailableError(std::string("listen: ") + strerror(errno));
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    thread_ = std::thread([this] { Loop(); });
  }
  ~Server6() {
    stop_ = true;
    thread_.join();
    if (fd_ >= 0) close(fd_);
  }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      sockaddr_in6 peer{};
      socklen_t len = sizeof(peer);
      int c = accept(fd_, reinterpret_cast<sockaddr*>(&peer), &len);
      if (c < 0) continue;
      timeval tv{5, 0};
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      std::string line;
      char ch;
      while (!stop_ && read(c, &ch, 1) == 1) {
        if (ch != '\n') {
          line.push_back(ch);
          continue;
        }
        std::string out = name_ + " " + PeerText(peer) + " " + line + "\n";
        if (write(c, out.data(), out.size()) < 0) break;
        line.clear();
      }
      close(c);
    }
  }
  std::string name_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The shared UDP line server on [::]:port ("NAME [PEER]:PORT DATA"); failing to bind fails the
// test.
struct UdpServer6 : ::cninet::testing::UdpLineServer {
  UdpServer6(const std::string& netns_path, uint16_t port, std::string name)
      : UdpLineServer(netns_path, AF_INET6, port, std::move(name)) {
    EXPECT_TRUE(status().ok()) << status();
  }
};

// One UDP query from a new socket (a new flow) connected to [ip]:port in a namespace: the reply
// (accepted only from [ip]:port, the connected peer) and the local port.
absl::StatusOr<std::pair<std::string, uint16_t>> UdpAsk(const std::string& netns_path,
                                                        const char* ip, uint16_t port,
                                                        const std::string& data) {
  std::pair<std::string, uint16_t> out;
  absl::Status st = RunInNetns(netns_path, [&]() -> absl::Status {
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in6 a = Addr6(ip, port);
    absl::Status s = absl::OkStatus();
    char buf[512];
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        send(fd, data.data(), data.size(), 0) < 0) {
      s = absl::UnavailableError(std::string("send: ") + strerror(errno));
    } else if (ssize_t n = recv(fd, buf, sizeof(buf), 0); n < 0) {
      s = absl::UnavailableError(std::string("no reply: ") + strerror(errno));
    } else {
      sockaddr_in6 local{};
      socklen_t len = sizeof(local);
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
      out = {std::string(buf, n), ntohs(local.sin6_port)};
    }
    close(fd);
    return s;
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<::cninet::testing::LineConn> Connect(const std::string& netns_path, const char* ip,
                                                    uint16_t port) {
  return ::cninet::testing::ConnectLine(netns_path, ip, port);
}

class DatapathIpv6E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    pin_dir_ = fs_.path() + "/cninet/e2e6";
    // No DAD on the veths' link-local addresses (a tentative one delays the first neighbour
    // resolution by a second).
    Must(
        node_.Exec("sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_dad=0 "
                   "net.ipv6.conf.default.accept_dad=0"));
    AddPod(client_, "hc", kClient);
    AddPod(b1_, "hb1", kB1);
    AddPod(b2_, "hb2", kB2);
    AddPod(b3_, "hb3", kB3);
    Must(node_.Exec("ip link add up0 type veth peer name eth0 netns " + outside_.name() +
                    " && ip -6 addr add fd00:77::1/64 dev up0 nodad && ip link set up0 up"));
    Must(outside_.Exec("ip -6 addr add fd00:77::2/64 dev eth0 nodad && ip link set eth0 up"));
    Dp("load --cluster-cidr fd00:244::/64 --cluster-cidr 10.244.0.0/16 --node-ip 192.168.77.1 "
       "--node-ip fd00:77::1 --from-pod hc,hb1,hb2,hb3 --uplink up0");
    Dp("service upsert --id 1 --frontend clusterip:[fd00:96::10]:80/tcp "
       "--backend [fd00:244::21]:8080 --backend [fd00:244::22]:8080 --backend [fd00:244::23]:8080 "
       "--maglev-size 251");
    Dp("service upsert --id 2 --frontend clusterip:[fd00:96::10]:53/udp "
       "--backend [fd00:244::21]:5353 --backend [fd00:244::22]:5353 --backend [fd00:244::23]:5353 "
       "--maglev-size 251");
  }

  void Must(const CommandResult& r) { ASSERT_TRUE(r.ok()) << r.out << r.err; }

  void AddPod(ScopedNetns& pod, const std::string& host_if, const std::string& ip) {
    Must(node_.Exec("ip link add " + host_if + " type veth peer name eth0 netns " + pod.name() +
                    " && ip -6 addr add fd00:244::1/128 dev " + host_if + " nodad && ip link set " +
                    host_if + " up && ip -6 route add " + ip + "/128 dev " + host_if));
    Must(pod.Exec("ip -6 addr add " + ip +
                  "/128 dev eth0 nodad && ip link set eth0 up && ip -6 route add fd00:244::1 dev "
                  "eth0 && ip -6 route add default via fd00:244::1 dev eth0"));
  }

  CommandResult Dp(const std::string& args) {
    CommandResult r = node_.Exec(Tool() + " --pin-dir " + pin_dir_ + " " + args);
    EXPECT_TRUE(r.ok()) << "cninet-dp " << args << ": " << r.out << r.err;
    return r;
  }

  ScopedBpffs fs_;
  std::string pin_dir_;
  ScopedNetns node_{"d6n"}, client_{"d6c"}, b1_{"d6b"}, b2_{"d6b"}, b3_{"d6b"}, outside_{"d6o"};
};

TEST_F(DatapathIpv6E2eTest, TcpThroughAClusterIpSpreadsOverThreeBackends) {
  Server6 s1(b1_.path(), kB1, 8080, "B1"), s2(b2_.path(), kB2, 8080, "B2"),
      s3(b3_.path(), kB3, 8080, "B3");
  std::map<std::string, int> hits;
  for (int i = 0; i < 24; ++i) {
    auto c = Connect(client_.path(), kVip, 80);
    ASSERT_TRUE(c.ok()) << c.status();
    auto reply = ::cninet::testing::AskLine(*c, "hello " + std::to_string(i));
    ASSERT_TRUE(reply.ok()) << reply.status();
    // The backend saw the client's own address and port (no SNAT on the ClusterIP path).
    EXPECT_THAT(*reply, HasSubstr(std::string(" [") + kClient + "]:" +
                                  std::to_string(c->LocalPort()) + " hello " + std::to_string(i)));
    ++hits[reply->substr(0, 2)];
  }
  EXPECT_GT(hits["B1"], 0);
  EXPECT_GT(hits["B2"], 0);
  EXPECT_GT(hits["B3"], 0);
  EXPECT_EQ(hits["B1"] + hits["B2"] + hits["B3"], 24);

  auto view = Datapath::OpenPinned(pin_dir_);
  ASSERT_TRUE(view.ok()) << view.status();
  auto ct = (*view)->conntrack().Dump();
  ASSERT_TRUE(ct.ok());
  int forward = 0;
  for (const auto& e : *ct) {
    if (e.service && !e.reply && e.tuple.dst.ToString() == kVip) {
      ++forward;
      EXPECT_THAT(e.nat_address.ToString(), ::testing::AnyOf(kB1, kB2, kB3));
    }
  }
  EXPECT_EQ(forward, 24);
  EXPECT_THAT(Dp("service list").out,
              ::testing::AllOf(HasSubstr("clusterip:[fd00:96::10]:80/tcp"),
                               HasSubstr("[fd00:244::21]:8080"), HasSubstr("[fd00:244::22]:8080")));
  EXPECT_THAT(Dp("ct list").out, HasSubstr("-> [fd00:96::10]:80 forward backend=[fd00:244::2"));
}

// UDP: each query from a new socket is a new flow; the reply must come from the VIP (the client's
// socket is connected to it) with a valid checksum (the kernel drops others).
TEST_F(DatapathIpv6E2eTest, UdpThroughAClusterIpSpreadsOverThreeBackends) {
  UdpServer6 u1(b1_.path(), 5353, "U1"), u2(b2_.path(), 5353, "U2"), u3(b3_.path(), 5353, "U3");
  std::map<std::string, int> hits;
  for (int i = 0; i < 30; ++i) {
    auto r = UdpAsk(client_.path(), kVip, 53, "q" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << "query " << i << ": " << r.status();
    // The backend saw the client's own address and port.
    EXPECT_THAT(r->first, HasSubstr(std::string(" [") + kClient + "]:" + std::to_string(r->second) +
                                    " q" + std::to_string(i)));
    ++hits[r->first.substr(0, 2)];
  }
  EXPECT_GT(hits["U1"], 0);
  EXPECT_GT(hits["U2"], 0);
  EXPECT_GT(hits["U3"], 0);
  EXPECT_EQ(hits["U1"] + hits["U2"] + hits["U3"], 30);
  EXPECT_THAT(Dp("ct list").out, HasSubstr("-> [fd00:96::10]:53 forward backend=[fd00:244::2"));
}

TEST_F(DatapathIpv6E2eTest, PodEgressIsMasqueradedToTheNodesIpv6Address) {
  Server6 out(outside_.path(), kOutsideIp, 9000, "OUT");
  auto conn = Connect(client_.path(), kOutsideIp, 9000);
  ASSERT_TRUE(conn.ok()) << conn.status();
  auto reply = ::cninet::testing::AskLine(*conn, "from a pod");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_THAT(*reply, HasSubstr(std::string("OUT [") + kNodeIp + "]:"));
  EXPECT_THAT(*reply, HasSubstr("from a pod"));
  EXPECT_THAT(Dp("nat list").out, HasSubstr(std::string("=> src [") + kNodeIp + "]"));
}

}  // namespace
}  // namespace cninet::datapath::testing
