// Consumer of COMPONENTS cni: the library reports the version the package was configured with.
#include <cstdio>
#include <string_view>

#include "cninet/base/version_info.h"

int main() {
  if (cninet::Version() != CNINET_EXPECTED_VERSION) {
    std::fprintf(stderr, "library version %s, expected %s\n", cninet::Version().data(),
                 CNINET_EXPECTED_VERSION);
    return 1;
  }
  if (cninet::kHeaderVersion.ToString() != cninet::Version() ||
      !cninet::IsCompatibleWithLibrary()) {
    std::fprintf(stderr, "headers %s do not match the library %s\n",
                 cninet::kHeaderVersion.ToString().c_str(), cninet::Version().data());
    return 1;
  }
  std::printf("cninet %s\n", cninet::Version().data());
  return 0;
}
