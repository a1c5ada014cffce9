#include "cninet/ipam/names.h"

#include <climits>

#include "cninet/base/strings.h"
#include "cninet/cni/error.h"

namespace cninet::ipam {
namespace {

using cni::ErrorCode;

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// [a-zA-Z0-9][a-zA-Z0-9_.-]*: the spec's rule for network names and container IDs. It rules out
// "/", "..", NUL, whitespace and line breaks (which would forge a "<id>\r\n<ifname>" record).
bool IsSpecName(std::string_view s) {
  if (s.empty() || !IsAlnum(s[0])) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

// Shows a hostile name safely in an error message.
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  if (s.size() > 64) out += "...";
  return out;
}

}  // namespace

absl::Status ValidateNetworkName(std::string_view name) {
  if (name.empty()) return cni::CniError(ErrorCode::kInvalidConfig, "missing network name");
  if (name.size() > kMaxNetworkNameLength) {
    return cni::CniError(ErrorCode::kInvalidConfig,
                         StrCat("network name longer than ", kMaxNetworkNameLength, " bytes"));
  }
  if (!IsSpecName(name)) {
    return cni::CniError(ErrorCode::kInvalidConfig, "invalid characters found in network name",
                         Printable(name));
  }
  return absl::OkStatus();
}

absl::Status ValidateContainerId(std::string_view id) {
  if (id.empty()) return cni::CniError(ErrorCode::kInvalidEnvironment, "missing CNI_CONTAINERID");
  if (id.size() > kMaxContainerIdLength) {
    return cni::CniError(ErrorCode::kInvalidEnvironment,
                         StrCat("CNI_CONTAINERID longer than ", kMaxContainerIdLength, " bytes"));
  }
  if (!IsSpecName(id)) {
    return cni::CniError(ErrorCode::kInvalidEnvironment, "invalid characters in CNI_CONTAINERID",
                         Printable(id));
  }
  return absl::OkStatus();
}

absl::Status ValidateIfname(std::string_view ifname) {
  if (ifname.empty()) return cni::CniError(ErrorCode::kInvalidEnvironment, "missing CNI_IFNAME");
  if (ifname.size() > kMaxIfnameLength) {
    return cni::CniError(ErrorCode::kInvalidEnvironment,
                         StrCat("CNI_IFNAME longer than ", kMaxIfnameLength, " bytes"),
                         Printable(ifname));
  }
  if (ifname == "." || ifname == "..") {
    return cni::CniError(ErrorCode::kInvalidEnvironment, "CNI_IFNAME may not be . or ..");
  }
  for (char c : ifname) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '/' || c == ':' || c == ' ' || u < 0x20 || u == 0x7f) {
      return cni::CniError(ErrorCode::kInvalidEnvironment, "invalid characters in CNI_IFNAME",
                           Printable(ifname));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDataDir(std::string_view dir) {
  if (dir.empty() || dir[0] != '/') {
    return cni::CniError(ErrorCode::kInvalidConfig, "dataDir must be an absolute path",
                         Printable(dir));
  }
  if (dir.size() >= PATH_MAX - kMaxNetworkNameLength - 64) {
    return cni::CniError(ErrorCode::kInvalidConfig, "dataDir is too long");
  }
  for (char c : dir) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return cni::CniError(ErrorCode::kInvalidConfig, "dataDir contains control characters",
                           Printable(dir));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRangeId(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 32;
  for (char c : id) ok = ok && (IsAlnum(c) || c == '_' || c == '-');
  if (!ok) return cni::CniError(ErrorCode::kInvalidConfig, "invalid range ID", Printable(id));
  return absl::OkStatus();
}

}  // namespace cninet::ipam
