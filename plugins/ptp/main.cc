// cninet-ptp: a routed veth per pod (the model of Calico, Contiv and the reference ptp plugin).
//
// ADD: IPAM (delegated by ipam.type), then one veth pair created with its pod end directly in the
// pod's namespace. Pod side: the IPAM addresses, the IPAM routes via the gateway, the subnet
// replaced by "gateway/32 scope link" + "subnet via gateway" so everything goes through the host,
// and a permanent neighbour for the gateway (no ARP/NDP round trip). Host side: the gateway as a
// /32 (/128) address and a scope-link /32 (/128) route to the pod (the pod's MAC is resolved by
// ARP/NDP, so a chained plugin such as tuning may still change it).
// The pod-side result is the reference plugin's, so the two can replace each other.
// Any failure after IPAM releases the address and removes everything created (Rollback).
//
// Configuration: {"type": "cninet-ptp", "mtu": 1400, "ipam": {...}}; runtimeConfig.mac,
// args.cni.mac or CNI_ARGS MAC= set the pod interface's MAC.
#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "cninet/cni/cni.h"
#include "cninet/netlink/netlink.h"

namespace {

using cninet::cni::CmdArgs;
using cninet::cni::CniError;
using cninet::cni::ErrorCode;
using cninet::cni::Result;
namespace nl = cninet::netlink;

struct PtpConf {
  uint32_t mtu = 0;
  std::string ipam_type;
};

absl::StatusOr<PtpConf> LoadConf(const CmdArgs& args) {
  PtpConf c;
  cninet::cni::ConfigReader reader(args.conf.raw);
  CNINET_ASSIGN_OR_RETURN(c.mtu, nl::ConfigMtu(args.conf.raw));
  CNINET_ASSIGN_OR_RETURN(bool masq, reader.Optional<bool>("ipMasq", false));
  if (masq) {
    return CniError(ErrorCode::kUnsupportedField,
                    "ipMasq: true is not supported by cninet-ptp; chain a masquerading plugin");
  }
  c.ipam_type = args.conf.IpamType();
  if (c.ipam_type.empty()) {
    return CniError(ErrorCode::kInvalidConfig,
                    "cninet-ptp needs an \"ipam\" section with a \"type\"");
  }
  return c;
}

// Debug-level timing of ADD's steps (CNINET_LOG_LEVEL=debug), to see where the time goes.
class StepClock {
 public:
  void Mark(std::string_view step) {
    auto now = std::chrono::steady_clock::now();
    CNINET_LOG(kDebug, "step ", step, ": ",
               std::chrono::duration_cast<std::chrono::microseconds>(now - last_).count(), " us");
    last_ = now;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

cninet::cni::IPPrefix HostPrefix(const cninet::cni::IPAddress& a) {
  return cninet::cni::IPPrefix(a, a.bit_length());
}

// The veth pair: the pod end is born in the pod's namespace, never visible on the host. Its
// removal is registered in `rollback`. Returns {host end, pod end}, the host end up.
absl::StatusOr<std::pair<nl::Link, nl::Link>> CreateVeth(nl::Handle& host, nl::Handle& pod,
                                                         nl::Netns& pod_ns, const CmdArgs& args,
                                                         const PtpConf& conf,
                                                         std::optional<nl::MacAddress> mac,
                                                         nl::Rollback& rollback) {
  CNINET_ASSIGN_OR_RETURN(nl::Link host_veth,
                          nl::CreatePodVeth(host, pod_ns, args, conf.mtu, mac, rollback));
  CNINET_ASSIGN_OR_RETURN(nl::Link pod_veth, pod.GetLinkByIndex(host_veth.peer_index));
  // Host end up first: the pod end has carrier (and its IPv6 addresses leave the tentative
  // state) only once both ends are up.
  CNINET_RETURN_IF_ERROR(host.SetLinkUp(host_veth.index));
  return std::make_pair(host_veth, pod_veth);
}

// IPAM's addresses must each have a gateway (ptp routes through it); they are put on the pod
// interface (index 1) and forwarding is enabled for their families. Sets *has_v6.
absl::Status AcceptIpamResult(Result& ipam, bool* has_v6) {
  if (ipam.ips.empty()) {
    return CniError(ErrorCode::kInvalidConfig, "IPAM plugin returned missing IP config");
  }
  bool has_v4 = false;
  *has_v6 = false;
  for (auto& ip : ipam.ips) {
    if (!ip.gateway) {
      return CniError(ErrorCode::kInvalidConfig,
                      cninet::StrCat("IPAM returned no gateway for ", ip.address.ToString(),
                                     "; cninet-ptp routes through it"));
    }
    (ip.address.is_v4() ? has_v4 : *has_v6) = true;
    ip.interface = 1;
  }
  if (has_v4) CNINET_RETURN_IF_ERROR(nl::SetSysctl("net/ipv4/ip_forward", "1"));
  if (*has_v6) CNINET_RETURN_IF_ERROR(nl::SetSysctl("net/ipv6/conf/all/forwarding", "1"));
  return absl::OkStatus();
}

// Pod side, after the addresses: the connected subnet route replaced by "gateway on the link"
// and "the rest of the subnet through the gateway" (the host), exactly like the reference
// plugin, and a permanent neighbour for the gateway.
absl::Status RouteThroughGateway(nl::Handle& pod, const nl::Link& pod_veth,
                                 const nl::Link& host_veth, const Result& ipam) {
  for (const auto& ip : ipam.ips) {
    const cninet::cni::IPAddress& gw = *ip.gateway;
    CNINET_RETURN_IF_ERROR(pod.DeleteRoute(
        {.dst = ip.address.Masked(), .oif = pod_veth.index, .table = nl::kTableMain}));
    CNINET_RETURN_IF_ERROR(pod.AddRoute({.dst = HostPrefix(gw),
                                         .oif = pod_veth.index,
                                         .scope = nl::kScopeLink,
                                         .src = ip.address.address()}));
    CNINET_RETURN_IF_ERROR(pod.AddRoute({.dst = ip.address.Masked(),
                                         .gateway = gw,
                                         .oif = pod_veth.index,
                                         .src = ip.address.address()}));
    CNINET_RETURN_IF_ERROR(
        pod.SetNeighbor({.ifindex = pod_veth.index, .ip = gw, .mac = host_veth.mac}));
  }
  return absl::OkStatus();
}

// Host side: the gateway as a /32 (/128) without a prefix route, and a scope-link route to
// each pod address.
absl::Status ConfigureHostSide(nl::Handle& host, const nl::Link& host_veth, const Result& ipam) {
  for (const auto& ip : ipam.ips) {
    CNINET_RETURN_IF_ERROR(host.AddAddress(host_veth.index, HostPrefix(*ip.gateway),
                                           {.nodad = !ip.address.is_v4(), .noprefixroute = true}));
    CNINET_RETURN_IF_ERROR(host.AddRoute({.dst = HostPrefix(ip.address.address()),
                                          .oif = host_veth.index,
                                          .scope = nl::kScopeLink}));
  }
  return absl::OkStatus();
}

// The reference ptp's result: host veth, pod veth (in the sandbox), IPAM's addresses and routes,
// the configuration's DNS unless empty, else IPAM's.
Result PtpResult(const CmdArgs& args, const nl::Link& host_veth, const nl::Link& pod_veth,
                 const Result& ipam) {
  Result result;
  result.interfaces.push_back({.name = host_veth.name, .mac = host_veth.mac.ToString()});
  result.interfaces.push_back({.name = pod_veth.name,
                               .mac = pod_veth.mac.ToString(),
                               .mtu = pod_veth.mtu,
                               .sandbox = args.netns});
  result.ips = ipam.ips;
  result.routes = ipam.routes;
  result.dns = (args.conf.dns && !args.conf.dns->empty()) ? *args.conf.dns : ipam.dns;
  return result;
}

class PtpPlugin : public cninet::cni::Plugin {
 public:
  absl::StatusOr<Result> Add(const CmdArgs& args) override {
    StepClock clock;
    CNINET_ASSIGN_OR_RETURN(PtpConf conf, LoadConf(args));
    CNINET_ASSIGN_OR_RETURN(std::optional<nl::MacAddress> mac, nl::RequestedMac(args));
    CNINET_ASSIGN_OR_RETURN(nl::Netns pod_ns, nl::Netns::Open(args.netns));
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    CNINET_ASSIGN_OR_RETURN(nl::Handle pod, nl::Handle::OpenIn(pod_ns));
    clock.Mark("open netns and sockets");
    // Checked before IPAM so a clash costs no address.
    if (pod.GetLink(args.ifname).ok()) {
      return CniError(ErrorCode::kInvalidEnvironment,
                      cninet::StrCat("CNI_IFNAME: interface \"", args.ifname,
                                     "\" already exists in ", args.netns));
    }
    // IPAM runs in the background while the veth is created; it is released again on any
    // failure (BackgroundIpamAdd's destructor, after the Rollback below has removed the links).
    nl::BackgroundIpamAdd ipam_add(conf.ipam_type, args);
    nl::Rollback rollback;
    CNINET_ASSIGN_OR_RETURN(auto veth, CreateVeth(host, pod, pod_ns, args, conf, mac, rollback));
    const auto& [host_veth, pod_veth] = veth;
    clock.Mark("veth");
    CNINET_ASSIGN_OR_RETURN(Result ipam, ipam_add.Wait());
    clock.Mark("IPAM (remaining wait)");
    bool has_v6 = false;
    CNINET_RETURN_IF_ERROR(AcceptIpamResult(ipam, &has_v6));
    CNINET_RETURN_IF_ERROR(pod_ns.Run([&] {
      return nl::PreparePodInterfaceSysctls(args.ifname, has_v6, /*dad=*/false,
                                            /*arp_notify=*/false);
    }));
    clock.Mark("pod sysctls");
    CNINET_RETURN_IF_ERROR(nl::ConfigureInterface(pod, pod_veth, ipam.ips, ipam.routes));
    clock.Mark("pod addresses and IPAM routes");
    CNINET_RETURN_IF_ERROR(RouteThroughGateway(pod, pod_veth, host_veth, ipam));
    clock.Mark("pod gateway routes");
    CNINET_RETURN_IF_ERROR(ConfigureHostSide(host, host_veth, ipam));
    clock.Mark("host side");
    // A namespace deleted while we worked takes the veth with it; report it, and undo the rest.
    CNINET_RETURN_IF_ERROR(nl::CheckNetnsUnchanged(args.netns, pod_ns));
    rollback.Commit();
    ipam_add.Commit();
    return PtpResult(args, host_veth, pod_veth, ipam);
  }

  absl::Status Del(const CmdArgs& args) override {
    // Lenient: DEL must clean up even when the configuration is no longer fully valid.
    // The IPAM release and the (slow, RCU-bound) link deletion are independent: overlap them.
    StepClock clock;
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    std::string type = args.conf.IpamType();
    absl::Status st = nl::RunConcurrently(
        [&] { return type.empty() ? absl::OkStatus() : cninet::cni::DelegateDel(type, args); },
        [&] {
          return nl::DeleteVethAttachment(host, args.netns, args.ifname,
                                          nl::VethNameFor(args.container_id, args.ifname))
              .status();
        });
    clock.Mark("IPAM release + interface deletion");
    return st;
  }

  absl::Status Check(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(PtpConf conf, LoadConf(args));
    CNINET_RETURN_IF_ERROR(cninet::cni::DelegateCheck(conf.ipam_type, args));
    const Result& prev = *args.conf.prev_result;
    int cont_index = -1;
    const cninet::cni::Interface* host_iface = nullptr;
    for (size_t i = 0; i < prev.interfaces.size(); ++i) {
      const auto& itf = prev.interfaces[i];
      if (itf.name == args.ifname && itf.sandbox == args.netns) cont_index = static_cast<int>(i);
      if (itf.sandbox.empty() &&
          (host_iface == nullptr || itf.name == nl::VethNameFor(args.container_id, args.ifname))) {
        host_iface = &itf;  // Ours by name; else the first (later plugins append their own).
      }
    }
    if (cont_index < 0) {
      return CniError(
          cninet::cni::ErrorCode::kCheckMismatch,
          cninet::StrCat("prevResult has no interface ", args.ifname, " in ", args.netns));
    }
    CNINET_ASSIGN_OR_RETURN(nl::Netns pod_ns, nl::Netns::Open(args.netns));
    CNINET_ASSIGN_OR_RETURN(nl::Handle pod, nl::Handle::OpenIn(pod_ns));
    auto link = pod.GetLink(args.ifname);
    if (!link.ok()) {
      return CniError(cninet::cni::ErrorCode::kCheckMismatch,
                      cninet::StrCat("interface ", args.ifname, " not found in ", args.netns));
    }
    CNINET_RETURN_IF_ERROR(
        nl::CheckLink(*link, prev.interfaces[static_cast<size_t>(cont_index)], "veth"));
    if (conf.mtu != 0 && link->mtu != conf.mtu) {
      return CniError(
          cninet::cni::ErrorCode::kCheckMismatch,
          cninet::StrCat(args.ifname, " has MTU ", link->mtu, ", configuration says ", conf.mtu));
    }
    CNINET_RETURN_IF_ERROR(nl::CheckAddresses(pod, *link, prev.ips, cont_index));
    CNINET_RETURN_IF_ERROR(nl::CheckRoutes(pod, prev.routes));

    // Host side: the peer of the pod's interface, with a route to every pod address.
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    std::string host_name =
        host_iface ? host_iface->name : nl::VethNameFor(args.container_id, args.ifname);
    auto hv = host.GetLink(host_name);
    if (!hv.ok() || hv->index != link->peer_index) {
      return CniError(
          cninet::cni::ErrorCode::kCheckMismatch,
          cninet::StrCat("host veth ", host_name, " is missing or not the peer of ", args.ifname));
    }
    if (host_iface) CNINET_RETURN_IF_ERROR(nl::CheckLink(*hv, *host_iface, "veth"));
    CNINET_ASSIGN_OR_RETURN(auto routes, host.ListRoutes({.oif = hv->index}));
    for (const auto& ip : prev.ips) {
      cninet::cni::IPPrefix want = HostPrefix(ip.address.address());
      bool found = false;
      for (const auto& r : routes) found |= r.dst == want;
      if (!found) {
        return CniError(
            cninet::cni::ErrorCode::kCheckMismatch,
            cninet::StrCat("host route to ", want.ToString(), " via ", host_name, " is missing"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Status(const CmdArgs& args) override { return nl::DelegatedIpamStatus(args); }

  absl::Status Gc(const CmdArgs& args) override { return nl::DelegatedIpamGc(args); }
};

}  // namespace

int main() {
  PtpPlugin plugin;
  return cninet::cni::PluginMain(plugin, {.about = "cninet-ptp: routed veth pod networking"});
}
