// cninet-bridge: a bridge per network, a veth per pod with its host end as a bridge port (the
// kube-router model, and the reference bridge plugin's).
//
// ADD: bridge ensured (created once, up, optionally promiscuous), veth created with its pod end
// directly in the pod's namespace and its host end attached to the bridge (hairpin optional),
// then IPAM (delegated by ipam.type) and the pod interface configured: addresses, IPAM routes,
// a default route via the gateway with isDefaultGateway. With isGateway the bridge carries the
// gateway address (first address of the subnet unless IPAM names one) and forwarding is on.
// Any failure removes what this call created (and releases the IPAM address).
//
// Configuration keys: bridge (default "cni0"), isGateway, isDefaultGateway, forceAddress,
// hairpinMode, promiscMode, mtu, enabledad, ipam. runtimeConfig.mac / args.cni.mac / CNI_ARGS MAC=
// set the pod interface's MAC. ipMasq, vlan, vlanTrunk and macspoofchk are not supported (code 2).
#include <sys/socket.h>

#include <utility>

#include "cninet/cni/cni.h"
#include "cninet/netlink/netlink.h"

namespace {

using cninet::cni::CmdArgs;
using cninet::cni::CniError;
using cninet::cni::ErrorCode;
using cninet::cni::IPAddress;
using cninet::cni::IPPrefix;
using cninet::cni::Result;
namespace nl = cninet::netlink;

struct BridgeConf {
  std::string bridge = "cni0";
  bool is_gateway = false;
  bool is_default_gateway = false;
  bool force_address = false;
  bool hairpin = false;
  bool promisc = false;
  bool enable_dad = false;
  uint32_t mtu = 0;
  std::string ipam_type;
};

// Keys the reference bridge has and cninet-bridge does not implement (code 2 when used).
absl::Status RejectUnsupported(const cninet::cni::ConfigReader& r) {
  CNINET_ASSIGN_OR_RETURN(bool masq, r.Optional<bool>("ipMasq", false));
  CNINET_ASSIGN_OR_RETURN(bool spoofchk, r.Optional<bool>("macspoofchk", false));
  if (masq)
    return CniError(ErrorCode::kUnsupportedField, "ipMasq: true is not supported by cninet-bridge");
  if (spoofchk)
    return CniError(ErrorCode::kUnsupportedField, "macspoofchk is not supported by cninet-bridge");
  if (r.Has("vlan") && !(r.At("vlan").json().is_number_integer() && r.At("vlan").json() == 0)) {
    return CniError(
        ErrorCode::kUnsupportedField,
        cninet::StrCat("vlan ", r.At("vlan").json().dump(), " is not supported by cninet-bridge"));
  }
  if (r.json().contains("vlanTrunk")) {
    return CniError(ErrorCode::kUnsupportedField, "vlanTrunk is not supported by cninet-bridge");
  }
  return absl::OkStatus();
}

absl::StatusOr<BridgeConf> LoadConf(const CmdArgs& args) {
  cninet::cni::ConfigReader r(args.conf.raw);
  BridgeConf c;
  CNINET_ASSIGN_OR_RETURN(c.bridge, r.Optional<std::string>("bridge", ""));
  if (c.bridge.empty()) c.bridge = "cni0";
  if (absl::Status st = nl::ValidateLinkName(c.bridge); !st.ok()) {
    return r.At("bridge").Error(cninet::ToStd(st.message()));
  }
  CNINET_ASSIGN_OR_RETURN(c.is_gateway, r.Optional<bool>("isGateway", false));
  CNINET_ASSIGN_OR_RETURN(c.is_default_gateway, r.Optional<bool>("isDefaultGateway", false));
  CNINET_ASSIGN_OR_RETURN(c.force_address, r.Optional<bool>("forceAddress", false));
  CNINET_ASSIGN_OR_RETURN(c.hairpin, r.Optional<bool>("hairpinMode", false));
  CNINET_ASSIGN_OR_RETURN(c.promisc, r.Optional<bool>("promiscMode", false));
  CNINET_ASSIGN_OR_RETURN(c.enable_dad, r.Optional<bool>("enabledad", false));
  CNINET_RETURN_IF_ERROR(RejectUnsupported(r));
  CNINET_ASSIGN_OR_RETURN(c.mtu, nl::ConfigMtu(args.conf.raw));
  if (c.is_default_gateway) c.is_gateway = true;
  if (c.hairpin && c.promisc) {
    return CniError(ErrorCode::kInvalidConfig,
                    "cannot set hairpin mode and promiscuous mode at the same time");
  }
  c.ipam_type = args.conf.IpamType();
  return c;
}

// The bridge, created (and brought up) when missing. `*created` says whether this call made it;
// changes to an existing bridge (up, promiscuous) are registered in `rollback`.
absl::StatusOr<nl::Link> EnsureBridge(nl::Handle& h, const BridgeConf& conf, bool* created,
                                      nl::Rollback& rollback) {
  *created = false;
  auto br = h.GetLink(conf.bridge);
  if (absl::IsNotFound(br.status())) {
    br = h.CreateBridge({.name = conf.bridge, .mtu = conf.mtu});
    if (br.ok()) {
      *created = true;
    } else if (absl::IsAlreadyExists(br.status())) {
      br = h.GetLink(conf.bridge);  // A concurrent ADD created it first.
    }
  }
  if (!br.ok()) return br.status();
  if (br->kind != "bridge") {
    return CniError(ErrorCode::kInvalidConfig,
                    cninet::StrCat("\"", conf.bridge, "\" already exists but is not a bridge"));
  }
  if (conf.promisc && !br->promisc) {
    CNINET_RETURN_IF_ERROR(h.SetPromisc(br->index, true));
    if (!*created)
      rollback.Add("bridge promiscuous", [&h, i = br->index] { return h.SetPromisc(i, false); });
  }
  // We own the bridge's routes: no router advertisements (the reference plugin does the same).
  (void)nl::SetSysctl(cninet::StrCat("net/ipv6/conf/", conf.bridge, "/accept_ra"), "0");
  if (!br->admin_up) {
    CNINET_RETURN_IF_ERROR(h.SetLinkUp(br->index));
    if (!*created) rollback.Add("bridge up", [&h, i = br->index] { return h.SetLinkUp(i, false); });
  }
  return h.GetLinkByIndex(br->index);
}

// Puts the gateway address on the bridge unless it is there; another address of the family
// (IPv4) or an overlapping one (IPv6) is an error unless forceAddress replaces it.
absl::Status EnsureGatewayAddress(nl::Handle& h, const nl::Link& br, const IPPrefix& gw,
                                  bool force) {
  CNINET_ASSIGN_OR_RETURN(auto addrs, h.ListAddresses(br.index, gw.is_v4() ? AF_INET : AF_INET6));
  for (const auto& a : addrs) {
    if (a.scope != nl::kScopeUniverse) continue;
    if (a.prefix == gw) return absl::OkStatus();
    if (gw.is_v4() || a.prefix.Overlaps(gw)) {
      if (!force) {
        return CniError(
            ErrorCode::kInvalidConfig,
            cninet::StrCat("\"", br.name, "\" already has an IP address different from ",
                           gw.ToString(), " (", a.prefix.ToString(), ")"));
      }
      CNINET_RETURN_IF_ERROR(h.DeleteAddress(br.index, a.prefix));
    }
  }
  absl::Status st = h.AddAddress(br.index, gw, {.nodad = !gw.is_v4()});
  if (!st.ok() && !absl::IsAlreadyExists(st)) return st;
  // Pin the bridge's MAC: otherwise it follows the lowest port MAC and changes as pods churn.
  CNINET_ASSIGN_OR_RETURN(nl::Link now, h.GetLinkByIndex(br.index));
  return h.SetMac(br.index, now.mac);
}

// Registers the removal of bridge `br`, created by this call, in `rollback`: only while no
// other pod uses it.
void RemoveCreatedBridgeOnFailure(nl::Handle& host, const nl::Link& br, nl::Rollback& rollback) {
  rollback.Add(cninet::StrCat("bridge ", br.name), [&host, index = br.index]() -> absl::Status {
    auto links = host.ListLinks();
    if (!links.ok()) return links.status();
    for (const auto& l : *links) {
      if (l.master_index == index) return absl::OkStatus();
    }
    absl::Status st = host.DeleteLink(index);
    return absl::IsNotFound(st) ? absl::OkStatus() : st;
  });
}

// The veth pair, its pod end born in the pod's namespace, its host end a port of `br` (hairpin
// as configured) and up. Its removal is registered in `rollback`. Returns {host end, pod end}.
absl::StatusOr<std::pair<nl::Link, nl::Link>> CreatePort(nl::Handle& host, nl::Handle& pod,
                                                         nl::Netns& pod_ns, const CmdArgs& args,
                                                         const BridgeConf& conf,
                                                         std::optional<nl::MacAddress> mac,
                                                         const nl::Link& br,
                                                         nl::Rollback& rollback) {
  CNINET_ASSIGN_OR_RETURN(nl::Link host_veth,
                          nl::CreatePodVeth(host, pod_ns, args, conf.mtu, mac, rollback));
  CNINET_RETURN_IF_ERROR(host.SetMaster(host_veth.index, br.index));
  if (conf.hairpin) CNINET_RETURN_IF_ERROR(host.SetHairpin(host_veth.index, true));
  CNINET_RETURN_IF_ERROR(host.SetLinkUp(host_veth.index));
  CNINET_ASSIGN_OR_RETURN(nl::Link pod_veth, pod.GetLinkByIndex(host_veth.peer_index));
  return std::make_pair(host_veth, pod_veth);
}

// Puts IPAM's addresses on the pod interface (index 2) with their gateways (the first address
// of the subnet unless IPAM names one, with isGateway) and, with isDefaultGateway, a default
// route per family. Returns the gateway prefixes the bridge must carry; sets *has_v6.
std::vector<IPPrefix> AssignGateways(Result& result, const BridgeConf& conf, bool* has_v6) {
  std::vector<IPPrefix> gateways;
  bool default_v4 = false, default_v6 = false;
  *has_v6 = false;
  for (auto& ip : result.ips) {
    ip.interface = 2;
    *has_v6 |= !ip.address.is_v4();
    if (!ip.gateway && conf.is_gateway) ip.gateway = ip.address.Masked().address().Next();
    bool& have_default = ip.address.is_v4() ? default_v4 : default_v6;
    if (conf.is_default_gateway && !have_default) {
      for (const auto& r : result.routes) {
        if (r.dst.prefix_len() == 0 && r.dst.is_v4() == ip.address.is_v4() && r.gw)
          have_default = true;
      }
      if (!have_default) {
        cninet::cni::Route def;
        def.dst = IPPrefix(ip.address.is_v4() ? IPAddress() : *IPAddress::Parse("::"), 0);
        def.gw = ip.gateway;
        result.routes.push_back(def);
        have_default = true;
      }
    }
    if (conf.is_gateway) gateways.emplace_back(*ip.gateway, ip.address.prefix_len());
  }
  return gateways;
}

// Layer 3: IPAM's result on the pod interface, the gateways on the bridge, forwarding on.
absl::Status ConfigureAddresses(nl::Handle& host, nl::Handle& pod, nl::Netns& pod_ns,
                                const CmdArgs& args, const BridgeConf& conf, const nl::Link& br,
                                const nl::Link& pod_veth, Result& result) {
  if (result.ips.empty())
    return CniError(ErrorCode::kInvalidConfig, "IPAM plugin returned missing IP config");
  bool has_v6 = false;
  std::vector<IPPrefix> gateways = AssignGateways(result, conf, &has_v6);
  CNINET_RETURN_IF_ERROR(pod_ns.Run([&] {
    return nl::PreparePodInterfaceSysctls(args.ifname, has_v6, conf.enable_dad,
                                          /*arp_notify=*/true);
  }));
  CNINET_RETURN_IF_ERROR(nl::ConfigureInterface(pod, pod_veth, result.ips, result.routes));
  bool fwd_v4 = false, fwd_v6 = false;
  for (const auto& gw : gateways) {
    CNINET_RETURN_IF_ERROR(EnsureGatewayAddress(host, br, gw, conf.force_address));
    (gw.is_v4() ? fwd_v4 : fwd_v6) = true;
  }
  if (fwd_v4) CNINET_RETURN_IF_ERROR(nl::SetSysctl("net/ipv4/ip_forward", "1"));
  if (fwd_v6) CNINET_RETURN_IF_ERROR(nl::SetSysctl("net/ipv6/conf/all/forwarding", "1"));
  return absl::OkStatus();
}

// The result's interfaces (bridge, host veth, pod veth) with their final MACs (they can change
// while ports and addresses are added), and the configuration's DNS unless empty.
absl::Status AddInterfaces(nl::Handle& host, const CmdArgs& args, const nl::Link& br_then,
                           const nl::Link& host_veth_then, const nl::Link& pod_veth,
                           Result& result) {
  CNINET_ASSIGN_OR_RETURN(nl::Link br, host.GetLinkByIndex(br_then.index));
  CNINET_ASSIGN_OR_RETURN(nl::Link host_veth, host.GetLinkByIndex(host_veth_then.index));
  result.interfaces.push_back({.name = br.name, .mac = br.mac.ToString()});
  result.interfaces.push_back({.name = host_veth.name, .mac = host_veth.mac.ToString()});
  result.interfaces.push_back({.name = pod_veth.name,
                               .mac = pod_veth.mac.ToString(),
                               .mtu = pod_veth.mtu,
                               .sandbox = args.netns});
  if (args.conf.dns && !args.conf.dns->empty()) result.dns = *args.conf.dns;
  return absl::OkStatus();
}

// prevResult's interfaces CHECK verifies: the bridge, the host veth (ours by name, else the
// first host interface: later plugins append their own) and the pod interface's index.
struct PrevInterfaces {
  const cninet::cni::Interface* bridge = nullptr;
  const cninet::cni::Interface* host = nullptr;
  int pod_index = -1;
};

PrevInterfaces FindPrevInterfaces(const Result& prev, const BridgeConf& conf, const CmdArgs& args) {
  PrevInterfaces found;
  for (size_t i = 0; i < prev.interfaces.size(); ++i) {
    const auto& itf = prev.interfaces[i];
    if (itf.name == conf.bridge && itf.sandbox.empty()) {
      found.bridge = &itf;
    } else if (itf.name == args.ifname && itf.sandbox == args.netns) {
      found.pod_index = static_cast<int>(i);
    } else if (itf.sandbox.empty() &&
               (found.host == nullptr ||
                itf.name == nl::VethNameFor(args.container_id, args.ifname))) {
      found.host = &itf;
    }
  }
  return found;
}

// CHECK of the host veth: the peer of the pod interface, a port of the bridge, hairpin mode as
// configured, and as prevResult lists it.
absl::Status CheckHostVeth(nl::Handle& host, const CmdArgs& args, const BridgeConf& conf,
                           const nl::Link& br, const nl::Link& pod_link,
                           const cninet::cni::Interface* host_iface) {
  std::string host_name =
      host_iface ? host_iface->name : nl::VethNameFor(args.container_id, args.ifname);
  auto hv = host.GetLink(host_name);
  if (!hv.ok() || hv->index != pod_link.peer_index || hv->master_index != br.index) {
    return CniError(cninet::cni::ErrorCode::kCheckMismatch,
                    cninet::StrCat("host veth ", host_name, " is missing, not the peer of ",
                                   args.ifname, " or not a port of ", conf.bridge));
  }
  if (host_iface) CNINET_RETURN_IF_ERROR(nl::CheckLink(*hv, *host_iface, "veth"));
  if (hv->hairpin.value_or(false) != conf.hairpin) {
    return CniError(
        cninet::cni::ErrorCode::kCheckMismatch,
        cninet::StrCat("hairpin mode of ", host_name, " differs from the configuration"));
  }
  return absl::OkStatus();
}

// CHECK of the bridge: present, as prevResult lists it, promiscuous mode as configured.
absl::StatusOr<nl::Link> CheckBridge(nl::Handle& host, const BridgeConf& conf,
                                     const cninet::cni::Interface& br_iface) {
  auto br = host.GetLink(conf.bridge);
  if (!br.ok())
    return CniError(cninet::cni::ErrorCode::kCheckMismatch,
                    cninet::StrCat("bridge ", conf.bridge, " not found"));
  CNINET_RETURN_IF_ERROR(nl::CheckLink(*br, br_iface, "bridge"));
  if (br->promisc != conf.promisc) {
    return CniError(cninet::cni::ErrorCode::kCheckMismatch,
                    cninet::StrCat("bridge ", conf.bridge, " promiscuous mode is ", br->promisc,
                                   ", configuration says ", conf.promisc));
  }
  return br;
}

class BridgePlugin : public cninet::cni::Plugin {
 public:
  absl::StatusOr<Result> Add(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(BridgeConf conf, LoadConf(args));
    CNINET_ASSIGN_OR_RETURN(std::optional<nl::MacAddress> mac, nl::RequestedMac(args));
    CNINET_ASSIGN_OR_RETURN(nl::Netns pod_ns, nl::Netns::Open(args.netns));
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    CNINET_ASSIGN_OR_RETURN(nl::Handle pod, nl::Handle::OpenIn(pod_ns));
    if (pod.GetLink(args.ifname).ok()) {
      return CniError(ErrorCode::kInvalidEnvironment,
                      cninet::StrCat("CNI_IFNAME: interface \"", args.ifname,
                                     "\" already exists in ", args.netns));
    }
    // IPAM runs in the background while the bridge and the veth are set up; it is released again
    // on any failure (after the Rollback below has removed the links).
    std::optional<nl::BackgroundIpamAdd> ipam_add;
    if (!conf.ipam_type.empty()) ipam_add.emplace(conf.ipam_type, args);
    nl::Rollback rollback;
    bool created = false;
    CNINET_ASSIGN_OR_RETURN(nl::Link br, EnsureBridge(host, conf, &created, rollback));
    if (created) RemoveCreatedBridgeOnFailure(host, br, rollback);
    CNINET_ASSIGN_OR_RETURN(auto port,
                            CreatePort(host, pod, pod_ns, args, conf, mac, br, rollback));
    const auto& [host_veth, pod_veth] = port;
    Result result;
    if (ipam_add) {
      CNINET_ASSIGN_OR_RETURN(Result ipam, ipam_add->Wait());
      result.ips = ipam.ips;
      result.routes = ipam.routes;
      result.dns = ipam.dns;
      CNINET_RETURN_IF_ERROR(
          ConfigureAddresses(host, pod, pod_ns, args, conf, br, pod_veth, result));
    } else {
      CNINET_RETURN_IF_ERROR(pod.SetLinkUp(pod_veth.index));  // Layer 2 only.
    }
    CNINET_RETURN_IF_ERROR(nl::WaitOperUp(host, host_veth.index, std::chrono::seconds(3)));
    CNINET_RETURN_IF_ERROR(nl::CheckNetnsUnchanged(args.netns, pod_ns));
    CNINET_RETURN_IF_ERROR(AddInterfaces(host, args, br, host_veth, pod_veth, result));
    rollback.Commit();
    if (ipam_add) ipam_add->Commit();
    return result;
  }

  absl::Status Del(const CmdArgs& args) override {
    // IPAM release and link deletion are independent: overlap them. The bridge stays: it is the
    // network's, not the pod's.
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    std::string type = args.conf.IpamType();
    return nl::RunConcurrently(
        [&] { return type.empty() ? absl::OkStatus() : cninet::cni::DelegateDel(type, args); },
        [&] {
          return nl::DeleteVethAttachment(host, args.netns, args.ifname,
                                          nl::VethNameFor(args.container_id, args.ifname))
              .status();
        });
  }

  absl::Status Check(const CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(BridgeConf conf, LoadConf(args));
    if (!conf.ipam_type.empty()) {
      CNINET_RETURN_IF_ERROR(cninet::cni::DelegateCheck(conf.ipam_type, args));
    }
    const Result& prev = *args.conf.prev_result;
    PrevInterfaces listed = FindPrevInterfaces(prev, conf, args);
    if (listed.bridge == nullptr || listed.pod_index < 0) {
      return CniError(cninet::cni::ErrorCode::kCheckMismatch,
                      cninet::StrCat("prevResult lacks bridge ", conf.bridge, " or interface ",
                                     args.ifname, " in ", args.netns));
    }
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    CNINET_ASSIGN_OR_RETURN(nl::Link br, CheckBridge(host, conf, *listed.bridge));
    CNINET_ASSIGN_OR_RETURN(nl::Netns pod_ns, nl::Netns::Open(args.netns));
    CNINET_ASSIGN_OR_RETURN(nl::Handle pod, nl::Handle::OpenIn(pod_ns));
    auto link = pod.GetLink(args.ifname);
    if (!link.ok()) {
      return CniError(cninet::cni::ErrorCode::kCheckMismatch,
                      cninet::StrCat("interface ", args.ifname, " not found in ", args.netns));
    }
    CNINET_RETURN_IF_ERROR(
        nl::CheckLink(*link, prev.interfaces[static_cast<size_t>(listed.pod_index)], "veth"));
    CNINET_RETURN_IF_ERROR(CheckHostVeth(host, args, conf, br, *link, listed.host));
    CNINET_RETURN_IF_ERROR(nl::CheckAddresses(pod, *link, prev.ips, listed.pod_index));
    return nl::CheckRoutes(pod, prev.routes);
  }

  absl::Status Status(const CmdArgs& args) override { return nl::DelegatedIpamStatus(args); }

  absl::Status Gc(const CmdArgs& args) override { return nl::DelegatedIpamGc(args); }
};

}  // namespace

int main() {
  BridgePlugin plugin;
  return cninet::cni::PluginMain(plugin, {.about = "cninet-bridge: bridge + veth pod networking"});
}
