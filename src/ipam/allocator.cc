#include "cninet/ipam/allocator.h"

#include <string>
#include <vector>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "cninet/ipam/errors.h"
#include "cninet/ipam/names.h"
#include "ipam/addr_math.h"

namespace cninet::ipam {
namespace {

using cni::ErrorCode;
using cni::IPAddress;
using internal::ToU128;
using internal::U128;

cni::IPConfig MakeConfig(const Range& r, const IPAddress& ip) {
  cni::IPConfig c;
  c.address = cni::IPPrefix(ip, r.subnet.prefix_len());
  c.gateway = r.gateway;
  return c;
}

absl::Status CheckHeld(const StoreLock& held) {
  if (!held.held()) return absl::FailedPreconditionError("the store lock is not held");
  return absl::OkStatus();
}

}  // namespace

Allocator::Allocator(const RangeSet& range_set, Store& store, int index)
    : set_(range_set), store_(store), range_id_(StrCat(index)) {}

absl::StatusOr<cni::IPConfig> Allocator::Allocate(const StoreLock& held,
                                                  std::string_view container_id,
                                                  std::string_view ifname,
                                                  std::optional<IPAddress> requested,
                                                  const std::vector<Lease>* owner_leases) {
  CNINET_RETURN_IF_ERROR(CheckHeld(held));
  CNINET_RETURN_IF_ERROR(ValidateContainerId(container_id));
  CNINET_RETURN_IF_ERROR(ValidateIfname(ifname));
  if (set_.ranges.empty()) return cni::CniError(ErrorCode::kInvalidConfig, "empty range set");

  // The spec forbids a second ADD for one attachment: refuse when it already holds an address
  // of this set (host-local's rule, legacy leases included).
  std::vector<Lease> own;
  if (owner_leases == nullptr) {
    CNINET_ASSIGN_OR_RETURN(own, store_.FindByOwner(container_id, ifname));
    owner_leases = &own;
  }
  for (const Lease& l : *owner_leases) {
    if (set_.Contains(l.address)) {
      return cni::CniError(kAlreadyAllocated,
                           StrCat(l.address.ToString(), " has been allocated to ", container_id,
                                  ", duplicate allocation is not allowed"));
    }
  }

  if (!requested.has_value()) return AllocateNext(container_id, ifname);

  const IPAddress& ip = *requested;
  const Range* r = set_.RangeFor(ip);
  if (r == nullptr) {
    return cni::CniError(ErrorCode::kInvalidConfig,
                         StrCat(ip.ToString(), " not in range set ", set_.ToString()));
  }
  if (ip == r->gateway) {
    return cni::CniError(ErrorCode::kInvalidConfig,
                         StrCat("requested ip ", ip.ToString(), " is subnet's gateway"));
  }
  if (!r->IsAllocatable(ip)) {
    return cni::CniError(ErrorCode::kInvalidConfig,
                         StrCat("requested ip ", ip.ToString(),
                                " is the network or broadcast address of ", r->subnet.ToString()));
  }
  CNINET_ASSIGN_OR_RETURN(
      bool reserved,
      store_.Reserve(Lease{ip, std::string(container_id), std::string(ifname)}, range_id_));
  if (!reserved) {
    return cni::CniError(kAddressUnavailable,
                         StrCat("requested IP address ", ip.ToString(),
                                " is not available in range set ", set_.ToString()));
  }
  return MakeConfig(*r, ip);
}

absl::StatusOr<cni::IPConfig> Allocator::AllocateNext(std::string_view container_id,
                                                      std::string_view ifname) {
  const std::vector<Range>& ranges = set_.ranges;
  // Round-robin: start after the last address reserved from this set when it still belongs to
  // the set (the configuration may have changed), else at the first range's start.
  size_t ri = 0;
  IPAddress cur = ranges[0].range_start;
  auto last = store_.LastReserved(range_id_);
  if (!last.ok()) {
    CNINET_LOG(kWarning, "reading the last reserved address failed: ", last.status().ToString());
  } else if (last->has_value()) {
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (ranges[i].Contains(**last)) {
        ri = i;
        if (**last == ranges[i].range_end) {
          ri = (i + 1) % ranges.size();
          cur = ranges[ri].range_start;
        } else {
          cur = (**last).Next();
        }
        break;
      }
    }
  }

  U128 total = 0;
  for (const Range& r : ranges) total += ToU128(r.range_end) - ToU128(r.range_start) + 1;
  Lease lease{IPAddress(), std::string(container_id), std::string(ifname)};
  for (U128 n = 0; n < total; ++n) {
    const Range& r = ranges[ri];
    if (r.IsAllocatable(cur)) {
      lease.address = cur;
      CNINET_ASSIGN_OR_RETURN(bool reserved, store_.Reserve(lease, range_id_));
      if (reserved) return MakeConfig(r, cur);
    }
    if (cur == r.range_end) {
      ri = (ri + 1) % ranges.size();
      cur = ranges[ri].range_start;
    } else {
      cur = cur.Next();
    }
  }
  return cni::CniError(kNoFreeAddress,
                       StrCat("no IP addresses available in range set: ", set_.ToString()));
}

absl::StatusOr<bool> Allocator::HasFree(const StoreLock& held) {
  CNINET_RETURN_IF_ERROR(CheckHeld(held));
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, store_.List());
  uint64_t used = 0;
  for (const Lease& l : all) {
    const Range* r = set_.RangeFor(l.address);
    if (r != nullptr && r->IsAllocatable(l.address)) ++used;
  }
  return used < set_.AllocatableCount();
}

absl::StatusOr<std::vector<IPAddress>> ReleaseOwner(const StoreLock& held, Store& store,
                                                    std::string_view container_id,
                                                    std::string_view ifname) {
  CNINET_RETURN_IF_ERROR(CheckHeld(held));
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> leases, store.FindByOwner(container_id, ifname));
  std::vector<IPAddress> freed;
  for (const Lease& l : leases) {
    CNINET_RETURN_IF_ERROR(store.Release(l.address));
    freed.push_back(l.address);
  }
  return freed;
}

}  // namespace cninet::ipam
