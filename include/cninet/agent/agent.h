/// @file
/// The reference node agent, composed from cninet's components: it registers its node (with a
/// lease-bound heartbeat), allocates the node's podCIDR through ipam::SubnetPool over the store,
/// writes the node's CNI conflist, loads the datapath (maps pinned under
/// `<bpffs_root>/cninet/<instance>`, programs on the uplink and the VXLAN device), and runs three
/// level-triggered reconcilers fed by store watches: overlay (routes, neighbours, FDB to the other
/// nodes), services (Services + Endpoints -> ServiceTable) and endpoints (local pods -> endpoint
/// table). With `socket_lb_cgroup` set it also attaches socket-level load balancing to that cgroup
/// for the node's network namespace (its processes and hostNetwork pods reach Services at
/// connect()). A local API serves status, health and pod reports.
///
/// Network namespaces: with `netns` set, every link, route, sysctl and tc change is made in that
/// namespace (the "node"), while the process itself - its store connection and local API socket -
/// stays where it runs. Tests and the demo run several agents on one machine this way.
///
/// Restarts: the agent never tears down what it programmed when it stops. A new agent re-lists
/// the store, recovers service ids from the pinned maps, re-attaches the programs with replace,
/// and corrects only what differs, so established connections survive.
#ifndef CNINET_AGENT_AGENT_H_
#define CNINET_AGENT_AGENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/agent/api.pb.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/store.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/config.h"
#include "cninet/v1/cluster.pb.h"

namespace cninet::agent {

/// The agent's version string, "cninet-agent/" + cninet::Version() (heartbeats, status).
std::string AgentVersion();

/// Which store the agent opens.
enum class StoreKind {
  kEmbedded,  ///< A local directory (one node, no daemon): EmbeddedStoreOptions::dir.
  kEtcd,      ///< etcd v3 at `etcd_endpoints`.
};

/// Everything the agent needs to run a node. Validate() checks it.
struct AgentOptions {
  /// Node name (DNS-1123; also the default datapath instance).
  std::string node_name;
  /// Path of the node's network namespace ("" = the process's own).
  std::string netns;

  StoreKind store = StoreKind::kEmbedded;  ///< Store kind.
  /// Embedded store directory ("" = `<state_dir>/store`).
  std::string store_dir;
  /// etcd endpoints ("https://127.0.0.1:2379"; "http://..." for plain text).
  std::vector<std::string> etcd_endpoints;
  /// TLS of the etcd connection (CA, client certificate and key, server name).
  EtcdTlsOptions etcd_tls;
  /// A store to use instead of opening one (tests, benchmarks, embedders); shared with the caller.
  std::shared_ptr<Store> store_instance;

  /// Uplink interface ("" = the interface of the IPv4 default route).
  std::string uplink;
  /// When set, written into the node's directRouting (else an operator's value is kept).
  std::optional<bool> direct_routing;
  /// When set, written into the node's publicIP ("" clears it; unset keeps an operator's).
  std::optional<std::string> public_ip;
  /// Written to the store as the cluster configuration when the store has none (clusterCIDR
  /// must then be set); ignored when the store has one.
  v1::ClusterConfig bootstrap_cluster;

  /// Agent state: IPAM leases, cninet-ebpf records, embedded store (created mode 0700).
  std::string state_dir = "/var/lib/cninet/agent";
  /// Local API socket.
  std::string socket_path = "/run/cninet/agent.sock";
  /// Where the conflist goes ("" = do not write one).
  std::string cni_conf_dir = "/etc/cni/net.d";
  /// File name of the conflist.
  std::string cni_conf_file = "10-cninet.conflist";
  /// Network name in the conflist.
  std::string network_name = "cninet";
  /// Bridge of the pods.
  std::string bridge = "cninet0";
  /// Chain cninet-agent-cni (pod reports to this agent) after cninet-ebpf.
  bool report_pods = true;

  /// bpffs mount for the pinned maps.
  std::string bpffs_root = "/sys/fs/bpf";
  /// Datapath instance ("" = node name): maps in `<bpffs_root>/cninet/<instance>`.
  std::string instance;
  /// Map sizes (also written into the conflist for cninet-ebpf).
  datapath::MapSizes map_sizes;
  /// Masquerade pod egress leaving the cluster CIDR.
  bool masquerade = true;
  /// Service ids from here on are left to cninet-ebpf's hostPorts (its hostPortIds).
  uint32_t host_port_ids = 1024;
  /// Maglev table size of every service (a prime in [251, 65521]); 0 (default) lets the datapath
  /// size each service's table to its backends (datapath::MaglevSizeFor: at least 100 slots per
  /// backend, stable while the backend count stays within about x2).
  uint32_t maglev_size = 0;

  /// VXLAN device name.
  std::string vxlan_device = "cninet-vxlan";
  /// Route protocol number marking the agent's routes.
  uint8_t route_protocol = 73;
  /// Set ip_forward, rp_filter (0), accept_local on the uplink (NodePort with remote backends).
  bool configure_sysctls = true;
  /// Socket-level load balancing: the cgroup v2 directory whose processes' sockets to a Service
  /// are sent to a backend at connect() (production: the host's cgroup v2 root, e.g.
  /// /sys/fs/cgroup). Only sockets of the node's network namespace are translated. "" (default)
  /// = off, and links an earlier run pinned are removed; off by default so that no test or
  /// careless run attaches to the machine's root cgroup.
  std::string socket_lb_cgroup;
  /// With socket_lb_cgroup: pods use socket LB too (the conflist's cninet-ebpf gets
  /// "socketLb": true, which registers every pod's network namespace at ADD), so their service
  /// connections need no per-packet NAT. Their processes must be in socket_lb_cgroup (or below).
  bool socket_lb_pods = false;

  /// Heartbeat lease TTL.
  std::chrono::seconds heartbeat_ttl{10};
  /// Full reconcile even without changes, this often (catches drift made by hand).
  std::chrono::seconds resync_interval{30};
  /// Shortest pause between two reconcile passes (changes arriving meanwhile are batched).
  std::chrono::milliseconds min_reconcile_interval{20};

  /// OK when usable; InvalidArgument naming the field otherwise.
  absl::Status Validate() const;
  /// The datapath instance actually used.
  std::string Instance() const;
};

/// A latency histogram of one kind of reconcile work, in the form metrics exporters take
/// (Prometheus: `_bucket{le=...}` cumulative counts, `_sum`, `_count`).
struct LatencyHistogram {
  std::string name;                     ///< The pass's name, or "round" for whole rounds.
  std::vector<double> upper_bounds;     ///< Bucket upper bounds in seconds, ascending.
  std::vector<uint64_t> bucket_counts;  ///< Observations <= each bound (cumulative).
  uint64_t count = 0;                   ///< All observations (the +Inf bucket).
  double sum = 0;                       ///< Their total, in seconds.
  /// Adds one observation of `seconds`.
  void Observe(double seconds);
};

/// What a metrics exporter reads from a running agent (tools/agent serves it to Prometheus).
struct AgentMetrics {
  api::AgentStatus status;                          ///< The status report (every service).
  std::vector<LatencyHistogram> reconcile_latency;  ///< One per pass that ran, then "round".
};

/// A running agent. Start() returns once the node is registered and the datapath is loaded;
/// readiness (every watch synced and reconciled once) follows shortly (WaitReady).
class Agent {
 public:
  /// Opens the store, registers the node, allocates its podCIDR, sets up the VXLAN device,
  /// loads and attaches the datapath, writes the conflist, starts the watches, the reconcile
  /// loop, the heartbeat and the local API.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(AgentOptions options);
  /// Stops (see Stop()).
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  /// Stops the loops, watches, heartbeat (its lease is revoked) and local API. Programmed state
  /// (routes, maps, tc filters, conflist) stays: a restarted agent continues from it.
  void Stop();
  /// Waits until ready; DeadlineExceeded with the reason after `timeout`.
  absl::Status WaitReady(std::chrono::milliseconds timeout);

  /// Waits until a reconcile round without errors covered store `revision` (e.g. the revision
  /// of a write); DeadlineExceeded after `timeout`.
  absl::Status WaitReconciled(int64_t revision, std::chrono::milliseconds timeout);

  /// The status report (at most `max_services` services listed).
  api::AgentStatus Status(uint32_t max_services = 50) const;
  /// Readiness and health.
  api::HealthReply Health() const;
  /// The status report and the reconcile latency histograms (for a metrics exporter).
  AgentMetrics Metrics() const;

  /// The node's podCIDR.
  const cni::IPPrefix& pod_cidr() const;
  /// Number of services currently programmed.
  size_t programmed_services() const;

 private:
  struct Impl;
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Removes what an agent set up in the node: tc programs on the uplink and VXLAN device, the
/// agent's routes, the VXLAN device, the pinned maps and the conflist (for decommissioning a
/// node, and the demo's cleanup). Safe to run when parts are already gone.
absl::Status TeardownNode(const AgentOptions& options);

}  // namespace cninet::agent

#endif  // CNINET_AGENT_AGENT_H_
