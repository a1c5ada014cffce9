/// @file
/// IPv4/IPv6 address and prefix value types used by results, IPAM and the datapath.
#ifndef CNINET_CNI_IP_H_
#define CNINET_CNI_IP_H_

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace cninet::cni {

/// An IPv4 or IPv6 address. IPv4 is kept in its own family (not v4-mapped).
/// Default-constructed: the IPv4 address 0.0.0.0.
class IPAddress {
 public:
  /// Address family; the values are the IP version numbers.
  enum class Family : uint8_t { kV4 = 4, kV6 = 6 };

  IPAddress() = default;
  /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; anything else is InvalidArgument.
  static absl::StatusOr<IPAddress> Parse(std::string_view text);
  /// From a host-order IPv4 value (0x0a000001 is 10.0.0.1).
  static IPAddress V4(uint32_t host_order);
  /// From 4 (IPv4) or 16 (IPv6) network-order bytes.
  static IPAddress FromBytes(const uint8_t* bytes, size_t len);

  /// The address family.
  Family family() const { return family_; }
  /// True for an IPv4 address.
  bool is_v4() const { return family_ == Family::kV4; }
  /// True for an IPv6 address.
  bool is_v6() const { return family_ == Family::kV6; }
  /// 32 or 128.
  int bit_length() const { return is_v4() ? 32 : 128; }
  /// Network-order bytes; 4 meaningful bytes for IPv4, 16 for IPv6.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  /// 4 or 16: how many bytes() are meaningful.
  size_t byte_length() const { return is_v4() ? 4 : 16; }
  /// Host-order IPv4 value; only meaningful when is_v4().
  uint32_t v4_host_order() const;

  /// Canonical text ("10.0.0.1", "fd00::1").
  std::string ToString() const;
  /// The address plus/minus one, wrapping within the family.
  IPAddress Next() const;
  /// The address minus one, wrapping within the family.
  IPAddress Prev() const;
  /// True for 0.0.0.0 / ::.
  bool IsUnspecified() const;

  /// Orders IPv4 before IPv6, then numerically.
  friend std::strong_ordering operator<=>(const IPAddress& a, const IPAddress& b);
  /// Field-wise equality.
  friend bool operator==(const IPAddress& a, const IPAddress& b) = default;

  /// Abseil hashing (absl::flat_hash_map keys).
  template <typename H>
  friend H AbslHashValue(H h, const IPAddress& a) {
    return H::combine(std::move(h), a.family_, a.bytes_);
  }

 private:
  Family family_ = Family::kV4;
  std::array<uint8_t, 16> bytes_{};
};

/// An address with a prefix length, as CNI writes addresses ("10.1.0.5/24", host bits kept) and
/// subnets ("10.1.0.0/16").
class IPPrefix {
 public:
  IPPrefix() = default;
  /// `addr`/`prefix_len` as given (host bits kept).
  IPPrefix(IPAddress addr, int prefix_len) : addr_(addr), prefix_len_(prefix_len) {}
  /// Parses "addr/len". Host bits are kept; use Masked() for the network. A bare address without
  /// "/len" is rejected unless `allow_bare` (then it gets /32 or /128).
  static absl::StatusOr<IPPrefix> Parse(std::string_view text, bool allow_bare = false);

  /// The address, host bits included.
  const IPAddress& address() const { return addr_; }
  /// The prefix length, 0..32 or 0..128.
  int prefix_len() const { return prefix_len_; }
  /// True for an IPv4 prefix.
  bool is_v4() const { return addr_.is_v4(); }
  /// The network: host bits cleared.
  IPPrefix Masked() const;
  /// The last address of the prefix (the IPv4 broadcast address).
  IPAddress LastAddress() const;
  /// True when `ip` has the same family and lies inside this prefix.
  bool Contains(const IPAddress& ip) const;
  /// True when the two prefixes share any address.
  bool Overlaps(const IPPrefix& other) const;
  /// "10.1.0.5/24".
  std::string ToString() const;

  /// Field-wise equality.
  friend bool operator==(const IPPrefix& a, const IPPrefix& b) = default;
  /// Orders by address (see IPAddress), then by prefix length.
  friend std::strong_ordering operator<=>(const IPPrefix& a, const IPPrefix& b) {
    if (auto c = a.addr_ <=> b.addr_; c != 0) return c;
    return a.prefix_len_ <=> b.prefix_len_;
  }

 private:
  IPAddress addr_;
  int prefix_len_ = 0;
};

}  // namespace cninet::cni

#endif  // CNINET_CNI_IP_H_
