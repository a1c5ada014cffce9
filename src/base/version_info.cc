#include "cninet/base/version_info.h"

#include "cninet/base/strings.h"

namespace cninet {

std::string LibraryVersion::ToString() const { return StrCat(major, ".", minor, ".", patch); }

// Compiled into the library, so these report the library's version, not the caller's headers.
std::string_view Version() { return CNINET_VERSION_STRING; }

LibraryVersion GetLibraryVersion() {
  return {CNINET_VERSION_MAJOR, CNINET_VERSION_MINOR, CNINET_VERSION_PATCH};
}

bool IsCompatibleWithLibrary(const LibraryVersion& headers) {
  LibraryVersion lib = GetLibraryVersion();
  if (headers.major != lib.major) return false;
  // 0.y: every minor release may break; from 1.0 on a newer minor only adds.
  return lib.major == 0 ? headers.minor == lib.minor : lib.minor >= headers.minor;
}

}  // namespace cninet
