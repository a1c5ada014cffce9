// cninet-dp: load/attach a datapath instance, program services and inspect its maps
// (services, conntrack, NAT, counters), like `cilium bpf ct list global`. `cninet-dp --help` and
// `cninet-dp COMMAND --help` describe every command; usage errors exit with 2 and name the flag.
//
// Interface operations act in the current network namespace. To act in a named one, enter it with
// `nsenter --net=/run/netns/NAME cninet-dp ...`: `ip netns exec` remounts /sys, and that /sys has
// no bpffs, so the pinned maps under /sys/fs/bpf are not there.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/monitor.h"

namespace dp = cninet::datapath;
using cninet::StrCat;
using cninet::ToAbsl;

namespace {

constexpr char kDefaultPinDir[] = "/sys/fs/bpf/cninet/default";
constexpr char kNetnsNote[] =
    "load/detach act on interfaces of the current network namespace; enter another with "
    "`nsenter --net=/run/netns/NAME cninet-dp ...` (`ip netns exec` remounts /sys, which then "
    "has no bpffs and no pinned maps).\n";

// Every option value of every command (CLI11 binds them here).
struct Options {
  std::string pin_dir = kDefaultPinDir;
  // load / detach
  std::vector<std::string> cluster_cidrs;
  std::vector<std::string> node_ips, from_pod, uplink;
  bool no_masquerade = false;
  uint32_t ct_size = 0, nat_size = 0;
  uint16_t monitor_sample = 0;
  std::string nat_ports;
  // service
  uint32_t id = 0;
  std::vector<std::string> frontends, backends;
  bool random = false, flush_removed = false, drop_when_empty = false;
  uint32_t maglev_size = 0, affinity = 0;
  // counters
  bool all = false;
  // endpoint
  std::string address;
  uint32_t ifindex = 0;
  // socket LB (load --socklb-cgroup, socklb attach/detach/netns)
  std::string cgroup;
  std::vector<std::string> netns;
  // monitor
  bool json = false;
  std::vector<std::string> reasons, monitor_addresses;
  std::string verdict;
  uint64_t count = 0;
  int32_t sample = -1;  // monitor --sample: -1 = leave the instance's sampling as it is
};

// ---- value parsers (also the CLI11 validators, so a bad value is a usage error) ----

// "ADDR:PORT" with an IPv4 ADDR, "[ADDR]:PORT" with an IPv6 one.
absl::StatusOr<std::pair<cninet::cni::IPAddress, uint16_t>> ParseHostPort(std::string_view s) {
  auto pos = s.rfind(':');
  uint32_t port = 0;
  if (pos == std::string_view::npos || !absl::SimpleAtoi(ToAbsl(s.substr(pos + 1)), &port) ||
      port > 65535)
    return absl::InvalidArgumentError(StrCat("need ADDR:PORT or [IPV6]:PORT: ", s));
  std::string_view host = s.substr(0, pos);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  CNINET_ASSIGN_OR_RETURN(auto addr, cninet::cni::IPAddress::Parse(host));
  return std::make_pair(addr, static_cast<uint16_t>(port));
}

// "ADDR:PORT" or "[IPV6]:PORT"
absl::StatusOr<dp::Backend> ParseBackend(std::string_view s) {
  CNINET_ASSIGN_OR_RETURN(auto hp, ParseHostPort(s));
  return dp::Backend{hp.first, hp.second};
}

absl::StatusOr<uint16_t> ParsePort(std::string_view s) {
  uint32_t port = 0;
  if (!absl::SimpleAtoi(ToAbsl(s), &port) || port > 65535)
    return absl::InvalidArgumentError(StrCat("bad port: ", s));
  return static_cast<uint16_t>(port);
}

// "clusterip:10.96.0.10:80/tcp", "clusterip:[fd00:96::10]:80/tcp", "externalip:1.2.3.4:80/tcp",
// "nodeport:30080/tcp", "clusterip:10.96.0.10:0/icmp", "clusterip:[fd00:96::10]:0/icmpv6"
absl::StatusOr<dp::Frontend> ParseFrontend(std::string_view s) {
  std::vector<std::string> parts = absl::StrSplit(ToAbsl(s), '/');
  if (parts.size() != 2) return absl::InvalidArgumentError(StrCat("frontend needs .../PROTO: ", s));
  dp::Frontend f;
  CNINET_ASSIGN_OR_RETURN(f.protocol, dp::ParseProtocol(parts[1]));
  std::string_view rest = parts[0];
  auto colon = rest.find(':');
  std::string_view kind = rest.substr(0, colon);
  if (colon == std::string_view::npos)
    return absl::InvalidArgumentError(StrCat("frontend needs KIND:...: ", s));
  rest = rest.substr(colon + 1);
  if (kind == "nodeport") {
    f.kind = dp::FrontendKind::kNodePort;
    CNINET_ASSIGN_OR_RETURN(f.port, ParsePort(rest));
    return f;
  }
  if (kind != "clusterip" && kind != "externalip")
    return absl::InvalidArgumentError(
        StrCat("frontend must be clusterip:ADDR:PORT/P, externalip:... or nodeport:PORT/P: ", s));
  f.kind = kind == "clusterip" ? dp::FrontendKind::kClusterIP : dp::FrontendKind::kExternalIP;
  CNINET_ASSIGN_OR_RETURN(auto hp, ParseHostPort(rest));
  f.address = hp.first;
  f.port = hp.second;
  return f;
}

// "MIN-MAX"
absl::StatusOr<std::pair<uint16_t, uint16_t>> ParsePortRange(std::string_view s) {
  std::vector<std::string> r = absl::StrSplit(ToAbsl(s), '-');
  if (r.size() != 2) return absl::InvalidArgumentError(StrCat("need MIN-MAX: ", s));
  CNINET_ASSIGN_OR_RETURN(uint16_t lo, ParsePort(r[0]));
  CNINET_ASSIGN_OR_RETURN(uint16_t hi, ParsePort(r[1]));
  return std::make_pair(lo, hi);
}

// A CLI11 validator from one of the parsers above.
template <typename F>
CLI::Validator Check(F parse, std::string name) {
  return CLI::Validator(
      [parse](std::string& value) -> std::string {
        auto r = parse(value);
        return r.ok() ? std::string() : std::string(r.status().message());
      },
      "", std::move(name));
}

// ---- commands ----

absl::StatusOr<dp::DatapathConfig> LoadConfig(const Options& o) {
  dp::DatapathConfig c;
  std::filesystem::path p(o.pin_dir);
  c.instance = p.filename().string();
  c.bpffs_root = p.parent_path().parent_path().string();
  if (p.parent_path().filename() != "cninet")
    return absl::InvalidArgumentError("--pin-dir must look like BPFFS/cninet/INSTANCE");
  for (const auto& cidr : o.cluster_cidrs) {
    CNINET_ASSIGN_OR_RETURN(auto prefix, cninet::cni::IPPrefix::Parse(cidr));
    c.cluster_cidrs.push_back(prefix.Masked());
  }
  if (!c.cluster_cidrs.empty()) c.cluster_cidr = c.cluster_cidrs.front();
  for (const auto& ip : o.node_ips) {
    CNINET_ASSIGN_OR_RETURN(auto addr, cninet::cni::IPAddress::Parse(ip));
    c.node_addresses.push_back(addr);
  }
  c.masquerade = !o.no_masquerade;
  if (o.ct_size != 0) c.map_sizes.conntrack = o.ct_size;
  if (o.nat_size != 0) c.map_sizes.nat = o.nat_size;
  c.monitor_sample = o.monitor_sample;
  if (!o.nat_ports.empty()) {
    CNINET_ASSIGN_OR_RETURN(auto range, ParsePortRange(o.nat_ports));
    c.nat_port_min = range.first;
    c.nat_port_max = range.second;
  }
  return c;
}

// Attaches socket LB to o.cgroup (when given; links stay pinned) and serves o.netns.
absl::Status AttachSocketLb(dp::Datapath& d, const Options& o) {
  for (const auto& ns : o.netns) {
    CNINET_ASSIGN_OR_RETURN(uint64_t cookie, d.ServeNetnsForSocketLb(ns));
    std::cout << "socket LB serves netns " << ns << " (cookie " << cookie << ")\n";
  }
  if (o.cgroup.empty()) return absl::OkStatus();
  CNINET_ASSIGN_OR_RETURN(dp::SocketLbAttachment at, d.AttachSocketLb(o.cgroup));
  at.Release();  // the pinned links keep it attached after this process exits
  std::cout << "attached socket LB to cgroup " << o.cgroup << "\n";
  return absl::OkStatus();
}

// `socklb attach`: loads the programs again on the pinned maps (keeping their configuration).
absl::Status SocketLbAttach(const Options& o) {
  CNINET_ASSIGN_OR_RETURN(auto pinned, dp::Datapath::OpenPinned(o.pin_dir));
  CNINET_ASSIGN_OR_RETURN(auto d, dp::Datapath::Create(pinned->config()));
  return AttachSocketLb(*d, o);
}

absl::Status SocketLbList(dp::Datapath& d) {
  CNINET_ASSIGN_OR_RETURN(auto cgroups, dp::ListSocketLb(d.layout()));
  std::cout << "socket LB cgroups: " << cgroups.size() << "\n";
  for (const auto& c : cgroups) {
    std::vector<std::string> hooks;
    for (size_t i = 0; i < c.hooks.size(); ++i)
      hooks.push_back(StrCat(c.hooks[i], "(prog ", c.program_ids[i], ")"));
    std::cout << "  cgroup id " << c.cgroup_id << ": " << cninet::StrJoin(hooks, " ") << "\n";
  }
  CNINET_ASSIGN_OR_RETURN(auto cookies, d.SocketLbNetns());
  std::cout << "socket LB netns cookies: " << cookies.size() << "\n";
  for (uint64_t c : cookies) std::cout << "  " << c << "\n";
  return absl::OkStatus();
}

absl::Status StatusCmd(dp::Datapath& d) {
  std::cout << "instance " << d.config().instance << " maps in " << d.pin_dir() << "\n";
  std::cout << "services " << d.services().List().size() << "\n";
  return SocketLbList(d);
}

absl::Status Load(const Options& o) {
  CNINET_ASSIGN_OR_RETURN(dp::DatapathConfig c, LoadConfig(o));
  CNINET_ASSIGN_OR_RETURN(auto d, dp::Datapath::Create(c));
  auto attach = [&](dp::Hook h, const std::string& ifname) -> absl::Status {
    CNINET_ASSIGN_OR_RETURN(dp::TcAttachment at, d->Attach(h, ifname));
    at.Release();  // stays attached after this process exits
    std::cout << "attached " << dp::HookName(h) << " " << ifname << "\n";
    return absl::OkStatus();
  };
  for (const auto& i : o.from_pod) CNINET_RETURN_IF_ERROR(attach(dp::Hook::kFromPod, i));
  for (const auto& i : o.uplink) {
    CNINET_RETURN_IF_ERROR(attach(dp::Hook::kFromWorld, i));
    CNINET_RETURN_IF_ERROR(attach(dp::Hook::kToWorld, i));
  }
  CNINET_RETURN_IF_ERROR(AttachSocketLb(*d, o));
  std::cout << "datapath loaded, maps in " << d->pin_dir() << "\n";
  return absl::OkStatus();
}

absl::Status Detach(const Options& o) {
  for (const auto& i : o.from_pod) CNINET_RETURN_IF_ERROR(dp::DetachHook(dp::Hook::kFromPod, i));
  for (const auto& i : o.uplink) {
    CNINET_RETURN_IF_ERROR(dp::DetachHook(dp::Hook::kFromWorld, i));
    CNINET_RETURN_IF_ERROR(dp::DetachHook(dp::Hook::kToWorld, i));
  }
  return absl::OkStatus();
}

absl::Status ServiceList(dp::Datapath& d) {
  std::printf("%-6s %-34s %-8s %s\n", "ID", "FRONTENDS", "LB", "BACKENDS");
  for (const auto& s : d.services().List()) {
    std::vector<std::string> fe, be;
    for (const auto& f : s.frontends) fe.push_back(dp::ToString(f));
    for (const auto& b : s.backends) be.push_back(b.ToString());
    std::printf("%-6u %-34s %-8s %s\n", s.id, cninet::StrJoin(fe, ",").c_str(),
                dp::LbDescription(s).c_str(),
                be.empty() ? "(none: reject)" : cninet::StrJoin(be, ",").c_str());
  }
  return absl::OkStatus();
}

absl::Status ServiceUpsert(dp::Datapath& d, const Options& o) {
  dp::Service s;
  s.id = o.id;
  for (const auto& f : o.frontends) {
    CNINET_ASSIGN_OR_RETURN(auto fe, ParseFrontend(f));
    s.frontends.push_back(fe);
  }
  for (const auto& b : o.backends) {
    CNINET_ASSIGN_OR_RETURN(auto be, ParseBackend(b));
    s.backends.push_back(be);
  }
  if (o.random) s.algorithm = dp::LbAlgorithm::kRandom;
  if (o.maglev_size != 0) s.maglev_size = o.maglev_size;
  s.affinity_timeout = std::chrono::seconds(o.affinity);
  s.reject_without_backends = !o.drop_when_empty;
  dp::UpsertOptions opts;
  opts.flush_conntrack_of_removed_backends = o.flush_removed;
  CNINET_RETURN_IF_ERROR(d.services().Upsert(s, opts));
  std::cout << "service " << s.id << " programmed with " << s.backends.size() << " backends\n";
  return absl::OkStatus();
}

absl::Status CtList(dp::Datapath& d) {
  CNINET_ASSIGN_OR_RETURN(auto all, d.conntrack().Dump());
  for (const auto& e : all) std::cout << e.ToString() << "\n";
  std::cout << all.size() << " entries\n";
  return absl::OkStatus();
}

absl::Status CtStats(dp::Datapath& d) {
  CNINET_ASSIGN_OR_RETURN(auto s, d.conntrack().Stats());
  std::cout << "entries " << s.entries << "/" << s.max_entries << " expired " << s.expired
            << " tcp " << s.tcp << " udp " << s.udp << " icmp " << s.icmp << " service "
            << s.service << "\n";
  return absl::OkStatus();
}

absl::Status NatList(dp::Datapath& d) {
  CNINET_ASSIGN_OR_RETURN(auto all, d.nat().Dump());
  for (const auto& e : all) std::cout << e.ToString() << "\n";
  std::cout << all.size() << " entries\n";
  return absl::OkStatus();
}

// "deleted N entries" / "scanned N, deleted M expired entries" for flush and gc.
template <typename Table>
absl::Status Flush(Table& t) {
  CNINET_ASSIGN_OR_RETURN(size_t n, t.Flush());
  std::cout << "deleted " << n << " entries\n";
  return absl::OkStatus();
}
template <typename Table>
absl::Status Gc(Table& t) {
  CNINET_ASSIGN_OR_RETURN(auto r, t.Gc());
  std::cout << "scanned " << r.scanned << ", deleted " << r.deleted << " expired entries\n";
  return absl::OkStatus();
}

absl::Status Counters(dp::Datapath& d, const Options& o) {
  CNINET_ASSIGN_OR_RETURN(auto all, d.counters().Read());
  std::printf("%-26s %12s %14s\n", "REASON", "PACKETS", "BYTES");
  for (const auto& c : all) {
    if (c.packets == 0 && !o.all) continue;
    std::printf("%-26s %12llu %14llu\n", std::string(c.name).c_str(),
                static_cast<unsigned long long>(c.packets),
                static_cast<unsigned long long>(c.bytes));
  }
  return absl::OkStatus();
}

absl::Status EndpointList(dp::Datapath& d) {
  CNINET_ASSIGN_OR_RETURN(auto eps, d.endpoints().List());
  for (const auto& e : eps) std::cout << e.address.ToString() << " ifindex " << e.ifindex << "\n";
  return absl::OkStatus();
}

absl::Status EndpointAdd(dp::Datapath& d, const Options& o) {
  dp::Endpoint e;
  CNINET_ASSIGN_OR_RETURN(e.address, cninet::cni::IPAddress::Parse(o.address));
  e.ifindex = o.ifindex;
  return d.endpoints().Upsert(e);
}

absl::Status EndpointDelete(dp::Datapath& d, const Options& o) {
  CNINET_ASSIGN_OR_RETURN(auto addr, cninet::cni::IPAddress::Parse(o.address));
  return d.endpoints().Delete(addr);
}

// ---- the command line ----

// What a parsed command line runs: on the pinned maps or without them.
using MapsAction = std::function<absl::Status(dp::Datapath&)>;
struct Action {
  std::function<absl::Status()> plain;
  MapsAction on_maps;
};

// `name` with subcommands `subs` (the first is the default when none is given).
CLI::App* Group(CLI::App& app, const std::string& name, const std::string& about,
                std::vector<std::pair<std::string, MapsAction>> subs, Action* action) {
  CLI::App* group = app.add_subcommand(name, about);
  group->require_subcommand(0, 1);
  MapsAction fallback = subs.front().second;
  group->callback([group, fallback, action] {
    if (group->get_subcommands().empty()) action->on_maps = fallback;
  });
  for (auto& [sub, run] : subs) {
    group->add_subcommand(sub, StrCat(name, " ", sub))->callback([action, run = run] {
      action->on_maps = run;
    });
  }
  return group;
}

void AddLoadDetach(CLI::App& app, Options& o, Action* action) {
  CLI::App* load = app.add_subcommand("load", "load the datapath, pin its maps, attach programs");
  load->add_option("--cluster-cidr", o.cluster_cidrs,
                   "pods' prefix; repeat for dual-stack (one IPv4, one IPv6)")
      ->required()
      ->check(Check([](std::string_view v) { return cninet::cni::IPPrefix::Parse(v); }, "CIDR"));
  load->add_option("--node-ip", o.node_ips,
                   "node address of either family (1..4; the first of each family SNATs)")
      ->required()
      ->check(Check([](std::string_view v) { return cninet::cni::IPAddress::Parse(v); }, "IP"));
  load->add_flag("--no-masquerade", o.no_masquerade, "do not SNAT pod egress");
  load->add_option("--ct-size", o.ct_size, "conntrack entries");
  load->add_option("--nat-size", o.nat_size, "NAT entries");
  load->add_option("--monitor-sample", o.monitor_sample,
                   "send one new flow in N to `cninet-dp monitor` (0 = drops only)");
  load->add_option("--nat-ports", o.nat_ports, "SNAT port range MIN-MAX")
      ->check(Check(ParsePortRange, "MIN-MAX"));
  CLI::App* detach = app.add_subcommand("detach", "detach programs from interfaces");
  for (CLI::App* c : {load, detach}) {
    c->add_option("--from-pod", o.from_pod, "host-side pod interface(s), IF[,IF]...")
        ->delimiter(',');
    c->add_option("--uplink", o.uplink, "node uplink interface(s)")->delimiter(',');
    c->footer(kNetnsNote);
  }
  load->add_option("--socklb-cgroup", o.cgroup,
                   "attach socket LB to this cgroup v2 directory (links pinned)");
  load->add_option("--socklb-netns", o.netns,
                   "network namespace (/run/netns/NAME, /proc/PID/ns/net) whose sockets socket "
                   "LB translates; repeatable");
  load->callback([action, &o] { action->plain = [&o] { return Load(o); }; });
  detach->callback([action, &o] { action->plain = [&o] { return Detach(o); }; });
}

void AddService(CLI::App& app, Options& o, Action* action) {
  CLI::App* svc =
      Group(app, "service", "list, program or delete services", {{"list", ServiceList}}, action);
  CLI::App* up = svc->add_subcommand("upsert", "create or replace a service");
  up->add_option("--id", o.id, "service id")->required();
  up->add_option("--frontend", o.frontends,
                 "clusterip:ADDR:PORT/PROTO | externalip:ADDR:PORT/PROTO | nodeport:PORT/PROTO")
      ->check(Check(ParseFrontend, "FRONTEND"));
  up->add_option("--backend", o.backends, "ADDR:PORT")->check(Check(ParseBackend, "BACKEND"));
  up->add_flag("--random", o.random, "random backend selection instead of Maglev");
  up->add_option("--maglev-size", o.maglev_size, "Maglev table size (prime)");
  up->add_option("--affinity", o.affinity, "ClientIP session affinity timeout in seconds");
  up->add_flag("--flush-removed", o.flush_removed, "flush conntrack of removed backends");
  up->add_flag("--drop-when-empty", o.drop_when_empty,
               "without backends drop new flows instead of rejecting them "
               "(externalTrafficPolicy: Local)");
  up->callback(
      [action, &o] { action->on_maps = [&o](dp::Datapath& d) { return ServiceUpsert(d, o); }; });
  CLI::App* del = svc->add_subcommand("delete", "delete a service");
  del->add_option("--id", o.id, "service id")->required();
  del->callback([action, &o] {
    action->on_maps = [&o](dp::Datapath& d) { return d.services().Delete(o.id); };
  });
}

void AddTables(CLI::App& app, Options& o, Action* action) {
  Group(app, "ct", "conntrack entries",
        {{"list", CtList},
         {"stats", CtStats},
         {"gc", [](dp::Datapath& d) { return Gc(d.conntrack()); }},
         {"flush", [](dp::Datapath& d) { return Flush(d.conntrack()); }}},
        action);
  Group(app, "nat", "SNAT mappings",
        {{"list", NatList},
         {"gc", [](dp::Datapath& d) { return Gc(d.nat()); }},
         {"flush", [](dp::Datapath& d) { return Flush(d.nat()); }}},
        action);
  CLI::App* counters = app.add_subcommand("counters", "verdict and event counters");
  counters->add_flag("--all", o.all, "also the counters that are 0");
  counters->callback(
      [action, &o] { action->on_maps = [&o](dp::Datapath& d) { return Counters(d, o); }; });
  CLI::App* ep = Group(app, "endpoint", "local pods", {{"list", EndpointList}}, action);
  CLI::App* add = ep->add_subcommand("add", "register a local pod");
  add->add_option("ADDR", o.address, "pod address (either family)")
      ->required()
      ->check(Check([](std::string_view v) { return cninet::cni::IPAddress::Parse(v); }, "ADDR"));
  add->add_option("IFINDEX", o.ifindex, "host-side interface index")->required();
  add->callback(
      [action, &o] { action->on_maps = [&o](dp::Datapath& d) { return EndpointAdd(d, o); }; });
  CLI::App* del = ep->add_subcommand("delete", "forget a local pod");
  del->add_option("ADDR", o.address, "pod address (either family)")
      ->required()
      ->check(Check([](std::string_view v) { return cninet::cni::IPAddress::Parse(v); }, "ADDR"));
  del->callback(
      [action, &o] { action->on_maps = [&o](dp::Datapath& d) { return EndpointDelete(d, o); }; });
  app.add_subcommand("status", "the instance: services, socket LB cgroups and namespaces")
      ->callback([action] { action->on_maps = StatusCmd; });
  app.add_subcommand("unpin",
                     "remove the pinned maps, programs and socket LB links of the instance")
      ->callback([action] { action->on_maps = [](dp::Datapath& d) { return d.Unpin(); }; });
}

void AddSocketLb(CLI::App& app, Options& o, Action* action) {
  CLI::App* sl = Group(app, "socklb", "socket-level load balancing (cgroup programs)",
                       {{"list", SocketLbList}}, action);
  CLI::App* attach =
      sl->add_subcommand("attach", "attach socket LB to a cgroup v2 (reloads the programs)");
  attach->add_option("--cgroup", o.cgroup, "cgroup v2 directory, e.g. /sys/fs/cgroup/unified/x")
      ->required();
  attach->add_option("--netns", o.netns, "also serve this network namespace; repeatable");
  attach->callback([action, &o] { action->plain = [&o] { return SocketLbAttach(o); }; });
  CLI::App* detach = sl->add_subcommand("detach", "detach socket LB from a cgroup (unpin links)");
  detach->add_option("--cgroup", o.cgroup, "cgroup v2 directory")->required();
  detach->callback([action, &o] {
    action->on_maps = [&o](dp::Datapath& d) { return dp::DetachSocketLb(d.layout(), o.cgroup); };
  });
  CLI::App* add = sl->add_subcommand("serve", "translate the sockets of a network namespace");
  add->add_option("NETNS", o.netns, "/run/netns/NAME or /proc/PID/ns/net")->required();
  add->callback(
      [action, &o] { action->on_maps = [&o](dp::Datapath& d) { return AttachSocketLb(d, o); }; });
  CLI::App* stop = sl->add_subcommand("unserve", "stop translating a network namespace");
  stop->add_option("NETNS", o.netns, "/run/netns/NAME or /proc/PID/ns/net")->required();
  stop->callback([action, &o] {
    action->on_maps = [&o](dp::Datapath& d) -> absl::Status {
      for (const auto& ns : o.netns) CNINET_RETURN_IF_ERROR(d.StopServingNetnsForSocketLb(ns));
      return absl::OkStatus();
    };
  });
}

// ---- monitor ----

volatile std::sig_atomic_t g_stop = 0;

extern "C" void OnStopSignal(int) { g_stop = 1; }

// Streams the instance's drop and sampled flow events until SIGINT/SIGTERM or --count events.
absl::Status Monitor(const Options& o) {
  if (o.sample >= 0) {
    CNINET_ASSIGN_OR_RETURN(auto d, dp::Datapath::OpenPinned(o.pin_dir));
    CNINET_RETURN_IF_ERROR(d->SetMonitorSample(static_cast<uint16_t>(o.sample)));
  }
  dp::FlowMonitorOptions opts;
  opts.filter.reasons = o.reasons;
  if (o.verdict == "drop" || o.verdict == "dropped") opts.filter.dropped = true;
  if (o.verdict == "forward" || o.verdict == "forwarded") opts.filter.dropped = false;
  for (const std::string& a : o.monitor_addresses) {
    auto prefix = cninet::cni::IPPrefix::Parse(a);
    if (!prefix.ok()) {
      CNINET_ASSIGN_OR_RETURN(auto addr, cninet::cni::IPAddress::Parse(a));
      prefix = cninet::cni::IPPrefix(addr, addr.bit_length());
    }
    opts.filter.addresses.push_back(*prefix);
  }
  uint64_t seen = 0;
  auto on_event = [&o, &seen](const dp::FlowEvent& e) {
    if (o.count != 0 && seen >= o.count) return;
    ++seen;
    std::cout << (o.json ? e.Json() : e.Text()) << std::endl;  // flushed: readers stream it
  };
  CNINET_ASSIGN_OR_RETURN(auto mon, dp::FlowMonitor::Open(o.pin_dir, std::move(opts), on_event));
  struct sigaction sa = {};
  sa.sa_handler = OnStopSignal;  // no SA_RESTART: the poll returns on a signal
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::cerr << "listening on " << o.pin_dir << " (Ctrl-C to stop)" << std::endl;
  while (!g_stop && (o.count == 0 || seen < o.count)) {
    CNINET_ASSIGN_OR_RETURN(int n, mon->Poll(std::chrono::milliseconds(200)));
    (void)n;
  }
  return absl::OkStatus();
}

void AddMonitor(CLI::App& app, Options& o, Action* action) {
  CLI::App* mon = app.add_subcommand(
      "monitor", "stream drops (always) and sampled new flows (load --monitor-sample N)");
  mon->add_flag("--json", o.json, "one JSON object per line");
  mon->add_option("--reason", o.reasons, "only these reasons (counter names, e.g. drop_policy)")
      ->delimiter(',')
      ->check(Check(
          [](std::string_view v) -> absl::StatusOr<int> {
            dp::FlowFilter f;
            f.reasons = {std::string(v)};
            CNINET_RETURN_IF_ERROR(f.Validate());
            return 0;
          },
          "REASON"));
  mon->add_option("--verdict", o.verdict, "only drop or forward")
      ->check(CLI::IsMember({"drop", "dropped", "forward", "forwarded"}));
  mon->add_option("--address", o.monitor_addresses,
                  "only packets from or to this address or CIDR; repeatable")
      ->check(Check(
          [](std::string_view v) -> absl::StatusOr<int> {
            if (cninet::cni::IPPrefix::Parse(v).ok()) return 0;
            CNINET_RETURN_IF_ERROR(cninet::cni::IPAddress::Parse(v).status());
            return 0;
          },
          "ADDR|CIDR"));
  mon->add_option("--count", o.count, "stop after N events (0 = until SIGINT/SIGTERM)");
  mon->add_option("--sample", o.sample,
                  "first set the instance's sampling to one new flow in N (0 = drops only); "
                  "stays after exit")
      ->check(CLI::Range(0, 65535));
  mon->callback([action, &o] { action->plain = [&o] { return Monitor(o); }; });
}

absl::Status Run(const Options& o, const Action& action) {
  if (action.plain) return action.plain();
  CNINET_ASSIGN_OR_RETURN(auto d, dp::Datapath::OpenPinned(o.pin_dir));
  return action.on_maps(*d);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("cninet-dp: load and attach a datapath instance, program services, inspect maps",
               "cninet-dp");
  app.footer(kNetnsNote);
  app.fallthrough();             // --pin-dir after the command too
  app.require_subcommand(0, 1);  // None is reported below: an unknown command is named first.
  Options o;
  Action action;
  app.add_option("--pin-dir", o.pin_dir, "the instance's map directory BPFFS/cninet/INSTANCE")
      ->capture_default_str();
  AddLoadDetach(app, o, &action);
  AddService(app, o, &action);
  AddTables(app, o, &action);
  AddSocketLb(app, o, &action);
  AddMonitor(app, o, &action);
  app.add_subcommand("help", "print this help")->callback([&app] { throw CLI::CallForHelp(); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // Prints help (code 0) or the error naming the flag.
    return rc == 0 ? 0 : 2;
  }
  if (!action.plain && !action.on_maps) {
    std::cerr << "A subcommand is required\nRun with --help for more information.\n";
    return 2;
  }
  absl::Status s = Run(o, action);
  if (!s.ok()) {
    std::cerr << "cninet-dp: " << s << "\n";
    return 1;
  }
  return 0;
}
