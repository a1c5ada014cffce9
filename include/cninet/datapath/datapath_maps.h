/// @file
/// Typed handles on every datapath map, shared by the tables. Obtained from Datapath::maps().
#ifndef CNINET_DATAPATH_DATAPATH_MAPS_H_
#define CNINET_DATAPATH_DATAPATH_MAPS_H_

#include <cstdint>

#include "cninet/datapath/abi.h"
#include "cninet/datapath/map.h"

namespace cninet::datapath {

/// One typed view per map of a datapath instance.
class DatapathMaps {
 public:
  Map<uint32_t, cn_config> config;       ///< cn_config[0].
  Map<cn_tuple, cn_ct_entry> conntrack;  ///< Conntrack map.
  Map<cn_tuple, cn_nat_entry> nat;       ///< NAT map.
  /// SNAT port index (bits of node ports in use per destination); invalid when OpenPinned()
  /// finds none pinned (a set pinned by an earlier version).
  Map<cn_nat_ports_key, uint64_t> nat_ports;
  Map<cn_svc_key, cn_svc_entry> services;  ///< Frontends.
  Map<uint32_t, cn_backend> backends;      ///< Backends.
  /// Ring buffer of monitor events (cn_events; FlowMonitor). Invalid when opened from pins of a
  /// version without the monitor.
  RawMap events;
  RawMap lb_tables;  ///< array of maps: service id -> inner array (see abi.h)
  Map<cn_affinity_key, cn_affinity_entry> affinity;  ///< sessionAffinity.
  Map<cn_addr, cn_endpoint> endpoints;               ///< Local pods.
  Map<uint32_t, PerCpu<cn_counter>> counters;        ///< Per-CPU counters.
  // Ingress policy (bpf/lib/policy.h); invalid when OpenPinned() finds no pinned policy maps.
  Map<cn_addr, cn_pol_endpoint> pol_endpoints;     ///< Local pod address -> endpoint policy.
  Map<cn_addr, uint32_t> pol_identities;           ///< Pod address -> identity.
  Map<cn_pol_cidr_key, uint32_t> pol_prefixes;     ///< ipBlock prefix -> CIDR identity.
  Map<cn_pol_key, cn_pol_value> pol_rules;         ///< Allow entries.
  Map<uint32_t, PerCpu<cn_counter>> pol_counters;  ///< Per-(endpoint, rule) counters.
  // Socket LB (bpf/lib/sock_lb_maps.h); invalid when OpenPinned() finds none pinned.
  Map<uint64_t, cn_sock_netns_entry> sock_netns;     ///< Served netns cookies.
  Map<cn_sock_rev_key, cn_sock_rev_entry> sock_rev;  ///< (socket, backend) -> service.
  Map<cn_tuple, cn_sock_flow> sock_flows;            ///< Socket-LB'd TCP connections.
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_DATAPATH_MAPS_H_
