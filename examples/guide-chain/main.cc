// cninet-chain-example: the plugin built step by step in docs/chained-plugin.md. A minimal chained
// plugin that puts each pod on the cninet eBPF datapath: it attaches the from-pod program to the
// host side of the pod's veth and registers the pod's IPv4 address as an endpoint. (cninet-ebpf,
// in this folder, is the complete version: uplink, masquerade, hostPort, CHECK, GC, STATUS.)
//
// Every block between "// [doc:NAME]" and "// [/doc]" is quoted in the guide; a test checks that
// the guide and this file agree.

// [doc:includes]
#include "cninet/cni/cni.h"
#include "cninet/datapath/datapath.h"
#include "cninet/netlink/netlink.h"

namespace cni = cninet::cni;
namespace dp = cninet::datapath;
namespace nl = cninet::netlink;
// [/doc]

namespace {

// [doc:config]
// A string key of the plugin configuration ("" when absent or not a string).
std::string Key(const cni::NetConf& conf, const char* key) {
  auto it = conf.raw.find(key);
  return it != conf.raw.end() && it->is_string() ? it->get<std::string>() : "";
}

// Plugin keys: "clusterCIDR" and "nodeAddress" (required), "bpffsRoot" (default /sys/fs/bpf).
// The maps are pinned per network, so every pod of the node shares them.
absl::StatusOr<dp::DatapathConfig> DatapathConfigFor(const cni::NetConf& conf) {
  dp::DatapathConfig c;
  c.instance = conf.name;
  if (!Key(conf, "bpffsRoot").empty()) c.bpffs_root = Key(conf, "bpffsRoot");
  auto cidr = cni::IPPrefix::Parse(Key(conf, "clusterCIDR"));
  auto node = cni::IPAddress::Parse(Key(conf, "nodeAddress"));
  if (!cidr.ok() || !node.ok()) {
    return cni::CniError(cni::ErrorCode::kInvalidConfig,
                         "clusterCIDR and nodeAddress are required");
  }
  c.cluster_cidr = cidr->Masked();
  c.node_addresses = {*node};
  return c;
}
// [/doc]

// [doc:host-veth]
// The host side of the pod's veth: the interface prevResult lists without a sandbox that is a
// veth in this (the node's) namespace.
absl::StatusOr<nl::Link> HostVeth(nl::Handle& host, const cni::Result& prev) {
  for (const cni::Interface& iface : prev.interfaces) {
    if (!iface.sandbox.empty()) continue;
    auto link = host.GetLink(iface.name);
    if (link.ok() && link->kind == "veth") return link;
  }
  return cni::CniError(101, "prevResult lists no host-side veth");
}
// [/doc]

// [doc:plugin]
class ChainExample : public cni::Plugin {
 public:
  absl::StatusOr<cni::Result> Add(const cni::CmdArgs& args) override {
    if (!args.conf.prev_result)
      return cni::CniError(cni::ErrorCode::kInvalidConfig, "must be chained");
    const cni::Result& prev = *args.conf.prev_result;
    CNINET_ASSIGN_OR_RETURN(dp::DatapathConfig config, DatapathConfigFor(args.conf));
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    CNINET_ASSIGN_OR_RETURN(nl::Link veth, HostVeth(host, prev));

    // Load the programs, create or reuse the pinned maps, attach from-pod to the veth.
    CNINET_ASSIGN_OR_RETURN(std::unique_ptr<dp::Datapath> datapath, dp::Datapath::Create(config));
    CNINET_ASSIGN_OR_RETURN(dp::TcAttachment attachment,
                            datapath->Attach(dp::Hook::kFromPod, veth.name));
    for (const cni::IPConfig& ip : prev.ips) {
      if (!ip.address.is_v4()) continue;
      dp::Endpoint ep{.address = ip.address.address(),
                      .ifindex = static_cast<uint32_t>(veth.index)};
      CNINET_RETURN_IF_ERROR(datapath->endpoints().Upsert(ep));
    }
    attachment.Release();  // Keep the filter after this process exits.
    return prev;           // A chained plugin passes prevResult on (here unchanged).
  }

  absl::Status Del(const cni::CmdArgs& args) override {
    CNINET_ASSIGN_OR_RETURN(dp::DatapathConfig config, DatapathConfigFor(args.conf));
    // DEL must succeed when things are gone: no maps, no prevResult, no interface.
    auto datapath = dp::Datapath::OpenPinned(config.PinDir());
    if (!datapath.ok() || !args.conf.prev_result) return absl::OkStatus();
    for (const cni::IPConfig& ip : args.conf.prev_result->ips) {
      if (ip.address.is_v4()) (void)(*datapath)->endpoints().Delete(ip.address.address());
    }
    CNINET_ASSIGN_OR_RETURN(nl::Handle host, nl::Handle::Open());
    if (auto veth = HostVeth(host, *args.conf.prev_result); veth.ok()) {
      CNINET_RETURN_IF_ERROR(dp::DetachHook(dp::Hook::kFromPod, veth->name));
    }
    return absl::OkStatus();
  }
};
// [/doc]

}  // namespace

// [doc:main]
int main() {
  ChainExample plugin;
  return cni::PluginMain(plugin, {.about = "chained plugin example: pods on the cninet datapath"});
}
// [/doc]
