/// @file
/// Validation of every name the ipam store writes to disk or uses in a path, so nothing can
/// escape dataDir or forge a lease record ('/', "..", NUL, control characters, over-long).
#ifndef CNINET_IPAM_NAMES_H_
#define CNINET_IPAM_NAMES_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"

namespace cninet::ipam {

/// Longest network name: one path component (NAME_MAX).
inline constexpr size_t kMaxNetworkNameLength = 255;
/// Longest container ID accepted (runtimes use 64 hex digits).
inline constexpr size_t kMaxContainerIdLength = 512;
/// Longest interface name (IFNAMSIZ - 1).
inline constexpr size_t kMaxIfnameLength = 15;

/// Network name: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most kMaxNetworkNameLength. CNI code 7.
absl::Status ValidateNetworkName(std::string_view name);
/// Container ID: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most kMaxContainerIdLength. CNI code 4.
absl::Status ValidateContainerId(std::string_view id);
/// Interface name: 1..15 bytes, not "." or "..", no '/', ':', whitespace or control bytes.
/// CNI code 4.
absl::Status ValidateIfname(std::string_view ifname);
/// dataDir: absolute, no NUL or control bytes, at most PATH_MAX. CNI code 7.
absl::Status ValidateDataDir(std::string_view dir);
/// A store range ID (the suffix of `last_reserved_ip.ID`): 1..32 of [a-zA-Z0-9_-]. CNI code 7.
absl::Status ValidateRangeId(std::string_view id);

}  // namespace cninet::ipam

#endif  // CNINET_IPAM_NAMES_H_
