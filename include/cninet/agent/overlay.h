/// @file
/// The overlay between nodes. PlanOverlay (a pure function of the Node objects) decides how each
/// remote node's podCIDR is reached: through the node's one VXLAN device (a route via the remote
/// VTEP's overlay address, a permanent neighbour entry for it and an FDB entry pointing its MAC at
/// the remote underlay address, the Flannel model), or by a direct route via the remote node's
/// address when both nodes set directRouting and share a subnet. OverlayReconciler makes the
/// kernel (routes tagged with the agent's route protocol, the VXLAN device's neighbours and FDB)
/// match a plan, adding what is missing and removing what the plan no longer has.
#ifndef CNINET_AGENT_OVERLAY_H_
#define CNINET_AGENT_OVERLAY_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/netlink/handle.h"
#include "cninet/netlink/types.h"
#include "cninet/v1/node.pb.h"

namespace cninet::agent {

/// This node, as the overlay planner needs it.
struct OverlaySelf {
  std::string name;             ///< Node name; its own Node object gets no entries.
  cni::IPPrefix underlay;       ///< Uplink IPv4 address with its prefix ("192.168.1.11/24").
  cni::IPPrefix pod_cidr;       ///< This node's podCIDR (a peer overlapping it is skipped).
  bool direct_routing = false;  ///< This node's directRouting flag.
  /// Uplink IPv6 address with its prefix (prefix length 0: none; IPv6 then always uses VXLAN).
  cni::IPPrefix underlay_v6;
  /// This node's IPv6 podCIDR (prefix length 0: none).
  cni::IPPrefix pod_cidr_v6;
};

/// How traffic to a remote podCIDR leaves this node.
enum class PeerMode {
  kVxlan,   ///< Encapsulated through the VXLAN device to the remote VTEP.
  kDirect,  ///< Routed via the remote node's address on the shared underlay subnet.
};

/// "vxlan" or "direct".
std::string_view PeerModeName(PeerMode mode);

/// The entries for one remote node.
struct OverlayPeer {
  std::string node;                  ///< Remote node name.
  cni::IPPrefix pod_cidr;            ///< Its podCIDR of one family: the route's destination.
  PeerMode mode = PeerMode::kVxlan;  ///< VXLAN or direct route.
  /// The route's gateway: kDirect the node's address of the podCIDR's family; kVxlan for IPv4
  /// the podCIDR's network address, which the remote node puts on its VXLAN device (its overlay
  /// address), for IPv6 the link-local address of the remote vtepMAC (VtepLinkLocalFor).
  cni::IPAddress gateway;
  cni::IPAddress vtep;           ///< kVxlan: underlay destination (publicIP, else internal IP).
  netlink::MacAddress vtep_mac;  ///< kVxlan: MAC of the remote VXLAN device.
  /// Field-wise equality.
  friend bool operator==(const OverlayPeer&, const OverlayPeer&) = default;
};

/// A node that gets no entries, and why (shown by `cninet-agent status`).
struct SkippedPeer {
  std::string node;    ///< Node name.
  std::string reason;  ///< E.g. "no IPv4 podCIDR yet".
};

/// The desired overlay: one entry set per reachable remote node.
struct OverlayPlan {
  std::vector<OverlayPeer> peers;    ///< In node-name order.
  std::vector<SkippedPeer> skipped;  ///< Nodes left out, in node-name order.
};

/// Plans the entries for every node in `nodes` other than `self`. A node is skipped (with a
/// reason) without an IPv4 podCIDR, without an IPv4 INTERNAL_IP address, with a podCIDR that
/// overlaps this node's or an earlier peer's, and - when VXLAN is needed - without a vtepMAC or
/// with an IPv6 publicIP. A planned node with an IPv6 podCIDR gets a second entry right after
/// its IPv4 one (when this node has an IPv6 podCIDR): IPv6 inner traffic over the same VXLAN
/// device and IPv4 underlay, or a direct route via the node's IPv6 INTERNAL_IP when both nodes
/// set directRouting and this node's IPv6 underlay subnet holds that address. A skipped IPv6
/// entry is listed in `skipped` with an "IPv6: " reason.
OverlayPlan PlanOverlay(const OverlaySelf& self, std::span<const v1::Node> nodes);

/// The IPv6 link-local address (fe80::/64 + modified EUI-64) the kernel gives a device with MAC
/// `mac`: the next hop of IPv6 routes through the VXLAN device to that peer's VTEP.
cni::IPAddress VtepLinkLocalFor(const netlink::MacAddress& mac);

/// The deterministic MAC of the VXLAN device of the node whose underlay address is `underlay`
/// (0e:c1 + the four address bytes), so a restarted agent keeps its vtepMAC.
netlink::MacAddress VtepMacFor(const cni::IPAddress& underlay);

/// Settings of the node's VXLAN device.
struct VxlanDeviceConfig {
  std::string name = "cninet-vxlan";  ///< Interface name.
  uint32_t vni = 1;                   ///< VXLAN network identifier.
  uint16_t port = 8472;               ///< UDP port (the Linux default, as Flannel).
  cni::IPAddress local;               ///< Underlay source address (the node's uplink address).
  int underlay_index = 0;             ///< The uplink's ifindex.
  uint32_t mtu = 0;                   ///< 0: underlay MTU - 50.
  netlink::MacAddress mac;            ///< The vtepMAC (VtepMacFor).
  /// Overlay address put on the device as a /32: this node's podCIDR network address.
  cni::IPAddress address;
};

/// Counts of what one OverlayReconciler::Apply changed (all zero when the kernel matched).
struct OverlayChanges {
  int routes_set = 0;         ///< Routes added or replaced.
  int routes_removed = 0;     ///< Routes of vanished peers removed.
  int neighbors_set = 0;      ///< Neighbour entries added or replaced.
  int neighbors_removed = 0;  ///< Neighbour entries removed.
  int fdb_set = 0;            ///< FDB entries added.
  int fdb_removed = 0;        ///< FDB entries removed.
  /// True when anything changed.
  bool any() const {
    return routes_set + routes_removed + neighbors_set + neighbors_removed + fdb_set + fdb_removed >
           0;
  }
};

/// Makes the kernel of one node match an OverlayPlan. Not thread-safe.
class OverlayReconciler {
 public:
  /// Works through `handle` (in the node's namespace; must outlive the reconciler). Routes it
  /// creates carry `route_protocol`, which is how it finds its own routes again after a restart.
  OverlayReconciler(netlink::Handle* handle, VxlanDeviceConfig vxlan, int uplink_index,
                    uint8_t route_protocol);

  /// Creates the VXLAN device, or adopts an existing one with the same settings (one whose VNI,
  /// port, local address or MAC differ is recreated), brings it up and puts its /32 on it.
  absl::Status EnsureDevice();
  /// Adds or replaces missing and different routes, neighbours and FDB entries and removes
  /// those of peers the plan no longer has. Continues past individual failures and returns the
  /// first one after trying everything.
  absl::StatusOr<OverlayChanges> Apply(const OverlayPlan& plan);
  /// Removes every route carrying the route protocol and the VXLAN device (idempotent).
  absl::Status Teardown();

  /// Index of the VXLAN device (0 before EnsureDevice).
  int vxlan_index() const { return vxlan_index_; }
  /// The device settings.
  const VxlanDeviceConfig& vxlan() const { return vxlan_; }

 private:
  // The steps of Apply: each corrects one kind of entry; errors of single entries go to `first`
  // (the first one kept), a failed listing is returned.
  absl::Status ApplyRoutes(const OverlayPlan& plan, OverlayChanges* ch, absl::Status* first);
  absl::Status ApplyNeighbors(const OverlayPlan& plan, OverlayChanges* ch, absl::Status* first);
  absl::Status ApplyFdb(const OverlayPlan& plan, OverlayChanges* ch, absl::Status* first);

  netlink::Handle* handle_;
  VxlanDeviceConfig vxlan_;
  int uplink_index_;
  uint8_t route_protocol_;
  int vxlan_index_ = 0;
};

}  // namespace cninet::agent

#endif  // CNINET_AGENT_OVERLAY_H_
