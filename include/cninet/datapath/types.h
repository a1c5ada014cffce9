/// @file
/// Value types shared by the datapath tables: protocols and flow tuples in host terms.
#ifndef CNINET_DATAPATH_TYPES_H_
#define CNINET_DATAPATH_TYPES_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"

struct cn_tuple;
union cn_addr;

namespace cninet::datapath {

/// IP protocols the datapath translates. Other protocol numbers convert to unnamed values.
enum class Protocol : uint8_t { kIcmp = 1, kTcp = 6, kUdp = 17, kIcmpV6 = 58, kSctp = 132 };

/// The IP protocol number of `p` (what the ABI structs of abi.h carry).
constexpr uint8_t ToNumber(Protocol p) { return static_cast<uint8_t>(p); }
/// The Protocol of IP protocol number `number` (unnamed for numbers other than 1, 6, 17).
constexpr Protocol ProtocolFromNumber(uint8_t number) { return static_cast<Protocol>(number); }
/// "tcp", "udp", "icmp" (or the number for others).
std::string ToString(Protocol p);
/// Prints ToString(p).
std::ostream& operator<<(std::ostream& os, Protocol p);
/// ToString() of a raw protocol number.
std::string ProtocolName(uint8_t proto);
/// Parses "tcp" / "udp" / "icmp" (case-insensitive).
absl::StatusOr<Protocol> ParseProtocol(std::string_view text);

/// A 5-tuple with host-order ports. For ICMP echo the id is the source port of requests and the
/// destination port of replies.
struct FlowTuple {
  cni::IPAddress src;                         ///< Source address.
  cni::IPAddress dst;                         ///< Destination address.
  uint16_t src_port = 0;                      ///< Source port (host order).
  uint16_t dst_port = 0;                      ///< Destination port (host order).
  Protocol protocol = ProtocolFromNumber(0);  ///< IP protocol (ToNumber() for the number).

  /// "tcp 10.0.0.1:1234 -> 10.96.0.10:80".
  std::string ToString() const;
  /// Field-wise equality.
  friend bool operator==(const FlowTuple&, const FlowTuple&) = default;
};

/// Conversions between FlowTuple and the ABI key (either family; IPv4 as IPv4-mapped IPv6).
/// InvalidArgument when the two addresses are of different families.
absl::StatusOr<cn_tuple> ToAbi(const FlowTuple& t);
/// ABI key -> FlowTuple.
FlowTuple FromAbi(const cn_tuple& t);

/// The ABI form of `addr`: IPv6 as is, IPv4 as IPv4-mapped IPv6 (0:0:0:0:0:ffff:a.b.c.d). The one
/// place addresses enter the maps.
cn_addr ToAbiAddr(const cni::IPAddress& addr);
/// The address an ABI address holds (IPv4 for an IPv4-mapped address). The one place addresses
/// leave the maps.
cni::IPAddress FromAbiAddr(const cn_addr& addr);
/// True when `addr` is all zeroes (an unused slot).
bool IsZero(const cn_addr& addr);

/// Network-order IPv4 value of `addr` (InvalidArgument for IPv6).
absl::StatusOr<uint32_t> V4Net(const cni::IPAddress& addr);
/// IPAddress from a network-order IPv4 value.
cni::IPAddress FromV4Net(uint32_t net);

/// `10.0.0.1:80` or `[fd00::1]:80`.
std::string HostPort(const cni::IPAddress& addr, uint16_t port);

/// Seconds of CLOCK_MONOTONIC, the clock the datapath stamps entries with.
uint32_t MonotonicSeconds();

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_TYPES_H_
