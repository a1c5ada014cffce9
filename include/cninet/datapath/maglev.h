/// @file
/// Maglev consistent hashing (Eisenbud et al., NSDI'16): a lookup table of prime size M in which
/// every backend owns ~M/N slots and removing one backend moves few other slots.
///
/// Table size. A service's M is explicit (Service::maglev_size) or chosen from its backend count
/// by MaglevSizeFor (the default): the smallest ladder prime >= 100·N, the paper's M ≫ N rule, kept
/// while N changes by up to a ladder step either way so that small backend changes stay
/// consistent (same M, few slots move) and are rewritten in place. The trade-off, measured by
/// tests/unit/datapath/maglev_test.cc (slots whose backend changes when one of N=10 backends is
/// removed; the minimum is 10 %): 15.9 % at M=251 (M/N 25), 12.9 % at M=1021 (the automatic size,
/// M/N 102), 10.5 % at M=16381 (M/N 1638); N=100: 2.6 % at M=16381, 1.6 % at M=65521 (minimum 1 %).
/// Shares differ by at most one slot at every M (Maglev fills round-robin), so the imbalance is
/// 1/⌊M/N⌋: 1 % at M/N ≈ 100. The cost side: a table is M 8-byte slots to build, fill and keep
/// (8 KiB at M=1021 against 128 KiB at 16381, per service).
#ifndef CNINET_DATAPATH_MAGLEV_H_
#define CNINET_DATAPATH_MAGLEV_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet::datapath {

/// Bounds of the Maglev table size M (all prime) and the former fixed default (16381).
inline constexpr uint32_t kMaglevDefaultSize = 16381;
inline constexpr uint32_t kMaglevMinSize = 251;    ///< Smallest allowed M.
inline constexpr uint32_t kMaglevMaxSize = 65521;  ///< Largest allowed M.
/// Service::maglev_size value asking for MaglevSizeFor (the default).
inline constexpr uint32_t kMaglevAutoSize = 0;
/// The sizes MaglevSizeFor picks from: primes about doubling from kMaglevMinSize to kMaglevMaxSize.
inline constexpr uint32_t kMaglevLadder[] = {251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521};
/// MaglevSizeFor's target slots per backend (the paper's M ≥ 100·N).
inline constexpr uint32_t kMaglevSlotsPerBackend = 100;

/// True when n is prime.
bool IsPrime(uint32_t n);

/// The automatic M for `backends` backends: `current` (a service's present M) when it is a ladder
/// size within one ladder step of the target (the smallest ladder prime ≥ 100·N, at most
/// kMaglevMaxSize), else the target. So M stays put while N moves within about ×2 either way, and
/// a service grows (or shrinks) by a full remap only when N outgrows that band. 0 backends keep
/// `current` (or the smallest size).
uint32_t MaglevSizeFor(size_t backends, uint32_t current = 0);

/// Builds the table: entry i is the index (into `backends`) of the backend owning slot i. Backends
/// are identified by distinct names (e.g. "10.0.0.1:80"), so the table depends only on the set.
/// InvalidArgument for a non-prime m outside [251, 65521], duplicate names, or more backends than
/// slots. An empty backend list yields an empty table.
absl::StatusOr<std::vector<uint32_t>> BuildMaglevTable(std::span<const std::string> backends,
                                                       uint32_t m);

/// Same, into `*table` (resized to m, or emptied), reusing its storage: for building many tables.
absl::Status BuildMaglevTable(std::span<const std::string> backends, uint32_t m,
                              std::vector<uint32_t>* table);

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_MAGLEV_H_
