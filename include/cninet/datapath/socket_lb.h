/// @file
/// Socket-level load balancing (bpf/sock.bpf.c): cgroup v2 programs that send connect() and
/// unconnected sendmsg() to a service frontend straight to a backend, and show the service
/// address again in recvmsg() and getpeername(). Attached with Datapath::AttachSocketLb(); only
/// sockets of the network namespaces given to Datapath::ServeNetnsForSocketLb() are translated.
#ifndef CNINET_DATAPATH_SOCKET_LB_H_
#define CNINET_DATAPATH_SOCKET_LB_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/base/fd.h"
#include "cninet/datapath/pins.h"

namespace cninet::datapath {

/// The socket-LB programs attached to one cgroup v2 directory, one bpf_link per hook (connect,
/// sendmsg, recvmsg, getpeername for both families, and sock_ops). When the datapath pins its
/// maps the links are pinned too (PinLayout::SocketLbLinkDir()), so Release() leaves them
/// attached after the process exits; destruction (or Detach()) unpins and detaches them.
class SocketLbAttachment {
 public:
  SocketLbAttachment() = default;
  ~SocketLbAttachment();
  /// Moves the ownership of the links.
  SocketLbAttachment(SocketLbAttachment&& other) noexcept;
  /// Detaches the current links, then takes `other`'s.
  SocketLbAttachment& operator=(SocketLbAttachment&& other) noexcept;
  SocketLbAttachment(const SocketLbAttachment&) = delete;
  SocketLbAttachment& operator=(const SocketLbAttachment&) = delete;

  /// Detaches every link now and removes their pins (idempotent).
  absl::Status Detach();
  /// Keeps the links (pinned) after this object dies; DetachSocketLb() removes them later.
  void Release();
  /// True while this object owns links.
  bool attached() const { return !links_.empty(); }
  /// The cgroup directory given to AttachSocketLb().
  const std::string& cgroup_path() const { return cgroup_path_; }
  /// Where the links are pinned ("" when the datapath does not pin).
  const std::string& pin_dir() const { return pin_dir_; }

 private:
  friend struct SocketLbAttachmentAccess;
  std::string cgroup_path_;
  std::string pin_dir_;
  std::vector<UniqueFd> links_;
};

/// A cgroup with socket-LB links pinned by an instance (what `cninet-dp status` lists).
struct SocketLbCgroup {
  uint64_t cgroup_id = 0;             ///< Inode of the cgroup v2 directory.
  std::string pin_dir;                ///< PinLayout::SocketLbLinkDir(cgroup_id).
  std::vector<std::string> hooks;     ///< Pinned link names (e.g. "connect4", "sock_ops").
  std::vector<uint32_t> program_ids;  ///< Kernel ids of the programs the links run.
};

/// The cgroups `layout`'s instance has pinned socket-LB links for (none: empty).
absl::StatusOr<std::vector<SocketLbCgroup>> ListSocketLb(const PinLayout& layout);
/// Unpins (and so detaches) `layout`'s socket-LB links on the cgroup at `cgroup_path`; absent
/// pins are OK.
absl::Status DetachSocketLb(const PinLayout& layout, const std::string& cgroup_path);
/// Unpins every socket-LB link of `layout`'s instance (teardown).
absl::Status DetachAllSocketLb(const PinLayout& layout);
/// The netns cookie (SO_NETNS_COOKIE) of the network namespace at `netns_path`
/// (/run/netns/NAME, /proc/PID/ns/net).
absl::StatusOr<uint64_t> NetnsCookie(const std::string& netns_path);
/// Inode number of the cgroup v2 directory `cgroup_path` (its cgroup id).
absl::StatusOr<uint64_t> CgroupId(const std::string& cgroup_path);

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_SOCKET_LB_H_
