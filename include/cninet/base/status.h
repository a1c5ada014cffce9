/// @file
/// Status helpers shared by every cninet component: the RETURN_IF_ERROR / ASSIGN_OR_RETURN macros
/// (our Abseil release has none) and context annotation that keeps payloads such as CNI codes.
#ifndef CNINET_BASE_STATUS_H_
#define CNINET_BASE_STATUS_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet {

/// Returns `status` with "`context`: " prepended to its message; code and payloads are kept.
/// An OK status is returned unchanged.
absl::Status Annotate(const absl::Status& status, std::string_view context);

/// Builds a status from errno value `err`, e.g. ErrnoToStatus(errno, "open /run/netns/x").
absl::Status ErrnoStatus(int err, std::string_view context);

}  // namespace cninet

#define CNINET_STATUS_CONCAT_INNER_(a, b) a##b
#define CNINET_STATUS_CONCAT_(a, b) CNINET_STATUS_CONCAT_INNER_(a, b)

/// Evaluates `expr` (an absl::Status) and returns it from the enclosing function when not OK.
#define CNINET_RETURN_IF_ERROR(expr)                                                         \
  do {                                                                                       \
    if (::absl::Status cninet_status_ = (expr); !cninet_status_.ok()) return cninet_status_; \
  } while (false)

/// `CNINET_ASSIGN_OR_RETURN(auto x, MakeX());` evaluates a StatusOr, returns its status on error,
/// otherwise moves the value into `lhs`.
#define CNINET_ASSIGN_OR_RETURN(lhs, rexpr) \
  CNINET_ASSIGN_OR_RETURN_IMPL_(CNINET_STATUS_CONCAT_(cninet_statusor_, __LINE__), lhs, rexpr)

#define CNINET_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // CNINET_BASE_STATUS_H_
