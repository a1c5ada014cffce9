#include "cninet/base/status.h"

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "cninet/base/strings.h"

namespace cninet {

absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok() || context.empty()) return status;
  absl::Status out(status.code(), cninet::StrCat(context, ": ", status.message()));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

absl::Status ErrnoStatus(int err, std::string_view context) {
  return absl::ErrnoToStatus(err, ToAbsl(context));
}

}  // namespace cninet
