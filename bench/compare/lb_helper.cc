// cninet-bench-lb: programs N ClusterIP services into a private (unpinned) cninet datapath,
// attaches the from-pod program to the given interfaces of the calling network namespace and
// keeps them until SIGTERM/SIGINT, then detaches (RAII) and prints the datapath's counters.
// bench/compare/compare.sh runs it inside the node namespace (`ip netns exec`).
//
//   cninet-bench-lb --services N --vip-base A --port P --backend ADDR:PORT [--backend ...]
//                   [--service tcp|udp:VIP:PORT=ADDR:PORT ...] --attach IF[,IF...]
//                   [--cluster-cidr CIDR] [--node-ip IP] [--maglev-size M] [--ready-file PATH]
//                   [--socket-lb-cgroup DIR --socket-lb-netns PATH]
//
// Service i (0..N-1) is VIP A+i, TCP port P, every --backend, Maglev with table size M (default
// 251: 10k services x the default M=16381 would pin 1.3 GB of tables). --service adds one more
// service each (e.g. the iperf3 frontends). "ready" is written to --ready-file (or stdout) once
// everything is attached. With --socket-lb-cgroup, the socket-LB programs are also attached to
// that cgroup v2 directory (one the caller created) and translate the sockets of the network
// namespace --socket-lb-netns (/run/netns/NAME) only; they are detached before the exit report.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/socket_lb.h"

namespace {

using cninet::StrCat;
using cninet::ToAbsl;
using cninet::cni::IPAddress;
using cninet::cni::IPPrefix;
namespace dp = cninet::datapath;

struct Args {
  uint32_t services = 1;
  IPAddress vip_base;
  uint16_t port = 80;
  std::vector<dp::Backend> backends;
  std::vector<dp::Service> extra;
  std::vector<std::string> attach;
  std::string cluster_cidr = "10.244.0.0/16";
  std::string node_ip = "192.168.77.1";
  uint32_t maglev_size = 251;
  std::string ready_file;
  std::string socket_lb_cgroup;  // "": no socket LB
  std::string socket_lb_netns;
};

absl::StatusOr<dp::Backend> ParseBackend(std::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(ToAbsl(text), ':');
  int port = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &port) || port <= 0 || port > 65535)
    return absl::InvalidArgumentError(StrCat("backend must be ADDR:PORT, got ", text));
  CNINET_ASSIGN_OR_RETURN(IPAddress a, IPAddress::Parse(parts[0]));
  return dp::Backend{a, static_cast<uint16_t>(port)};
}

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  bool have_base = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) return absl::InvalidArgumentError(StrCat(flag, " needs a value"));
    std::string v = argv[++i];
    if (flag == "--services") {
      if (!absl::SimpleAtoi(v, &a.services) || a.services == 0 || a.services > 60000)
        return absl::InvalidArgumentError("--services must be 1..60000");
    } else if (flag == "--vip-base") {
      CNINET_ASSIGN_OR_RETURN(a.vip_base, IPAddress::Parse(v));
      have_base = true;
    } else if (flag == "--port") {
      int p = 0;
      if (!absl::SimpleAtoi(v, &p) || p <= 0 || p > 65535)
        return absl::InvalidArgumentError("--port must be 1..65535");
      a.port = static_cast<uint16_t>(p);
    } else if (flag == "--backend") {
      CNINET_ASSIGN_OR_RETURN(dp::Backend b, ParseBackend(v));
      a.backends.push_back(b);
    } else if (flag == "--service") {
      // tcp|udp:VIP:PORT=ADDR:PORT
      std::vector<std::string> lr = absl::StrSplit(v, '=');
      std::vector<std::string> fe = absl::StrSplit(lr[0], ':');
      int port = 0;
      if (lr.size() != 2 || fe.size() != 3 || !absl::SimpleAtoi(fe[2], &port))
        return absl::InvalidArgumentError(StrCat("--service must be PROTO:VIP:PORT=ADDR:PORT"));
      CNINET_ASSIGN_OR_RETURN(dp::Protocol proto, dp::ParseProtocol(fe[0]));
      CNINET_ASSIGN_OR_RETURN(IPAddress vip, IPAddress::Parse(fe[1]));
      CNINET_ASSIGN_OR_RETURN(dp::Backend b, ParseBackend(lr[1]));
      dp::Service s;
      s.frontends.push_back(
          dp::Frontend{vip, static_cast<uint16_t>(port), proto, dp::FrontendKind::kClusterIP});
      s.backends.push_back(b);
      a.extra.push_back(s);
    } else if (flag == "--attach") {
      for (auto part : absl::StrSplit(v, ',')) a.attach.emplace_back(part);
    } else if (flag == "--cluster-cidr") {
      a.cluster_cidr = v;
    } else if (flag == "--node-ip") {
      a.node_ip = v;
    } else if (flag == "--maglev-size") {
      if (!absl::SimpleAtoi(v, &a.maglev_size))
        return absl::InvalidArgumentError("--maglev-size must be a number");
    } else if (flag == "--ready-file") {
      a.ready_file = v;
    } else if (flag == "--socket-lb-cgroup") {
      a.socket_lb_cgroup = v;
    } else if (flag == "--socket-lb-netns") {
      a.socket_lb_netns = v;
    } else {
      return absl::InvalidArgumentError(StrCat("unknown flag ", flag));
    }
  }
  if (!have_base || a.backends.empty() || a.attach.empty())
    return absl::InvalidArgumentError("--vip-base, --backend and --attach are required");
  if (a.socket_lb_cgroup.empty() != a.socket_lb_netns.empty())
    return absl::InvalidArgumentError("--socket-lb-cgroup and --socket-lb-netns go together");
  return a;
}

absl::Status Run(const Args& a) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);  // taken by sigwait below

  dp::DatapathConfig cfg;
  cfg.pin_maps = false;
  CNINET_ASSIGN_OR_RETURN(cfg.cluster_cidr, IPPrefix::Parse(a.cluster_cidr));
  CNINET_ASSIGN_OR_RETURN(IPAddress node, IPAddress::Parse(a.node_ip));
  cfg.node_addresses = {node};
  const uint32_t total = a.services + static_cast<uint32_t>(a.extra.size());
  cfg.map_sizes.services = std::max<uint32_t>(1024, total * 2);
  cfg.map_sizes.service_slots = std::max<uint32_t>(1024, total + 2);
  cfg.map_sizes.backends =
      std::max<uint32_t>(4096, total * static_cast<uint32_t>(a.backends.size() + 1));
  cfg.map_sizes.conntrack = 1u << 20;  // short connections: 2 entries each, closing for 10 s
  CNINET_ASSIGN_OR_RETURN(std::unique_ptr<dp::Datapath> d, dp::Datapath::Create(cfg));

  std::vector<dp::Service> chunk;
  const uint32_t base = (static_cast<uint32_t>(a.vip_base.bytes()[0]) << 24) |
                        (a.vip_base.bytes()[1] << 16) | (a.vip_base.bytes()[2] << 8) |
                        a.vip_base.bytes()[3];
  for (uint32_t i = 0; i < total; ++i) {
    dp::Service s;
    if (i < a.services) {
      s.frontends.push_back(dp::Frontend{IPAddress::V4(base + i), a.port, dp::Protocol::kTcp,
                                         dp::FrontendKind::kClusterIP});
      s.backends = a.backends;
    } else {
      s = a.extra[i - a.services];
    }
    s.id = i + 1;
    s.maglev_size = a.maglev_size;
    chunk.push_back(std::move(s));
    if (chunk.size() == 4096 || i + 1 == total) {
      CNINET_RETURN_IF_ERROR(d->services().UpsertBatch(chunk));
      chunk.clear();
    }
  }
  std::vector<dp::TcAttachment> attachments;
  for (const auto& ifname : a.attach) {
    CNINET_ASSIGN_OR_RETURN(dp::TcAttachment at, d->Attach(dp::Hook::kFromPod, ifname));
    attachments.push_back(std::move(at));
  }
  std::optional<dp::SocketLbAttachment> socket_lb;
  if (!a.socket_lb_cgroup.empty()) {
    CNINET_RETURN_IF_ERROR(d->ServeNetnsForSocketLb(a.socket_lb_netns).status());
    CNINET_ASSIGN_OR_RETURN(socket_lb, d->AttachSocketLb(a.socket_lb_cgroup));
  }
  if (a.ready_file.empty()) {
    std::printf("ready\n");
    std::fflush(stdout);
  } else {
    std::ofstream(a.ready_file) << "ready\n";
  }
  int sig = 0;
  sigwait(&set, &sig);
  if (socket_lb) CNINET_RETURN_IF_ERROR(socket_lb->Detach());  // detach before reporting
  attachments.clear();
  CNINET_ASSIGN_OR_RETURN(auto counters, d->counters().Read());
  std::string line = "cninet-bench-lb:";
  for (const auto& c : counters) {
    if (c.packets != 0) line += StrCat(" ", c.name, "=", c.packets);
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<Args> args = ParseArgs(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "cninet-bench-lb: %s\n", args.status().ToString().c_str());
    return 2;
  }
  absl::Status s = Run(*args);
  if (!s.ok()) {
    std::fprintf(stderr, "cninet-bench-lb: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
