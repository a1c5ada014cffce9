// Configuration of the cninet-ebpf chained plugin: the plugin-specific keys of its NetConf, with
// documented defaults, parsed and validated (CNI code 7 on anything invalid).
#ifndef CNINET_EXAMPLES_EBPF_CHAIN_CONFIG_H_
#define CNINET_EXAMPLES_EBPF_CHAIN_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/conf.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/config.h"
#include "cninet/datapath/pins.h"

namespace cninet::ebpf_chain {

// Plugin configuration. Keys (all optional except clusterCIDR), with their defaults:
//   clusterCIDR      required       pods' prefix (either family); egress leaving it is masqueraded
//   clusterCIDRs     []             dual-stack: one prefix per family (with or instead of the
//   above) masquerade       true           SNAT pod egress leaving clusterCIDR to the node address
//   uplink           ""             node interface to the world ("" = the IPv4 default route's)
//   nodeAddresses    []             node addresses (either family) for NodePort/hostPort/SNAT
//                                   ([] = the uplink's global ones, IPv4 first)
//   bpffsRoot        "/sys/fs/bpf"  maps pinned under <bpffsRoot>/cninet/<instance>/
//   instance         network name   datapath instance, one per network and uplink (dots in the
//                                   network name become dashes: bpffs names cannot have dots)
//   stateDir         "/var/lib/cni/cninet-ebpf"   records under <stateDir>/<instance>/
//   teardownWhenIdle true           the last DEL/GC detaches the uplink and unpins the maps,
//                                   unless services programmed by someone else are left
//   hostPortIds      1024           service ids reserved for hostPorts (top of the id range)
//   serviceMark      0              datapath::DatapathConfig::service_mark (0..0xffff, 0 = off)
//   socketLb         false          register the pod's network namespace with the instance's
//                                   socket LB (Datapath::ServeNetnsForSocketLb): its processes'
//                                   service connections are translated at connect() (no
//                                   per-packet NAT) once the socket-LB programs are attached to
//                                   a cgroup the pod's processes are in; DEL/GC unregister it
//   mapSizes         {}             conntrack, nat, services, serviceSlots, backends, affinity,
//                                   endpoints (datapath::MapSizes; must be equal on a node)
struct ChainConfig {
  cni::IPPrefix cluster_cidr;
  std::vector<cni::IPPrefix> cluster_cidrs;  // every prefix, cluster_cidr first (one per family)
  bool masquerade = true;
  std::string uplink;
  std::vector<cni::IPAddress> node_addresses;
  std::string bpffs_root = "/sys/fs/bpf";
  std::string instance;
  std::string state_dir = "/var/lib/cni/cninet-ebpf";
  bool teardown_when_idle = true;
  uint32_t host_port_ids = 1024;
  datapath::MapSizes map_sizes;
  uint32_t service_mark = 0;
  bool socket_lb = false;

  // Reads the keys above from `conf.raw` (instance defaults to conf.name). Code 7 naming the key
  // on a wrong type or value.
  static absl::StatusOr<ChainConfig> FromNetConf(const cni::NetConf& conf);
  // <state_dir>/<instance>.
  std::string InstanceStateDir() const;
  // The instance's pin paths (datapath::PinLayout of bpffs_root and instance).
  datapath::PinLayout Pins() const;
  // <bpffs_root>/cninet/<instance>: the maps.
  std::string PinDir() const;
  // <bpffs_root>/cninet/<instance>/programs: the programs pinned for reuse.
  std::string ProgramPinDir() const;
  // <ProgramPinDir>/from_pod: the loaded from-pod program, pinned by the first ADD so later ADDs
  // attach it without loading (and verifying) the programs again.
  std::string ProgramPinPath() const;
  // The datapath configuration for `node_addresses` (resolved ones when the config has none).
  datapath::DatapathConfig ToDatapathConfig(
      const std::vector<cni::IPAddress>& node_addresses) const;
  // First service id reserved for hostPorts (ids [first, serviceSlots) are the plugin's).
  uint32_t FirstHostPortId() const { return map_sizes.service_slots - host_port_ids; }
};

// Validates runtimeConfig.portMappings for the datapath: tcp/udp, ports 1..65535, hostIP empty or
// IPv4 (IPv6 host IPs are skipped by the caller). Code 7 (2 for sctp) naming the entry.
absl::Status ValidatePortMappings(const std::vector<cni::PortMapping>& mappings);

}  // namespace cninet::ebpf_chain

#endif  // CNINET_EXAMPLES_EBPF_CHAIN_CONFIG_H_
