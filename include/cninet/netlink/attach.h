/// @file
/// Building blocks for CNI plugins that attach a veth-based interface to a pod (cninet-ptp,
/// cninet-bridge and plugins written with the SDK): the requested MAC, applying an IPAM result to
/// an interface, CHECK validations, idempotent teardown.
#ifndef CNINET_NETLINK_ATTACH_H_
#define CNINET_NETLINK_ATTACH_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/cni/plugin.h"
#include "cninet/cni/types.h"
#include "cninet/netlink/handle.h"
#include "cninet/netlink/netns.h"
#include "cninet/netlink/rollback.h"
#include "cninet/netlink/types.h"

namespace cninet::netlink {

/// The MAC the runtime asked for: runtimeConfig.mac, else args.cni.mac, else CNI_ARGS MAC=
/// (the reference plugins' precedence). nullopt when none; CNI code 7 when malformed or not a
/// unicast address.
absl::StatusOr<std::optional<MacAddress>> RequestedMac(const cni::CmdArgs& args);

/// Creates a pod's veth pair: the host end VethNameFor(container id, ifname) in `host`'s
/// namespace, the pod end `args.ifname` born in `pod_ns` (never visible on the host) with `mtu`
/// (0: default) and `mac`; the pair's removal is registered in `rollback`. Returns the host end.
absl::StatusOr<Link> CreatePodVeth(Handle& host, Netns& pod_ns, const cni::CmdArgs& args,
                                   uint32_t mtu, std::optional<MacAddress> mac, Rollback& rollback);

/// The "mtu" key of a plugin configuration: 0 when absent; CNI code 7 unless an integer in
/// 68..65535 (or 0).
absl::StatusOr<uint32_t> ConfigMtu(const nlohmann::json& conf);

/// Sysctls a pod interface needs before IPv6 addresses go on it, run in the pod's namespace (call
/// inside Netns::Run): IPv6 enabled on "lo" and `ifname`, DAD off (`accept_dad` = 0, so
/// addresses are usable at once; IPAM guarantees uniqueness) unless `dad`, and arp_notify on
/// when `arp_notify`.
absl::Status PreparePodInterfaceSysctls(std::string_view ifname, bool has_ipv6, bool dad,
                                        bool arp_notify);

/// Brings `link` up, adds every address of `ips` (waiting for IPv6 ones to settle) and then
/// `routes`, a route without gateway going via the first gateway of its family when there is one
/// (what the reference plugins' ConfigureIface does).
absl::Status ConfigureInterface(Handle& h, const Link& link, const std::vector<cni::IPConfig>& ips,
                                const std::vector<cni::Route>& routes);

/// Waits until no IPv6 address of link `ifindex` is tentative (duplicate address detection
/// finished; immediate with accept_dad=0, but asynchronous in the kernel). Fails when DAD found a
/// duplicate, or after `timeout`.
absl::Status WaitAddressesSettled(Handle& h, int ifindex, std::chrono::milliseconds timeout);

/// The first gateway of `family` (true = IPv4) among `ips`, if any.
std::optional<cni::IPAddress> FirstGateway(const std::vector<cni::IPConfig>& ips, bool v4);

/// Waits until the link's operational state is up (or "unknown") for up to `timeout`.
absl::Status WaitOperUp(Handle& h, int ifindex, std::chrono::milliseconds timeout);

/// Fails with code 3 when `path` no longer names the namespace `ns` (it was deleted, or
/// replaced, while the plugin worked).
absl::Status CheckNetnsUnchanged(std::string_view path, const Netns& ns);

/// CHECK: every address of `ips` that belongs to interface `iface_index` of the result is on
/// `link`. Code `cni::ErrorCode::kCheckMismatch` naming the first one missing.
absl::Status CheckAddresses(Handle& h, const Link& link, const std::vector<cni::IPConfig>& ips,
                            int iface_index);
/// CHECK: every route of `routes` exists (same destination; same gateway when it has one).
absl::Status CheckRoutes(Handle& h, const std::vector<cni::Route>& routes);
/// CHECK: the interface `expected` of prevResult matches `link` (name, MAC when given, kind).
absl::Status CheckLink(const Link& link, const cni::Interface& expected, std::string_view kind);

/// An IPAM ADD delegated (by `type`, through CNI_PATH) on a background thread, so a plugin's own
/// netlink work overlaps the IPAM plugin's process start and disk writes. Unless Commit()ed, the
/// destructor waits for it and releases a successful allocation with DEL, on every exit path.
class BackgroundIpamAdd {
 public:
  /// Starts the delegation; `args` must outlive this object.
  BackgroundIpamAdd(std::string type, const cni::CmdArgs& args);
  ~BackgroundIpamAdd();
  BackgroundIpamAdd(const BackgroundIpamAdd&) = delete;
  BackgroundIpamAdd& operator=(const BackgroundIpamAdd&) = delete;

  /// Waits for the IPAM plugin and returns its result (or error).
  absl::StatusOr<cni::Result>& Wait();
  /// Keeps the allocation.
  void Commit() { committed_ = true; }

 private:
  std::string type_;
  const cni::CmdArgs& args_;
  absl::StatusOr<cni::Result> result_;
  std::thread thread_;
  bool committed_ = false;
};

/// True when the delegate plugin `type` (found through args.path) lists `version` among its
/// supportedVersions (asked with VERSION). Lets a plugin forward STATUS/GC only to IPAM plugins
/// that implement them (CNI 1.1). NotFound when the plugin is not installed.
absl::StatusOr<bool> DelegateSupportsVersion(std::string_view type, std::string_view version,
                                             const cni::CmdArgs& args);

/// STATUS of a veth plugin that delegates IPAM: ready when netlink works and the IPAM plugin is
/// installed and, if it implements CNI 1.1 STATUS, reports itself ready (code 50 otherwise).
absl::Status DelegatedIpamStatus(const cni::CmdArgs& args);

/// GC of a veth plugin: links die with their pods, so only the IPAM plugin's leases are collected,
/// when it implements CNI 1.1 GC.
absl::Status DelegatedIpamGc(const cni::CmdArgs& args);

/// Runs `a` on a new thread and `b` on the caller's, waits for both, and returns the first
/// failure (a's when both fail). For independent steps such as IPAM DEL and link deletion.
absl::Status RunConcurrently(absl::FunctionRef<absl::Status()> a,
                             absl::FunctionRef<absl::Status()> b);

/// DEL of a veth attachment, idempotent: deletes `ifname` in the namespace at `netns_path`
/// (nothing to do when the path, the namespace or the link is gone), then the host end
/// `host_veth` when it is still there (only if it is a veth). Returns the pod addresses it found
/// on the interface (useful for plugins that clean up per-address state).
absl::StatusOr<std::vector<cni::IPPrefix>> DeleteVethAttachment(Handle& host,
                                                                std::string_view netns_path,
                                                                std::string_view ifname,
                                                                std::string_view host_veth);

}  // namespace cninet::netlink

#endif  // CNINET_NETLINK_ATTACH_H_
