/// @file
/// Conntrack entries from user space: decoded dump, lookup, delete by filter, flush, garbage
/// collection of expired entries and statistics.
#ifndef CNINET_DATAPATH_CONNTRACK_H_
#define CNINET_DATAPATH_CONNTRACK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/types.h"

namespace cninet::datapath {

class DatapathMaps;

/// One direction of a tracked flow, decoded.
struct ConntrackEntry {
  FlowTuple tuple;             ///< as seen on the wire in this direction
  bool reply = false;          ///< the reply direction's entry
  bool service = false;        ///< DNATed to a service backend
  bool nodeport = false;       ///< entered from the uplink to a NodePort/ExternalIP
  bool snat = false;           ///< also source-NATed (remote NodePort backend)
  bool inbound = false;        ///< plain flow that entered from the uplink
  bool closing = false;        ///< FIN/RST seen
  bool established = false;    ///< a non-SYN packet was seen in this direction
  bool policy_ok = false;      ///< the destination pod's ingress policy admitted the flow
  bool remote = false;         ///< service flow to another node's backend (carries service_mark)
  cni::IPAddress nat_address;  ///< forward: backend; reply: address restored as source
  uint16_t nat_port = 0;       ///< Port paired with nat_address.
  uint32_t service_id = 0;     ///< Service id (0: none).
  uint32_t backend_id = 0;     ///< Backend id (0: none).
  uint8_t tcp_flags = 0;       ///< OR of the TCP flags seen
  uint64_t packets = 0;        ///< Packets in this direction.
  uint64_t bytes = 0;          ///< Bytes in this direction.
  int64_t expires_in_s = 0;    ///< negative once expired
  uint32_t age_s = 0;          ///< Seconds since creation.

  /// One line, like `cilium bpf ct list global`.
  std::string ToString() const;
};

/// Counts by kind.
struct ConntrackStats {
  size_t entries = 0;  ///< Entries in the map.
  size_t expired = 0;  ///< Entries past their lifetime (GC removes them).
  /// TCP entries.
  /// ICMP entries.
  /// UDP entries.
  size_t tcp = 0;          ///< TCP entries.
  size_t udp = 0;          ///< UDP entries.
  size_t icmp = 0;         ///< ICMP entries.
  size_t other = 0;        ///< Entries of other protocols.
  size_t service = 0;      ///< Entries of service flows.
  size_t max_entries = 0;  ///< Capacity of the map.
};

/// Result of one garbage collection pass.
struct GcResult {
  size_t scanned = 0;  ///< Entries looked at.
  size_t deleted = 0;  ///< Entries deleted.
};

/// Access to the conntrack map.
class ConntrackTable {
 public:
  /// Used by Datapath; shares its maps.
  explicit ConntrackTable(std::shared_ptr<DatapathMaps> maps);
  ~ConntrackTable();

  /// Every entry, decoded.
  absl::StatusOr<std::vector<ConntrackEntry>> Dump() const;
  /// The entry for `t` (direction as seen on the wire), or nullopt.
  absl::StatusOr<std::optional<ConntrackEntry>> Lookup(const FlowTuple& t) const;
  /// Deletes every entry for which `pred` is true; returns the count.
  absl::StatusOr<size_t> DeleteIf(const std::function<bool(const ConntrackEntry&)>& pred);
  /// Deletes every entry.
  absl::StatusOr<size_t> Flush();
  /// Deletes expired entries.
  absl::StatusOr<GcResult> Gc();
  /// Counts by protocol and kind.
  absl::StatusOr<ConntrackStats> Stats() const;

 private:
  std::shared_ptr<DatapathMaps> maps_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_CONNTRACK_H_
