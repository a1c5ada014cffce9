/// @file
/// cninet's own release version (SemVer; 0.y while the API settles: a minor release may break
/// the API and the ABI, so the shared libraries' SONAME carries MAJOR.MINOR). Not to be confused
/// with the CNI specification versions of cninet/cni/version.h.
#ifndef CNINET_BASE_VERSION_INFO_H_
#define CNINET_BASE_VERSION_INFO_H_

#include <compare>
#include <string>
#include <string_view>

#include "cninet/base/version_config.h"  // Generated: CNINET_VERSION_MAJOR, ...

namespace cninet {

/// A cninet release number MAJOR.MINOR.PATCH.
struct LibraryVersion {
  int major = 0;  ///< Incompatible API changes (after 1.0).
  int minor = 0;  ///< Features; while major is 0, also incompatible changes.
  int patch = 0;  ///< Fixes only.

  /// "MAJOR.MINOR.PATCH".
  std::string ToString() const;
  /// Orders by MAJOR, MINOR, then PATCH.
  friend auto operator<=>(const LibraryVersion&, const LibraryVersion&) = default;
};

/// The version of the headers this translation unit was compiled against.
inline constexpr LibraryVersion kHeaderVersion{CNINET_VERSION_MAJOR, CNINET_VERSION_MINOR,
                                               CNINET_VERSION_PATCH};

/// The version of the cninet library the program runs with, e.g. "0.1.0" (what a
/// `--version` flag prints). With shared libraries it can differ from kHeaderVersion.
std::string_view Version();
/// Version() as numbers.
LibraryVersion GetLibraryVersion();
/// True when code compiled against `headers` can run with the linked library: same MAJOR, and
/// the same MINOR while MAJOR is 0 (the rule of the SONAME and cninetConfigVersion.cmake) or a
/// MINOR at least as new from 1.0 on.
bool IsCompatibleWithLibrary(const LibraryVersion& headers = kHeaderVersion);

}  // namespace cninet

#endif  // CNINET_BASE_VERSION_INFO_H_
