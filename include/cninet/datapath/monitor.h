/// @file
/// FlowMonitor: reads the datapath's event ring buffer (cn_events, pinned with the other maps):
/// every dropped packet with its reason (and the policy rule slot of a policy drop) and, when
/// DatapathConfig::monitor_sample is set, sampled new flows. Like `cilium monitor`; the engine
/// of `cninet-dp monitor`.
#ifndef CNINET_DATAPATH_MONITOR_H_
#define CNINET_DATAPATH_MONITOR_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/base/fd.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/pins.h"

namespace cninet::datapath {

class Datapath;

/// One decoded event of the ring buffer.
struct FlowEvent {
  std::chrono::nanoseconds timestamp{0};  ///< CLOCK_MONOTONIC time the program saw the packet.
  bool dropped = false;                   ///< Verdict: dropped (every drop is sent) or forwarded.
  bool sampled_flow = false;              ///< A sampled new flow (not a drop).
  uint32_t reason = 0;                    ///< Verdict reason (abi.h enum cn_reason).
  std::string reason_name;                ///< Its counter name, e.g. "drop_policy" (ReasonName()).
  std::string hook;                       ///< "from-pod", "to-pod", "from-world" or "to-world".
  bool ipv6 = false;                      ///< Address family of the packet.
  cni::IPAddress src;                     ///< Source address.
  cni::IPAddress dst;                     ///< Destination address.
  uint16_t sport = 0;                     ///< Source port (host order; ICMP echo: id).
  uint16_t dport = 0;                     ///< Destination port (host order).
  uint8_t protocol = 0;                   ///< IP protocol number.
  uint8_t tcp_flags = 0;                  ///< TCP flags of the packet (0 for other protocols).
  uint32_t length = 0;                    ///< Packet length in bytes.
  uint32_t ifindex = 0;                   ///< Interface the program ran on.
  std::string interface;  ///< Its name in the reader's network namespace ("" if unknown).
  /// Policy slot (cn_pol_stats index): the endpoint's deny slot for a policy drop. 0 = none.
  uint32_t rule_slot = 0;
  /// Rule description from FlowMonitorOptions::rule_name, else what the maps say (e.g. "default
  /// deny: no NetworkPolicy ingress rule of ADDR admits it (deny slot N)").
  std::string rule;

  /// "proto src:sport -> dst:dport" ([v6]:port for IPv6; ICMP without ports).
  std::string TupleText() const;
  /// One readable line (no newline).
  std::string Text() const;
  /// One JSON object on one line (no newline).
  std::string Json() const;
};

/// Decodes one cn_event record (InvalidArgument when too short). Names the interface and the
/// reason; `rule` is left to the caller.
absl::StatusOr<FlowEvent> DecodeFlowEvent(std::span<const uint8_t> record);

/// Which events a FlowMonitor delivers; empty fields match everything.
struct FlowFilter {
  /// Either address of the tuple in one of these prefixes (a pod: its /32 or /128).
  std::vector<cni::IPPrefix> addresses;
  std::optional<bool> dropped;       ///< true: drops only; false: forwarded flows only.
  std::vector<std::string> reasons;  ///< Reason names (ReasonName()), e.g. "drop_policy".

  /// True when `e` passes every set field.
  bool Matches(const FlowEvent& e) const;
  /// InvalidArgument naming an unknown reason.
  absl::Status Validate() const;
};

/// Options of FlowMonitor::Open.
struct FlowMonitorOptions {
  FlowFilter filter;  ///< Events delivered.
  /// Describes a policy slot (e.g. from PolicyTable::ReadCounters()); unset: the endpoint's
  /// default deny or isolation, with the slot.
  std::function<std::string(uint32_t slot)> rule_name;
};

/// Reader of one instance's event ring buffer. Not thread-safe; one reader per ring buffer
/// (several readers would each see only part of the events).
class FlowMonitor {
 public:
  /// Called for each event that passes the filter.
  using Callback = std::function<void(const FlowEvent&)>;

  /// Opens `layout`'s pinned cn_events (NotFound when the instance has none: not loaded, or
  /// pinned by a version without the monitor).
  static absl::StatusOr<std::unique_ptr<FlowMonitor>> Open(const PinLayout& layout,
                                                           FlowMonitorOptions options,
                                                           Callback callback);
  /// Same, on the ring buffer of a datapath of this process (pinned or not).
  static absl::StatusOr<std::unique_ptr<FlowMonitor>> Open(const Datapath& datapath,
                                                           FlowMonitorOptions options,
                                                           Callback callback);
  /// Same, from the instance's map directory BPFFS/cninet/INSTANCE.
  static absl::StatusOr<std::unique_ptr<FlowMonitor>> Open(const std::string& pin_dir,
                                                           FlowMonitorOptions options,
                                                           Callback callback);
  ~FlowMonitor();
  FlowMonitor(const FlowMonitor&) = delete;
  FlowMonitor& operator=(const FlowMonitor&) = delete;

  /// Waits up to `timeout` for events and delivers them; returns how many were delivered (EINTR:
  /// 0). A negative timeout waits until an event arrives.
  absl::StatusOr<int> Poll(std::chrono::milliseconds timeout);
  /// Delivers what is queued without waiting.
  absl::StatusOr<int> Drain();
  /// Events read (delivered or filtered out) since Open.
  uint64_t events_read() const;

 private:
  struct Impl;
  explicit FlowMonitor(std::unique_ptr<Impl> impl);
  static absl::StatusOr<std::unique_ptr<FlowMonitor>> OpenFd(UniqueFd fd,
                                                             FlowMonitorOptions options,
                                                             Callback callback);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_MONITOR_H_
