#include "cninet/cni/config_reader.h"

#include <limits>

#include "absl/strings/match.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"

namespace cninet::cni {
namespace {

const nlohmann::json& Null() {
  static const nlohmann::json* const kNull = new nlohmann::json();
  return *kNull;
}

std::string Quoted(const nlohmann::json& j) {
  std::string text = j.dump();
  return text.size() > 64 ? text.substr(0, 61) + "..." : text;
}

}  // namespace

ConfigReader::ConfigReader(const nlohmann::json& json, std::string path, KeyMatch match)
    : json_(&json), path_(std::move(path)), match_(match) {}

const nlohmann::json* ConfigReader::Find(std::string_view key) const {
  if (!json_->is_object()) return nullptr;
  auto it = json_->find(std::string(key));
  if (it != json_->end()) return &*it;
  if (match_ == KeyMatch::kGoJson) {
    for (auto i = json_->begin(); i != json_->end(); ++i) {
      if (absl::EqualsIgnoreCase(i.key(), ToAbsl(key))) return &*i;
    }
  }
  return nullptr;
}

ConfigReader ConfigReader::At(std::string_view key) const {
  const nlohmann::json* found = Find(key);
  return ConfigReader(found != nullptr ? *found : Null(), PathOf(key), match_);
}

bool ConfigReader::Has(std::string_view key) const { return !At(key).json().is_null(); }

std::string ConfigReader::PathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : cninet::StrCat(path_, ".", key);
}

absl::Status ConfigReader::Error(std::string_view what) const {
  return CniError(ErrorCode::kInvalidConfig,
                  path_.empty() ? std::string(what) : cninet::StrCat(path_, ": ", what));
}

absl::Status ConfigReader::Missing(std::string_view key) const {
  return CniError(ErrorCode::kInvalidConfig, cninet::StrCat(PathOf(key), ": required"));
}

absl::Status ConfigReader::TypeError(std::string_view want) const {
  return Error(cninet::StrCat("must be ", want, ", not ", Quoted(*json_)));
}

absl::StatusOr<ConfigReader> ConfigReader::Object(std::string_view key) const {
  if (!Has(key)) return Missing(key);
  ConfigReader r = At(key);
  if (!r.json().is_object()) return r.TypeError("an object");
  return r;
}

absl::StatusOr<std::optional<ConfigReader>> ConfigReader::OptionalObject(
    std::string_view key) const {
  if (!Has(key)) return std::optional<ConfigReader>();
  ConfigReader r = At(key);
  if (!r.json().is_object()) return r.TypeError("an object");
  return std::optional<ConfigReader>(r);
}

absl::StatusOr<std::vector<ConfigReader>> ConfigReader::List(std::string_view key) const {
  if (!Has(key)) return std::vector<ConfigReader>();
  return At(key).Elements();
}

absl::StatusOr<std::vector<ConfigReader>> ConfigReader::Elements() const {
  if (!json_->is_array()) return TypeError("a list");
  std::vector<ConfigReader> out;
  out.reserve(json_->size());
  for (size_t i = 0; i < json_->size(); ++i) {
    out.emplace_back((*json_)[i], cninet::StrCat(path_, "[", i, "]"), match_);
  }
  return out;
}

absl::Status ConfigReader::Convert(std::string* out) const {
  if (!json_->is_string()) return TypeError("a string");
  *out = json_->get<std::string>();
  return absl::OkStatus();
}

absl::Status ConfigReader::Convert(bool* out) const {
  if (!json_->is_boolean()) return TypeError("a boolean");
  *out = json_->get<bool>();
  return absl::OkStatus();
}

// Integers in [min, max], stored into `out` as a JSON number for the caller to narrow.
absl::Status ConfigReader::ConvertInteger(int64_t min, uint64_t max, std::string_view want,
                                          nlohmann::json* out) const {
  if (json_->is_number_unsigned() && json_->get<uint64_t>() <= max) {
    *out = *json_;
    return absl::OkStatus();
  }
  if (json_->is_number_integer() && !json_->is_number_unsigned() && json_->get<int64_t>() >= min &&
      (json_->get<int64_t>() < 0 || static_cast<uint64_t>(json_->get<int64_t>()) <= max)) {
    *out = *json_;
    return absl::OkStatus();
  }
  return TypeError(want);
}

absl::Status ConfigReader::Convert(int* out) const {
  nlohmann::json n;
  absl::Status s = ConvertInteger(std::numeric_limits<int>::min(), std::numeric_limits<int>::max(),
                                  "a 32-bit integer", &n);
  if (s.ok()) *out = n.get<int>();
  return s;
}

absl::Status ConfigReader::Convert(int64_t* out) const {
  nlohmann::json n;
  absl::Status s = ConvertInteger(std::numeric_limits<int64_t>::min(),
                                  std::numeric_limits<int64_t>::max(), "a 64-bit integer", &n);
  if (s.ok()) *out = n.get<int64_t>();
  return s;
}

absl::Status ConfigReader::Convert(uint8_t* out) const {
  nlohmann::json n;
  absl::Status s = ConvertInteger(0, 255, "an integer from 0 to 255", &n);
  if (s.ok()) *out = n.get<uint8_t>();
  return s;
}

absl::Status ConfigReader::Convert(uint16_t* out) const {
  nlohmann::json n;
  absl::Status s = ConvertInteger(0, 65535, "an integer from 0 to 65535", &n);
  if (s.ok()) *out = n.get<uint16_t>();
  return s;
}

absl::Status ConfigReader::Convert(uint32_t* out) const {
  nlohmann::json n;
  absl::Status s =
      ConvertInteger(0, std::numeric_limits<uint32_t>::max(), "an unsigned 32-bit integer", &n);
  if (s.ok()) *out = n.get<uint32_t>();
  return s;
}

absl::Status ConfigReader::Convert(uint64_t* out) const {
  nlohmann::json n;
  absl::Status s =
      ConvertInteger(0, std::numeric_limits<uint64_t>::max(), "an unsigned 64-bit integer", &n);
  if (s.ok()) *out = n.get<uint64_t>();
  return s;
}

absl::Status ConfigReader::Convert(double* out) const {
  if (!json_->is_number()) return TypeError("a number");
  *out = json_->get<double>();
  return absl::OkStatus();
}

absl::Status ConfigReader::Convert(std::vector<std::string>* out) const {
  if (!json_->is_array()) return TypeError("a list of strings");
  out->clear();
  for (size_t i = 0; i < json_->size(); ++i) {
    const nlohmann::json& e = (*json_)[i];
    if (!e.is_string()) {
      return ConfigReader(e, cninet::StrCat(path_, "[", i, "]"), match_).TypeError("a string");
    }
    out->push_back(e.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ConfigReader::Convert(nlohmann::json* out) const {
  *out = *json_;
  return absl::OkStatus();
}

}  // namespace cninet::cni
