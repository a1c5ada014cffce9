/// @file
/// Typed reads of a plugin's own configuration keys. Every type error is a CNI error 7
/// (`kInvalidConfig`) whose message names the key's JSON path, e.g. `ipam.ranges[0][1].subnet`.
///
///   cni::ConfigReader reader(args.conf.raw);
///   CNINET_ASSIGN_OR_RETURN(std::string bridge, reader.Optional<std::string>("bridge", "cni0"));
///   CNINET_ASSIGN_OR_RETURN(cni::ConfigReader ipam, reader.Object("ipam"));
///   CNINET_ASSIGN_OR_RETURN(std::string type, ipam.Get<std::string>("type"));
#ifndef CNINET_CNI_CONFIG_READER_H_
#define CNINET_CNI_CONFIG_READER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace cninet::cni {

/// How keys are looked up.
enum class KeyMatch {
  kExact,   ///< Only the exact key.
  kGoJson,  ///< The exact key, else a case-insensitive match (Go's encoding/json, as the
            ///< reference plugins decode their configuration).
};

/// A read-only view of one JSON value of a configuration and its path from the top. Copies are
/// cheap (a pointer and the path); the JSON must outlive the reader. Absent and null are the same.
class ConfigReader {
 public:
  /// Reads `json` (usually `conf.raw`), named `path` in messages ("" for the top level).
  explicit ConfigReader(const nlohmann::json& json, std::string path = "",
                        KeyMatch match = KeyMatch::kExact);

  /// True when `key` is present and not null.
  bool Has(std::string_view key) const;
  /// Required `key` as `T` (see `As`); code 7 naming the path when missing or of another type.
  template <typename T>
  absl::StatusOr<T> Get(std::string_view key) const {
    if (!Has(key)) return Missing(key);
    return At(key).As<T>();
  }
  /// `key` as `T`, or `fallback` when absent or null; code 7 when of another type.
  template <typename T>
  absl::StatusOr<T> Optional(std::string_view key, T fallback) const {
    if (!Has(key)) return fallback;
    return At(key).As<T>();
  }
  /// `key` as `T`, or nullopt when absent or null; code 7 when of another type.
  template <typename T>
  absl::StatusOr<std::optional<T>> Maybe(std::string_view key) const {
    if (!Has(key)) return std::optional<T>();
    absl::StatusOr<T> v = At(key).As<T>();
    if (!v.ok()) return v.status();
    return std::optional<T>(std::move(*v));
  }

  /// This value as `T`: std::string, bool, int, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
  /// (range-checked), double, std::vector<std::string>, or nlohmann::json (anything).
  template <typename T>
  absl::StatusOr<T> As() const {
    T out{};
    absl::Status s = Convert(&out);
    if (!s.ok()) return s;
    return out;
  }

  /// Required object `key`, as a reader whose path extends this one.
  absl::StatusOr<ConfigReader> Object(std::string_view key) const;
  /// Object `key`, or nullopt when absent or null; code 7 when not an object.
  absl::StatusOr<std::optional<ConfigReader>> OptionalObject(std::string_view key) const;
  /// The elements of list `key` (`key[0]`, `key[1]`, ...); empty when absent or null, code 7
  /// when not a list.
  absl::StatusOr<std::vector<ConfigReader>> List(std::string_view key) const;
  /// This value's elements when it is a list (code 7 otherwise).
  absl::StatusOr<std::vector<ConfigReader>> Elements() const;
  /// The member `key` as stored (JSON null included), or nullptr when absent or when this value
  /// is not an object.
  const nlohmann::json* Find(std::string_view key) const;
  /// The reader of `key` (a null value when absent), for values checked by hand.
  ConfigReader At(std::string_view key) const;

  /// The JSON value read (null when absent).
  const nlohmann::json& json() const { return *json_; }
  /// This value's path, e.g. `ipam.ranges[0]` ("" for the top level).
  const std::string& path() const { return path_; }
  /// The path of `key` under this value, e.g. `ipam.subnet`.
  std::string PathOf(std::string_view key) const;
  /// A code-7 error "`path`: `what`" about this value (the message a plugin's own checks use).
  absl::Status Error(std::string_view what) const;

 private:
  absl::Status Missing(std::string_view key) const;
  absl::Status TypeError(std::string_view want) const;
  absl::Status Convert(std::string* out) const;
  absl::Status Convert(bool* out) const;
  absl::Status Convert(int* out) const;
  absl::Status Convert(int64_t* out) const;
  absl::Status Convert(uint8_t* out) const;
  absl::Status Convert(uint16_t* out) const;
  absl::Status Convert(uint32_t* out) const;
  absl::Status Convert(uint64_t* out) const;
  absl::Status Convert(double* out) const;
  absl::Status Convert(std::vector<std::string>* out) const;
  absl::Status Convert(nlohmann::json* out) const;
  absl::Status ConvertInteger(int64_t min, uint64_t max, std::string_view want,
                              nlohmann::json* out) const;

  const nlohmann::json* json_;
  std::string path_;
  KeyMatch match_;
};

}  // namespace cninet::cni

#endif  // CNINET_CNI_CONFIG_READER_H_
