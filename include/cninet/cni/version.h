/// @file
/// CNI specification versions: parsing, comparison and the set cninet implements.
#ifndef CNINET_CNI_VERSION_H_
#define CNINET_CNI_VERSION_H_

#include <compare>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cninet::cni {

/// A semantic version "MAJOR.MINOR.PATCH" of the CNI specification.
struct SpecVersion {
  int major = 0;  ///< MAJOR.
  int minor = 0;  ///< MINOR.
  int patch = 0;  ///< PATCH.

  /// Parses "1.0.0" (also "1.0" and "1", as libcni accepts). Failure carries CNI code 6.
  static absl::StatusOr<SpecVersion> Parse(std::string_view text);
  /// "MAJOR.MINOR.PATCH".
  std::string ToString() const;
  /// Orders by MAJOR, MINOR, then PATCH.
  friend auto operator<=>(const SpecVersion&, const SpecVersion&) = default;
};

/// The versions cninet reads and writes, oldest first: 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0.
std::span<const std::string_view> SupportedVersions();
/// The newest supported version, "1.1.0".
inline constexpr std::string_view kCurrentVersion = "1.1.0";
/// True when `version` is one of SupportedVersions().
bool IsSupportedVersion(std::string_view version);
/// OK when `version` is supported, else CNI code 1 naming the supported set.
absl::Status CheckSupportedVersion(std::string_view version);
/// Compares two version strings (invalid text compares as 0.0.0).
int CompareVersions(std::string_view a, std::string_view b);

/// The VERSION command's result object for a request in `cni_version` (the plugin's supported set).
std::string VersionResultJson(std::string_view cni_version,
                              std::span<const std::string_view> supported = SupportedVersions());

}  // namespace cninet::cni

#endif  // CNINET_CNI_VERSION_H_
