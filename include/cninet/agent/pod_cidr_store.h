/// @file
/// Per-node podCIDRs through ipam::SubnetPool over the agent's store: PodCIDRLeaseStore adapts
/// the store's PodCIDRAllocation objects (`/cninet/v1/podcidrs/<cidr>`) to the ipam lease store
/// interface, so a subnet is taken with the store's create-if-absent - atomic in etcd, the first
/// writer wins - and AllocatePodCIDR retries when another node won a race.
#ifndef CNINET_AGENT_POD_CIDR_STORE_H_
#define CNINET_AGENT_POD_CIDR_STORE_H_

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/agent/store.h"
#include "cninet/cni/ip.h"
#include "cninet/ipam/store.h"
#include "cninet/v1/cluster.pb.h"

namespace cninet::agent {

/// ipam::Store over PodCIDRAllocation objects: a lease's address is a subnet's network address
/// and its owner (container_id) the node name. Lock() excludes other threads of this process
/// only; across nodes, Reserve's create-if-absent decides.
class PodCIDRLeaseStore final : public ipam::Store {
 public:
  /// `store` must outlive this object; every subnet has prefix length `node_prefix_len`.
  PodCIDRLeaseStore(agent::Store* store, int node_prefix_len)
      : store_(store), node_prefix_len_(node_prefix_len) {}

  /// A process-local lock (the store's create-if-absent makes cross-node writes safe).
  absl::StatusOr<ipam::StoreLock> Lock() override;
  /// Creates the allocation object; false when it already exists (someone else won).
  absl::StatusOr<bool> Reserve(const ipam::Lease& lease, std::string_view range_id) override;
  /// Always nullopt: subnets are handed out lowest-first, without a round-robin hint.
  absl::StatusOr<std::optional<cni::IPAddress>> LastReserved(std::string_view range_id) override;
  /// Deletes the allocation object of `address` (OK when absent).
  absl::Status Release(const cni::IPAddress& address) override;
  /// Every allocation; a malformed value still occupies its subnet (owner "<unreadable>").
  absl::StatusOr<std::vector<ipam::Lease>> List() override;

 private:
  agent::Store* store_;
  int node_prefix_len_;
  std::mutex mu_;
};

/// The podCIDR of `node` in `cluster` (ApplyDefaults'ed) for `family` (clusterCIDR and
/// nodeCIDRMaskSize, or clusterCIDRIPv6 and nodeCIDRMaskSizeIPv6): `existing` (e.g. from the
/// node's object) when given and claimable, else its recorded allocation, else the lowest free
/// subnet. Retries a few times when another node takes the same subnet concurrently.
absl::StatusOr<cni::IPPrefix> AllocatePodCIDR(
    Store& store, const v1::ClusterConfig& cluster, std::string_view node,
    std::optional<cni::IPPrefix> existing,
    cni::IPAddress::Family family = cni::IPAddress::Family::kV4);

}  // namespace cninet::agent

#endif  // CNINET_AGENT_POD_CIDR_STORE_H_
