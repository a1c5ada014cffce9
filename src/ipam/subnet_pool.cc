#include "cninet/ipam/subnet_pool.h"

#include <algorithm>
#include <string>
#include <vector>

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
using cni::IPPrefix;
using internal::FromU128;
using internal::ToU128;
using internal::U128;

constexpr std::string_view kPoolRangeId = "pool";

absl::Status ValidateNode(std::string_view node) {
  if (!ValidateContainerId(node).ok()) {
    return cni::CniError(ErrorCode::kInvalidConfig,
                         StrCat("invalid node name \"", node.substr(0, 64), "\""));
  }
  return absl::OkStatus();
}

U128 Shl(U128 v, int shift) { return shift >= 128 ? 0 : v << shift; }
U128 Shr(U128 v, int shift) { return shift >= 128 ? 0 : v >> shift; }

}  // namespace

absl::StatusOr<SubnetPool> SubnetPool::Create(const IPPrefix& cluster_cidr, int node_prefix_len,
                                              Store* store) {
  if (store == nullptr) return absl::InvalidArgumentError("SubnetPool needs a store");
  const int bits = cluster_cidr.address().bit_length();
  if (cluster_cidr.prefix_len() < 1 || cluster_cidr.prefix_len() > bits) {
    return cni::CniError(ErrorCode::kInvalidConfig,
                         StrCat("invalid cluster CIDR ", cluster_cidr.ToString()));
  }
  if (node_prefix_len < cluster_cidr.prefix_len() || node_prefix_len > bits - 2) {
    return cni::CniError(
        ErrorCode::kInvalidConfig,
        StrCat("node prefix length /", node_prefix_len, " must be between /",
               cluster_cidr.prefix_len(), " and /", bits - 2, " for ", cluster_cidr.ToString()));
  }
  return SubnetPool(cluster_cidr.Masked(), node_prefix_len, store);
}

uint64_t SubnetPool::Capacity() const {
  int shift = node_len_ - cluster_.prefix_len();
  if (shift >= 63) return uint64_t{1} << 63;
  return uint64_t{1} << shift;
}

std::optional<IPPrefix> SubnetPool::SubnetOf(const Lease& lease) const {
  IPPrefix p(lease.address, node_len_);
  if (!cluster_.Contains(lease.address) || p.Masked().address() != lease.address) {
    return std::nullopt;
  }
  return p;
}

absl::StatusOr<IPPrefix> SubnetPool::Allocate(std::string_view node) {
  CNINET_RETURN_IF_ERROR(ValidateNode(node));
  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_->Lock());
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, store_->List());
  const int host_bits = cluster_.address().bit_length() - node_len_;
  const U128 base = ToU128(cluster_.address());
  std::vector<U128> used;
  for (const Lease& l : all) {
    std::optional<IPPrefix> p = SubnetOf(l);
    if (!p.has_value()) continue;
    if (l.container_id == node) return *p;
    used.push_back(Shr(ToU128(l.address) - base, host_bits));
  }
  std::sort(used.begin(), used.end());
  // The lowest index not in use: the answer depends only on the current assignments.
  U128 want = 0;
  for (U128 idx : used) {
    if (idx == want) {
      ++want;
    } else if (idx > want) {
      break;
    }
  }
  const int shift = node_len_ - cluster_.prefix_len();
  if (shift < 127 && want >= (U128{1} << shift)) {
    return cni::CniError(kNoFreeAddress,
                         StrCat("no free /", node_len_, " subnet left in ", cluster_.ToString()));
  }
  IPAddress addr = FromU128(base + Shl(want, host_bits), cluster_.is_v4());
  CNINET_ASSIGN_OR_RETURN(bool reserved,
                          store_->Reserve(Lease{addr, std::string(node), ""}, kPoolRangeId));
  if (!reserved) {
    return cni::CniError(kAddressUnavailable,
                         StrCat("subnet ", addr.ToString(), " is held by an unreadable record"));
  }
  return IPPrefix(addr, node_len_);
}

absl::Status SubnetPool::Claim(std::string_view node, const IPPrefix& subnet) {
  CNINET_RETURN_IF_ERROR(ValidateNode(node));
  if (subnet.prefix_len() != node_len_ || subnet.Masked() != subnet ||
      !cluster_.Contains(subnet.address())) {
    return cni::CniError(
        ErrorCode::kInvalidConfig,
        StrCat(subnet.ToString(), " is not a /", node_len_, " subnet of ", cluster_.ToString()));
  }
  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_->Lock());
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, store_->List());
  for (const Lease& l : all) {
    std::optional<IPPrefix> p = SubnetOf(l);
    if (!p.has_value()) continue;
    if (l.container_id == node) {
      if (*p == subnet) return absl::OkStatus();
      return cni::CniError(kAlreadyAllocated,
                           StrCat("node ", node, " already has ", p->ToString()));
    }
    if (*p == subnet) {
      return cni::CniError(kAddressUnavailable,
                           StrCat(subnet.ToString(), " belongs to node ", l.container_id));
    }
  }
  CNINET_ASSIGN_OR_RETURN(
      bool reserved, store_->Reserve(Lease{subnet.address(), std::string(node), ""}, kPoolRangeId));
  if (!reserved) {
    return cni::CniError(kAddressUnavailable, StrCat(subnet.ToString(), " is not available"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<IPPrefix>> SubnetPool::Get(std::string_view node) {
  CNINET_RETURN_IF_ERROR(ValidateNode(node));
  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_->Lock());
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, store_->List());
  for (const Lease& l : all) {
    if (l.container_id != node) continue;
    if (std::optional<IPPrefix> p = SubnetOf(l)) return p;
  }
  return std::optional<IPPrefix>();
}

absl::Status SubnetPool::Release(std::string_view node) {
  CNINET_RETURN_IF_ERROR(ValidateNode(node));
  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_->Lock());
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, store_->List());
  for (const Lease& l : all) {
    if (l.container_id == node && SubnetOf(l).has_value()) {
      CNINET_RETURN_IF_ERROR(store_->Release(l.address));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NodeSubnet>> SubnetPool::List() {
  CNINET_ASSIGN_OR_RETURN(StoreLock lock, store_->Lock());
  CNINET_ASSIGN_OR_RETURN(std::vector<Lease> all, store_->List());
  std::vector<NodeSubnet> out;
  for (const Lease& l : all) {
    if (std::optional<IPPrefix> p = SubnetOf(l)) out.push_back(NodeSubnet{l.container_id, *p});
  }
  std::sort(out.begin(), out.end(),
            [](const NodeSubnet& a, const NodeSubnet& b) { return a.subnet < b.subnet; });
  return out;
}

}  // namespace cninet::ipam
