#include "cninet/agent/cni_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/plugin_names.h"
#include "nlohmann/json.hpp"

namespace cninet::agent {

std::string BuildConflist(const ConflistParams& p) {
  using nlohmann::json;
  json ranges = json::array({json::array({{{"subnet", p.pod_cidr.Masked().ToString()}}})});
  if (p.pod_cidr_v6) {
    ranges.push_back(json::array({{{"subnet", p.pod_cidr_v6->Masked().ToString()}}}));
  }
  json bridge = {
      {"type", cni::kBridgePlugin},
      {"bridge", p.bridge},
      {"isGateway", true},
      {"isDefaultGateway", true},
      {"ipam", {{"type", cni::kHostLocalPlugin}, {"ranges", ranges}, {"dataDir", p.ipam_data_dir}}},
  };
  if (p.mtu != 0) bridge["mtu"] = p.mtu;
  json addresses = json::array();
  for (const auto& a : p.node_addresses) addresses.push_back(a.ToString());
  const datapath::MapSizes& m = p.map_sizes;
  json ebpf = {
      {"type", cni::kEbpfPlugin},
      {"clusterCIDR", p.cluster_cidr.Masked().ToString()},
      {"masquerade", p.masquerade},
      {"uplink", p.uplink},
      {"nodeAddresses", addresses},
      {"bpffsRoot", p.bpffs_root},
      {"instance", p.instance},
      {"stateDir", p.ebpf_state_dir},
      {"teardownWhenIdle", false},  // The agent owns the datapath instance.
      {"hostPortIds", p.host_port_ids},
      {"mapSizes",
       {{"conntrack", m.conntrack},
        {"nat", m.nat},
        {"services", m.services},
        {"serviceSlots", m.service_slots},
        {"backends", m.backends},
        {"affinity", m.affinity},
        {"endpoints", m.endpoints}}},
      {"capabilities", {{"portMappings", true}}},
  };
  if (p.service_mark != 0) ebpf["serviceMark"] = p.service_mark;
  if (p.socket_lb) ebpf["socketLb"] = true;
  if (p.cluster_cidr_v6) {
    // Dual-stack: one prefix per family; the plugin registers both pod addresses.
    ebpf.erase("clusterCIDR");
    ebpf["clusterCIDRs"] =
        json::array({p.cluster_cidr.Masked().ToString(), p.cluster_cidr_v6->Masked().ToString()});
  }
  json plugins = json::array({bridge, ebpf});
  if (!p.agent_socket.empty()) {
    plugins.push_back({{"type", cni::kAgentCniPlugin}, {"socket", p.agent_socket}});
  }
  json list = {{"cniVersion", p.cni_version}, {"name", p.network_name}, {"plugins", plugins}};
  return list.dump(2) + "\n";
}

}  // namespace cninet::agent
