#include "cninet/datapath/monitor.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "cninet/base/fd.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/counters.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "cninet/datapath/types.h"

namespace cninet::datapath {

namespace {

std::string_view HookName(uint8_t hook) {
  switch (hook) {
    case CN_HOOK_FROM_POD:
      return "from-pod";
    case CN_HOOK_TO_POD:
      return "to-pod";
    case CN_HOOK_FROM_WORLD:
      return "from-world";
    case CN_HOOK_TO_WORLD:
      return "to-world";
    default:
      return "unknown";
  }
}

std::string TcpFlagsText(uint8_t f) {
  static constexpr std::pair<uint8_t, char> kFlags[] = {{0x02, 'S'}, {0x10, '.'}, {0x01, 'F'},
                                                        {0x04, 'R'}, {0x08, 'P'}, {0x20, 'U'}};
  std::string out;
  for (auto [bit, c] : kFlags)
    if (f & bit) out.push_back(c);
  return out;
}

// JSON string literal (the fields are names and addresses; escape what JSON requires).
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

bool HasPorts(uint8_t proto) { return proto == 6 || proto == 17 || proto == 132; }

std::string HostPort(const cni::IPAddress& a, uint16_t port, bool ports) {
  if (!ports) return a.ToString();
  if (a.is_v4()) return StrCat(a.ToString(), ":", port);
  return StrCat("[", a.ToString(), "]:", port);
}

// What the maps alone say about the rule of a policy drop (descriptions live in PolicyTable).
std::string DefaultRuleText(const FlowEvent& e) {
  if (e.reason == CN_R_DROP_POLICY)
    return StrCat("default deny: no NetworkPolicy ingress rule of ", e.dst.ToString(),
                  " admits it (deny slot ", e.rule_slot, ")");
  if (e.reason == CN_R_DROP_ISOLATED)
    return StrCat("namespace isolation of ", e.dst.ToString(), " (deny slot ", e.rule_slot, ")");
  return StrCat("slot ", e.rule_slot);
}

}  // namespace

std::string FlowEvent::TupleText() const {
  bool ports = HasPorts(protocol);
  return StrCat(ProtocolName(protocol), " ", HostPort(src, sport, ports), " -> ",
                HostPort(dst, dport, ports));
}

std::string FlowEvent::Text() const {
  std::string out =
      StrCat(dropped ? "DROP " : "FLOW ", reason_name, " ", TupleText(),
             tcp_flags ? StrCat(" [", TcpFlagsText(tcp_flags), "]") : std::string(), " ", hook,
             " if=", interface.empty() ? StrCat(ifindex) : interface, " len=", length);
  if (rule_slot != 0) out += StrCat(" rule=", Quote(rule));
  return out;
}

std::string FlowEvent::Json() const {
  return StrCat("{\"time_ns\":", timestamp.count(),
                ",\"verdict\":", dropped ? "\"dropped\"" : "\"forwarded\"",
                ",\"type\":", sampled_flow ? "\"flow\"" : "\"drop\"",
                ",\"reason\":", Quote(reason_name), ",\"reason_code\":", reason,
                ",\"hook\":", Quote(hook), ",\"family\":", ipv6 ? "\"ipv6\"" : "\"ipv4\"",
                ",\"protocol\":", Quote(ProtocolName(protocol)), ",\"src\":", Quote(src.ToString()),
                ",\"dst\":", Quote(dst.ToString()), ",\"sport\":", sport, ",\"dport\":", dport,
                ",\"tcp_flags\":", Quote(TcpFlagsText(tcp_flags)), ",\"length\":", length,
                ",\"ifindex\":", ifindex, ",\"interface\":", Quote(interface),
                ",\"rule_slot\":", rule_slot, ",\"rule\":", Quote(rule),
                ",\"tuple\":", Quote(TupleText()), "}");
}

absl::StatusOr<FlowEvent> DecodeFlowEvent(std::span<const uint8_t> record) {
  if (record.size() < sizeof(cn_event))
    return absl::InvalidArgumentError(
        StrCat("monitor record of ", record.size(), " bytes, need ", sizeof(cn_event)));
  cn_event ev;
  std::memcpy(&ev, record.data(), sizeof(ev));
  FlowEvent e;
  e.timestamp = std::chrono::nanoseconds(ev.ts_ns);
  e.dropped = ev.type == CN_EV_DROP;
  e.sampled_flow = ev.type == CN_EV_FLOW;
  e.reason = ev.reason;
  e.reason_name = std::string(ReasonName(ev.reason));
  if (e.reason_name.empty()) e.reason_name = StrCat("reason_", ev.reason);
  e.hook = std::string(HookName(ev.hook));
  e.ipv6 = ev.ipv6 != 0;
  e.src = FromAbiAddr(ev.t.saddr);
  e.dst = FromAbiAddr(ev.t.daddr);
  e.protocol = ev.t.proto;
  e.sport = ntohs(ev.t.sport);
  e.dport = ntohs(ev.t.dport);
  e.tcp_flags = ev.tcp_flags;
  e.length = ev.len;
  e.ifindex = ev.ifindex;
  char name[IF_NAMESIZE] = {};
  if (ev.ifindex != 0 && if_indextoname(ev.ifindex, name) != nullptr) e.interface = name;
  e.rule_slot = ev.rule;
  return e;
}

bool FlowFilter::Matches(const FlowEvent& e) const {
  if (dropped.has_value() && *dropped != e.dropped) return false;
  if (!reasons.empty() && std::find(reasons.begin(), reasons.end(), e.reason_name) == reasons.end())
    return false;
  if (!addresses.empty()) {
    bool hit = std::any_of(addresses.begin(), addresses.end(), [&e](const cni::IPPrefix& p) {
      return p.Contains(e.src) || p.Contains(e.dst);
    });
    if (!hit) return false;
  }
  return true;
}

absl::Status FlowFilter::Validate() const {
  for (const std::string& r : reasons) {
    bool known = false;
    for (uint32_t i = 0; i < CN_R_MAX && !known; ++i) known = ReasonName(i) == r;
    if (!known) return absl::InvalidArgumentError(StrCat("unknown reason: ", r));
  }
  return absl::OkStatus();
}

struct FlowMonitor::Impl {
  UniqueFd map_fd;
  ring_buffer* rb = nullptr;
  FlowMonitorOptions options;
  Callback callback;
  uint64_t read = 0;
  int delivered = 0;
  absl::Status error;

  ~Impl() {
    if (rb != nullptr) ring_buffer__free(rb);
  }

  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    ++self->read;
    auto e = DecodeFlowEvent({static_cast<const uint8_t*>(data), size});
    if (!e.ok()) {
      self->error = e.status();
      return 0;  // skip the record, keep reading
    }
    if (!self->options.filter.Matches(*e)) return 0;
    if (e->rule_slot != 0)
      e->rule =
          self->options.rule_name ? self->options.rule_name(e->rule_slot) : DefaultRuleText(*e);
    ++self->delivered;
    self->callback(*e);
    return 0;
  }
};

FlowMonitor::FlowMonitor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FlowMonitor::~FlowMonitor() = default;

absl::StatusOr<std::unique_ptr<FlowMonitor>> FlowMonitor::Open(const PinLayout& layout,
                                                               FlowMonitorOptions options,
                                                               Callback callback) {
  return Open(layout.MapDir(), std::move(options), std::move(callback));
}

absl::StatusOr<std::unique_ptr<FlowMonitor>> FlowMonitor::Open(const std::string& pin_dir,
                                                               FlowMonitorOptions options,
                                                               Callback callback) {
  std::string path = StrCat(pin_dir, "/", CN_MAP_EVENTS);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      return absl::NotFoundError(
          StrCat(path,
                 " not found: the instance is not loaded, or was pinned by a version "
                 "without the flow monitor (reload it)"));
    return ErrnoStatus(err, StrCat("open ", path));
  }
  return OpenFd(UniqueFd(fd), std::move(options), std::move(callback));
}

absl::StatusOr<std::unique_ptr<FlowMonitor>> FlowMonitor::Open(const Datapath& datapath,
                                                               FlowMonitorOptions options,
                                                               Callback callback) {
  const RawMap& events = datapath.maps()->events;
  if (!events.valid())
    return absl::NotFoundError(
        "the datapath has no monitor ring buffer (pinned by an older "
        "version: reload it)");
  int fd = fcntl(events.fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "dup cn_events");
  return OpenFd(UniqueFd(fd), std::move(options), std::move(callback));
}

absl::StatusOr<std::unique_ptr<FlowMonitor>> FlowMonitor::OpenFd(UniqueFd fd,
                                                                 FlowMonitorOptions options,
                                                                 Callback callback) {
  CNINET_RETURN_IF_ERROR(options.filter.Validate());
  if (!callback) return absl::InvalidArgumentError("FlowMonitor needs a callback");
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return ErrnoStatus(errno, "map info");
  if (info.type != BPF_MAP_TYPE_RINGBUF)
    return absl::FailedPreconditionError(StrCat(CN_MAP_EVENTS, " is not a ring buffer"));
  auto impl = std::make_unique<Impl>();
  impl->map_fd = std::move(fd);
  impl->options = std::move(options);
  impl->callback = std::move(callback);
  impl->rb = ring_buffer__new(impl->map_fd.get(), &Impl::OnRecord, impl.get(), nullptr);
  if (impl->rb == nullptr) return ErrnoStatus(errno, "ring_buffer__new");
  return std::unique_ptr<FlowMonitor>(new FlowMonitor(std::move(impl)));
}

absl::StatusOr<int> FlowMonitor::Poll(std::chrono::milliseconds timeout) {
  impl_->delivered = 0;
  int ms = timeout.count() < 0 ? -1 : static_cast<int>(timeout.count());
  int r = ring_buffer__poll(impl_->rb, ms);
  if (r < 0 && r != -EINTR) return ErrnoStatus(-r, "ring_buffer__poll");
  return impl_->delivered;
}

absl::StatusOr<int> FlowMonitor::Drain() {
  impl_->delivered = 0;
  int r = ring_buffer__consume(impl_->rb);
  if (r < 0 && r != -EINTR) return ErrnoStatus(-r, "ring_buffer__consume");
  return impl_->delivered;
}

uint64_t FlowMonitor::events_read() const { return impl_->read; }

}  // namespace cninet::datapath
