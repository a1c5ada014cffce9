#include "cninet/cni/version.h"

#include <algorithm>
#include <array>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "json_util.h"
#include "nlohmann/json.hpp"

namespace cninet::cni {
namespace {
constexpr std::array<std::string_view, 5> kSupported = {"0.3.0", "0.3.1", "0.4.0", "1.0.0",
                                                        "1.1.0"};
}  // namespace

absl::StatusOr<SpecVersion> SpecVersion::Parse(std::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(ToAbsl(text), '.');
  if (text.empty() || parts.size() > 3) {
    return CniError(ErrorCode::kDecodeFailure, cninet::StrCat("invalid version \"", text, "\""));
  }
  int v[3] = {0, 0, 0};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty() || parts[i].size() > 6 ||
        !std::all_of(parts[i].begin(), parts[i].end(),
                     [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(parts[i], &v[i])) {
      return CniError(ErrorCode::kDecodeFailure, cninet::StrCat("invalid version \"", text, "\""));
    }
  }
  return SpecVersion{v[0], v[1], v[2]};
}

std::string SpecVersion::ToString() const { return cninet::StrCat(major, ".", minor, ".", patch); }

std::span<const std::string_view> SupportedVersions() { return kSupported; }

bool IsSupportedVersion(std::string_view version) {
  return std::find(kSupported.begin(), kSupported.end(), version) != kSupported.end();
}

absl::Status CheckSupportedVersion(std::string_view version) {
  if (IsSupportedVersion(version)) return absl::OkStatus();
  return CniError(ErrorCode::kIncompatibleVersion, "incompatible CNI versions",
                  cninet::StrCat("config is \"", version, "\", plugin supports [",
                                 cninet::StrJoin(kSupported, " "), "]"));
}

int CompareVersions(std::string_view a, std::string_view b) {
  SpecVersion va = SpecVersion::Parse(a).value_or(SpecVersion{});
  SpecVersion vb = SpecVersion::Parse(b).value_or(SpecVersion{});
  if (va < vb) return -1;
  if (vb < va) return 1;
  return 0;
}

std::string VersionResultJson(std::string_view cni_version,
                              std::span<const std::string_view> supported) {
  nlohmann::json j;
  j["cniVersion"] = std::string(cni_version.empty() ? kCurrentVersion : cni_version);
  std::vector<std::string> list(supported.begin(), supported.end());
  j["supportedVersions"] = list;
  return internal::Dump(j);
}

}  // namespace cninet::cni
