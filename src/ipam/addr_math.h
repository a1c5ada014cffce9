// Private: 128-bit arithmetic on addresses (offsets, counts, subnet indexes).
#ifndef CNINET_SRC_IPAM_ADDR_MATH_H_
#define CNINET_SRC_IPAM_ADDR_MATH_H_

#include <cstdint>
#include <limits>

#include "cninet/cni/ip.h"

namespace cninet::ipam::internal {

__extension__ typedef unsigned __int128 U128;

// The address as an unsigned integer (IPv4 in the low 32 bits).
inline U128 ToU128(const cni::IPAddress& a) {
  U128 v = 0;
  for (size_t i = 0; i < a.byte_length(); ++i) v = (v << 8) | a.bytes()[i];
  return v;
}

// The address of family `v4 ? IPv4 : IPv6` with value `v` (truncated to the family's width).
inline cni::IPAddress FromU128(U128 v, bool v4) {
  uint8_t b[16];
  size_t n = v4 ? 4 : 16;
  for (size_t i = n; i-- > 0;) {
    b[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
  return cni::IPAddress::FromBytes(b, n);
}

// min(v, 2^63) as uint64_t.
inline uint64_t Saturate(U128 v) {
  constexpr uint64_t kMax = uint64_t{1} << 63;
  return v > kMax ? kMax : static_cast<uint64_t>(v);
}

// a + b saturated to 2^63.
inline uint64_t SaturatingAdd(uint64_t a, uint64_t b) { return Saturate(static_cast<U128>(a) + b); }

}  // namespace cninet::ipam::internal

#endif  // CNINET_SRC_IPAM_ADDR_MATH_H_
