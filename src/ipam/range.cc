#include "cninet/ipam/range.h"

#include <string>
#include <vector>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "ipam/addr_math.h"

namespace cninet::ipam {
namespace {

using cni::ErrorCode;
using cni::IPAddress;
using cni::IPPrefix;
using internal::ToU128;
using internal::U128;

absl::Status Invalid(std::string_view msg) { return cni::CniError(ErrorCode::kInvalidConfig, msg); }

absl::StatusOr<std::optional<IPAddress>> ParseOptional(std::string_view text,
                                                       std::string_view what) {
  if (text.empty()) return std::optional<IPAddress>();
  auto ip = IPAddress::Parse(text);
  if (!ip.ok()) return Invalid(StrCat("invalid ", what, " \"", text, "\""));
  return std::optional<IPAddress>(*ip);
}

}  // namespace

absl::StatusOr<Range> Range::Make(const IPPrefix& subnet, std::optional<IPAddress> range_start,
                                  std::optional<IPAddress> range_end,
                                  std::optional<IPAddress> gateway) {
  const int bits = subnet.address().bit_length();
  if (subnet.prefix_len() < 0 || subnet.prefix_len() > bits) {
    return Invalid(StrCat("invalid subnet ", subnet.ToString()));
  }
  IPPrefix network = subnet.Masked();
  if (network.address() != subnet.address()) {
    return Invalid(StrCat("network ", subnet.ToString(),
                          " has host bits set; for a prefix length of ", subnet.prefix_len(),
                          " the network address is ", network.address().ToString()));
  }
  if (subnet.prefix_len() > bits - 2) {
    return Invalid(StrCat("network ", subnet.ToString(), " too small to allocate from"));
  }
  Range r;
  r.subnet = network;
  const IPAddress first = network.address().Next();
  IPAddress last = network.LastAddress();
  if (network.is_v4()) last = last.Prev();  // The broadcast address is never a default candidate.

  if (gateway.has_value()) {
    if (gateway->family() != network.address().family()) {
      return Invalid(
          StrCat("gateway ", gateway->ToString(), " is not of the family of ", network.ToString()));
    }
    r.gateway = *gateway;
  } else {
    r.gateway = first;
  }
  if (range_start.has_value()) {
    if (!network.Contains(*range_start)) {
      return Invalid(
          StrCat("rangeStart ", range_start->ToString(), " not in network ", network.ToString()));
    }
    r.range_start = *range_start;
  } else {
    r.range_start = first;
  }
  if (range_end.has_value()) {
    if (!network.Contains(*range_end)) {
      return Invalid(
          StrCat("rangeEnd ", range_end->ToString(), " not in network ", network.ToString()));
    }
    r.range_end = *range_end;
  } else {
    r.range_end = last;
  }
  if (r.range_end < r.range_start) {
    return Invalid(StrCat("rangeStart ", r.range_start.ToString(), " is after rangeEnd ",
                          r.range_end.ToString()));
  }
  return r;
}

absl::StatusOr<Range> Range::Parse(std::string_view subnet, std::string_view range_start,
                                   std::string_view range_end, std::string_view gateway) {
  auto prefix = IPPrefix::Parse(subnet);
  if (!prefix.ok()) return Invalid(StrCat("invalid subnet \"", subnet, "\""));
  CNINET_ASSIGN_OR_RETURN(auto start, ParseOptional(range_start, "rangeStart"));
  CNINET_ASSIGN_OR_RETURN(auto end, ParseOptional(range_end, "rangeEnd"));
  CNINET_ASSIGN_OR_RETURN(auto gw, ParseOptional(gateway, "gateway"));
  return Make(*prefix, start, end, gw);
}

bool Range::Contains(const IPAddress& ip) const {
  return subnet.Contains(ip) && !(ip < range_start) && !(range_end < ip);
}

bool Range::IsAllocatable(const IPAddress& ip) const {
  if (!Contains(ip) || ip == gateway || ip == subnet.address()) return false;
  return !(is_v4() && ip == subnet.LastAddress());
}

bool Range::Overlaps(const Range& other) const {
  if (is_v4() != other.is_v4()) return false;
  return !(range_end < other.range_start) && !(other.range_end < range_start);
}

uint64_t Range::AllocatableCount() const {
  U128 n = ToU128(range_end) - ToU128(range_start) + 1;
  auto excluded = [&](const IPAddress& ip) { return Contains(ip) ? 1 : 0; };
  n -= excluded(gateway);
  if (gateway != subnet.address()) n -= excluded(subnet.address());
  if (is_v4() && gateway != subnet.LastAddress()) n -= excluded(subnet.LastAddress());
  return internal::Saturate(n);
}

std::string Range::ToString() const {
  return StrCat(range_start.ToString(), "-", range_end.ToString());
}

absl::Status RangeSet::Validate() const {
  if (ranges.empty()) return Invalid("empty range set");
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].is_v4() != ranges[0].is_v4()) return Invalid("mixed address families");
  }
  for (size_t i = 0; i < ranges.size(); ++i) {
    for (size_t j = i + 1; j < ranges.size(); ++j) {
      if (ranges[i].Overlaps(ranges[j])) {
        return Invalid(
            StrCat("subnets ", ranges[i].ToString(), " and ", ranges[j].ToString(), " overlap"));
      }
    }
  }
  return absl::OkStatus();
}

bool RangeSet::Contains(const IPAddress& ip) const { return RangeFor(ip) != nullptr; }

const Range* RangeSet::RangeFor(const IPAddress& ip) const {
  for (const Range& r : ranges) {
    if (r.Contains(ip)) return &r;
  }
  return nullptr;
}

bool RangeSet::Overlaps(const RangeSet& other) const {
  for (const Range& a : ranges) {
    for (const Range& b : other.ranges) {
      if (a.Overlaps(b)) return true;
    }
  }
  return false;
}

uint64_t RangeSet::AllocatableCount() const {
  uint64_t total = 0;
  for (const Range& r : ranges) total = internal::SaturatingAdd(total, r.AllocatableCount());
  return total;
}

std::string RangeSet::ToString() const {
  std::vector<std::string> parts;
  parts.reserve(ranges.size());
  for (const Range& r : ranges) parts.push_back(r.ToString());
  return StrJoin(parts, ",");
}

}  // namespace cninet::ipam
