// `cninet-dp monitor` end to end (issue 17, must-show 2): a pod that a NetworkPolicy refuses
// opens a real TCP connection; the test reads the monitor's JSON stream and finds the dropped SYN
// with its reason and rule within a second of sending it, over IPv4 and over IPv6.
//
// Topology (namespaces created by the test): pods web/api (10.244.1.31, fd00:244:1::31, selected
// by a policy admitting role=frontend of namespace web on TCP 80) and other/o1 (10.244.1.10,
// role=frontend in another namespace: refused) on veths of a node namespace. The datapath runs
// in this process with its maps pinned on a private bpffs; cninet-dp runs in the node namespace
// (nsenter --net, so the veth names resolve) and reads the pinned ring buffer.
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "dp_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using ::cninet::testing::CommandResult;
using ::cninet::testing::ScopedNetns;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr char kApi[] = "10.244.1.31", kApi6[] = "fd00:244:1::31";
constexpr char kO1[] = "10.244.1.10", kO16[] = "fd00:244:1::10";

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }

std::string Tool() { return std::string(CNINET_TOOL_DIR) + "/cninet-dp"; }

// A child process whose stdout is read line by line; killed (by its pid) and reaped when
// destroyed.
class Streamer {
 public:
  explicit Streamer(const std::vector<std::string>& argv) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    fd_ = out[0];
  }
  ~Streamer() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }
  bool started() const { return pid_ > 0 && fd_ >= 0; }
  void Signal(int sig) { kill(pid_, sig); }
  // The next line, or "" when none arrives before `deadline`.
  std::string ReadLine(Clock::time_point deadline) {
    while (true) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return "";
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n <= 0) return "";
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  // Exit code after waiting up to `timeout` (-1: still running or killed).
  int Wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    int status = 0;
    while (Clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      usleep(10000);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool reaped_ = false;
  std::string buf_;
};

PodInfo Pod(std::string ns, std::string name, std::string_view ip, std::string_view ip6,
            Labels labels) {
  PodInfo p;
  p.namespace_name = std::move(ns);
  p.name = std::move(name);
  p.addresses = {Ip(ip), Ip(ip6)};
  p.labels = std::move(labels);
  p.local = true;
  return p;
}

class MonitorE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(fs_.status().ok()) << fs_.status();
    Must(
        node_.Exec("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                   "net.ipv4.conf.default.rp_filter=0 net.ipv6.conf.all.forwarding=1 "
                   "net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0"));
    DatapathConfig cfg;
    cfg.pin_maps = true;
    cfg.bpffs_root = fs_.path();
    cfg.instance = ::cninet::testing::UniqueName("mon");
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
    cfg.map_sizes.monitor_ring_bytes = 1u << 16;
    auto dp = Datapath::Create(cfg);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    ASSERT_NO_FATAL_FAILURE(AddPod("api", kApi, kApi6));
    ASSERT_NO_FATAL_FAILURE(AddPod("o1", kO1, kO16));
    PolicySnapshot s;
    s.namespaces = {NamespaceInfo{"other", {}, false}, NamespaceInfo{"web", {}, false}};
    s.pods = {Pod("other", "o1", kO1, kO16, {{"role", "frontend"}}),
              Pod("web", "api", kApi, kApi6, {{"role", "api"}})};
    NetworkPolicy p;
    p.namespace_name = "web";
    p.name = "api-from-frontend";
    p.pod_selector.match_labels = {{"role", "api"}};
    PolicyPeer fe;
    fe.pod_selector = LabelSelector{{{"role", "frontend"}}, {}};
    p.ingress = {IngressRule{{fe}, {PolicyPort{PolicyProtocol::kTcp, 80, 0}}}};
    s.policies = {p};
    ASSERT_TRUE(dp_->policy().Replace(s).ok());
    auto r = dp_->policy().Apply();
    ASSERT_TRUE(r.ok()) << r.status();
  }
  void TearDown() override {
    attachments_.clear();
    if (dp_) {
      EXPECT_TRUE(dp_->Unpin().ok());
    }
  }

  void Must(const CommandResult& r) { ASSERT_TRUE(r.ok()) << r.out << r.err; }

  void AddPod(const std::string& name, const std::string& ip, const std::string& ip6) {
    auto ns = std::make_unique<ScopedNetns>(StrCat("pm", name));
    std::string host_if = StrCat("hm", name);
    Must(node_.Exec(StrCat(
        "ip link add ", host_if, " type veth peer name eth0 netns ", ns->name(),
        " && ip addr add 10.244.1.1/32 dev ", host_if, " && ip -6 addr add fd00:244:1::1/128 dev ",
        host_if, " nodad && ip link set ", host_if, " up && ip route add ", ip, "/32 dev ", host_if,
        " && ip -6 route add ", ip6, "/128 dev ", host_if)));
    Must(ns->Exec(StrCat("ip addr add ", ip, "/32 dev eth0 && ip -6 addr add ", ip6,
                         "/128 dev eth0 nodad && ip link set eth0 up && ip route add 10.244.1.1 "
                         "dev eth0 && ip route add default via 10.244.1.1 && ip -6 route add "
                         "fd00:244:1::1 dev eth0 && ip -6 route add default via fd00:244:1::1")));
    absl::Status s = RunInNetns(node_.path(), [&]() -> absl::Status {
      auto a = dp_->AttachPod(host_if);
      if (!a.ok()) return a.status();
      attachments_.push_back(std::move(*a));
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << s;
    pods_.push_back(std::move(ns));
  }

  // Sends one SYN from o1 to ip:80 (a non-blocking connect, closed right away: its
  // retransmissions come a second later at the earliest) and returns when it was sent.
  Clock::time_point SendSyn(const std::string& ip, size_t from_pod = 1) {
    Clock::time_point sent;
    absl::Status st = RunInNetns(pods_[from_pod]->path(), [&]() -> absl::Status {
      auto [a, alen] = ::cninet::testing::SockAddr(ip, 80);
      int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) return absl::InternalError("socket");
      sent = Clock::now();
      int r = connect(fd, reinterpret_cast<sockaddr*>(&a), alen);
      int err = errno;
      // Keep the socket open briefly so the SYN leaves before close() resets state.
      usleep(50000);
      close(fd);
      if (r != 0 && err != EINPROGRESS) return absl::UnavailableError(strerror(err));
      return absl::OkStatus();
    });
    EXPECT_TRUE(st.ok()) << st;
    return sent;
  }

  // Runs `cninet-dp monitor --json --count 1 --reason drop_policy --address DST` in the node
  // namespace, sends one SYN to `dst` and returns the line it printed and how long after the
  // SYN it was read.
  std::pair<std::string, std::chrono::milliseconds> MonitorOneDrop(const std::string& dst) {
    Streamer mon({"/usr/bin/nsenter", StrCat("--net=", node_.path()), Tool(), "monitor", "--json",
                  "--count", "1", "--reason", "drop_policy", "--verdict", "drop", "--address", dst,
                  "--pin-dir", dp_->layout().MapDir()});
    EXPECT_TRUE(mon.started());
    usleep(200000);  // let it open the ring buffer (events queued before are read anyway)
    Clock::time_point sent = SendSyn(dst);
    std::string line = mon.ReadLine(sent + std::chrono::seconds(3));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent);
    EXPECT_EQ(mon.Wait(std::chrono::seconds(3)), 0) << "--count 1 exits after one event";
    return {line, took};
  }

  ScopedBpffs fs_;
  ScopedNetns node_{"pmnode"};
  std::vector<std::unique_ptr<ScopedNetns>> pods_;
  std::unique_ptr<Datapath> dp_;
  std::vector<PodAttachment> attachments_;
};

TEST_F(MonitorE2eTest, DroppedSynShowsWithReasonAndRuleWithinASecond) {
  for (auto [src, dst] : {std::pair{kO1, kApi}, std::pair{kO16, kApi6}}) {
    SCOPED_TRACE(dst);
    uint64_t before = *dp_->counters().Packets(CN_R_DROP_POLICY);
    auto [line, took] = MonitorOneDrop(dst);
    std::printf("monitor line after %lld ms: %s\n", static_cast<long long>(took.count()),
                line.c_str());
    ASSERT_FALSE(line.empty()) << "no event within 3 s";
    EXPECT_LT(took, std::chrono::seconds(1));
    EXPECT_THAT(line, HasSubstr("\"verdict\":\"dropped\""));
    EXPECT_THAT(line, HasSubstr("\"reason\":\"drop_policy\""));
    EXPECT_THAT(line, HasSubstr(StrCat("\"src\":\"", src, "\"")));
    EXPECT_THAT(line, HasSubstr(StrCat("\"dst\":\"", dst, "\"")));
    EXPECT_THAT(line, HasSubstr("\"dport\":80"));
    EXPECT_THAT(line, HasSubstr("\"tcp_flags\":\"S\""));
    EXPECT_THAT(line, HasSubstr("\"hook\":\"to-pod\""));
    EXPECT_THAT(line, HasSubstr("\"interface\":\"hmapi\""));
    EXPECT_THAT(line, HasSubstr(StrCat("\"rule\":\"default deny: no NetworkPolicy ingress rule of ",
                                       dst, " admits it (deny slot ")));
    EXPECT_GE(*dp_->counters().Packets(CN_R_DROP_POLICY), before + 1);
  }
}

TEST_F(MonitorE2eTest, ReadableLinesAndUsage) {
  CommandResult help = ::cninet::testing::Run({Tool(), "monitor", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("--count"));
  CommandResult bad = ::cninet::testing::Run({Tool(), "monitor", "--verdict", "maybe"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--verdict"));
  CommandResult missing = ::cninet::testing::Run(
      {Tool(), "monitor", "--count", "1", "--pin-dir", StrCat(fs_.path(), "/cninet/nothere")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("not found"));
  // The readable form of the same drop.
  Streamer mon({"/usr/bin/nsenter", StrCat("--net=", node_.path()), Tool(), "monitor", "--count",
                "1", "--pin-dir", dp_->layout().MapDir()});
  ASSERT_TRUE(mon.started());
  Clock::time_point sent = SendSyn(kApi);
  std::string line = mon.ReadLine(sent + std::chrono::seconds(3));
  EXPECT_THAT(line, HasSubstr(StrCat("DROP drop_policy tcp ", kO1)));
  EXPECT_THAT(line, HasSubstr(StrCat(" -> ", kApi, ":80 [S] to-pod if=hmapi")));
  EXPECT_EQ(mon.Wait(std::chrono::seconds(3)), 0);
  // Without --count it streams until SIGINT or SIGTERM, then exits cleanly.
  for (int sig : {SIGINT, SIGTERM}) {
    Streamer idle({Tool(), "monitor", "--pin-dir", dp_->layout().MapDir()});
    ASSERT_TRUE(idle.started());
    usleep(300000);
    idle.Signal(sig);
    EXPECT_EQ(idle.Wait(std::chrono::seconds(3)), 0) << "signal " << sig;
  }
}

// `--sample 1` turns the instance's sampling on: a new flow api -> o1 (no policy on o1) shows as
// a forwarded flow event from the from-pod hook; `--sample 0` turns it off again.
TEST_F(MonitorE2eTest, SampleFlagShowsForwardedNewFlows) {
  EXPECT_EQ(dp_->config().monitor_sample, 0);
  Streamer mon({"/usr/bin/nsenter", StrCat("--net=", node_.path()), Tool(), "monitor", "--json",
                "--sample", "1", "--verdict", "forward", "--count", "1", "--pin-dir",
                dp_->layout().MapDir()});
  ASSERT_TRUE(mon.started());
  usleep(300000);  // the sampling is set before the stream starts
  Clock::time_point sent = SendSyn(kO1, /*from_pod=*/0);
  std::string line = mon.ReadLine(sent + std::chrono::seconds(3));
  EXPECT_THAT(line, HasSubstr("\"verdict\":\"forwarded\",\"type\":\"flow\""));
  EXPECT_THAT(line, HasSubstr("\"hook\":\"from-pod\""));
  EXPECT_THAT(line, HasSubstr(StrCat("\"src\":\"", kApi, "\",\"dst\":\"", kO1, "\"")));
  EXPECT_THAT(line, HasSubstr("\"interface\":\"hmapi\""));
  EXPECT_EQ(mon.Wait(std::chrono::seconds(3)), 0);
  auto cfg = dp_->maps()->config.Lookup(0);
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->monitor_sample_h, 1);
  {
    Streamer off({Tool(), "monitor", "--sample", "0", "--pin-dir", dp_->layout().MapDir()});
    ASSERT_TRUE(off.started());
    usleep(300000);
    off.Signal(SIGTERM);
    EXPECT_EQ(off.Wait(std::chrono::seconds(3)), 0);
  }
  cfg = dp_->maps()->config.Lookup(0);
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->monitor_sample_h, 0);
}

}  // namespace
}  // namespace cninet::datapath::testing
