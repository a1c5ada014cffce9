/// @file
/// Datapath configuration: where maps are pinned, the cluster/node addressing, map sizes, timeouts
/// and the SNAT port range. A plain struct with documented defaults, checked by Validate().
#ifndef CNINET_DATAPATH_CONFIG_H_
#define CNINET_DATAPATH_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cninet/cni/ip.h"

namespace cninet::datapath {

/// Kind of the conntrack map. kLruHash (default) evicts the least recently used entries when full;
/// kHash never evicts: a new flow that finds it full is dropped and counted (CN_R_DROP_CT_FULL).
enum class ConntrackMapType { kLruHash, kHash };

/// Conntrack and NAT lifetimes (Cilium's defaults).
struct Timeouts {
  std::chrono::seconds tcp_syn{60};             ///< until the first non-SYN packet
  std::chrono::seconds tcp_established{21600};  ///< 6 h
  std::chrono::seconds tcp_closing{10};         ///< after FIN or RST
  std::chrono::seconds udp{60};                 ///< UDP flows.
  std::chrono::seconds other{60};               ///< ICMP and anything else
};

/// Maximum entries of each map. Pinned maps are reused only when their sizes match.
struct MapSizes {
  uint32_t conntrack = 262144;         ///< Conntrack entries (two per flow).
  uint32_t nat = 131072;               ///< NAT entries (two per mapping).
  uint32_t services = 65536;           ///< frontends (VIP:port:proto keys)
  uint32_t service_slots = 65536;      ///< service ids 1..service_slots-1 (Maglev/random tables)
  uint32_t backends = 262144;          ///< Backends of all services.
  uint32_t affinity = 65536;           ///< sessionAffinity entries.
  uint32_t endpoints = 4096;           ///< Local pods.
  uint32_t policy_endpoints = 4096;    ///< Local pods with an ingress policy (cn_pol_eps).
  uint32_t policy_identities = 65536;  ///< Pod IPv4 -> identity entries (every pod of the cluster).
  uint32_t policy_prefixes = 16384;    ///< ipBlock prefixes (CIDR identities).
  uint32_t policy_rules = 131072;      ///< Allow entries over all local endpoints.
  uint32_t policy_counters = 16384;    ///< Per-(endpoint, rule) verdict counter slots.
  uint32_t sock_netns = 1024;          ///< Network namespaces served by socket LB.
  uint32_t sock_reverse = 65536;       ///< Socket LB (socket, backend) -> service entries (LRU).
  uint32_t sock_flows = 65536;         ///< Socket-LB'd TCP connections for the policy (LRU).
  /// Bytes of the monitor's ring buffer (cn_events): a power of two, >= 4096 (a page). When the
  /// reader lags that far behind, events are lost and counted (CN_R_MONITOR_LOST).
  uint32_t monitor_ring_bytes = 1u << 20;
};

/// Suggested DatapathConfig::service_mark: bit 12, clear of kube-proxy's 0x4000 (masquerade) and
/// 0x8000 (drop) marks, Cilium's 0x0f00 nibble and Calico's upper 16 bits; inside the 16 bits VXLAN
/// GBP carries.
inline constexpr uint32_t kDefaultServiceMark = 0x1000;

/// Everything Datapath::Create needs.
struct DatapathConfig {
  /// Maps are pinned under `<bpffs_root>/cninet/<instance>`/ (when pin_maps) and reused on restart.
  std::string bpffs_root = "/sys/fs/bpf";
  std::string instance = "default";  ///< Instance name (pin directory).
  /// false: private maps that vanish with the process (tests, benchmarks); no bpffs needed.
  bool pin_maps = true;
  /// Pods' addresses of a single-stack cluster (used when `cluster_cidrs` is empty); traffic from
  /// it leaving it is masqueraded when `masquerade`.
  cni::IPPrefix cluster_cidr;
  /// Pods' addresses per family (at most one IPv4 and one IPv6 prefix; dual-stack). Empty: the
  /// single `cluster_cidr`.
  std::vector<cni::IPPrefix> cluster_cidrs;
  /// Node addresses of either family (1..4): NodePort frontends; the first of each family is
  /// that family's SNAT address.
  std::vector<cni::IPAddress> node_addresses;
  bool masquerade = true;  ///< SNAT pod egress leaving the cluster CIDR.
  /// SNAT port range (inclusive) and the linear-probing budget after a random start.
  uint16_t nat_port_min = 32768;
  uint16_t nat_port_max = 65535;  ///< Last SNAT port (inclusive).
  uint16_t nat_retries = 32;      ///< Probing budget after the random start (0..63).
  Timeouts timeouts;              ///< Conntrack/NAT lifetimes.
  MapSizes map_sizes;             ///< Map capacities.
  ConntrackMapType conntrack_map_type =
      ConntrackMapType::kLruHash;  ///< LRU (evicts) or hash (drops new flows when full).
  /// skb->mark bits set on service flows DNATed to a backend on another node and read by the
  /// to-pod policy as "through a Service" (isolation rule e); needs an overlay carrying the mark
  /// (VXLAN with GBP). 0 = off; at most 0xffff (what GBP carries). See kDefaultServiceMark.
  uint32_t service_mark = 0;
  /// Flow monitor sampling: one new flow in `monitor_sample` is sent to the monitor's ring
  /// buffer besides every drop. 0 = off (the default: drops only); 1 = every new flow.
  uint16_t monitor_sample = 0;

  /// The cluster CIDRs in effect: `cluster_cidrs`, or `cluster_cidr` alone when that is empty.
  std::vector<cni::IPPrefix> ClusterCidrs() const;
  /// InvalidArgument (with the offending field) when something is out of range.
  absl::Status Validate() const;
  /// `<bpffs_root>/cninet/<instance>`.
  std::string PinDir() const;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_CONFIG_H_
