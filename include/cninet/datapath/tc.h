/// @file
/// tc (clsact) glue of the datapath: the hooks, the RAII `TcAttachment` of one tc filter, listing
/// the BPF filters on an interface and `BpfProgram`, a loaded program held open (pinned, reopened,
/// attached without loading it again). Everything acts in the calling thread's network namespace.
///
/// A clsact qdisc the datapath creates carries a marker filter (`cn_clsact_owner`, last priority,
/// a program that passes to the next filter); detaching the last filter of an interface removes
/// such a qdisc, never one that was there before.
#ifndef CNINET_DATAPATH_TC_H_
#define CNINET_DATAPATH_TC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/base/fd.h"

namespace cninet::datapath {

/// Where a program runs.
enum class Hook {
  kFromPod,    ///< tc ingress, host side of a pod veth
  kFromWorld,  ///< tc ingress, node uplink
  kToWorld,    ///< tc egress, node uplink
  kToPod,      ///< tc egress, host side of a pod veth (traffic towards the pod): ingress policy
};

/// "from-pod", "from-world", "to-world", "to-pod".
std::string_view HookName(Hook hook);
/// The kernel name of `hook`'s program ("cn_from_pod", "cn_from_world", ...).
std::string_view HookProgramName(Hook hook);
/// The pin name of `hook`'s program under PinLayout::ProgramDir() ("from_pod", "to_world", ...).
std::string_view HookPinName(Hook hook);
/// True for the hooks on tc ingress (kFromPod, kFromWorld); false for egress.
bool HookIsIngress(Hook hook);

/// A tc filter owned by this object: detached (in the namespace it was attached in) on
/// destruction unless Release()d.
class TcAttachment {
 public:
  TcAttachment() = default;
  ~TcAttachment();
  /// Moves the filter ownership.
  TcAttachment(TcAttachment&& other) noexcept;
  /// Detaches the current filter, then takes `other`'s.
  TcAttachment& operator=(TcAttachment&& other) noexcept;
  TcAttachment(const TcAttachment&) = delete;
  TcAttachment& operator=(const TcAttachment&) = delete;

  /// Removes the filter now (idempotent; an interface that is gone counts as detached), and the
  /// clsact qdisc when the datapath created it and no filter is left.
  absl::Status Detach();
  /// Leaves the filter in the kernel after this object dies (a restarting agent re-attaches with
  /// replace, so traffic never sees a gap).
  void Release();
  /// True while this object owns a filter.
  bool attached() const { return netns_.valid(); }
  /// Interface name given to Attach().
  const std::string& ifname() const { return ifname_; }
  /// Interface index in the attachment's namespace.
  int ifindex() const { return ifindex_; }
  /// Which program.
  Hook hook() const { return hook_; }

 private:
  friend struct TcAttachmentAccess;
  std::string ifname_;
  int ifindex_ = 0;
  Hook hook_ = Hook::kFromPod;
  UniqueFd netns_;  // namespace of the filter; empty when not attached
};

/// The per-pod filters of one host-side veth: kFromPod (tc ingress) and kToPod (tc egress,
/// ingress policy). Both are detached when this object dies unless Release()d.
struct PodAttachment {
  TcAttachment from_pod;  ///< tc ingress: service DNAT, reverse DNAT, tracking.
  TcAttachment to_pod;    ///< tc egress: the pod's ingress policy.
  /// Leaves both filters in the kernel after this object dies.
  void Release() {
    from_pod.Release();
    to_pod.Release();
  }
  /// Removes both filters now (idempotent).
  absl::Status Detach();
};

/// Removes cninet's filter for `hook` from `ifname` (e.g. one left attached by a Release()d
/// TcAttachment), and the clsact qdisc the datapath added once no filter is left. Absent
/// filters/interfaces are OK.
absl::Status DetachHook(Hook hook, std::string_view ifname);
/// DetachHook() for both per-pod hooks (kFromPod and kToPod) of a pod's host-side veth.
absl::Status DetachPodHooks(std::string_view ifname);

/// One BPF filter on a clsact hook, as the kernel reports it.
struct TcFilter {
  bool ingress = true;      ///< clsact ingress (true) or egress hook.
  uint32_t priority = 0;    ///< tc priority (preference).
  uint32_t handle = 0;      ///< tc filter handle.
  std::string name;         ///< TCA_BPF_NAME, e.g. `cn_from_pod:[42]` when attached by libbpf.
  uint32_t program_id = 0;  ///< Kernel id of the attached program.
  /// True when this is cninet's filter for `hook` (program name, handle and priority).
  bool Is(Hook hook) const;
};

/// The BPF filters on the clsact ingress (or egress) hook of `ifname` (without the datapath's
/// ownership marker). No clsact qdisc: none; NotFound when the interface does not exist.
absl::StatusOr<std::vector<TcFilter>> ListTcFilters(std::string_view ifname, bool ingress);
/// True when cninet's filter for `hook` is attached to `ifname`.
absl::StatusOr<bool> HookAttached(Hook hook, std::string_view ifname);

/// A loaded BPF program held open (RAII): taken from a Datapath or reopened from a pin. Lets a
/// short-lived process (a CNI plugin) attach a program without loading and verifying it again.
class BpfProgram {
 public:
  BpfProgram() = default;
  /// Opens the program pinned at `path` (NotFound when there is none).
  static absl::StatusOr<BpfProgram> OpenPinned(const std::string& path);
  /// Opens the loaded program with kernel id `id` (NotFound when it is gone).
  static absl::StatusOr<BpfProgram> FromId(uint32_t id);

  /// Pins the program at `path` (creating missing directories), replacing an existing pin.
  absl::Status Pin(const std::string& path) const;
  /// Attaches the program as cninet's filter for `hook` on `ifname`, replacing an earlier one.
  absl::StatusOr<TcAttachment> Attach(Hook hook, std::string_view ifname) const;
  /// Kernel program id (0 when empty or unknown).
  uint32_t id() const;
  /// True while a program is held.
  bool valid() const { return fd_.valid(); }

 private:
  friend class Datapath;
  explicit BpfProgram(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_TC_H_
