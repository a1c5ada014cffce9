#include "cninet/cni/ip.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "cninet/base/strings.h"

namespace cninet::cni {

absl::StatusOr<IPAddress> IPAddress::Parse(std::string_view text) {
  std::string s(text);
  IPAddress a;
  if (s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), a.bytes_.data()) == 1) {
      a.family_ = Family::kV4;
      return a;
    }
  } else if (inet_pton(AF_INET6, s.c_str(), a.bytes_.data()) == 1) {
    a.family_ = Family::kV6;
    return a;
  }
  return absl::InvalidArgumentError(cninet::StrCat("invalid IP address \"", text, "\""));
}

IPAddress IPAddress::V4(uint32_t host_order) {
  IPAddress a;
  a.family_ = Family::kV4;
  a.bytes_[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes_[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes_[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes_[3] = static_cast<uint8_t>(host_order);
  return a;
}

IPAddress IPAddress::FromBytes(const uint8_t* bytes, size_t len) {
  IPAddress a;
  a.family_ = len == 4 ? Family::kV4 : Family::kV6;
  std::memcpy(a.bytes_.data(), bytes, len == 4 ? 4 : 16);
  return a;
}

uint32_t IPAddress::v4_host_order() const {
  return (uint32_t{bytes_[0]} << 24) | (uint32_t{bytes_[1]} << 16) | (uint32_t{bytes_[2]} << 8) |
         uint32_t{bytes_[3]};
}

std::string IPAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
  return buf;
}

IPAddress IPAddress::Next() const {
  IPAddress a = *this;
  for (int i = static_cast<int>(byte_length()) - 1; i >= 0; --i) {
    if (++a.bytes_[i] != 0) break;
  }
  return a;
}

IPAddress IPAddress::Prev() const {
  IPAddress a = *this;
  for (int i = static_cast<int>(byte_length()) - 1; i >= 0; --i) {
    if (a.bytes_[i]-- != 0) break;
  }
  return a;
}

bool IPAddress::IsUnspecified() const {
  return std::all_of(bytes_.begin(), bytes_.begin() + byte_length(),
                     [](uint8_t b) { return b == 0; });
}

std::strong_ordering operator<=>(const IPAddress& a, const IPAddress& b) {
  if (a.family_ != b.family_) return a.family_ <=> b.family_;
  return std::lexicographical_compare_three_way(a.bytes_.begin(), a.bytes_.end(), b.bytes_.begin(),
                                                b.bytes_.end());
}

absl::StatusOr<IPPrefix> IPPrefix::Parse(std::string_view text, bool allow_bare) {
  size_t slash = text.find('/');
  std::string_view addr_text = text.substr(0, slash);
  auto addr = IPAddress::Parse(addr_text);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(cninet::StrCat("invalid CIDR address \"", text, "\""));
  }
  int len = addr->bit_length();
  if (slash == std::string_view::npos) {
    if (!allow_bare) {
      return absl::InvalidArgumentError(
          cninet::StrCat("invalid CIDR address \"", text, "\": missing prefix length"));
    }
  } else {
    std::string_view len_text = text.substr(slash + 1);
    if (len_text.empty() || len_text.size() > 3 ||
        !std::all_of(len_text.begin(), len_text.end(),
                     [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(ToAbsl(len_text), &len) || len > addr->bit_length()) {
      return absl::InvalidArgumentError(
          cninet::StrCat("invalid CIDR address \"", text, "\": bad prefix length"));
    }
  }
  return IPPrefix(*addr, len);
}

IPPrefix IPPrefix::Masked() const {
  std::array<uint8_t, 16> b = addr_.bytes();
  size_t n = addr_.byte_length();
  for (size_t i = 0; i < n; ++i) {
    int bits = prefix_len_ - static_cast<int>(i * 8);
    uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
    b[i] &= mask;
  }
  return IPPrefix(IPAddress::FromBytes(b.data(), n), prefix_len_);
}

IPAddress IPPrefix::LastAddress() const {
  std::array<uint8_t, 16> b = addr_.bytes();
  size_t n = addr_.byte_length();
  for (size_t i = 0; i < n; ++i) {
    int bits = prefix_len_ - static_cast<int>(i * 8);
    uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
    b[i] = static_cast<uint8_t>((b[i] & mask) | static_cast<uint8_t>(~mask));
  }
  return IPAddress::FromBytes(b.data(), n);
}

bool IPPrefix::Contains(const IPAddress& ip) const {
  if (ip.family() != addr_.family()) return false;
  return IPPrefix(ip, prefix_len_).Masked().address() == Masked().address();
}

bool IPPrefix::Overlaps(const IPPrefix& other) const {
  if (other.addr_.family() != addr_.family()) return false;
  return Contains(other.Masked().address()) || other.Contains(Masked().address());
}

std::string IPPrefix::ToString() const {
  return cninet::StrCat(addr_.ToString(), "/", prefix_len_);
}

}  // namespace cninet::cni
