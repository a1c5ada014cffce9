/// @file
/// Local pods -> the datapath's endpoint table. Pods reach the store through the agent's local
/// API (the chained plugin cninet-agent-cni reports each ADD and DEL); PlanEndpoints turns the
/// pods of this node into endpoints (address -> host-side veth index and pod MAC) and
/// EndpointReconciler keeps the table equal to that, leaving alone entries it cannot account for
/// unless their interface is gone (cninet-ebpf writes the same entries during ADD, before the
/// pod is reported).
#ifndef CNINET_AGENT_PODS_H_
#define CNINET_AGENT_PODS_H_

#include <cstdint>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/agent/services.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/endpoints.h"
#include "cninet/v1/pod.pb.h"

namespace cninet::agent {

/// The endpoint planned for one pod address.
struct PlannedEndpoint {
  std::string pod;              ///< "namespace/name".
  datapath::Endpoint endpoint;  ///< Address, host-side ifindex, pod MAC.
};

/// Resolves a host-side interface name to its index in the node's namespace (0 when absent).
using LinkIndexFn = std::function<int(std::string_view ifname)>;

/// Endpoints for the pods of `pods` running on `node`: each address of `pod_cidr`'s family inside
/// it, with the index of the pod's host-side interface. Pods whose interface does not exist (yet,
/// or any more) or whose MAC does not parse are skipped with a warning; so are addresses outside
/// `pod_cidr` and addresses claimed by two pods (the first in namespace/name order keeps it).
std::vector<PlannedEndpoint> PlanEndpoints(std::span<const v1::Pod> pods, std::string_view node,
                                           const cni::IPPrefix& pod_cidr,
                                           const LinkIndexFn& link_index,
                                           std::vector<PlanWarning>* warnings);
/// PlanEndpoints over pointers (no copies of the pods).
std::vector<PlannedEndpoint> PlanEndpoints(std::span<const v1::Pod* const> pods,
                                           std::string_view node, const cni::IPPrefix& pod_cidr,
                                           const LinkIndexFn& link_index,
                                           std::vector<PlanWarning>* warnings);
/// Dual-stack PlanEndpoints: `pod_cidrs` holds the node's podCIDR of each family it serves (at
/// most one per family). Each address of a family with a podCIDR becomes an endpoint when it
/// lies inside it (else a warning); addresses of the other family are skipped silently.
std::vector<PlannedEndpoint> PlanEndpoints(std::span<const v1::Pod* const> pods,
                                           std::string_view node,
                                           std::span<const cni::IPPrefix> pod_cidrs,
                                           const LinkIndexFn& link_index,
                                           std::vector<PlanWarning>* warnings);

/// What one EndpointReconciler::Apply changed.
struct EndpointChanges {
  size_t upserted = 0;   ///< Entries added or corrected.
  size_t deleted = 0;    ///< Stale entries removed.
  size_t unchanged = 0;  ///< Entries already right.
};

/// Keeps the endpoint table equal to the planned endpoints. Not thread-safe.
class EndpointReconciler {
 public:
  /// Works on `table` (must outlive the reconciler) for addresses inside `pod_cidr`;
  /// `link_exists` tells whether an ifindex still exists in the node's namespace.
  EndpointReconciler(datapath::EndpointTable* table, cni::IPPrefix pod_cidr,
                     std::function<bool(int ifindex)> link_exists);
  /// Dual-stack: works on addresses inside any of `pod_cidrs` (the node's podCIDR per family).
  EndpointReconciler(datapath::EndpointTable* table, std::vector<cni::IPPrefix> pod_cidrs,
                     std::function<bool(int ifindex)> link_exists);

  /// Upserts missing or different entries; deletes entries of `pod_cidr` that are not desired
  /// when their interface is gone or their address is in `forgotten` (pods deleted from the
  /// store since the last pass).
  absl::StatusOr<EndpointChanges> Apply(std::span<const PlannedEndpoint> desired,
                                        const std::set<cni::IPAddress>& forgotten);

 private:
  datapath::EndpointTable* table_;
  std::vector<cni::IPPrefix> pod_cidrs_;
  std::function<bool(int)> link_exists_;
};

}  // namespace cninet::agent

#endif  // CNINET_AGENT_PODS_H_
