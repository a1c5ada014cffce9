/// @file
/// SNAT mappings from user space: decoded dump, lookup, delete by filter, flush, GC, statistics.
#ifndef CNINET_DATAPATH_NAT_H_
#define CNINET_DATAPATH_NAT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/conntrack.h"
#include "cninet/datapath/types.h"

namespace cninet::datapath {

class DatapathMaps;

/// One direction of a SNAT mapping.
struct NatEntry {
  bool egress = true;         ///< key is the inside flow; value the new source
  FlowTuple tuple;            ///< the key
  cni::IPAddress to_address;  ///< egress: node address; ingress: original (pod) address
  uint16_t to_port = 0;       ///< Port paired with to_address.
  bool closing = false;       ///< FIN/RST seen.
  int64_t expires_in_s = 0;   ///< Seconds left; negative once expired.
  uint32_t age_s = 0;         ///< Seconds since creation.
  /// One line for tools.
  std::string ToString() const;
};

/// Counts of the NAT map.
struct NatStats {
  size_t egress = 0;       ///< Egress (inside flow) entries.
  size_t ingress = 0;      ///< Ingress (reply) entries.
  size_t expired = 0;      ///< Entries past their lifetime.
  size_t max_entries = 0;  ///< Capacity of the map.
};

/// The SNAT port index (cn_nat_ports) key of the ingress mapping `ingress` (remote -> node:port):
/// the node port's 64-port block toward that remote; *bit is the port's bit in the block.
cn_nat_ports_key NatPortIndexKey(const cn_tuple& ingress, uint64_t* bit);

/// Access to the NAT map.
class NatTable {
 public:
  /// Used by Datapath; shares its maps.
  explicit NatTable(std::shared_ptr<DatapathMaps> maps);
  ~NatTable();

  /// Every mapping, decoded.
  absl::StatusOr<std::vector<NatEntry>> Dump() const;
  /// The mapping with key `t` in the given direction, or nullopt.
  absl::StatusOr<std::optional<NatEntry>> Lookup(const FlowTuple& t, bool egress) const;
  /// Deletes matching entries; returns the count.
  absl::StatusOr<size_t> DeleteIf(const std::function<bool(const NatEntry&)>& pred);
  /// Deletes every mapping; returns the count.
  absl::StatusOr<size_t> Flush();
  /// Deletes mapping pairs whose both directions expired (a live direction keeps its partner).
  absl::StatusOr<GcResult> Gc();
  /// Rebuilds the SNAT port index (cn_nat_ports) from the mappings in cn_nat: on load (a set
  /// pinned without the index, or bits whose clear was lost) and after deletions. The index is a
  /// hint of the BPF allocator; a bit it misses costs one retry, a stale bit hides a free port.
  absl::Status SyncPortIndex();
  /// Counts by direction.
  absl::StatusOr<NatStats> Stats() const;

 private:
  std::shared_ptr<DatapathMaps> maps_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_NAT_H_
