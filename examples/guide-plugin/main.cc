// cninet-guide-veth: the interface plugin built step by step in docs/writing-a-plugin.md. It gives
// a pod a veth pair whose addresses come from a delegated IPAM plugin, with a host route to each
// pod address (a simplified cninet-ptp).
//
// Every block between "// [doc:NAME]" and "// [/doc]" is quoted in the guide; the docs.guides
// test checks that the guide and this file agree, and guide_plugin_test runs the plugin in
// network namespaces.
// [doc:includes]
#include "cninet/cni/cni.h"
#include "cninet/netlink/netlink.h"

namespace cni = cninet::cni;
namespace nl = cninet::netlink;
// [/doc]

namespace {

// [doc:config]
// The plugin's own configuration keys, read from the complete configuration object.
struct VethConf {
  uint32_t mtu = 0;       // "mtu": 0 keeps the kernel default.
  std::string ipam_type;  // "ipam": {"type": ...}, required.
};

absl::StatusOr<VethConf> LoadConf(const cni::CmdArgs& args) {
  // Typed reads: a missing key or a wrong type is code 7 naming the key, e.g. "ipam.type".
  cni::ConfigReader reader(args.conf.raw);
  VethConf conf;
  CNINET_ASSIGN_OR_RETURN(conf.mtu, nl::ConfigMtu(args.conf.raw));  // Code 7 when invalid.
  CNINET_ASSIGN_OR_RETURN(cni::ConfigReader ipam, reader.Object("ipam"));
  CNINET_ASSIGN_OR_RETURN(conf.ipam_type, ipam.Get<std::string>("type"));
  return conf;
}
// [/doc]

// [doc:add]
class VethPlugin : public cni::Plugin {
 public:
  absl::StatusOr<cni::Result> Add(const cni::CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(VethConf conf, LoadConf(args));
    CNINET_ASSIGN_OR_RETURN(nl::Netns pod_ns, nl::Netns::Open(args.netns));
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    CNINET_ASSIGN_OR_RETURN(nl::Handle pod, nl::Handle::OpenIn(pod_ns));

    // 1. Addresses from the IPAM plugin (same CNI_* environment, same configuration bytes).
    CNINET_ASSIGN_OR_RETURN(cni::Result ipam, cni::DelegateAdd(conf.ipam_type, args));
    // From here on every failure undoes what was done: the rollback steps run in reverse
    // unless Commit() is reached; the first one gives the addresses back.
    nl::Rollback rollback;
    rollback.Add("IPAM allocation", [&] { return cni::DelegateDel(conf.ipam_type, args); });

    // 2. The veth pair: the pod end is created directly in the pod's namespace.
    std::string host_name = nl::VethNameFor(args.container_id, args.ifname);
    CNINET_ASSIGN_OR_RETURN(
        nl::Link host_veth,
        host.CreateVeth(
            {.name = host_name, .peer_name = args.ifname, .peer_netns = &pod_ns, .mtu = conf.mtu}));
    rollback.Add("host veth", [&, index = host_veth.index] { return host.DeleteLink(index); });
    CNINET_RETURN_IF_ERROR(host.SetLinkUp(host_veth.index));
    CNINET_ASSIGN_OR_RETURN(nl::Link pod_veth, pod.GetLinkByIndex(host_veth.peer_index));

    // 3. Pod side: addresses and IPAM routes (ConfigureInterface also brings the link up).
    for (cni::IPConfig& ip : ipam.ips) ip.interface = 1;  // Index of the pod interface below.
    CNINET_RETURN_IF_ERROR(nl::ConfigureInterface(pod, pod_veth, ipam.ips, ipam.routes));

    // 4. Host side: a route to each pod address through the host end of the veth.
    for (const cni::IPConfig& ip : ipam.ips) {
      cni::IPPrefix pod_ip(ip.address.address(), ip.address.address().bit_length());
      CNINET_RETURN_IF_ERROR(
          host.AddRoute({.dst = pod_ip, .oif = host_veth.index, .scope = nl::kScopeLink}));
    }

    // 5. The result: interfaces (host first, then the pod's), addresses, routes, DNS.
    cni::Result result;
    result.interfaces.push_back({.name = host_veth.name, .mac = host_veth.mac.ToString()});
    result.interfaces.push_back(
        {.name = pod_veth.name, .mac = pod_veth.mac.ToString(), .sandbox = args.netns});
    result.ips = ipam.ips;
    result.routes = ipam.routes;
    result.dns = ipam.dns;
    rollback.Commit();
    return result;
  }
  // [/doc]

  // [doc:del]
  // DEL must succeed when things are already gone (a second DEL, a deleted namespace), and must
  // not need a valid prevResult.
  absl::Status Del(const cni::CmdArgs& args) override {
    std::string ipam_type = args.conf.IpamType();
    if (!ipam_type.empty()) {
      CNINET_RETURN_IF_ERROR(cni::DelegateDel(ipam_type, args));
    }
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    return nl::DeleteVethAttachment(host, args.netns, args.ifname,
                                    nl::VethNameFor(args.container_id, args.ifname))
        .status();
  }
  // [/doc]

  // [doc:check]
  // CHECK compares the kernel with prevResult (always present for CHECK); mismatches are
  // errors with a plugin-specific code.
  absl::Status Check(const cni::CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(VethConf conf, LoadConf(args));
    CNINET_RETURN_IF_ERROR(cni::DelegateCheck(conf.ipam_type, args));
    const cni::Result& prev = *args.conf.prev_result;
    CNINET_ASSIGN_OR_RETURN(nl::Netns pod_ns, nl::Netns::Open(args.netns));
    CNINET_ASSIGN_OR_RETURN(nl::Handle pod, nl::Handle::OpenIn(pod_ns));
    for (size_t i = 0; i < prev.interfaces.size(); ++i) {
      if (prev.interfaces[i].name != args.ifname || prev.interfaces[i].sandbox != args.netns) {
        continue;
      }
      auto link = pod.GetLink(args.ifname);
      if (!link.ok())
        return cni::CniError(cni::ErrorCode::kCheckMismatch, "the pod interface is gone");
      CNINET_RETURN_IF_ERROR(nl::CheckLink(*link, prev.interfaces[i], "veth"));
      return nl::CheckAddresses(pod, *link, prev.ips, static_cast<int>(i));
    }
    return cni::CniError(cni::ErrorCode::kCheckMismatch,
                         "prevResult has no interface " + args.ifname);
  }
  // [/doc]
};

}  // namespace

// [doc:main]
int main() {
  VethPlugin plugin;
  return cni::PluginMain(plugin, {.about = "cninet-guide-veth: a veth per pod, IPAM delegated"});
}
// [/doc]
