// cninet-dp: load/attach a datapath instance, program services and inspect its maps
// (services, conntrack, NAT, counters), like `cilium bpf ct list global`.
//
//   cninet-dp [--pin-dir DIR] COMMAND ...      (default DIR: /sys/fs/bpf/cninet/default)
//   load --cluster-cidr CIDR --node-ip IP [--node-ip IP] [--from-pod IF]... [--uplink IF]
//        [--no-masquerade] [--ct-size N] [--nat-size N] [--nat-ports MIN-MAX]
//   detach [--from-pod IF]... [--uplink IF]
//   service list | service upsert --id N --frontend KIND:ADDR:PORT/PROTO... [--backend
//   ADDR:PORT]...
//        [--random] [--maglev-size M] [--affinity SECONDS] [--flush-removed] | service delete --id
//        N
//   ct list | ct flush | ct gc | ct stats
//   nat list | nat flush | nat gc
//   counters [--all]
//   endpoint add ADDR IFINDEX | endpoint delete ADDR | endpoint list
//   unpin
// Interface operations act in the current network namespace (use `ip netns exec`).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/datapath.h"

namespace dp = cninet::datapath;
using cninet::StrCat;
using cninet::ToAbsl;

namespace {

struct Args {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> flags;  // --name value ("" for switches)
  std::vector<std::string> All(std::string_view name) const {
    std::vector<std::string> v;
    for (const auto& [k, val] : flags)
      if (k == name) v.push_back(val);
    return v;
  }
  std::string One(std::string_view name, std::string def = "") const {
    auto v = All(name);
    return v.empty() ? def : v.back();
  }
  bool Has(std::string_view name) const { return !All(name).empty(); }
};

const std::set<std::string_view>& Switches() {
  static const std::set<std::string_view> s = {"no-masquerade", "random", "all", "flush-removed",
                                               "help"};
  return s;
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view s = argv[i];
    if (s.rfind("--", 0) == 0) {
      std::string name(s.substr(2));
      if (Switches().count(name) || i + 1 >= argc) {
        a.flags.emplace_back(name, "");
      } else {
        a.flags.emplace_back(name, argv[++i]);
      }
    } else {
      a.positional.emplace_back(s);
    }
  }
  return a;
}

absl::StatusOr<uint32_t> Num(std::string_view s, std::string_view what) {
  uint32_t v;
  if (!absl::SimpleAtoi(ToAbsl(s), &v))
    return absl::InvalidArgumentError(StrCat("bad ", what, ": ", s));
  return v;
}

// "ADDR:PORT"
absl::StatusOr<dp::Backend> ParseBackend(std::string_view s) {
  auto pos = s.rfind(':');
  if (pos == std::string_view::npos)
    return absl::InvalidArgumentError(StrCat("backend needs ADDR:PORT: ", s));
  CNINET_ASSIGN_OR_RETURN(auto addr, cninet::cni::IPAddress::Parse(s.substr(0, pos)));
  CNINET_ASSIGN_OR_RETURN(uint32_t port, Num(s.substr(pos + 1), "port"));
  return dp::Backend{addr, static_cast<uint16_t>(port)};
}

// "clusterip:10.96.0.10:80/tcp", "externalip:1.2.3.4:80/tcp", "nodeport:30080/tcp",
// "clusterip:10.96.0.10:0/icmp"
absl::StatusOr<dp::Frontend> ParseFrontend(std::string_view s) {
  std::vector<std::string> parts = absl::StrSplit(ToAbsl(s), '/');
  if (parts.size() != 2) return absl::InvalidArgumentError(StrCat("frontend needs .../PROTO: ", s));
  dp::Frontend f;
  CNINET_ASSIGN_OR_RETURN(f.protocol, dp::ParseProtocol(parts[1]));
  std::vector<std::string> hp = absl::StrSplit(parts[0], ':');
  if (hp.size() == 2 && hp[0] == "nodeport") {
    f.kind = dp::FrontendKind::kNodePort;
    CNINET_ASSIGN_OR_RETURN(uint32_t port, Num(hp[1], "port"));
    f.port = static_cast<uint16_t>(port);
    return f;
  }
  if (hp.size() != 3 || (hp[0] != "clusterip" && hp[0] != "externalip"))
    return absl::InvalidArgumentError(
        StrCat("frontend must be clusterip:ADDR:PORT/P, externalip:... or nodeport:PORT/P: ", s));
  f.kind = hp[0] == "clusterip" ? dp::FrontendKind::kClusterIP : dp::FrontendKind::kExternalIP;
  CNINET_ASSIGN_OR_RETURN(f.address, cninet::cni::IPAddress::Parse(hp[1]));
  CNINET_ASSIGN_OR_RETURN(uint32_t port, Num(hp[2], "port"));
  f.port = static_cast<uint16_t>(port);
  return f;
}

std::string KindName(dp::FrontendKind k) {
  switch (k) {
    case dp::FrontendKind::kClusterIP:
      return "clusterip";
    case dp::FrontendKind::kExternalIP:
      return "externalip";
    case dp::FrontendKind::kNodePort:
      return "nodeport";
  }
  return "?";
}

std::vector<std::string> SplitIfs(const std::vector<std::string>& v) {
  std::vector<std::string> out;
  for (const auto& s : v)
    for (auto p : absl::StrSplit(s, ',', absl::SkipEmpty())) out.emplace_back(p);
  return out;
}

absl::Status Load(const Args& a, const std::string& pin_dir) {
  dp::DatapathConfig c;
  std::filesystem::path p(pin_dir);
  c.instance = p.filename().string();
  c.bpffs_root = p.parent_path().parent_path().string();
  if (p.parent_path().filename() != "cninet")
    return absl::InvalidArgumentError("--pin-dir must look like <bpffs>/cninet/<instance>");
  CNINET_ASSIGN_OR_RETURN(c.cluster_cidr, cninet::cni::IPPrefix::Parse(a.One("cluster-cidr")));
  for (const auto& ip : a.All("node-ip")) {
    CNINET_ASSIGN_OR_RETURN(auto addr, cninet::cni::IPAddress::Parse(ip));
    c.node_addresses.push_back(addr);
  }
  c.masquerade = !a.Has("no-masquerade");
  if (a.Has("ct-size")) {
    CNINET_ASSIGN_OR_RETURN(c.map_sizes.conntrack, Num(a.One("ct-size"), "ct-size"));
  }
  if (a.Has("nat-size")) {
    CNINET_ASSIGN_OR_RETURN(c.map_sizes.nat, Num(a.One("nat-size"), "nat-size"));
  }
  if (a.Has("nat-ports")) {
    std::vector<std::string> r = absl::StrSplit(a.One("nat-ports"), '-');
    if (r.size() != 2) return absl::InvalidArgumentError("--nat-ports MIN-MAX");
    CNINET_ASSIGN_OR_RETURN(uint32_t lo, Num(r[0], "port"));
    CNINET_ASSIGN_OR_RETURN(uint32_t hi, Num(r[1], "port"));
    c.nat_port_min = static_cast<uint16_t>(lo);
    c.nat_port_max = static_cast<uint16_t>(hi);
  }
  CNINET_ASSIGN_OR_RETURN(auto d, dp::Datapath::Create(c));
  auto attach = [&](dp::Hook h, const std::string& ifname) -> absl::Status {
    CNINET_ASSIGN_OR_RETURN(dp::TcAttachment at, d->Attach(h, ifname));
    at.Release();  // stays attached after this process exits
    std::cout << "attached " << dp::HookName(h) << " " << ifname << "\n";
    return absl::OkStatus();
  };
  for (const auto& i : SplitIfs(a.All("from-pod")))
    CNINET_RETURN_IF_ERROR(attach(dp::Hook::kFromPod, i));
  for (const auto& i : SplitIfs(a.All("uplink"))) {
    CNINET_RETURN_IF_ERROR(attach(dp::Hook::kFromWorld, i));
    CNINET_RETURN_IF_ERROR(attach(dp::Hook::kToWorld, i));
  }
  std::cout << "datapath loaded, maps in " << d->pin_dir() << "\n";
  return absl::OkStatus();
}

absl::Status Detach(const Args& a) {
  for (const auto& i : SplitIfs(a.All("from-pod")))
    CNINET_RETURN_IF_ERROR(dp::DetachHook(dp::Hook::kFromPod, i));
  for (const auto& i : SplitIfs(a.All("uplink"))) {
    CNINET_RETURN_IF_ERROR(dp::DetachHook(dp::Hook::kFromWorld, i));
    CNINET_RETURN_IF_ERROR(dp::DetachHook(dp::Hook::kToWorld, i));
  }
  return absl::OkStatus();
}

absl::Status ServiceCmd(dp::Datapath& d, const Args& a, std::string_view sub) {
  if (sub == "list") {
    auto list = d.services().List();
    std::printf("%-6s %-34s %-8s %s\n", "ID", "FRONTENDS", "LB", "BACKENDS");
    for (const auto& s : list) {
      std::vector<std::string> fe, be;
      for (const auto& f : s.frontends)
        fe.push_back(f.kind == dp::FrontendKind::kNodePort
                         ? StrCat("nodeport:", f.port, "/",
                                  dp::ProtocolName(static_cast<uint8_t>(f.protocol)))
                         : StrCat(KindName(f.kind), ":", f.address.ToString(), ":", f.port, "/",
                                  dp::ProtocolName(static_cast<uint8_t>(f.protocol))));
      for (const auto& b : s.backends) be.push_back(b.ToString());
      std::string lb =
          s.algorithm == dp::LbAlgorithm::kMaglev ? StrCat("maglev/", s.maglev_size) : "random";
      if (s.affinity_timeout.count() > 0)
        lb += StrCat(" affinity=", s.affinity_timeout.count(), "s");
      std::printf("%-6u %-34s %-8s %s\n", s.id, cninet::StrJoin(fe, ",").c_str(), lb.c_str(),
                  be.empty() ? "(none: reject)" : cninet::StrJoin(be, ",").c_str());
    }
    return absl::OkStatus();
  }
  if (sub == "upsert") {
    dp::Service s;
    CNINET_ASSIGN_OR_RETURN(s.id, Num(a.One("id"), "--id"));
    for (const auto& f : a.All("frontend")) {
      CNINET_ASSIGN_OR_RETURN(auto fe, ParseFrontend(f));
      s.frontends.push_back(fe);
    }
    for (const auto& b : a.All("backend")) {
      CNINET_ASSIGN_OR_RETURN(auto be, ParseBackend(b));
      s.backends.push_back(be);
    }
    if (a.Has("random")) s.algorithm = dp::LbAlgorithm::kRandom;
    if (a.Has("maglev-size")) {
      CNINET_ASSIGN_OR_RETURN(s.maglev_size, Num(a.One("maglev-size"), "--maglev-size"));
    }
    if (a.Has("affinity")) {
      CNINET_ASSIGN_OR_RETURN(uint32_t sec, Num(a.One("affinity"), "--affinity"));
      s.affinity_timeout = std::chrono::seconds(sec);
    }
    dp::UpsertOptions o;
    o.flush_conntrack_of_removed_backends = a.Has("flush-removed");
    CNINET_RETURN_IF_ERROR(d.services().Upsert(s, o));
    std::cout << "service " << s.id << " programmed with " << s.backends.size() << " backends\n";
    return absl::OkStatus();
  }
  if (sub == "delete") {
    CNINET_ASSIGN_OR_RETURN(uint32_t id, Num(a.One("id"), "--id"));
    return d.services().Delete(id);
  }
  return absl::InvalidArgumentError(StrCat("unknown service command '", sub, "'"));
}

absl::Status CtCmd(dp::Datapath& d, std::string_view sub) {
  if (sub == "list") {
    CNINET_ASSIGN_OR_RETURN(auto all, d.conntrack().Dump());
    for (const auto& e : all) std::cout << e.ToString() << "\n";
    std::cout << all.size() << " entries\n";
    return absl::OkStatus();
  }
  if (sub == "flush") {
    CNINET_ASSIGN_OR_RETURN(size_t n, d.conntrack().Flush());
    std::cout << "deleted " << n << " entries\n";
    return absl::OkStatus();
  }
  if (sub == "gc") {
    CNINET_ASSIGN_OR_RETURN(auto r, d.conntrack().Gc());
    std::cout << "scanned " << r.scanned << ", deleted " << r.deleted << " expired entries\n";
    return absl::OkStatus();
  }
  if (sub == "stats") {
    CNINET_ASSIGN_OR_RETURN(auto s, d.conntrack().Stats());
    std::cout << "entries " << s.entries << "/" << s.max_entries << " expired " << s.expired
              << " tcp " << s.tcp << " udp " << s.udp << " icmp " << s.icmp << " service "
              << s.service << "\n";
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(StrCat("unknown ct command '", sub, "'"));
}

absl::Status NatCmd(dp::Datapath& d, std::string_view sub) {
  if (sub == "list") {
    CNINET_ASSIGN_OR_RETURN(auto all, d.nat().Dump());
    for (const auto& e : all) std::cout << e.ToString() << "\n";
    std::cout << all.size() << " entries\n";
    return absl::OkStatus();
  }
  if (sub == "flush") {
    CNINET_ASSIGN_OR_RETURN(size_t n, d.nat().Flush());
    std::cout << "deleted " << n << " entries\n";
    return absl::OkStatus();
  }
  if (sub == "gc") {
    CNINET_ASSIGN_OR_RETURN(auto r, d.nat().Gc());
    std::cout << "scanned " << r.scanned << ", deleted " << r.deleted << " expired entries\n";
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(StrCat("unknown nat command '", sub, "'"));
}

absl::Status CountersCmd(dp::Datapath& d, const Args& a) {
  CNINET_ASSIGN_OR_RETURN(auto all, d.counters().Read());
  std::printf("%-26s %12s %14s\n", "REASON", "PACKETS", "BYTES");
  for (const auto& c : all) {
    if (c.packets == 0 && !a.Has("all")) continue;
    std::printf("%-26s %12llu %14llu\n", std::string(c.name).c_str(),
                static_cast<unsigned long long>(c.packets),
                static_cast<unsigned long long>(c.bytes));
  }
  return absl::OkStatus();
}

absl::Status EndpointCmd(dp::Datapath& d, const Args& a, std::string_view sub) {
  if (sub == "list") {
    CNINET_ASSIGN_OR_RETURN(auto eps, d.endpoints().List());
    for (const auto& e : eps) std::cout << e.address.ToString() << " ifindex " << e.ifindex << "\n";
    return absl::OkStatus();
  }
  if (a.positional.size() < 3)
    return absl::InvalidArgumentError("endpoint add ADDR IFINDEX | endpoint delete ADDR");
  CNINET_ASSIGN_OR_RETURN(auto addr, cninet::cni::IPAddress::Parse(a.positional[2]));
  if (sub == "delete") return d.endpoints().Delete(addr);
  if (sub == "add" && a.positional.size() >= 4) {
    dp::Endpoint e;
    e.address = addr;
    CNINET_ASSIGN_OR_RETURN(e.ifindex, Num(a.positional[3], "ifindex"));
    return d.endpoints().Upsert(e);
  }
  return absl::InvalidArgumentError(StrCat("unknown endpoint command '", sub, "'"));
}

constexpr char kUsage[] =
    R"(usage: cninet-dp [--pin-dir DIR] COMMAND ...   (DIR default: /sys/fs/bpf/cninet/default)
  load --cluster-cidr CIDR --node-ip IP [--node-ip IP]... [--from-pod IF[,IF]...] [--uplink IF]
       [--no-masquerade] [--ct-size N] [--nat-size N] [--nat-ports MIN-MAX]
  detach [--from-pod IF[,IF]...] [--uplink IF]
  service list
  service upsert --id N --frontend clusterip:ADDR:PORT/PROTO | externalip:ADDR:PORT/PROTO |
                 nodeport:PORT/PROTO ... [--backend ADDR:PORT]... [--random] [--maglev-size M]
                 [--affinity SECONDS] [--flush-removed]
  service delete --id N
  ct list | ct stats | ct gc | ct flush
  nat list | nat gc | nat flush
  counters [--all]
  endpoint list | endpoint add ADDR IFINDEX | endpoint delete ADDR
  unpin
load/detach act on interfaces of the current network namespace (use `ip netns exec`).
)";

absl::Status Main(const Args& a) {
  if (a.Has("help") || (!a.positional.empty() && a.positional[0] == "help")) {
    std::cout << kUsage;
    return absl::OkStatus();
  }
  if (a.positional.empty()) {
    std::cerr << kUsage;
    return absl::InvalidArgumentError("no command");
  }
  const std::string pin_dir = a.One("pin-dir", "/sys/fs/bpf/cninet/default");
  const std::string& cmd = a.positional[0];
  const std::string sub = a.positional.size() > 1 ? a.positional[1] : "list";
  if (cmd == "load") return Load(a, pin_dir);
  if (cmd == "detach") return Detach(a);
  CNINET_ASSIGN_OR_RETURN(auto d, dp::Datapath::OpenPinned(pin_dir));
  if (cmd == "service") return ServiceCmd(*d, a, sub);
  if (cmd == "ct") return CtCmd(*d, sub);
  if (cmd == "nat") return NatCmd(*d, sub);
  if (cmd == "counters") return CountersCmd(*d, a);
  if (cmd == "endpoint") return EndpointCmd(*d, a, sub);
  if (cmd == "unpin") return d->Unpin();
  return absl::InvalidArgumentError(StrCat("unknown command '", cmd, "'"));
}

}  // namespace

int main(int argc, char** argv) {
  absl::Status s = Main(Parse(argc, argv));
  if (!s.ok()) {
    std::cerr << "cninet-dp: " << s << "\n";
    return 1;
  }
  return 0;
}
