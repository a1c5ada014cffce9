/// @file
/// Value types of the netlink component: MAC addresses, links, addresses, routes, neighbours and
/// bridge FDB entries as the kernel reports them, and the specs used to create them.
#ifndef CNINET_NETLINK_TYPES_H_
#define CNINET_NETLINK_TYPES_H_

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/cni/types.h"

namespace cninet::netlink {

class Netns;

/// A 48-bit Ethernet address. Default-constructed: 00:00:00:00:00:00 (the VXLAN flood entry).
class MacAddress {
 public:
  /// 00:00:00:00:00:00.
  MacAddress() = default;
  /// From six bytes in transmission order.
  explicit MacAddress(const std::array<uint8_t, 6>& bytes) : bytes_(bytes) {}
  /// Parses "aa:bb:cc:dd:ee:ff" (or '-' separated, any case); InvalidArgument otherwise.
  static absl::StatusOr<MacAddress> Parse(std::string_view text);
  /// A random locally administered unicast address (02:xx:...).
  static MacAddress RandomLocal();

  /// The six bytes in transmission order.
  const std::array<uint8_t, 6>& bytes() const { return bytes_; }
  /// True for 00:00:00:00:00:00.
  bool IsZero() const;
  /// True when the group bit is clear (usable as an interface address).
  bool IsUnicast() const { return (bytes_[0] & 1) == 0; }
  /// Lower-case "aa:bb:cc:dd:ee:ff".
  std::string ToString() const;

  /// Field-wise equality.
  friend bool operator==(const MacAddress&, const MacAddress&) = default;
  /// Orders byte by byte.
  friend auto operator<=>(const MacAddress&, const MacAddress&) = default;

 private:
  std::array<uint8_t, 6> bytes_{};
};

/// Routing scope (rtm_scope / ifa_scope) RT_SCOPE_UNIVERSE: global.
inline constexpr uint8_t kScopeUniverse = 0;
inline constexpr uint8_t kScopeLink = 253;  ///< RT_SCOPE_LINK: on-link only.
inline constexpr uint8_t kScopeHost = 254;  ///< RT_SCOPE_HOST: this host only.
/// The main routing table.
inline constexpr uint32_t kTableMain = 254;
/// Neighbour state NUD_PERMANENT (static entries that never expire).
inline constexpr uint16_t kNudPermanent = 0x80;

/// VXLAN device attributes (IFLA_VXLAN_*).
struct VxlanInfo {
  uint32_t vni = 0;                     ///< VXLAN network identifier.
  uint16_t port = 0;                    ///< UDP destination port, host order.
  std::optional<cni::IPAddress> local;  ///< Source address of encapsulated packets.
  int underlay_index = 0;               ///< Device the tunnel is bound to (0 = any).
  bool learning = true;                 ///< Source-MAC learning into the FDB.
  bool udp_csum = false;                ///< UDP checksums on IPv4 transmit.
  bool gbp = false;  ///< Group Based Policy: the low 16 bits of skb->mark cross the tunnel.
};

/// A network interface as the kernel reports it (RTM_NEWLINK).
struct Link {
  int index = 0;           ///< Interface index (ifindex).
  std::string name;        ///< IFLA_IFNAME.
  std::string kind;        ///< IFLA_INFO_KIND: "veth", "bridge", "vxlan", "dummy"; "" if none.
  std::string slave_kind;  ///< IFLA_INFO_SLAVE_KIND: "bridge" for a bridge port, else "".
  uint32_t mtu = 0;        ///< IFLA_MTU.
  MacAddress mac;          ///< IFLA_ADDRESS.
  bool admin_up = false;   ///< IFF_UP.
  bool lower_up = false;   ///< IFF_LOWER_UP (carrier).
  bool promisc = false;    ///< IFF_PROMISC.
  uint8_t oper_state = 0;  ///< IF_OPER_* (6 = up).
  int master_index = 0;    ///< IFLA_MASTER: the bridge this link is attached to, 0 if none.
  int peer_index = 0;      ///< IFLA_LINK: for veth, the peer's index (in the peer's namespace).
  std::optional<int> peer_netnsid;  ///< IFLA_LINK_NETNSID: the peer is in another namespace.
  std::optional<bool> hairpin;      ///< Bridge ports only: IFLA_BRPORT_MODE.
  std::optional<VxlanInfo> vxlan;   ///< kind == "vxlan" only.
};

/// A veth pair to create: `name` in the handle's namespace, `peer_name` in `peer_netns`.
struct VethSpec {
  std::string name;                    ///< Name of the local end (1..15 bytes).
  std::string peer_name;               ///< Name of the peer end, created in `peer_netns`.
  const Netns* peer_netns = nullptr;   ///< Not owned; nullptr = the handle's own namespace.
  uint32_t mtu = 0;                    ///< Both ends; 0 = kernel default (1500).
  std::optional<MacAddress> mac;       ///< Local end; unset = kernel-chosen random.
  std::optional<MacAddress> peer_mac;  ///< Peer end; unset = kernel-chosen random.
  /// Checks names (1..15 bytes, no '/', ':' or whitespace), MACs (unicast) and MTU range.
  absl::Status Validate() const;
};

/// A Linux bridge to create.
struct BridgeSpec {
  std::string name;               ///< Bridge name (1..15 bytes).
  uint32_t mtu = 0;               ///< 0 = kernel default.
  std::optional<MacAddress> mac;  ///< Unset = kernel-chosen.
  /// Checks the name, the MAC (unicast) and the MTU range.
  absl::Status Validate() const;
};

/// A VXLAN device to create (point-to-multipoint, FDB-driven, as Flannel/Calico use it).
struct VxlanSpec {
  std::string name;                     ///< Device name (1..15 bytes).
  uint32_t vni = 0;                     ///< 1..16777215.
  uint16_t port = 4789;                 ///< UDP destination port.
  std::optional<cni::IPAddress> local;  ///< Source address (the node's underlay address).
  int underlay_index = 0;               ///< Underlay device index; 0 = routing decides.
  bool learning = false;                ///< Off: the FDB is programmed, not learned.
  bool udp_csum = true;                 ///< Compute UDP checksums on IPv4 transmit.
  /// Group Based Policy extension (IFLA_VXLAN_GBP): transmit sends the low 16 bits of skb->mark
  /// in the VXLAN header, receive sets skb->mark from them. Fixed at creation.
  bool gbp = false;
  uint32_t mtu = 0;               ///< 0 = kernel default (underlay MTU - 50).
  std::optional<MacAddress> mac;  ///< Device MAC; unset = kernel-chosen.
  /// Checks the name, the VNI range, the port, the MAC (unicast) and the MTU range.
  absl::Status Validate() const;
};

/// An interface address (RTM_NEWADDR).
struct Address {
  int ifindex = 0;                 ///< Interface the address is on.
  cni::IPPrefix prefix;            ///< Address with its prefix length ("10.1.0.5/24").
  uint8_t scope = kScopeUniverse;  ///< IFA_SCOPE (kScopeUniverse, kScopeLink, kScopeHost).
  uint32_t flags = 0;              ///< IFA_F_* (IFA_F_NODAD = 0x02, IFA_F_PERMANENT = 0x80, ...).
};

/// Options for adding an address.
struct AddressOptions {
  /// Scope of the new address (kScopeUniverse, kScopeLink, kScopeHost).
  uint8_t scope = kScopeUniverse;
  bool nodad = false;          ///< IPv6: skip duplicate address detection.
  bool noprefixroute = false;  ///< Do not create the connected-subnet route.
  bool replace = false;        ///< Update an existing address instead of failing.
};

/// A route (RTM_NEWROUTE). Unset scope: link when there is no gateway, universe otherwise
/// (what `ip route` does).
struct Route {
  cni::IPPrefix dst;                      ///< 0.0.0.0/0 or ::/0 for a default route.
  std::optional<cni::IPAddress> gateway;  ///< RTA_GATEWAY; unset for a directly connected route.
  int oif = 0;                            ///< Output interface index (0 = any).
  bool onlink = false;                    ///< Gateway is on the link even without a subnet route.
  std::optional<uint8_t> scope;           ///< rtm_scope; unset = EffectiveScope()'s iproute2 guess.
  uint32_t table = kTableMain;            ///< Routing table (RTA_TABLE).
  uint32_t metric = 0;                    ///< RTA_PRIORITY.
  std::optional<cni::IPAddress> src;      ///< RTA_PREFSRC.
  uint32_t mtu = 0;                       ///< RTAX_MTU; 0 = none.
  uint8_t protocol = 3;                   ///< RTPROT_BOOT, as `ip route` and the reference plugins.
  uint8_t type = 1;                       ///< RTN_UNICAST.
  /// The scope actually sent: `scope`, or the iproute2 guess.
  uint8_t EffectiveScope() const;
  /// "10.0.0.0/24 via 10.0.0.1 dev 3 onlink table 254 metric 0 ...", for messages.
  std::string ToString() const;
};

/// The kernel route for a CNI result's route `r` through interface `oif` (0 = any): dst, gw,
/// mtu, priority (as the metric), table and scope carry over; advmss has no counterpart here.
Route RouteFromCni(const cni::Route& r, int oif = 0);
/// The CNI route describing kernel route `r`: dst, gateway, and mtu, metric (as priority), table
/// (unless main) and scope when they are set.
cni::Route RouteToCni(const Route& r);

/// Which routes to list.
struct RouteFilter {
  int family = 0;               ///< AF_INET, AF_INET6 or 0 for both.
  uint32_t table = kTableMain;  ///< 0 = all tables.
  int oif = 0;                  ///< 0 = any interface.
};

/// An ARP/NDP neighbour entry.
struct Neighbor {
  int ifindex = 0;                 ///< Interface the entry belongs to.
  cni::IPAddress ip;               ///< The neighbour's address.
  MacAddress mac;                  ///< The neighbour's link-layer address.
  uint16_t state = kNudPermanent;  ///< NUD_* bits.
  uint8_t flags = 0;               ///< NTF_* bits.
};

/// A bridge forwarding-database entry. On a VXLAN device (`self`), `dst` is the remote VTEP; the
/// all-zeros MAC is the flooding (BUM) entry and may be appended once per remote.
struct FdbEntry {
  int ifindex = 0;                    ///< Bridge port or VXLAN device the entry belongs to.
  MacAddress mac;                     ///< Destination MAC (all zeros: the flooding entry).
  std::optional<cni::IPAddress> dst;  ///< Remote VTEP (VXLAN only).
  uint32_t vni = 0;                   ///< 0 = the device's VNI.
  bool self = true;                   ///< NTF_SELF: the device's own FDB (VXLAN), vs. the bridge's.
  uint16_t state = kNudPermanent;     ///< NUD_* bits (permanent: never aged out).
};

/// The host-side veth name for an attachment: `prefix` + 8 hex digits of a stable hash of
/// container ID and ifname, so DEL finds it again and two attachments do not collide.
std::string VethNameFor(std::string_view container_id, std::string_view ifname,
                        std::string_view prefix = "veth");
/// OK when `name` is a valid interface name: 1..15 bytes, not "." or "..", no '/', ':' or
/// whitespace. InvalidArgument naming the problem otherwise.
absl::Status ValidateLinkName(std::string_view name);

}  // namespace cninet::netlink

#endif  // CNINET_NETLINK_TYPES_H_
