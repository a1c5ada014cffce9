/// @file
/// Handle: a route-netlink socket bound to one network namespace, with the operations cninet's
/// plugins and agent need (links, bridges, VXLAN, addresses, routes, neighbours, FDB).
///
/// Every call returns absl::Status carrying the kernel's errno (mapped with absl::ErrnoToStatus:
/// EEXIST -> AlreadyExists, ENODEV/ENOENT/ESRCH -> NotFound, EINVAL -> InvalidArgument, ...)
/// and the kernel's extended-ack message when it sends one.
/// A Handle is thread-compatible (one socket): use one per thread, or lock.
#ifndef CNINET_NETLINK_HANDLE_H_
#define CNINET_NETLINK_HANDLE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/netlink/netns.h"
#include "cninet/netlink/types.h"

namespace cninet::netlink {

/// A route-netlink socket bound to one network namespace (see the file comment). Move-only.
class Handle {
 public:
  /// A handle on the calling thread's current namespace.
  static absl::StatusOr<Handle> Open();
  /// A handle on `ns` (the socket is created inside it on a dedicated thread; see netns.h).
  static absl::StatusOr<Handle> OpenIn(const Netns& ns);

  /// Moves the socket; `other` becomes unusable.
  Handle(Handle&&) noexcept;
  /// Moves the socket, closing the one held before.
  Handle& operator=(Handle&&) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();

  // ---- Links ----
  /// The link named `name`; NotFound when there is none.
  absl::StatusOr<Link> GetLink(std::string_view name);
  /// The link with index `index`; NotFound when there is none.
  absl::StatusOr<Link> GetLinkByIndex(int index);
  /// Every link of the namespace.
  absl::StatusOr<std::vector<Link>> ListLinks();
  /// Creates a veth pair in one request (the peer is born in spec.peer_netns, never moved);
  /// returns the local end. AlreadyExists when either name is taken.
  absl::StatusOr<Link> CreateVeth(const VethSpec& spec);
  /// Creates a bridge; returns it (down, like any new link).
  absl::StatusOr<Link> CreateBridge(const BridgeSpec& spec);
  /// Creates a VXLAN device; returns it.
  absl::StatusOr<Link> CreateVxlan(const VxlanSpec& spec);
  /// Deletes a link (a veth's peer goes with it). NotFound when it does not exist.
  absl::Status DeleteLink(int index);
  /// DeleteLink by name.
  absl::Status DeleteLinkByName(std::string_view name);
  /// Sets the link administratively up or down.
  absl::Status SetLinkUp(int index, bool up = true);
  /// Sets the MTU (the kernel checks the device's range).
  absl::Status SetMtu(int index, uint32_t mtu);
  /// Sets the hardware address.
  absl::Status SetMac(int index, const MacAddress& mac);
  /// Renames the link (older kernels, and some devices, require it to be down).
  absl::Status Rename(int index, std::string_view new_name);
  /// Turns promiscuous mode on or off.
  absl::Status SetPromisc(int index, bool on);
  /// Moves the link into `ns` (it goes down, and keeps its name unless it clashes there).
  absl::Status MoveToNetns(int index, const Netns& ns);
  /// Attaches the link to bridge `bridge_index` (IFLA_MASTER).
  absl::Status SetMaster(int index, int bridge_index);
  /// Detaches the link from its bridge.
  absl::Status ClearMaster(int index);
  /// Bridge port hairpin mode (reflect frames back out of the port they came in on).
  absl::Status SetHairpin(int port_index, bool on);

  // ---- Addresses ----
  /// Adds `prefix` to the link. AlreadyExists when present (unless options.replace).
  absl::Status AddAddress(int index, const cni::IPPrefix& prefix,
                          const AddressOptions& options = {});
  /// Removes `prefix` from the link. NotFound (EADDRNOTAVAIL) when absent.
  absl::Status DeleteAddress(int index, const cni::IPPrefix& prefix);
  /// Addresses of `index` (0 = all links) and `family` (AF_INET, AF_INET6, 0 = both).
  absl::StatusOr<std::vector<Address>> ListAddresses(int index = 0, int family = 0);

  // ---- Routes ----
  /// Adds a route; AlreadyExists when an identical destination/table/metric route exists.
  absl::Status AddRoute(const Route& route);
  /// Adds or replaces the route for the same destination/table/metric.
  absl::Status ReplaceRoute(const Route& route);
  /// Deletes the route matching dst/table (and gateway, oif, metric when set). NotFound when
  /// there is none.
  absl::Status DeleteRoute(const Route& route);
  /// Routes matching `filter` (cache clones and the local table's entries are left out unless
  /// the filter asks for that table).
  absl::StatusOr<std::vector<Route>> ListRoutes(const RouteFilter& filter = {});

  // ---- Neighbours (ARP / NDP) ----
  /// Adds or replaces a neighbour entry (permanent by default).
  absl::Status SetNeighbor(const Neighbor& neighbor);
  /// Deletes the entry for ip on ifindex. NotFound when absent.
  absl::Status DeleteNeighbor(int ifindex, const cni::IPAddress& ip);
  /// Neighbour entries of `index` (0 = all) and `family` (0 = IPv4 and IPv6).
  absl::StatusOr<std::vector<Neighbor>> ListNeighbors(int index = 0, int family = 0);

  // ---- Bridge / VXLAN FDB ----
  /// Adds or replaces an FDB entry. The all-zeros MAC is appended instead (one entry per remote
  /// VTEP, as `bridge fdb append`), so BUM traffic floods to every remote.
  absl::Status AddFdb(const FdbEntry& entry);
  /// Deletes an FDB entry (matching mac, and only remote dst when set). NotFound when the MAC has
  /// no entry; a remote already gone from an existing entry is a no-op, as in the kernel.
  absl::Status DeleteFdb(const FdbEntry& entry);
  /// FDB entries of device `index` (0 = every device).
  absl::StatusOr<std::vector<FdbEntry>> ListFdb(int index = 0);

 private:
  struct Impl;
  explicit Handle(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cninet::netlink

#endif  // CNINET_NETLINK_HANDLE_H_
