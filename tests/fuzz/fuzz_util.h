// Shared helpers of the cni fuzz targets: invariant checks that abort (so libFuzzer records the
// input as a crash) with a message saying which property broke.
#ifndef CNINET_TESTS_FUZZ_FUZZ_UTIL_H_
#define CNINET_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string_view>

#include "absl/status/status.h"
#include "cninet/cni/error.h"

namespace cninet::fuzz {

// Aborts with `what` when `ok` is false.
inline void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

// A parser's failure must carry one of the documented CNI codes (never the generic 999).
inline void RequireCode(const absl::Status& s, std::initializer_list<uint32_t> allowed,
                        const char* what) {
  uint32_t code = cni::GetErrorCode(s);
  for (uint32_t a : allowed) {
    if (a == code) return;
  }
  std::fprintf(stderr, "fuzz invariant violated: %s: unexpected CNI code %u (%s)\n", what, code,
               std::string(s.message()).c_str());
  std::abort();
}

}  // namespace cninet::fuzz

#endif  // CNINET_TESTS_FUZZ_FUZZ_UTIL_H_
