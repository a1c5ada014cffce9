// End to end in network namespaces: client pod -> ClusterIP -> two backend pods through the
// attached programs (real TCP), conntrack visible from user space, a reload by a new process that
// keeps an open connection, and masquerade of pod egress to an "outside" namespace.
//
// Topology (all namespaces created by the test):
//   client (10.244.1.10) --veth-- [hc  node  hb1] --veth-- b1 (10.244.1.21)
//                                 [    node  hb2] --veth-- b2 (10.244.1.22)
//                                 [up0 192.168.77.1] --veth-- outside (192.168.77.2)
// cninet-dp (run in the node namespace) loads the datapath, pins maps in a private bpffs and
// attaches from-pod to hc/hb1/hb2 and from-world/to-world to up0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
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

constexpr char kVip[] = "10.96.0.10";
constexpr char kClient[] = "10.244.1.10";
constexpr char kB1[] = "10.244.1.21";
constexpr char kB2[] = "10.244.1.22";
constexpr char kNodeIp[] = "192.168.77.1";
constexpr char kOutsideIp[] = "192.168.77.2";

std::string Tool() { return std::string(CNINET_TOOL_DIR) + "/cninet-dp"; }

// An owned socket.
struct Sock {
  int fd = -1;
  Sock() = default;
  explicit Sock(int f) : fd(f) {}
  Sock(Sock&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  ~Sock() {
    if (fd >= 0) close(fd);
  }
};

sockaddr_in Addr(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

// The shared line server, answering "NAME IP:PORT LINE"; failing to listen fails the test.
struct LineServer : ::cninet::testing::LineServer {
  LineServer(const std::string& netns_path, const char* ip, uint16_t port, std::string name)
      : ::cninet::testing::LineServer(::cninet::testing::LineServerOptions{.netns_path = netns_path,
                                                                           .address = ip,
                                                                           .port = port,
                                                                           .name = std::move(name),
                                                                           .peer_port = true}) {
    EXPECT_TRUE(status().ok()) << status();
  }
};

// Connects from inside `netns_path`; the socket then works from any thread.
absl::StatusOr<Sock> Connect(const std::string& netns_path, const char* ip, uint16_t port) {
  Sock s;
  absl::Status st = RunInNetns(netns_path, [&]() -> absl::Status {
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in a = Addr(ip, port);
    if (connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      return absl::UnavailableError(std::string("connect: ") + strerror(errno));
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return s;
}

// Sends one line and returns the server's reply line.
absl::StatusOr<std::string> Ask(const Sock& s, const std::string& line) {
  std::string msg = line + "\n";
  if (write(s.fd, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size()))
    return absl::UnavailableError(std::string("write: ") + strerror(errno));
  std::string got;
  char c;
  while (got.empty() || got.back() != '\n') {
    ssize_t n = read(s.fd, &c, 1);
    if (n <= 0)
      return absl::UnavailableError("no reply (" + std::string(n == 0 ? "EOF" : strerror(errno)) +
                                    ")");
    got.push_back(c);
  }
  got.pop_back();
  return got;
}

uint16_t LocalPort(const Sock& s) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

class DatapathE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    pin_dir_ = fs_.path() + "/cninet/e2e";
    Must(
        node_.Exec("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                   "net.ipv4.conf.default.rp_filter=0"));
    AddPod(client_, "hc", kClient);
    AddPod(b1_, "hb1", kB1);
    AddPod(b2_, "hb2", kB2);
    Must(node_.Exec("ip link add up0 type veth peer name eth0 netns " + outside_.name() +
                    " && ip addr add 192.168.77.1/24 dev up0 && ip link set up0 up"));
    Must(outside_.Exec("ip addr add 192.168.77.2/24 dev eth0 && ip link set eth0 up"));
    Load();
    Dp("service upsert --id 1 --frontend clusterip:10.96.0.10:80/tcp --backend 10.244.1.21:8080 "
       "--backend 10.244.1.22:8080 --maglev-size 251");
  }

  void Must(const CommandResult& r) { ASSERT_TRUE(r.ok()) << r.out << r.err; }

  void AddPod(ScopedNetns& pod, const std::string& host_if, const std::string& ip) {
    Must(node_.Exec("ip link add " + host_if + " type veth peer name eth0 netns " + pod.name() +
                    " && ip addr add 10.244.1.1/32 dev " + host_if + " && ip link set " + host_if +
                    " up && ip route add " + ip + "/32 dev " + host_if));
    Must(pod.Exec("ip addr add " + ip +
                  "/32 dev eth0 && ip link set eth0 up && ip route add 10.244.1.1 dev eth0 "
                  "&& ip route add default via 10.244.1.1"));
  }

  // Runs cninet-dp inside the node namespace (a separate process, like an agent restart).
  CommandResult Dp(const std::string& args) {
    CommandResult r = node_.Exec(Tool() + " --pin-dir " + pin_dir_ + " " + args);
    EXPECT_TRUE(r.ok()) << "cninet-dp " << args << ": " << r.out << r.err;
    return r;
  }
  void Load() {
    Dp("load --cluster-cidr 10.244.0.0/16 --node-ip 192.168.77.1 --from-pod hc,hb1,hb2 --uplink "
       "up0");
  }

  // Declaration order = reverse destruction order: servers go first, the bpffs last.
  ScopedBpffs fs_;
  std::string pin_dir_;
  ScopedNetns node_{"dpn"}, client_{"dpc"}, b1_{"dpb"}, b2_{"dpb"}, outside_{"dpo"};
};

TEST_F(DatapathE2eTest, ClusterIpSpreadsAcrossBothBackendsAndConntrackShowsTheFlows) {
  LineServer s1(b1_.path(), kB1, 8080, "B1"), s2(b2_.path(), kB2, 8080, "B2");
  std::map<std::string, int> hits;
  for (int i = 0; i < 16; ++i) {
    auto c = Connect(client_.path(), kVip, 80);
    ASSERT_TRUE(c.ok()) << c.status();
    auto reply = Ask(*c, "hello " + std::to_string(i));
    ASSERT_TRUE(reply.ok()) << reply.status();
    // "<backend> <client ip:port as the backend saw it> hello i": no SNAT on the ClusterIP path.
    EXPECT_THAT(*reply, HasSubstr(std::string(" ") + kClient + ":" + std::to_string(LocalPort(*c)) +
                                  " hello " + std::to_string(i)));
    ++hits[reply->substr(0, 2)];
  }
  EXPECT_GT(hits["B1"], 0) << "no connection reached B1";
  EXPECT_GT(hits["B2"], 0) << "no connection reached B2";
  EXPECT_EQ(hits["B1"] + hits["B2"], 16);

  auto view = Datapath::OpenPinned(pin_dir_);
  ASSERT_TRUE(view.ok()) << view.status();
  auto ct = (*view)->conntrack().Dump();
  ASSERT_TRUE(ct.ok());
  int forward = 0, reply = 0;
  for (const auto& e : *ct) {
    if (!e.service) continue;
    if (!e.reply && e.tuple.dst.ToString() == kVip && e.tuple.dst_port == 80) {
      ++forward;
      EXPECT_THAT(e.nat_address.ToString(), ::testing::AnyOf(kB1, kB2));
      EXPECT_EQ(e.nat_port, 8080);
      EXPECT_GE(e.packets, 3u) << e.ToString();
    }
    if (e.reply && e.nat_address.ToString() == kVip) ++reply;
  }
  EXPECT_EQ(forward, 16);
  EXPECT_EQ(reply, 16);

  // The tool shows the same state (Must-show 5).
  EXPECT_THAT(Dp("service list").out,
              ::testing::AllOf(HasSubstr("clusterip:10.96.0.10:80/tcp"),
                               HasSubstr("10.244.1.21:8080"), HasSubstr("10.244.1.22:8080")));
  std::string ctl = Dp("ct list").out;
  EXPECT_THAT(ctl, ::testing::AllOf(HasSubstr("-> 10.96.0.10:80 forward backend=10.244.1.2"),
                                    HasSubstr("32 entries")));
  std::string counters = Dp("counters").out;
  EXPECT_THAT(counters, ::testing::AllOf(HasSubstr("dnat"), HasSubstr("rev_dnat"),
                                         HasSubstr("event_ct_new")));
}

TEST_F(DatapathE2eTest, ReloadByANewProcessKeepsAnOpenConnection) {
  LineServer s1(b1_.path(), kB1, 8080, "B1"), s2(b2_.path(), kB2, 8080, "B2");
  auto conn = Connect(client_.path(), kVip, 80);
  ASSERT_TRUE(conn.ok()) << conn.status();
  auto first = Ask(*conn, "before reload");
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string backend = first->substr(0, 2);
  const std::string other_ip = backend == "B1" ? kB2 : kB1;

  // New process: reloads programs (tc replace) and reuses the pinned maps ...
  Load();
  // ... and another one moves the service to the other backend only.
  Dp(std::string("service upsert --id 1 --frontend clusterip:10.96.0.10:80/tcp --backend ") +
     other_ip + ":8080 --maglev-size 251");

  auto second = Ask(*conn, "after reload");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->substr(0, 2), backend)
      << "the open connection must stay on its backend: " << *second;
  EXPECT_THAT(*second, HasSubstr("after reload"));

  auto fresh = Connect(client_.path(), kVip, 80);
  ASSERT_TRUE(fresh.ok());
  auto third = Ask(*fresh, "new connection");
  ASSERT_TRUE(third.ok());
  EXPECT_NE(third->substr(0, 2), backend) << "new connections follow the updated service";

  auto view = Datapath::OpenPinned(pin_dir_);
  ASSERT_TRUE(view.ok());
  FlowTuple t{*cni::IPAddress::Parse(kClient), *cni::IPAddress::Parse(kVip), LocalPort(*conn), 80,
              Protocol::kTcp};
  auto e = (*view)->conntrack().Lookup(t);
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->has_value());
  EXPECT_TRUE((*e)->established);
  EXPECT_EQ((*e)->nat_address.ToString(), backend == "B1" ? kB1 : kB2);
}

TEST_F(DatapathE2eTest, PodEgressIsMasqueradedToTheNodeAddressAndRepliesReturn) {
  LineServer out(outside_.path(), kOutsideIp, 9000, "OUT");
  auto conn = Connect(client_.path(), kOutsideIp, 9000);
  ASSERT_TRUE(conn.ok()) << conn.status();
  auto reply = Ask(*conn, "from a pod");
  ASSERT_TRUE(reply.ok()) << reply.status();
  // The outside server sees the node address, and the reply made it back to the pod.
  EXPECT_THAT(*reply, HasSubstr(std::string("OUT ") + kNodeIp + ":"));
  EXPECT_THAT(*reply, HasSubstr("from a pod"));

  auto view = Datapath::OpenPinned(pin_dir_);
  ASSERT_TRUE(view.ok());
  FlowTuple t{*cni::IPAddress::Parse(kClient), *cni::IPAddress::Parse(kOutsideIp), LocalPort(*conn),
              9000, Protocol::kTcp};
  auto m = (*view)->nat().Lookup(t, /*egress=*/true);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->has_value());
  EXPECT_EQ((*m)->to_address.ToString(), kNodeIp);
  EXPECT_THAT(*reply, HasSubstr(std::string(kNodeIp) + ":" + std::to_string((*m)->to_port)));
  EXPECT_THAT(Dp("nat list").out, HasSubstr(std::string("=> src ") + kNodeIp));
  EXPECT_THAT(Dp("counters").out, ::testing::AllOf(HasSubstr("snat"), HasSubstr("rev_snat")));
}

TEST_F(DatapathE2eTest, NodePortAndExternalIpFromOutsideReachLocalBackends) {
  LineServer s1(b1_.path(), kB1, 8080, "B1"), s2(b2_.path(), kB2, 8080, "B2");
  // Local endpoints: no SNAT, so the backend sees the real client address.
  Dp("endpoint add 10.244.1.21 1");
  Dp("endpoint add 10.244.1.22 1");
  Dp("service upsert --id 2 --frontend nodeport:30080/tcp --backend 10.244.1.21:8080");
  Dp("service upsert --id 3 --frontend externalip:203.0.113.10:80/tcp --backend 10.244.1.22:8080");
  Must(outside_.Exec("ip route add 203.0.113.10/32 via 192.168.77.1"));

  auto np = Connect(outside_.path(), kNodeIp, 30080);
  ASSERT_TRUE(np.ok()) << np.status();
  auto r1 = Ask(*np, "nodeport");
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_THAT(*r1,
              HasSubstr(std::string("B1 ") + kOutsideIp + ":" + std::to_string(LocalPort(*np))));

  auto ext = Connect(outside_.path(), "203.0.113.10", 80);
  ASSERT_TRUE(ext.ok()) << ext.status();
  auto r2 = Ask(*ext, "externalip");
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_THAT(*r2, HasSubstr(std::string("B2 ") + kOutsideIp + ":"));

  // A ClusterIP is not reachable from outside.
  Must(outside_.Exec("ip route add 10.96.0.10/32 via 192.168.77.1"));
  auto cip = RunInNetns(outside_.path(), [] {
    Sock s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    timeval tv{1, 0};
    setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in a = Addr(kVip, 80);
    return connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0
               ? absl::OkStatus()
               : absl::UnavailableError(strerror(errno));
  });
  EXPECT_FALSE(cip.ok()) << "ClusterIP answered from outside";
}

}  // namespace
}  // namespace cninet::datapath::testing
