/// @file
/// Address ranges as host-local defines them: a Range is a subnet plus an inclusive
/// [rangeStart, rangeEnd] window and a gateway; a RangeSet is a list of ranges of one family from
/// which one address is handed out per attachment.
#ifndef CNINET_IPAM_RANGE_H_
#define CNINET_IPAM_RANGE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"

namespace cninet::ipam {

/// One range of a subnet. Build it with Range::Make so the defaults and checks of host-local apply.
struct Range {
  cni::IPPrefix subnet;        ///< The network, host bits cleared ("10.1.0.0/24").
  cni::IPAddress range_start;  ///< First candidate, inclusive (default: network + 1).
  cni::IPAddress range_end;    ///< Last candidate, inclusive (default: last address, minus the
                               /// IPv4 broadcast).
  cni::IPAddress gateway;      ///< Reported in results and never handed out (default: network + 1).

  /// Canonicalizes like host-local: `subnet` must have no host bits and leave at least two
  /// addresses (/30 or wider for IPv4, /126 for IPv6); start/end must lie in the subnet with
  /// start <= end; the gateway must be of the subnet's family. Errors carry CNI code 7.
  static absl::StatusOr<Range> Make(const cni::IPPrefix& subnet,
                                    std::optional<cni::IPAddress> range_start = std::nullopt,
                                    std::optional<cni::IPAddress> range_end = std::nullopt,
                                    std::optional<cni::IPAddress> gateway = std::nullopt);
  /// Make() from text, e.g. Range::Parse("10.1.0.0/24", "10.1.0.10", "10.1.0.20").
  static absl::StatusOr<Range> Parse(std::string_view subnet, std::string_view range_start = {},
                                     std::string_view range_end = {},
                                     std::string_view gateway = {});

  /// True for an IPv4 range.
  bool is_v4() const { return subnet.is_v4(); }
  /// True when `ip` lies in [range_start, range_end] (and in the subnet).
  bool Contains(const cni::IPAddress& ip) const;
  /// True when `ip` may be leased: Contains(ip) and it is not the gateway, the network address or
  /// the IPv4 broadcast address.
  bool IsAllocatable(const cni::IPAddress& ip) const;
  /// True when the two [start, end] windows share an address (same family only).
  bool Overlaps(const Range& other) const;
  /// Number of allocatable addresses, saturated at 2^63 for huge IPv6 ranges.
  uint64_t AllocatableCount() const;
  /// "start-end", as host-local prints ranges in errors.
  std::string ToString() const;

  /// Field-wise equality.
  friend bool operator==(const Range&, const Range&) = default;
};

/// The ranges one address is drawn from (e.g. two IPv4 pools of the same network).
struct RangeSet {
  std::vector<Range> ranges;  ///< Walked in order by the allocator.

  /// Non-empty, one family, no two ranges overlapping (CNI code 7 otherwise).
  absl::Status Validate() const;
  /// True when any range contains `ip`.
  bool Contains(const cni::IPAddress& ip) const;
  /// The range containing `ip`, or nullptr.
  const Range* RangeFor(const cni::IPAddress& ip) const;
  /// True when any range of this set overlaps any range of `other`.
  bool Overlaps(const RangeSet& other) const;
  /// True when the set holds IPv4 ranges (checked by Validate to be uniform).
  bool is_v4() const { return !ranges.empty() && ranges.front().is_v4(); }
  /// Sum of the ranges' AllocatableCount(), saturated.
  uint64_t AllocatableCount() const;
  /// "a-b,c-d".
  std::string ToString() const;

  /// Element-wise equality.
  friend bool operator==(const RangeSet&, const RangeSet&) = default;
};

}  // namespace cninet::ipam

#endif  // CNINET_IPAM_RANGE_H_
