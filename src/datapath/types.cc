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
  return absl::InvalidArgumentError(StrCat("unknown protocol '", text, "' (tcp, udp, icmp)"));
}

std::string FlowTuple::ToString() const {
  return StrCat(datapath::ToString(protocol), " ", src.ToString(), ":", src_port, " -> ",
                dst.ToString(), ":", dst_port);
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

absl::StatusOr<cn_tuple> ToAbi(const FlowTuple& t) {
  cn_tuple k{};
  auto s = V4Net(t.src);
  if (!s.ok()) return s.status();
  auto d = V4Net(t.dst);
  if (!d.ok()) return d.status();
  k.saddr = *s;
  k.daddr = *d;
  k.sport = htobe16(t.src_port);
  k.dport = htobe16(t.dst_port);
  k.proto = ToNumber(t.protocol);
  return k;
}

FlowTuple FromAbi(const cn_tuple& k) {
  FlowTuple t;
  t.src = FromV4Net(k.saddr);
  t.dst = FromV4Net(k.daddr);
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
