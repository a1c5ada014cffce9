/// @file
/// The CNI network configuration list the agent writes for its node: cninet-bridge with
/// cninet-host-local on the node's podCIDR, then cninet-ebpf on the agent's datapath instance
/// (same pin directory, uplink, node addresses and map sizes, so the plugin reuses the agent's
/// maps), then cninet-agent-cni reporting each pod to the agent's local API.
#ifndef CNINET_AGENT_CNI_CONFIG_H_
#define CNINET_AGENT_CNI_CONFIG_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/config.h"

namespace cninet::agent {

/// What goes into the node's conflist.
struct ConflistParams {
  std::string network_name = "cninet";  ///< The network's name (conflist "name").
  std::string cni_version = "1.0.0";    ///< The conflist's cniVersion.
  cni::IPPrefix pod_cidr;               ///< The node's podCIDR (host-local's subnet).
  /// The node's IPv6 podCIDR: host-local's second range, so pods get both families.
  std::optional<cni::IPPrefix> pod_cidr_v6;
  cni::IPPrefix cluster_cidr;  ///< The cluster CIDR (cninet-ebpf's clusterCIDR).
  /// The IPv6 cluster CIDR of a dual-stack cluster (then cninet-ebpf gets clusterCIDRs, both).
  std::optional<cni::IPPrefix> cluster_cidr_v6;
  std::string bridge = "cninet0";  ///< Bridge of the node's pods (gateway .1 of the podCIDR).
  uint32_t mtu = 0;                ///< Pod MTU (0: the plugins' default).
  std::string ipam_data_dir;       ///< cninet-host-local's dataDir.
  std::string uplink;              ///< cninet-ebpf's uplink.
  std::vector<cni::IPAddress> node_addresses;  ///< cninet-ebpf's nodeAddresses.
  std::string bpffs_root;                      ///< cninet-ebpf's bpffsRoot (the agent's).
  std::string instance;                        ///< cninet-ebpf's instance (the agent's).
  std::string ebpf_state_dir;                  ///< cninet-ebpf's stateDir.
  bool masquerade = true;                      ///< cninet-ebpf's masquerade.
  datapath::MapSizes map_sizes;                ///< cninet-ebpf's mapSizes (must equal the agent's).
  uint32_t host_port_ids = 1024;               ///< cninet-ebpf's hostPortIds.
  uint32_t service_mark = 0;                   ///< cninet-ebpf's serviceMark (written when not 0).
  std::string agent_socket;                    ///< cninet-agent-cni's socket ("": not chained).
  bool socket_lb = false;                      ///< cninet-ebpf's socketLb (written when true).
};

/// The conflist as JSON text (pretty-printed).
std::string BuildConflist(const ConflistParams& params);

}  // namespace cninet::agent

#endif  // CNINET_AGENT_CNI_CONFIG_H_
