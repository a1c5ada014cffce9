#include "plugin.h"

#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/datapath/datapath.h"
#include "cninet/netlink/netlink.h"
#include "config.h"
#include "state.h"

namespace cninet::ebpf_chain {
namespace {

namespace dp = ::cninet::datapath;
namespace nl = ::cninet::netlink;
using cni::CmdArgs;
using cni::CniError;
using cni::ErrorCode;
using cni::IPAddress;
using cni::Result;

// The node interface the world programs go on, and the node's addresses.
struct Uplink {
  std::string name;
  int index = 0;
  std::vector<IPAddress> addresses;
};

// The pod side of the attachment as seen from the node.
struct PodSide {
  std::string host_ifname;
  int host_ifindex = 0;
  nl::MacAddress mac;
  std::vector<IPAddress> ips;  // both families
};

absl::Status DatapathError(const absl::Status& st, std::string_view what) {
  return CniError(ErrorCode::kDatapathFailure, StrCat(what, ": ", ToStd(st.message())));
}

absl::StatusOr<Uplink> ResolveUplink(nl::Handle& h, const ChainConfig& cfg) {
  Uplink up;
  up.name = cfg.uplink;
  if (up.name.empty()) {
    CNINET_ASSIGN_OR_RETURN(auto routes, h.ListRoutes({.family = AF_INET}));
    for (const auto& r : routes) {
      if (r.dst.prefix_len() == 0 && r.oif != 0) {
        auto link = h.GetLinkByIndex(r.oif);
        if (link.ok()) up.name = link->name;
        break;
      }
    }
    if (up.name.empty()) {
      return CniError(
          ErrorCode::kInvalidConfig,
          "cninet-ebpf: no IPv4 default route in the node's network namespace; set \"uplink\"");
    }
  }
  auto link = h.GetLink(up.name);
  if (!link.ok()) {
    return CniError(ErrorCode::kInvalidConfig, StrCat("cninet-ebpf: uplink \"", up.name,
                                                      "\": ", ToStd(link.status().message())));
  }
  up.index = link->index;
  up.addresses = cfg.node_addresses;
  if (up.addresses.empty()) {
    // IPv4 first (the SNAT address of IPv4 flows), then global IPv6 ones (dual-stack).
    for (int family : {AF_INET, AF_INET6}) {
      CNINET_ASSIGN_OR_RETURN(auto addrs, h.ListAddresses(up.index, family));
      for (const auto& a : addrs) {
        if (a.scope == nl::kScopeUniverse && up.addresses.size() < 4)
          up.addresses.push_back(a.prefix.address());
      }
    }
    if (up.addresses.empty()) {
      return CniError(
          ErrorCode::kInvalidConfig,
          StrCat("cninet-ebpf: uplink ", up.name, " has no global address; set \"nodeAddresses\""));
    }
  }
  return up;
}

// The container interface's index in prevResult.interfaces, or -1.
int ContainerInterfaceIndex(const Result& prev, std::string_view ifname) {
  for (size_t i = 0; i < prev.interfaces.size(); ++i) {
    if (!prev.interfaces[i].sandbox.empty() && prev.interfaces[i].name == ifname)
      return static_cast<int>(i);
  }
  return -1;
}

// Addresses (both families) of prevResult that belong to the container interface (or carry no
// interface).
std::vector<IPAddress> PodIPs(const Result& prev, int container_index) {
  std::vector<IPAddress> out;
  for (const auto& ip : prev.ips) {
    if (container_index >= 0 && ip.interface && *ip.interface != container_index) continue;
    if (std::find(out.begin(), out.end(), ip.address.address()) == out.end())
      out.push_back(ip.address.address());
  }
  return out;
}

absl::StatusOr<PodSide> FindPodSide(nl::Handle& host, const CmdArgs& args, const Result& prev) {
  PodSide pod;
  int c = ContainerInterfaceIndex(prev, args.ifname);
  pod.ips = PodIPs(prev, c);
  if (c >= 0 && !prev.interfaces[c].mac.empty()) {
    if (auto mac = nl::MacAddress::Parse(prev.interfaces[c].mac); mac.ok()) pod.mac = *mac;
  }
  // 1. A host-side veth listed in prevResult (bridge and ptp plugins list theirs).
  for (const auto& iface : prev.interfaces) {
    if (!iface.sandbox.empty()) continue;
    auto link = host.GetLink(iface.name);
    if (link.ok() && link->kind == "veth") {
      pod.host_ifname = link->name;
      pod.host_ifindex = link->index;
      break;
    }
  }
  // 2. Otherwise the peer of the container interface (its IFLA_LINK is our ifindex).
  if (pod.host_ifindex == 0 || pod.mac.IsZero()) {
    auto ns = nl::Netns::Open(args.netns);
    if (ns.ok()) {
      auto in_pod = nl::Handle::OpenIn(*ns);
      auto pod_link =
          in_pod.ok() ? in_pod->GetLink(args.ifname) : absl::StatusOr<nl::Link>(in_pod.status());
      if (pod_link.ok()) {
        if (pod.mac.IsZero()) pod.mac = pod_link->mac;
        if (pod.host_ifindex == 0 && pod_link->kind == "veth" && pod_link->peer_index > 0) {
          auto peer = host.GetLinkByIndex(pod_link->peer_index);
          if (peer.ok() && peer->kind == "veth") {
            pod.host_ifname = peer->name;
            pod.host_ifindex = peer->index;
          }
        }
      }
    }
  }
  if (pod.host_ifindex == 0) {
    return CniError(
        ErrorCode::kNoHostInterface,
        StrCat(
            "cninet-ebpf: cannot find the host side of ", args.ifname,
            ": prevResult lists no host veth and the container interface has no veth peer here"));
  }
  return pod;
}

// The (address, port, protocol) keys a frontend occupies in the services map.
std::set<std::tuple<IPAddress, uint16_t, uint8_t>> FrontendKeys(
    const dp::Frontend& f, const std::vector<IPAddress>& node_addresses,
    std::optional<IPAddress::Family> family) {
  std::set<std::tuple<IPAddress, uint16_t, uint8_t>> keys;
  if (f.kind == dp::FrontendKind::kNodePort) {
    // The datapath programs a NodePort on the node addresses of the backends' family.
    for (const auto& a : node_addresses)
      if (!family || a.family() == *family)
        keys.insert({a, f.port, static_cast<uint8_t>(f.protocol)});
  } else {
    keys.insert({f.address, f.port, static_cast<uint8_t>(f.protocol)});
  }
  return keys;
}

// The family of a service's backends (none without backends).
std::optional<IPAddress::Family> BackendFamily(const dp::Service& s) {
  if (s.backends.empty()) return std::nullopt;
  return s.backends.front().address.family();
}

// The hostPort service for one mapping.
dp::Service HostPortService(uint32_t id, const cni::PortMapping& m, const IPAddress& pod_ip) {
  dp::Service s;
  s.id = id;
  s.algorithm = dp::LbAlgorithm::kRandom;  // One backend: no Maglev table needed.
  dp::Frontend f;
  f.port = m.host_port;
  f.protocol = m.protocol == "udp" ? dp::Protocol::kUdp : dp::Protocol::kTcp;
  auto host_ip =
      m.host_ip.empty() ? absl::StatusOr<IPAddress>(IPAddress()) : IPAddress::Parse(m.host_ip);
  if (host_ip->IsUnspecified()) {
    f.kind = dp::FrontendKind::kNodePort;  // Every node address.
  } else {
    f.kind = dp::FrontendKind::kExternalIP;
    f.address = *host_ip;
  }
  s.frontends.push_back(f);
  s.backends.push_back(dp::Backend{pod_ip, m.container_port});
  return s;
}

// Deletes conntrack and NAT entries of `ip` (either direction, or translated to it).
absl::Status FlushFlows(dp::Datapath& d, const IPAddress& ip) {
  CNINET_ASSIGN_OR_RETURN(size_t ct, d.conntrack().DeleteIf([&](const dp::ConntrackEntry& e) {
    return e.tuple.src == ip || e.tuple.dst == ip || e.nat_address == ip;
  }));
  CNINET_ASSIGN_OR_RETURN(size_t nat, d.nat().DeleteIf([&](const dp::NatEntry& e) {
    return e.tuple.src == ip || e.tuple.dst == ip || e.to_address == ip;
  }));
  CNINET_LOG(kInfo, "flushed ", ct, " conntrack and ", nat, " NAT entries of ", ip.ToString());
  return absl::OkStatus();
}

bool PathExists(const std::string& p) {
  std::error_code ec;
  return std::filesystem::exists(p, ec);
}

// Detaches from-pod from the host veth when it is still the recorded interface (the datapath
// also removes the clsact qdisc it added once nothing uses it).
absl::Status DetachPod(nl::Handle& host, const AttachmentRecord& rec) {
  auto link = host.GetLinkByIndex(rec.host_ifindex);
  if (!link.ok() || link->name != rec.host_ifname) return absl::OkStatus();  // Gone (or reused).
  return dp::DetachHook(dp::Hook::kFromPod, rec.host_ifname);
}

// Removes everything `rec` describes from the maps opened in `d` (may be null: no maps).
absl::Status CleanMaps(dp::Datapath* d, const AttachmentRecord& rec) {
  if (d == nullptr) return absl::OkStatus();
  for (uint32_t id : rec.service_ids) {
    absl::Status st = d->services().Delete(id);
    if (!st.ok() && !absl::IsNotFound(st))
      return Annotate(st, StrCat("delete hostPort service ", id));
  }
  CNINET_ASSIGN_OR_RETURN(std::vector<dp::Endpoint> eps, d->endpoints().List());
  for (const auto& ip : rec.addresses) {
    auto it = std::find_if(eps.begin(), eps.end(),
                           [&](const dp::Endpoint& e) { return e.address == ip; });
    if (it != eps.end() && it->ifindex != static_cast<uint32_t>(rec.host_ifindex)) {
      // The address already belongs to a newer pod: leave its endpoint and flows alone.
      CNINET_LOG(kInfo, ip.ToString(), " now belongs to ifindex ", it->ifindex, "; leaving it");
      continue;
    }
    if (it != eps.end()) {
      absl::Status st = d->endpoints().Delete(ip);
      if (!st.ok() && !absl::IsNotFound(st))
        return Annotate(st, StrCat("delete endpoint ", ip.ToString()));
    }
    CNINET_RETURN_IF_ERROR(FlushFlows(*d, ip));
  }
  if (rec.socket_lb_netns_cookie != 0) {
    CNINET_RETURN_IF_ERROR(Annotate(d->StopServingSocketLbCookie(rec.socket_lb_netns_cookie),
                                    "unregister the pod's namespace from socket LB"));
  }
  return absl::OkStatus();
}

// Opens the instance's pinned maps; nullptr when they do not exist.
absl::StatusOr<std::unique_ptr<dp::Datapath>> OpenMaps(const ChainConfig& cfg) {
  if (!PathExists(cfg.PinDir())) return std::unique_ptr<dp::Datapath>();
  auto d = dp::Datapath::OpenPinned(cfg.PinDir());
  if (!d.ok()) return DatapathError(d.status(), StrCat("open the maps pinned in ", cfg.PinDir()));
  return std::move(*d);
}

// Undoes one attachment: filter, hostPorts, endpoints, flows, record.
absl::Status Cleanup(const StateStore& store, nl::Handle& host, dp::Datapath* d,
                     const AttachmentRecord& rec) {
  CNINET_RETURN_IF_ERROR(DetachPod(host, rec));
  CNINET_RETURN_IF_ERROR(CleanMaps(d, rec));
  return store.Remove(rec.container_id, rec.ifname);
}

// Detaches the world programs from the recorded uplink and forgets it.
absl::Status DetachUplink(const StateStore& store, nl::Handle& host) {
  CNINET_ASSIGN_OR_RETURN(std::string uplink, store.ReadUplink());
  if (uplink.empty()) return absl::OkStatus();
  if (host.GetLink(uplink).ok()) {
    CNINET_RETURN_IF_ERROR(dp::DetachHook(dp::Hook::kFromWorld, uplink));
    CNINET_RETURN_IF_ERROR(dp::DetachHook(dp::Hook::kToWorld, uplink));
  }
  return store.WriteUplink("");
}

// True when the instance's maps hold endpoints or services (someone else programs it).
absl::StatusOr<bool> InstanceInUse(dp::Datapath* d) {
  if (d == nullptr) return false;
  CNINET_ASSIGN_OR_RETURN(auto eps, d->endpoints().List());
  return !eps.empty() || !d->services().List().empty();
}

// With teardownWhenIdle: when no attachment is left and the maps hold no endpoint or service
// (nobody else programs this instance), detaches the uplink programs and unpins maps and
// programs.
absl::Status MaybeTeardown(const ChainConfig& cfg, const StateStore& store, nl::Handle& host) {
  if (!cfg.teardown_when_idle) return absl::OkStatus();
  CNINET_ASSIGN_OR_RETURN(auto records, store.List());
  if (!records.empty()) return absl::OkStatus();
  CNINET_ASSIGN_OR_RETURN(std::unique_ptr<dp::Datapath> d, OpenMaps(cfg));
  CNINET_ASSIGN_OR_RETURN(bool in_use, InstanceInUse(d.get()));
  if (in_use) {
    CNINET_LOG(kInfo, "instance ", cfg.instance, " still has endpoints or services; keeping it");
    return absl::OkStatus();
  }
  CNINET_RETURN_IF_ERROR(DetachUplink(store, host));
  // Unpin() removes the maps, the pinned programs and the directories the datapath created.
  if (d) CNINET_RETURN_IF_ERROR(d->Unpin());
  CNINET_LOG(kInfo, "instance ", cfg.instance, " idle: uplink detached, maps unpinned");
  return absl::OkStatus();
}

// hostPort services for `mappings` with ids from the plugin's reserved range; fails without
// programming anything when a frontend is already taken.
absl::StatusOr<std::vector<dp::Service>> PlanHostPorts(
    dp::Datapath& d, const ChainConfig& cfg, const std::vector<cni::PortMapping>& mappings,
    const std::vector<IPAddress>& pod_ips) {
  std::vector<dp::Service> planned;
  if (mappings.empty()) return planned;
  const std::vector<IPAddress>& nodes = d.config().node_addresses;
  std::vector<dp::Service> existing = d.services().List();
  std::map<std::tuple<IPAddress, uint16_t, uint8_t>, uint32_t> taken;
  std::set<uint32_t> used;
  for (const auto& s : existing) {
    used.insert(s.id);
    for (const auto& f : s.frontends)
      for (const auto& k : FrontendKeys(f, nodes, BackendFamily(s))) taken[k] = s.id;
  }
  uint32_t next = cfg.FirstHostPortId();
  for (const auto& m : mappings) {
    // One service per pod address whose family the mapping serves (a hostIP picks its family).
    for (const IPAddress& pod_ip : pod_ips) {
      if (!m.host_ip.empty()) {
        auto host = IPAddress::Parse(m.host_ip);
        if (host.ok() && !host->IsUnspecified() && host->family() != pod_ip.family()) continue;
      }
      while (used.count(next)) ++next;
      if (next >= cfg.map_sizes.service_slots) {
        return CniError(
            ErrorCode::kDatapathFailure,
            StrCat("no free hostPort service id (hostPortIds = ", cfg.host_port_ids, ")"));
      }
      dp::Service s = HostPortService(next, m, pod_ip);
      for (const auto& k : FrontendKeys(s.frontends[0], nodes, pod_ip.family())) {
        if (auto it = taken.find(k); it != taken.end()) {
          return CniError(ErrorCode::kHostPortConflict,
                          StrCat("hostPort ", std::get<0>(k).ToString(), ":", std::get<1>(k), "/",
                                 m.protocol, " is already used by service ", it->second));
        }
        taken[k] = next;
      }
      used.insert(next);
      planned.push_back(std::move(s));
    }
  }
  return planned;
}

// Mappings the datapath serves: all of them (both families).
std::vector<cni::PortMapping> UsableMappings(const std::vector<cni::PortMapping>& all) {
  return all;
}

// True when the pinned instance was created with the configuration this ADD would load.
bool SameDatapath(const dp::DatapathConfig& have, const ChainConfig& cfg, const Uplink& up) {
  const dp::MapSizes& hs = have.map_sizes;
  const dp::MapSizes& ws = cfg.map_sizes;
  return have.ClusterCidrs() == cfg.cluster_cidrs && have.masquerade == cfg.masquerade &&
         have.node_addresses == up.addresses && hs.conntrack == ws.conntrack && hs.nat == ws.nat &&
         hs.services == ws.services && hs.service_slots == ws.service_slots &&
         hs.backends == ws.backends && hs.endpoints == ws.endpoints &&
         have.service_mark == cfg.service_mark;
}

// Attaches from-pod to the pod's veth with the program an earlier ADD pinned, when the instance
// is fully set up with this configuration: no program is loaded and verified again (that is most
// of a first ADD's cost). Returns the instance's maps, or nullptr when the caller must load.
absl::StatusOr<std::unique_ptr<dp::Datapath>> FastAttach(const ChainConfig& cfg, const Uplink& up,
                                                         const PodSide& pod) {
  std::unique_ptr<dp::Datapath> none;
  auto prog = dp::BpfProgram::OpenPinned(cfg.ProgramPinPath());
  if (!prog.ok() || !PathExists(cfg.PinDir())) return none;
  CNINET_ASSIGN_OR_RETURN(bool from_world, dp::HookAttached(dp::Hook::kFromWorld, up.name));
  CNINET_ASSIGN_OR_RETURN(bool to_world, dp::HookAttached(dp::Hook::kToWorld, up.name));
  if (!from_world || !to_world) return none;
  auto d = dp::Datapath::OpenPinned(cfg.Pins());
  if (!d.ok()) return none;
  if (!SameDatapath((*d)->config(), cfg, up)) {
    CNINET_LOG(kInfo, "instance ", cfg.instance, " configuration changed: reloading the datapath");
    return none;
  }
  auto a = prog->Attach(dp::Hook::kFromPod, pod.host_ifname);
  if (!a.ok()) return DatapathError(a.status(), StrCat("attach from-pod to ", pod.host_ifname));
  a->Release();  // Detached by DEL (DetachPod).
  return std::move(*d);
}

// Loads the datapath (programs + pinned maps + configuration), attaches the world programs to
// the uplink and from-pod to the pod's veth, and pins the from-pod program for FastAttach.
absl::StatusOr<std::unique_ptr<dp::Datapath>> FullAttach(const ChainConfig& cfg,
                                                         const StateStore& store, const Uplink& up,
                                                         const PodSide& pod) {
  auto loaded = dp::Datapath::Create(cfg.ToDatapathConfig(up.addresses));
  if (!loaded.ok()) return DatapathError(loaded.status(), "load the datapath");
  dp::Datapath& d = **loaded;
  for (dp::Hook hook : {dp::Hook::kFromWorld, dp::Hook::kToWorld}) {
    auto a = d.Attach(hook, up.name);
    if (!a.ok())
      return DatapathError(a.status(), StrCat("attach ", dp::HookName(hook), " to ", up.name));
    a->Release();  // Shared by every pod of the node; detached when the instance goes idle.
  }
  CNINET_RETURN_IF_ERROR(store.WriteUplink(up.name));
  auto a = d.Attach(dp::Hook::kFromPod, pod.host_ifname);
  if (!a.ok()) return DatapathError(a.status(), StrCat("attach from-pod to ", pod.host_ifname));
  a->Release();
  auto pinned = d.PinProgram(dp::Hook::kFromPod);
  if (!pinned.ok()) return DatapathError(pinned.status(), "pin the from-pod program");
  return std::move(*loaded);
}

// The checks of an ADD's input that need no kernel state; returns the usable port mappings.
absl::StatusOr<std::vector<cni::PortMapping>> CheckAddInput(const CmdArgs& args) {
  if (!args.conf.prev_result) {
    return CniError(ErrorCode::kInvalidConfig,
                    "cninet-ebpf is a chained plugin: it needs the prevResult of an interface "
                    "plugin before it");
  }
  const Result& prev = *args.conf.prev_result;
  CNINET_ASSIGN_OR_RETURN(cni::RuntimeConfig rc, args.conf.ParsedRuntimeConfig());
  CNINET_RETURN_IF_ERROR(ValidatePortMappings(rc.port_mappings));
  if (PodIPs(prev, ContainerInterfaceIndex(prev, args.ifname)).empty()) {
    return CniError(ErrorCode::kInvalidConfig,
                    StrCat("cninet-ebpf: prevResult has no address for ", args.ifname));
  }
  return UsableMappings(rc.port_mappings);
}

// The record of a new attachment (addresses and services are added as they are programmed).
AttachmentRecord NewRecord(const CmdArgs& args, const PodSide& pod,
                           std::vector<cni::PortMapping> mappings) {
  AttachmentRecord rec;
  rec.container_id = args.container_id;
  rec.ifname = args.ifname;
  rec.netns = args.netns;
  rec.host_ifname = pod.host_ifname;
  rec.host_ifindex = pod.host_ifindex;
  rec.mac = pod.mac.ToString();
  rec.port_mappings = std::move(mappings);
  return rec;
}

// Registers the pod's addresses (both families) as endpoints (undone by `rollback` on failure).
absl::Status RegisterEndpoints(dp::Datapath& d, const PodSide& pod, AttachmentRecord* rec,
                               nl::Rollback* rollback) {
  for (const IPAddress& ip : pod.ips) {
    dp::Endpoint ep;
    ep.address = ip;
    ep.ifindex = static_cast<uint32_t>(pod.host_ifindex);
    ep.mac = pod.mac.bytes();
    CNINET_RETURN_IF_ERROR(
        Annotate(d.endpoints().Upsert(ep), StrCat("register endpoint ", ip.ToString())));
    rec->addresses.push_back(ip);
    rollback->Add(StrCat("endpoint ", ip.ToString()),
                  [&d, ip] { return d.endpoints().Delete(ip); });
  }
  return absl::OkStatus();
}

// Programs the record's hostPorts as services (undone by `rollback` on failure).
absl::Status ProgramHostPorts(dp::Datapath& d, const ChainConfig& cfg, const PodSide& pod,
                              AttachmentRecord* rec, nl::Rollback* rollback) {
  CNINET_ASSIGN_OR_RETURN(std::vector<dp::Service> services,
                          PlanHostPorts(d, cfg, rec->port_mappings, pod.ips));
  for (const auto& s : services) {
    absl::Status st = d.services().Upsert(s);
    if (!st.ok()) return DatapathError(st, StrCat("program hostPort ", s.frontends[0].port));
    rec->service_ids.push_back(s.id);
    rollback->Add(StrCat("hostPort service ", s.id),
                  [&d, id = s.id] { return d.services().Delete(id); });
  }
  return absl::OkStatus();
}

// DEL without a record (an ADD that died before writing it): best effort from prevResult,
// touching only endpoints whose interface is the prevResult's host veth or no longer exists.
absl::Status CleanFromPrevResult(const CmdArgs& args, nl::Handle& host, dp::Datapath* d) {
  const Result& prev = *args.conf.prev_result;
  int host_index = -1;
  for (const auto& iface : prev.interfaces) {
    if (!iface.sandbox.empty()) continue;
    if (auto l = host.GetLink(iface.name); l.ok() && l->kind == "veth") host_index = l->index;
  }
  CNINET_ASSIGN_OR_RETURN(auto eps, d->endpoints().List());
  for (const auto& ip : PodIPs(prev, ContainerInterfaceIndex(prev, args.ifname))) {
    for (const auto& e : eps) {
      if (e.address != ip) continue;
      bool gone = !host.GetLinkByIndex(static_cast<int>(e.ifindex)).ok();
      if (!gone && static_cast<int>(e.ifindex) != host_index) continue;
      AttachmentRecord guess;
      guess.container_id = args.container_id;
      guess.ifname = args.ifname;
      guess.host_ifindex = static_cast<int>(e.ifindex);
      guess.addresses = {ip};
      CNINET_RETURN_IF_ERROR(CleanMaps(d, guess));
    }
  }
  return absl::OkStatus();
}

// A CHECK failure (code kCheckMismatch) for `args`.
absl::Status Mismatch(const CmdArgs& args, std::string_view why) {
  return CniError(ErrorCode::kCheckMismatch,
                  StrCat("cninet-ebpf CHECK ", args.container_id, "/", args.ifname, ": ", why));
}

// CHECK of the filters: from-pod on the recorded host veth, the world programs on the uplink.
absl::Status CheckFilters(const CmdArgs& args, const StateStore& store, nl::Handle& host,
                          const AttachmentRecord& rec) {
  auto link = host.GetLinkByIndex(rec.host_ifindex);
  if (!link.ok() || link->name != rec.host_ifname) {
    return Mismatch(args, StrCat("host interface ", rec.host_ifname, " (ifindex ", rec.host_ifindex,
                                 ") is gone"));
  }
  CNINET_ASSIGN_OR_RETURN(bool pod_prog, dp::HookAttached(dp::Hook::kFromPod, link->name));
  if (!pod_prog) return Mismatch(args, StrCat("from-pod is not attached to ", rec.host_ifname));
  CNINET_ASSIGN_OR_RETURN(std::string uplink, store.ReadUplink());
  if (uplink.empty() || !host.GetLink(uplink).ok())
    return Mismatch(args, StrCat("uplink \"", uplink, "\" is gone"));
  CNINET_ASSIGN_OR_RETURN(bool world_in, dp::HookAttached(dp::Hook::kFromWorld, uplink));
  CNINET_ASSIGN_OR_RETURN(bool world_out, dp::HookAttached(dp::Hook::kToWorld, uplink));
  if (!world_in || !world_out)
    return Mismatch(args, StrCat("from-world/to-world are not attached to ", uplink));
  return absl::OkStatus();
}

// CHECK of the maps: the record's endpoints (address, interface, MAC) and hostPort services.
absl::Status CheckMaps(const CmdArgs& args, const ChainConfig& cfg, const AttachmentRecord& rec) {
  CNINET_ASSIGN_OR_RETURN(std::unique_ptr<dp::Datapath> d, OpenMaps(cfg));
  if (!d) return Mismatch(args, StrCat("no maps pinned in ", cfg.PinDir()));
  CNINET_ASSIGN_OR_RETURN(auto eps, d->endpoints().List());
  for (const auto& ip : rec.addresses) {
    auto it = std::find_if(eps.begin(), eps.end(),
                           [&](const dp::Endpoint& e) { return e.address == ip; });
    if (it == eps.end()) return Mismatch(args, StrCat("endpoint ", ip.ToString(), " is missing"));
    if (it->ifindex != static_cast<uint32_t>(rec.host_ifindex) ||
        nl::MacAddress(it->mac).ToString() != rec.mac) {
      return Mismatch(args, StrCat("endpoint ", ip.ToString(), " points to ifindex ", it->ifindex,
                                   " MAC ", nl::MacAddress(it->mac).ToString()));
    }
  }
  for (uint32_t id : rec.service_ids) {
    if (!d->services().Get(id).ok())
      return Mismatch(args, StrCat("hostPort service ", id, " is missing"));
  }
  if (cfg.socket_lb != (rec.socket_lb_netns_cookie != 0)) {
    return Mismatch(args, cfg.socket_lb
                              ? "socketLb is on but the pod's namespace was not registered"
                              : "socketLb is off but the pod's namespace is registered");
  }
  if (rec.socket_lb_netns_cookie != 0) {
    CNINET_ASSIGN_OR_RETURN(std::vector<uint64_t> served, d->SocketLbNetns());
    if (!std::binary_search(served.begin(), served.end(), rec.socket_lb_netns_cookie))
      return Mismatch(args, "the pod's namespace is not registered with socket LB");
  }
  return absl::OkStatus();
}

// STATUS: the programs load (verifier, kernel features) with private, minimal maps.
absl::Status ProbeLoad(const ChainConfig& cfg) {
  dp::DatapathConfig probe = cfg.ToDatapathConfig({IPAddress::V4(0x7f000001)});
  probe.pin_maps = false;
  probe.map_sizes = dp::MapSizes{.conntrack = 16,
                                 .nat = 16,
                                 .services = 1,
                                 .service_slots = 2,
                                 .backends = 1,
                                 .affinity = 1,
                                 .endpoints = 1};
  if (auto loaded = dp::Datapath::Create(probe); !loaded.ok()) {
    return CniError(ErrorCode::kNotAvailable, StrCat("cninet-ebpf: the datapath cannot be loaded: ",
                                                     ToStd(loaded.status().message())));
  }
  return absl::OkStatus();
}

// STATUS: maps already pinned for this instance must be usable with this configuration.
absl::Status CheckPinnedSizes(const ChainConfig& cfg) {
  if (!PathExists(cfg.PinDir())) return absl::OkStatus();
  auto pinned = dp::Datapath::OpenPinned(cfg.Pins());
  if (!pinned.ok()) {
    return CniError(ErrorCode::kNotAvailable,
                    StrCat("cninet-ebpf: maps pinned in ", cfg.PinDir(),
                           " are unusable: ", ToStd(pinned.status().message())));
  }
  const dp::MapSizes& have = (*pinned)->config().map_sizes;
  const dp::MapSizes& want = cfg.map_sizes;
  if (have.conntrack != want.conntrack || have.nat != want.nat || have.services != want.services ||
      have.service_slots != want.service_slots || have.backends != want.backends ||
      have.endpoints != want.endpoints) {
    return CniError(ErrorCode::kNotAvailable, StrCat("cninet-ebpf: maps pinned in ", cfg.PinDir(),
                                                     " have other sizes than mapSizes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Result> EbpfChainPlugin::Add(const CmdArgs& args) {
  CNINET_ASSIGN_OR_RETURN(ChainConfig cfg, ChainConfig::FromNetConf(args.conf));
  CNINET_ASSIGN_OR_RETURN(std::vector<cni::PortMapping> mappings, CheckAddInput(args));
  StateStore store(cfg.InstanceStateDir());
  CNINET_ASSIGN_OR_RETURN(StateLock lock, store.Lock());
  CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
  CNINET_ASSIGN_OR_RETURN(Uplink up, ResolveUplink(host, cfg));
  CNINET_ASSIGN_OR_RETURN(PodSide pod, FindPodSide(host, args, *args.conf.prev_result));
  AttachmentRecord rec = NewRecord(args, pod, std::move(mappings));
  std::unique_ptr<dp::Datapath> loaded;  // Outlives the rollback steps that use it.

  nl::Rollback rollback;
  // Registered first, so it runs last: a failed first ADD leaves no uplink program or pin behind.
  rollback.Add("idle teardown", [&] {
    loaded.reset();
    return MaybeTeardown(cfg, store, host);
  });
  // A repeated ADD of the same attachment replaces what the earlier one left.
  CNINET_ASSIGN_OR_RETURN(std::optional<AttachmentRecord> old,
                          store.Read(args.container_id, args.ifname));
  if (old) {
    CNINET_ASSIGN_OR_RETURN(std::unique_ptr<dp::Datapath> maps, OpenMaps(cfg));
    CNINET_RETURN_IF_ERROR(Cleanup(store, host, maps.get(), *old));
  }
  rollback.Add(StrCat("from-pod on ", pod.host_ifname), [&] { return DetachPod(host, rec); });
  CNINET_ASSIGN_OR_RETURN(loaded, FastAttach(cfg, up, pod));
  if (!loaded) {
    CNINET_ASSIGN_OR_RETURN(loaded, FullAttach(cfg, store, up, pod));
  }
  CNINET_RETURN_IF_ERROR(RegisterEndpoints(*loaded, pod, &rec, &rollback));
  CNINET_RETURN_IF_ERROR(ProgramHostPorts(*loaded, cfg, pod, &rec, &rollback));
  if (cfg.socket_lb) {
    absl::StatusOr<uint64_t> cookie = loaded->ServeNetnsForSocketLb(args.netns);
    if (!cookie.ok()) {
      return DatapathError(cookie.status(),
                           StrCat("register ", args.netns, " with socket LB (socketLb)"));
    }
    rec.socket_lb_netns_cookie = *cookie;
    rollback.Add(StrCat("socket LB for ", args.netns),
                 [&loaded, c = *cookie] { return loaded->StopServingSocketLbCookie(c); });
  }
  CNINET_RETURN_IF_ERROR(store.Write(rec));
  rollback.Commit();
  CNINET_LOG(kInfo, "attached ", args.container_id, "/", args.ifname, " via ", pod.host_ifname,
             " (ifindex ", pod.host_ifindex, "), ", rec.addresses.size(), " endpoint(s), ",
             rec.service_ids.size(), " hostPort(s)");
  return *args.conf.prev_result;  // Unchanged: the datapath adds no interface, address or route.
}

absl::Status EbpfChainPlugin::Del(const CmdArgs& args) {
  CNINET_ASSIGN_OR_RETURN(ChainConfig cfg, ChainConfig::FromNetConf(args.conf));
  StateStore store(cfg.InstanceStateDir());
  CNINET_ASSIGN_OR_RETURN(StateLock lock, store.Lock());
  CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
  CNINET_ASSIGN_OR_RETURN(std::optional<AttachmentRecord> rec,
                          store.Read(args.container_id, args.ifname));
  CNINET_ASSIGN_OR_RETURN(std::unique_ptr<dp::Datapath> d, OpenMaps(cfg));
  if (rec) {
    CNINET_RETURN_IF_ERROR(Cleanup(store, host, d.get(), *rec));
  } else if (args.conf.prev_result && d) {
    CNINET_RETURN_IF_ERROR(CleanFromPrevResult(args, host, d.get()));
  }
  d.reset();
  return MaybeTeardown(cfg, store, host);
}

absl::Status EbpfChainPlugin::Check(const CmdArgs& args) {
  CNINET_ASSIGN_OR_RETURN(ChainConfig cfg, ChainConfig::FromNetConf(args.conf));
  StateStore store(cfg.InstanceStateDir());
  CNINET_ASSIGN_OR_RETURN(StateLock lock, store.Lock());
  CNINET_ASSIGN_OR_RETURN(std::optional<AttachmentRecord> rec,
                          store.Read(args.container_id, args.ifname));
  if (!rec) return Mismatch(args, "no attachment recorded");
  CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
  CNINET_RETURN_IF_ERROR(CheckFilters(args, store, host, *rec));
  // prevResult's addresses are the ones registered.
  std::vector<IPAddress> want =
      PodIPs(*args.conf.prev_result, ContainerInterfaceIndex(*args.conf.prev_result, args.ifname));
  std::vector<IPAddress> have = rec->addresses;
  std::sort(want.begin(), want.end());
  std::sort(have.begin(), have.end());
  if (want != have)
    return Mismatch(args, "prevResult's addresses differ from the registered endpoints");
  return CheckMaps(args, cfg, *rec);
}

absl::Status EbpfChainPlugin::Gc(const CmdArgs& args) {
  CNINET_ASSIGN_OR_RETURN(ChainConfig cfg, ChainConfig::FromNetConf(args.conf));
  StateStore store(cfg.InstanceStateDir());
  CNINET_ASSIGN_OR_RETURN(StateLock lock, store.Lock());
  CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
  CNINET_ASSIGN_OR_RETURN(auto records, store.List());
  CNINET_ASSIGN_OR_RETURN(std::unique_ptr<dp::Datapath> d, OpenMaps(cfg));
  absl::Status first = absl::OkStatus();
  for (const auto& rec : records) {
    bool valid = std::any_of(args.valid_attachments.begin(), args.valid_attachments.end(),
                             [&](const cni::GcAttachment& a) {
                               return a.container_id == rec.container_id && a.ifname == rec.ifname;
                             });
    if (valid) continue;
    CNINET_LOG(kInfo, "GC: removing stale attachment ", rec.container_id, "/", rec.ifname);
    absl::Status st = Cleanup(store, host, d.get(), rec);
    if (!st.ok() && first.ok()) first = st;  // Keep collecting the others.
  }
  d.reset();
  CNINET_RETURN_IF_ERROR(first);
  return MaybeTeardown(cfg, store, host);
}

absl::Status EbpfChainPlugin::Status(const CmdArgs& args) {
  CNINET_ASSIGN_OR_RETURN(ChainConfig cfg, ChainConfig::FromNetConf(args.conf));
  struct statfs st {};
  if (statfs(cfg.bpffs_root.c_str(), &st) != 0 ||
      static_cast<uint32_t>(st.f_type) != BPF_FS_MAGIC) {
    return CniError(ErrorCode::kNotAvailable,
                    StrCat("cninet-ebpf: ", cfg.bpffs_root,
                           " is not a mounted bpf filesystem; the datapath cannot pin its maps"));
  }
  CNINET_RETURN_IF_ERROR(ProbeLoad(cfg));
  return CheckPinnedSizes(cfg);
}

}  // namespace cninet::ebpf_chain
