// Matchers shared by the ipam suites: a status (or StatusOr) with a CNI code and message part.
#ifndef CNINET_TESTS_UNIT_IPAM_IPAM_MATCHERS_H_
#define CNINET_TESTS_UNIT_IPAM_IPAM_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/cni/error.h"
#include "gmock/gmock.h"

namespace cninet::ipam::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// Matches a failed status whose CNI code is `code` and whose message contains `substr`.
MATCHER_P2(CniStatusIs, code, substr,
           std::string("fails with CNI code ") + ::testing::PrintToString(code) +
               " and a message containing \"" + std::string(substr) + "\"") {
  const absl::Status& s = GetStatus(arg);
  uint32_t got = cni::GetErrorCode(s);
  *result_listener << "status " << s.ToString() << " (CNI code " << got << ")";
  return !s.ok() && got == static_cast<uint32_t>(code) &&
         std::string(s.message()).find(substr) != std::string::npos;
}

// Matches an OK status / StatusOr.
MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status " << s.ToString();
  return s.ok();
}

}  // namespace cninet::ipam::testing

#endif  // CNINET_TESTS_UNIT_IPAM_IPAM_MATCHERS_H_
