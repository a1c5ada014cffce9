/// @file
/// The allocator of one range set, with host-local's strategy: round-robin from the address
/// after the last one reserved (so a crash-looping container does not get the same address back
/// until the whole set has been used), skipping the gateway, network and broadcast addresses.
#ifndef CNINET_IPAM_ALLOCATOR_H_
#define CNINET_IPAM_ALLOCATOR_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/cni/types.h"
#include "cninet/ipam/range.h"
#include "cninet/ipam/store.h"

namespace cninet::ipam {

/// Allocates from `range_set` (number `index` of the configuration) in `store`. The caller holds
/// the store's lock around every call and passes it as proof. Cheap to construct.
class Allocator {
 public:
  /// `range_set` and `store` must outlive the allocator; `index` names `last_reserved_ip.INDEX`.
  Allocator(const RangeSet& range_set, Store& store, int index);

  /// Leases one address to (container_id, ifname): `requested` when given (code 7 when it is
  /// outside the set or the gateway/network/broadcast, 101 when taken), otherwise the next free
  /// one round-robin (code 100 when none). Code 102 when the owner already holds an address of
  /// this set (the spec forbids duplicate ADDs). The result's address carries the subnet's prefix
  /// length and the range's gateway.
  /// `owner_leases`, when given, are the owner's current leases (FindByOwner), sparing a lookup.
  absl::StatusOr<cni::IPConfig> Allocate(const StoreLock& held, std::string_view container_id,
                                         std::string_view ifname,
                                         std::optional<cni::IPAddress> requested = std::nullopt,
                                         const std::vector<Lease>* owner_leases = nullptr);
  /// True when some address of the set is free.
  absl::StatusOr<bool> HasFree(const StoreLock& held);

  /// The range set allocated from.
  const RangeSet& range_set() const { return set_; }
  /// "0", "1", ...: the store's range ID of this set.
  const std::string& range_id() const { return range_id_; }

 private:
  absl::StatusOr<cni::IPConfig> AllocateNext(std::string_view container_id,
                                             std::string_view ifname);

  const RangeSet& set_;
  Store& store_;
  std::string range_id_;
};

/// Releases every lease of (container_id, ifname) in `store` (legacy leases of container_id
/// when there is no exact match); OK when there is none. Returns the addresses freed.
absl::StatusOr<std::vector<cni::IPAddress>> ReleaseOwner(const StoreLock& held, Store& store,
                                                         std::string_view container_id,
                                                         std::string_view ifname);

}  // namespace cninet::ipam

#endif  // CNINET_IPAM_ALLOCATOR_H_
