/// @file
/// The datapath: loads the embedded BPF programs, creates or reuses the pinned maps, attaches the
/// programs to interfaces (RAII) and gives access to the tables.
///
/// Network namespaces: Attach() resolves the interface and talks to tc in the *calling thread's*
/// network namespace; a TcAttachment remembers that namespace and detaches there, whatever thread
/// destroys it. Maps are not tied to a namespace.
#ifndef CNINET_DATAPATH_DATAPATH_H_
#define CNINET_DATAPATH_DATAPATH_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/datapath/config.h"
#include "cninet/datapath/conntrack.h"
#include "cninet/datapath/counters.h"
#include "cninet/datapath/endpoints.h"
#include "cninet/datapath/nat.h"
#include "cninet/datapath/pins.h"
#include "cninet/datapath/policy_table.h"
#include "cninet/datapath/service_table.h"
#include "cninet/datapath/socket_lb.h"
#include "cninet/datapath/tc.h"

namespace cninet::datapath {

class DatapathMaps;
struct DatapathPrograms;

/// Outcome of one BPF_PROG_TEST_RUN.
struct TestRunResult {
  int retval = 0;  ///< tc verdict (TC_ACT_OK = 0, TC_ACT_SHOT = 2, TC_ACT_REDIRECT = 7)
  std::vector<uint8_t> packet;  ///< the packet after the program
  uint32_t duration_ns = 0;     ///< kernel's average per run
  /// skb->mark after the run; read only when a context was passed (ifindex, ingress_ifindex or
  /// mark not 0), else 0.
  uint32_t mark = 0;
};

/// Kernel facts about a loaded program.
struct ProgramStats {
  std::string name;             ///< Program name (e.g. "cn_from_pod").
  uint32_t verified_insns = 0;  ///< instructions the verifier processed (limit: 1,000,000)
  uint32_t xlated_bytes = 0;    ///< size after verification
  uint32_t jited_bytes = 0;     ///< native code size
};

/// A loaded datapath instance.
class Datapath {
 public:
  /// Validates `config`, loads the programs, creates (or reuses, when pinned) the maps and writes
  /// the configuration map.
  static absl::StatusOr<std::unique_ptr<Datapath>> Create(const DatapathConfig& config);
  /// Opens the maps pinned in `pin_dir` (PinLayout::MapDir()) without loading programs
  /// (inspection tools, a second control process). Attach() and TestRun() fail with
  /// FailedPrecondition.
  static absl::StatusOr<std::unique_ptr<Datapath>> OpenPinned(const std::string& pin_dir);
  /// OpenPinned() of `layout`'s MapDir().
  static absl::StatusOr<std::unique_ptr<Datapath>> OpenPinned(const PinLayout& layout);
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  /// Attaches `hook`'s program to `ifname` in the calling thread's network namespace, replacing
  /// a previous cninet filter of the same hook there.
  absl::StatusOr<TcAttachment> Attach(Hook hook, std::string_view ifname);
  /// `hook`'s loaded program, held open (to pin it or attach it elsewhere).
  absl::StatusOr<BpfProgram> Program(Hook hook) const;
  /// Pins `hook`'s program at layout().ProgramPath(HookPinName(hook)) so a later process attaches
  /// it with BpfProgram::OpenPinned() without loading it again; returns that path.
  absl::StatusOr<std::string> PinProgram(Hook hook) const;
  /// Runs `hook`'s program once (or `repeat` times) on `packet` through BPF_PROG_TEST_RUN;
  /// `ifindex` (0: loopback) is the skb's device, `ingress_ifindex` its skb_iif (0 = sent by
  /// the host itself, which kToPod never filters), `mark` its skb->mark.
  absl::StatusOr<TestRunResult> TestRun(Hook hook, std::span<const uint8_t> packet,
                                        uint32_t repeat = 1, uint32_t ifindex = 0,
                                        uint32_t ingress_ifindex = 0, uint32_t mark = 0) const;
  /// Runs the empty tc program (returns TC_ACT_OK, touches nothing) `repeat` times on `packet`:
  /// the cost floor that measurements of the datapath's programs are divided by (bench/nat_path
  /// reports every case as a multiple of it, measured in the same run).
  absl::StatusOr<TestRunResult> TestRunFloor(std::span<const uint8_t> packet,
                                             uint32_t repeat = 1) const;
  /// Attaches the per-pod programs (kFromPod on ingress, kToPod on egress) to the host side of a
  /// pod's veth, in the calling thread's network namespace. A drop-in for
  /// Attach(Hook::kFromPod, ifname) that also enforces the pod's ingress policy.
  absl::StatusOr<PodAttachment> AttachPod(std::string_view host_ifname);

  /// Attaches the socket-LB programs (bpf/sock.bpf.c) to the cgroup v2 directory `cgroup_path`
  /// (bpf_links, pinned under layout().SocketLbLinkDir() when maps are pinned; links an earlier
  /// process pinned there are updated in place). Only sockets of the network namespaces given
  /// to ServeNetnsForSocketLb() are translated.
  absl::StatusOr<SocketLbAttachment> AttachSocketLb(const std::string& cgroup_path);
  /// Lets socket LB translate the sockets of the network namespace at `netns_path`
  /// (/run/netns/NAME, /proc/PID/ns/net); returns its netns cookie.
  absl::StatusOr<uint64_t> ServeNetnsForSocketLb(const std::string& netns_path);
  /// Stops translating the sockets of the network namespace at `netns_path` (absent: OK).
  absl::Status StopServingNetnsForSocketLb(const std::string& netns_path);
  /// The same by the cookie ServeNetnsForSocketLb() returned, for a namespace that may be gone
  /// (a CNI DEL after the pod's namespace was deleted); absent: OK.
  absl::Status StopServingSocketLbCookie(uint64_t netns_cookie);
  /// Netns cookies whose sockets socket LB translates.
  absl::StatusOr<std::vector<uint64_t>> SocketLbNetns() const;
  /// Verifier and size statistics of the socket-LB programs.
  absl::StatusOr<std::vector<ProgramStats>> SocketLbStats() const;

  /// Verifier and size statistics of `hook`'s program.
  absl::StatusOr<ProgramStats> Stats(Hook hook) const;

  /// The configuration in force (for OpenPinned: decoded from the pinned config map).
  const DatapathConfig& config() const { return config_; }
  /// Directory of the pinned maps ("" when not pinned).
  const std::string& pin_dir() const { return pin_dir_; }
  /// The instance's pin paths (from config()).
  PinLayout layout() const { return PinLayout::For(config_.bpffs_root, config_.instance); }
  /// Sets the flow monitor's sampling of new flows (DatapathConfig::monitor_sample; 0 = drops
  /// only) in the running datapath; programs see it on their next packet.
  absl::Status SetMonitorSample(uint16_t one_in_n);
  /// Removes the pinned socket-LB links (detaching them), the pinned maps and programs, the
  /// instance directory with its programs/ directory, and the shared cninet directory once empty
  /// (flows are lost once no one uses the maps).
  absl::Status Unpin();

  /// Services (frontends, backends, LB tables).
  ServiceTable& services() { return *services_; }
  /// Conntrack entries.
  ConntrackTable& conntrack() { return *conntrack_; }
  /// SNAT mappings.
  NatTable& nat() { return *nat_; }
  /// Local pods.
  EndpointTable& endpoints() { return *endpoints_; }
  /// Verdict and event counters.
  Counters& counters() { return *counters_; }
  /// Ingress policy of local pods (NetworkPolicy, isolated namespaces).
  PolicyTable& policy() { return *policy_; }
  /// The raw maps (for benchmarks and tools that need direct map access).
  const std::shared_ptr<DatapathMaps>& maps() const { return maps_; }

 private:
  Datapath();
  absl::Status InitTables();
  DatapathConfig config_;
  std::string pin_dir_;
  std::shared_ptr<DatapathMaps> maps_;
  std::unique_ptr<DatapathPrograms> programs_;
  std::unique_ptr<ServiceTable> services_;
  std::unique_ptr<ConntrackTable> conntrack_;
  std::unique_ptr<NatTable> nat_;
  std::unique_ptr<EndpointTable> endpoints_;
  std::unique_ptr<Counters> counters_;
  std::unique_ptr<PolicyTable> policy_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_DATAPATH_H_
