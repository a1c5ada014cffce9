/// @file
/// CNI error codes used by the ipam component on top of the spec's (cninet/cni/error.h).
/// Spec codes: 2 unknown CNI_ARGS key, 4 bad container ID / ifname / CNI_ARGS, 5 store I/O,
/// 6 undecodable configuration, 7 invalid configuration or network name.
#ifndef CNINET_IPAM_ERRORS_H_
#define CNINET_IPAM_ERRORS_H_

#include <cstdint>

namespace cninet::ipam {

/// Plugin-specific codes (>= 100), stable across releases.
enum IpamErrorCode : uint32_t {
  kNoFreeAddress = 100,       ///< A range set has no free address left (pool exhausted).
  kAddressUnavailable = 101,  ///< A requested address is already leased to someone else.
  kAlreadyAllocated = 102,    ///< The attachment already holds an address in this range set.
  kLeaseMissing = 103,        ///< CHECK: the attachment holds no (or a different) lease.
};

}  // namespace cninet::ipam

#endif  // CNINET_IPAM_ERRORS_H_
