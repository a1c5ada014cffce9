/// @file
/// Per-CPU datapath counters, summed: one per verdict reason (every packet counts under exactly
/// one) plus events (conntrack created, NAT created, ...). Indexes are enum cn_reason in abi.h.
#ifndef CNINET_DATAPATH_COUNTERS_H_
#define CNINET_DATAPATH_COUNTERS_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet::datapath {

class DatapathMaps;

/// One counter summed over CPUs.
struct CounterValue {
  uint32_t reason = 0;    ///< Index (enum cn_reason).
  std::string_view name;  ///< e.g. "drop_nat_no_port"
  bool is_drop = false;   ///< A drop verdict.
  bool is_event = false;  ///< An event counted in addition to the verdict.
  uint64_t packets = 0;   ///< Packets over all CPUs.
  uint64_t bytes = 0;     ///< Bytes over all CPUs.
};

/// Name of counter index `reason` ("" for unused indexes).
std::string_view ReasonName(uint32_t reason);

/// Access to the counters map.
class Counters {
 public:
  /// Used by Datapath; shares its maps.
  explicit Counters(std::shared_ptr<DatapathMaps> maps);
  ~Counters();
  /// Every named counter (zeros included), in index order.
  absl::StatusOr<std::vector<CounterValue>> Read() const;
  /// Packets counted under `reason` (summed over CPUs).
  absl::StatusOr<uint64_t> Packets(uint32_t reason) const;
  /// Zeroes every counter.
  absl::Status Reset();

 private:
  std::shared_ptr<DatapathMaps> maps_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_COUNTERS_H_
