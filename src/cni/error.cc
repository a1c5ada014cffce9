#include "cninet/cni/error.h"

#include <charconv>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "cninet/base/strings.h"

namespace cninet::cni {
using cninet::ToAbsl;
namespace {

constexpr std::string_view kCodeUrl = "type.cninet.dev/cni.ErrorCode";
constexpr std::string_view kDetailsUrl = "type.cninet.dev/cni.ErrorDetails";

absl::StatusCode AbslCodeFor(uint32_t code) {
  switch (code) {
    case 1:
      return absl::StatusCode::kFailedPrecondition;
    case 2:
    case 4:
    case 6:
    case 7:
    case 8:
      return absl::StatusCode::kInvalidArgument;
    case 3:
      return absl::StatusCode::kNotFound;
    case 5:
      return absl::StatusCode::kDataLoss;
    case 11:
    case 50:
    case 51:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

std::string_view ErrorCodeDescription(uint32_t code) {
  switch (code) {
    case 1:
      return "Incompatible CNI version";
    case 2:
      return "Unsupported field in network configuration";
    case 3:
      return "Container unknown or does not exist";
    case 4:
      return "Invalid necessary environment variables";
    case 5:
      return "I/O failure";
    case 6:
      return "Failed to decode content";
    case 7:
      return "Invalid network config";
    case 8:
      return "Invalid network namespace";
    case 11:
      return "Try again later";
    case 50:
      return "The plugin is not available";
    case 51:
      return "The plugin is not available, existing containers may have limited connectivity";
    case 999:
      return "Internal error";
    default:
      return code >= 100 ? "Plugin error" : "Unknown error";
  }
}

absl::Status CniError(ErrorCode code, std::string_view msg, std::string_view details) {
  return CniError(static_cast<uint32_t>(code), msg, details);
}

absl::Status CniError(uint32_t code, std::string_view msg, std::string_view details) {
  if (code == 0) code = static_cast<uint32_t>(ErrorCode::kInternal);
  absl::Status s(AbslCodeFor(code), ToAbsl(msg.empty() ? ErrorCodeDescription(code) : msg));
  s.SetPayload(ToAbsl(kCodeUrl), absl::Cord(cninet::StrCat(code)));
  if (!details.empty()) s.SetPayload(ToAbsl(kDetailsUrl), absl::Cord(ToAbsl(details)));
  return s;
}

uint32_t GetErrorCode(const absl::Status& status) {
  if (status.ok()) return 0;
  if (auto p = status.GetPayload(ToAbsl(kCodeUrl)); p.has_value()) {
    uint32_t code = 0;
    if (absl::SimpleAtoi(std::string(*p), &code)) return code;
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return static_cast<uint32_t>(ErrorCode::kInvalidConfig);
    case absl::StatusCode::kUnavailable:
      return static_cast<uint32_t>(ErrorCode::kTryAgainLater);
    default:
      return static_cast<uint32_t>(ErrorCode::kInternal);
  }
}

std::string GetErrorDetails(const absl::Status& status) {
  if (auto p = status.GetPayload(ToAbsl(kDetailsUrl)); p.has_value()) return std::string(*p);
  return "";
}

nlohmann::json ErrorToJson(const absl::Status& status, std::string_view cni_version) {
  nlohmann::json j = nlohmann::json::object();
  j["cniVersion"] = std::string(cni_version);
  j["code"] = GetErrorCode(status);
  j["msg"] = std::string(status.message().data(), status.message().size());
  if (std::string details = GetErrorDetails(status); !details.empty()) j["details"] = details;
  return j;
}

absl::Status ErrorFromJson(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("code") && j["code"].is_number_unsigned()) {
    uint32_t code = j["code"].get<uint32_t>();
    std::string msg = j.contains("msg") && j["msg"].is_string() ? j["msg"].get<std::string>() : "";
    std::string details =
        j.contains("details") && j["details"].is_string() ? j["details"].get<std::string>() : "";
    return CniError(code, msg, details);
  }
  std::string_view trimmed = text;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ')) {
    trimmed.remove_suffix(1);
  }
  return CniError(ErrorCode::kInternal,
                  trimmed.empty() ? std::string_view("plugin failed without output") : trimmed);
}

}  // namespace cninet::cni
