// Private helpers for strict, typed reads from nlohmann::json with CNI decode errors (code 6).
#ifndef CNINET_SRC_CNI_JSON_UTIL_H_
#define CNINET_SRC_CNI_JSON_UTIL_H_

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "nlohmann/json.hpp"

namespace cninet::cni::internal {

inline absl::Status TypeError(std::string_view where, std::string_view key, std::string_view want,
                              const nlohmann::json& got) {
  return CniError(ErrorCode::kDecodeFailure,
                  cninet::StrCat("cannot decode ", where, ": field \"", key, "\" must be ", want,
                                 ", got ", got.type_name()));
}

// Reads optional string `key` of object `j` into `out` (unchanged when absent or null).
inline absl::Status ReadString(const nlohmann::json& j, std::string_view where, const char* key,
                               std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return TypeError(where, key, "a string", *it);
  *out = it->get<std::string>();
  return absl::OkStatus();
}

inline absl::Status ReadBool(const nlohmann::json& j, std::string_view where, const char* key,
                             bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return TypeError(where, key, "a boolean", *it);
  *out = it->get<bool>();
  return absl::OkStatus();
}

inline absl::Status ReadUint(const nlohmann::json& j, std::string_view where, const char* key,
                             std::optional<uint32_t>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (it->is_number_unsigned() && it->get<uint64_t>() <= UINT32_MAX) {
    *out = it->get<uint32_t>();
    return absl::OkStatus();
  }
  if (it->is_number_integer() && it->get<int64_t>() >= 0 && it->get<int64_t>() <= UINT32_MAX) {
    *out = static_cast<uint32_t>(it->get<int64_t>());
    return absl::OkStatus();
  }
  return TypeError(where, key, "an unsigned 32-bit integer", *it);
}

inline absl::Status ReadStringList(const nlohmann::json& j, std::string_view where, const char* key,
                                   std::vector<std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return TypeError(where, key, "a list of strings", *it);
  out->clear();
  for (const auto& e : *it) {
    if (!e.is_string()) return TypeError(where, key, "a list of strings", *it);
    out->push_back(e.get<std::string>());
  }
  return absl::OkStatus();
}

// Fields of `j` not in `known`.
inline nlohmann::json Extras(const nlohmann::json& j,
                             std::initializer_list<std::string_view> known) {
  nlohmann::json extra = nlohmann::json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool is_known = false;
    for (std::string_view k : known) is_known |= (it.key() == k);
    if (!is_known) extra[it.key()] = it.value();
  }
  return extra;
}

// Copies extras into `out` without overriding keys already set.
inline void MergeExtras(const nlohmann::json& extra, nlohmann::json& out) {
  if (!extra.is_object()) return;
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    if (!out.contains(it.key())) out[it.key()] = it.value();
  }
}

// Serializes `j`; invalid UTF-8 (which can only come from environment strings placed into JSON)
// is replaced instead of throwing, so no exception ever escapes the library.
inline std::string Dump(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Nesting deeper than this is rejected before parsing: recursion in nlohmann's serializer and
// comparison must never be driven by untrusted input.
inline constexpr int kMaxJsonDepth = 128;

// True when `text` nests arrays/objects deeper than kMaxJsonDepth (strings are skipped).
inline bool TooDeep(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// Parses JSON text; code 6 on syntax errors or excessive nesting.
inline absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, std::string_view what) {
  if (TooDeep(text)) {
    return CniError(ErrorCode::kDecodeFailure,
                    cninet::StrCat("cannot decode ", what, ": JSON nested too deeply"));
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return CniError(ErrorCode::kDecodeFailure,
                    cninet::StrCat("cannot decode ", what, ": invalid JSON"));
  }
  return j;
}

}  // namespace cninet::cni::internal

#endif  // CNINET_SRC_CNI_JSON_UTIL_H_
