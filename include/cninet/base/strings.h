/// @file
/// Bridges std::string_view (our API) and absl::string_view (a distinct type in the Abseil
/// release Debian 12 ships). Use cninet::StrCat instead of absl::StrCat when an argument may be a
/// std::string_view, and ToAbsl() where an Abseil call takes absl::string_view.
#ifndef CNINET_BASE_STRINGS_H_
#define CNINET_BASE_STRINGS_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cninet {

/// std::string_view -> absl::string_view (no copy).
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
/// absl::string_view -> std::string_view (no copy); identity when they are the same type.
inline std::string_view ToStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

namespace strings_internal {
template <typename T>
decltype(auto) Piece(const T& v) {
  if constexpr (std::is_convertible_v<const T&, std::string_view> &&
                !std::is_convertible_v<const T&, absl::string_view>) {
    return ToAbsl(std::string_view(v));
  } else {
    return (v);
  }
}
}  // namespace strings_internal

/// absl::StrCat that also takes std::string_view arguments.
template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(strings_internal::Piece(args)...);
}

/// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool IsValidUtf8(std::string_view s);

/// Joins the elements of `range` (anything StrCat accepts) with `sep`.
template <typename Range>
std::string StrJoin(const Range& range, std::string_view sep) {
  std::string out;
  bool first = true;
  for (const auto& element : range) {
    if (!first) out.append(sep);
    first = false;
    out.append(StrCat(element));
  }
  return out;
}

}  // namespace cninet

#endif  // CNINET_BASE_STRINGS_H_
