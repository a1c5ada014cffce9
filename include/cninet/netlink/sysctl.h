/// @file
/// Per-namespace sysctls (/proc/sys/net/...). A /proc/sys/net file belongs to the network
/// namespace of the thread that opens it, so the Netns overloads open it inside the namespace
/// (on a dedicated thread, see netns.h).
#ifndef CNINET_NETLINK_SYSCTL_H_
#define CNINET_NETLINK_SYSCTL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/netlink/netns.h"

namespace cninet::netlink {

/// The /proc/sys path for `key`: "net.ipv4.ip_forward" or "net/ipv4/ip_forward". Use the '/'
/// form when a component contains a dot (e.g. an interface "eth0.100").
/// InvalidArgument for empty keys or keys containing "..".
absl::StatusOr<std::string> SysctlPath(std::string_view key);
/// Reads a sysctl in the calling thread's namespace (trailing newline removed).
absl::StatusOr<std::string> GetSysctl(std::string_view key);
/// Writes a sysctl in the calling thread's namespace.
absl::Status SetSysctl(std::string_view key, std::string_view value);
/// Reads a sysctl of namespace `ns`.
absl::StatusOr<std::string> GetSysctl(const Netns& ns, std::string_view key);
/// Writes a sysctl of namespace `ns`.
absl::Status SetSysctl(const Netns& ns, std::string_view key, std::string_view value);

/// Convenience keys (interface names may be "all" or "default").
/// net.ipv4.ip_forward / net.ipv6.conf.all.forwarding.
absl::Status SetIpForward(const Netns& ns, bool ipv6, bool on);
/// `net.ipv4.conf.<ifname>.rp_filter` (0 off, 1 strict, 2 loose).
absl::Status SetRpFilter(const Netns& ns, std::string_view ifname, int mode);
/// `net.ipv4.conf.<ifname>.proxy_arp`.
absl::Status SetProxyArp(const Netns& ns, std::string_view ifname, bool on);
/// `net.ipv4.conf.<ifname>.arp_notify` (gratuitous ARP when the link comes up or changes address).
absl::Status SetArpNotify(const Netns& ns, std::string_view ifname, bool on);
/// `net.ipv6.conf.<ifname>.accept_dad` (0 disables duplicate address detection).
absl::Status SetAcceptDad(const Netns& ns, std::string_view ifname, int value);

}  // namespace cninet::netlink

#endif  // CNINET_NETLINK_SYSCTL_H_
