#include "cninet/netlink/types.h"

#include <cctype>
#include <cstdio>
#include <random>

#include "cninet/base/strings.h"

namespace cninet::netlink {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::Status CheckMtu(uint32_t mtu) {
  // 68 is the IPv4 minimum; 65535 the largest any virtual device accepts.
  if (mtu != 0 && (mtu < 68 || mtu > 65535)) {
    return absl::InvalidArgumentError(cninet::StrCat("MTU ", mtu, " is outside 68..65535"));
  }
  return absl::OkStatus();
}

absl::Status CheckMac(const std::optional<MacAddress>& mac, std::string_view what) {
  if (mac.has_value() && (mac->IsZero() || !mac->IsUnicast())) {
    return absl::InvalidArgumentError(
        cninet::StrCat(what, " MAC ", mac->ToString(), " is not a unicast address"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MacAddress> MacAddress::Parse(std::string_view text) {
  std::array<uint8_t, 6> b{};
  auto bad = [&] {
    return absl::InvalidArgumentError(cninet::StrCat("invalid MAC address \"", text, "\""));
  };
  if (text.size() != 17) return bad();
  char sep = text[2];
  if (sep != ':' && sep != '-') return bad();
  for (size_t i = 0; i < 6; ++i) {
    int hi = HexValue(text[i * 3]);
    int lo = HexValue(text[i * 3 + 1]);
    if (hi < 0 || lo < 0) return bad();
    if (i < 5 && text[i * 3 + 2] != sep) return bad();
    b[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return MacAddress(b);
}

MacAddress MacAddress::RandomLocal() {
  std::random_device rd;
  std::array<uint8_t, 6> b{};
  for (auto& x : b) x = static_cast<uint8_t>(rd());
  b[0] = static_cast<uint8_t>((b[0] & 0xfe) | 0x02);  // Unicast, locally administered.
  return MacAddress(b);
}

bool MacAddress::IsZero() const {
  for (uint8_t x : bytes_) {
    if (x != 0) return false;
  }
  return true;
}

std::string MacAddress::ToString() const {
  char buf[18];
  snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", bytes_[0], bytes_[1], bytes_[2],
           bytes_[3], bytes_[4], bytes_[5]);
  return buf;
}

absl::Status ValidateLinkName(std::string_view name) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        cninet::StrCat("invalid interface name \"", name, "\": ", why));
  };
  if (name.empty()) return bad("empty");
  if (name.size() > 15) return bad("longer than 15 bytes");
  if (name == "." || name == "..") return bad("reserved name");
  for (char c : name) {
    if (c == '/' || c == ':' || c == '\0' || std::isspace(static_cast<unsigned char>(c))) {
      return bad("contains '/', ':', NUL or whitespace");
    }
  }
  return absl::OkStatus();
}

std::string VethNameFor(std::string_view container_id, std::string_view ifname,
                        std::string_view prefix) {
  // FNV-1a (64 bit) over "<container_id>/<ifname>", folded to 32 bits.
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ull;
    }
  };
  mix(container_id);
  mix("/");
  mix(ifname);
  char buf[9];
  snprintf(buf, sizeof(buf), "%08x", static_cast<uint32_t>(h ^ (h >> 32)));
  std::string name(prefix.substr(0, 7));
  name += buf;
  return name;
}

absl::Status VethSpec::Validate() const {
  if (auto st = ValidateLinkName(name); !st.ok()) return st;
  if (auto st = ValidateLinkName(peer_name); !st.ok()) return st;
  if (peer_netns == nullptr && name == peer_name) {
    return absl::InvalidArgumentError("veth ends in the same namespace need distinct names");
  }
  if (auto st = CheckMtu(mtu); !st.ok()) return st;
  if (auto st = CheckMac(mac, "veth"); !st.ok()) return st;
  return CheckMac(peer_mac, "veth peer");
}

absl::Status BridgeSpec::Validate() const {
  if (auto st = ValidateLinkName(name); !st.ok()) return st;
  if (auto st = CheckMtu(mtu); !st.ok()) return st;
  return CheckMac(mac, "bridge");
}

absl::Status VxlanSpec::Validate() const {
  if (auto st = ValidateLinkName(name); !st.ok()) return st;
  if (vni == 0 || vni > 0xffffff) {
    return absl::InvalidArgumentError(cninet::StrCat("VXLAN VNI ", vni, " is outside 1..16777215"));
  }
  if (port == 0) return absl::InvalidArgumentError("VXLAN port must not be 0");
  if (underlay_index < 0) return absl::InvalidArgumentError("negative underlay index");
  if (auto st = CheckMtu(mtu); !st.ok()) return st;
  return CheckMac(mac, "vxlan");
}

Route RouteFromCni(const cni::Route& r, int oif) {
  Route route{.dst = r.dst, .gateway = r.gw, .oif = oif};
  if (r.mtu) route.mtu = *r.mtu;
  if (r.priority) route.metric = *r.priority;
  if (r.table) route.table = *r.table;
  if (r.scope) route.scope = static_cast<uint8_t>(*r.scope);
  return route;
}

cni::Route RouteToCni(const Route& r) {
  cni::Route out;
  out.dst = r.dst;
  out.gw = r.gateway;
  if (r.mtu != 0) out.mtu = r.mtu;
  if (r.metric != 0) out.priority = r.metric;
  if (r.table != kTableMain) out.table = r.table;
  if (r.scope) out.scope = *r.scope;
  return out;
}

uint8_t Route::EffectiveScope() const {
  if (scope.has_value()) return *scope;
  // iproute2: unicast routes without a gateway are link scope; local/broadcast are host/link.
  if (type == 2 /* RTN_LOCAL */) return kScopeHost;
  if (type != 1 /* RTN_UNICAST */) return kScopeUniverse;
  return gateway.has_value() ? kScopeUniverse : kScopeLink;
}

std::string Route::ToString() const {
  std::string s = dst.ToString();
  if (gateway) s += cninet::StrCat(" via ", gateway->ToString());
  if (oif != 0) s += cninet::StrCat(" dev#", oif);
  if (onlink) s += " onlink";
  s += cninet::StrCat(" scope ", static_cast<int>(EffectiveScope()), " table ", table);
  if (metric != 0) s += cninet::StrCat(" metric ", metric);
  if (src) s += cninet::StrCat(" src ", src->ToString());
  if (mtu != 0) s += cninet::StrCat(" mtu ", mtu);
  return s;
}

}  // namespace cninet::netlink
