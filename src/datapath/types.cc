#include "cninet/datapath/types.h"

#include <endian.h>
#include <time.h>

#include <cstring>
#include <ostream>

#include "absl/strings/ascii.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"

namespace cninet::datapath {

std::string ToString(Protocol p) { return ProtocolName(ToNumber(p)); }

std::ostream& operator<<(std::ostream& os, Protocol p) { return os << ToString(p); }

std::string ProtocolName(uint8_t proto) {
  switch (proto) {
    case 1:
      return "icmp";
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 58:
      return "icmpv6";
    case 132:
      return "sctp";
    default:
      return std::to_string(proto);
  }
}

absl::StatusOr<Protocol> ParseProtocol(std::string_view text) {
  std::string t = absl::AsciiStrToLower(ToAbsl(text));
  if (t == "tcp") return Protocol::kTcp;
  if (t == "udp") return Protocol::kUdp;
  if (t == "icmp") return Protocol::kIcmp;
  if (t == "icmpv6" || t == "ipv6-icmp") return Protocol::kIcmpV6;
  return absl::InvalidArgumentError(
      StrCat("unknown protocol '", text, "' (tcp, udp, icmp, icmpv6)"));
}

std::string FlowTuple::ToString() const {
  return StrCat(datapath::ToString(protocol), " ", HostPort(src, src_port), " -> ",
                HostPort(dst, dst_port));
}

std::string HostPort(const cni::IPAddress& addr, uint16_t port) {
  return addr.is_v6() ? StrCat("[", addr.ToString(), "]:", port)
                      : StrCat(addr.ToString(), ":", port);
}

absl::StatusOr<uint32_t> V4Net(const cni::IPAddress& addr) {
  if (!addr.is_v4())
    return absl::InvalidArgumentError(StrCat("not an IPv4 address: ", addr.ToString()));
  uint32_t v;
  std::memcpy(&v, addr.bytes().data(), 4);
  return v;
}

cni::IPAddress FromV4Net(uint32_t net) {
  return cni::IPAddress::FromBytes(reinterpret_cast<const uint8_t*>(&net), 4);
}

namespace {
constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
}  // namespace

cn_addr ToAbiAddr(const cni::IPAddress& addr) {
  cn_addr out{};
  if (addr.is_v4()) {
    std::memcpy(out.a8, kV4MappedPrefix, 12);
    std::memcpy(out.a8 + 12, addr.bytes().data(), 4);
  } else {
    std::memcpy(out.a8, addr.bytes().data(), 16);
  }
  return out;
}

cni::IPAddress FromAbiAddr(const cn_addr& addr) {
  if (std::memcmp(addr.a8, kV4MappedPrefix, 12) == 0)
    return cni::IPAddress::FromBytes(addr.a8 + 12, 4);
  return cni::IPAddress::FromBytes(addr.a8, 16);
}

bool IsZero(const cn_addr& addr) {
  return (addr.a32[0] | addr.a32[1] | addr.a32[2] | addr.a32[3]) == 0;
}

absl::StatusOr<cn_tuple> ToAbi(const FlowTuple& t) {
  cn_tuple k{};
  if (t.src.family() != t.dst.family())
    return absl::InvalidArgumentError(StrCat("mixed address families: ", t.ToString()));
  k.saddr = ToAbiAddr(t.src);
  k.daddr = ToAbiAddr(t.dst);
  k.sport = htobe16(t.src_port);
  k.dport = htobe16(t.dst_port);
  k.proto = ToNumber(t.protocol);
  return k;
}

FlowTuple FromAbi(const cn_tuple& k) {
  FlowTuple t;
  t.src = FromAbiAddr(k.saddr);
  t.dst = FromAbiAddr(k.daddr);
  t.src_port = be16toh(k.sport);
  t.dst_port = be16toh(k.dport);
  t.protocol = ProtocolFromNumber(k.proto);
  return t;
}

uint32_t MonotonicSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint32_t>(ts.tv_sec);
}

}  // namespace cninet::datapath
