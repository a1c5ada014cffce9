/// @file
/// SubnetPool: carves per-node pod CIDRs of a fixed prefix length out of a cluster CIDR (IPv4 or
/// IPv6), persisting assignments in a Store (one lease per node subnet, keyed by its network
/// address, owned by the node name), so any store (DiskStore, the agent's) makes it durable.
/// Deterministic: a node gets the lowest free subnet, and keeps it until released.
#ifndef CNINET_IPAM_SUBNET_POOL_H_
#define CNINET_IPAM_SUBNET_POOL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/ipam/store.h"

namespace cninet::ipam {

/// One node's assignment.
struct NodeSubnet {
  std::string node;      ///< Node name (the lease's owner).
  cni::IPPrefix subnet;  ///< Its pod CIDR.
  /// Field-wise equality.
  friend bool operator==(const NodeSubnet&, const NodeSubnet&) = default;
};

/// Per-node subnets of `cluster_cidr`. Thread-safe as far as the store is.
class SubnetPool {
 public:
  /// `cluster_cidr` is masked; `node_prefix_len` must be within [cluster len, 32/128 - 2]
  /// (code 7). `store` must outlive the pool and be dedicated to it.
  static absl::StatusOr<SubnetPool> Create(const cni::IPPrefix& cluster_cidr, int node_prefix_len,
                                           Store* store);

  /// The node's subnet: its existing one, else the lowest free one (code 100 when exhausted).
  /// Node names follow ValidateContainerId's character rules (code 7 otherwise).
  absl::StatusOr<cni::IPPrefix> Allocate(std::string_view node);
  /// Assigns exactly `subnet` to `node` (e.g. a podCIDR recorded elsewhere): OK when the node
  /// already has it; code 7 when it is not a node subnet of the pool, 101 when another node has
  /// it, 102 when the node has a different one.
  absl::Status Claim(std::string_view node, const cni::IPPrefix& subnet);
  /// The node's subnet, nullopt when it has none.
  absl::StatusOr<std::optional<cni::IPPrefix>> Get(std::string_view node);
  /// Frees the node's subnet; OK when it had none.
  absl::Status Release(std::string_view node);
  /// Every assignment, ordered by subnet.
  absl::StatusOr<std::vector<NodeSubnet>> List();

  /// The cluster CIDR (masked).
  const cni::IPPrefix& cluster_cidr() const { return cluster_; }
  /// Prefix length of every node subnet.
  int node_prefix_len() const { return node_len_; }
  /// Number of node subnets, saturated at 2^63.
  uint64_t Capacity() const;

 private:
  SubnetPool(const cni::IPPrefix& cluster, int node_len, Store* store)
      : cluster_(cluster), node_len_(node_len), store_(store) {}
  std::optional<cni::IPPrefix> SubnetOf(const Lease& lease) const;

  cni::IPPrefix cluster_;
  int node_len_;
  Store* store_;
};

}  // namespace cninet::ipam

#endif  // CNINET_IPAM_SUBNET_POOL_H_
