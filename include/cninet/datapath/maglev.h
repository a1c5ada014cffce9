/// @file
/// Maglev consistent hashing (Eisenbud et al., NSDI'16): a lookup table of prime size M in which
/// every backend owns ~M/N slots and removing one backend moves few other slots.
#ifndef CNINET_DATAPATH_MAGLEV_H_
#define CNINET_DATAPATH_MAGLEV_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cninet::datapath {

/// Default and bounds of the Maglev table size M (all prime).
inline constexpr uint32_t kMaglevDefaultSize = 16381;
inline constexpr uint32_t kMaglevMinSize = 251;    ///< Smallest allowed M.
inline constexpr uint32_t kMaglevMaxSize = 65521;  ///< Largest allowed M.

/// True when n is prime.
bool IsPrime(uint32_t n);

/// Builds the table: entry i is the index (into `backends`) of the backend owning slot i. Backends
/// are identified by distinct names (e.g. "10.0.0.1:80"), so the table depends only on the set.
/// InvalidArgument for a non-prime m outside [251, 65521], duplicate names, or more backends than
/// slots. An empty backend list yields an empty table.
absl::StatusOr<std::vector<uint32_t>> BuildMaglevTable(std::span<const std::string> backends,
                                                       uint32_t m);

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_MAGLEV_H_
