#include "harness.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <numeric>
#include <string>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath_maps.h"
#include "cninet_bpf/nat_path_harness.skel.h"
#include "cninet_bpf/nat_path_steps.skel.h"
#include "harness_abi.h"

namespace cninet::bench {
namespace {

int Err(int ret) { return ret < 0 ? -ret : errno; }

// The fd of the loaded program named `name` that uses map `map_id`, or -1.
absl::StatusOr<int> FindProgram(std::string_view name, uint32_t map_id) {
  uint32_t id = 0;
  while (bpf_prog_get_next_id(id, &id) == 0) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;  // unloaded meanwhile
    uint32_t map_ids[64] = {};
    bpf_prog_info info{};
    info.nr_map_ids = 64;
    info.map_ids = reinterpret_cast<uint64_t>(map_ids);
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && name == info.name) {
      for (uint32_t i = 0; i < std::min<uint32_t>(info.nr_map_ids, 64); ++i) {
        if (map_ids[i] == map_id) return fd;
      }
    }
    close(fd);
  }
  return absl::NotFoundError(StrCat("no loaded program ", name, " using map id ", map_id));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Harness>> Harness::Create(const datapath::Datapath& dp) {
  std::unique_ptr<Harness> h(new Harness());
  h->skel_ = nat_path_harness_bpf__open_and_load();
  if (h->skel_ == nullptr) return ErrnoStatus(errno, "load the benchmark harness");
  const uint32_t ct_id = dp.maps()->conntrack.info().id;
  CNINET_ASSIGN_OR_RETURN(h->from_pod_fd_, FindProgram("cn_from_pod", ct_id));
  CNINET_ASSIGN_OR_RETURN(h->from_world_fd_, FindProgram("cn_from_world", ct_id));
  CNINET_ASSIGN_OR_RETURN(h->to_world_fd_, FindProgram("cn_to_world", ct_id));
  uint32_t slot = NB_SLOT_EMPTY;
  int empty_fd = bpf_program__fd(h->skel_->progs.nb_empty);
  if (int r = bpf_map_update_elem(bpf_map__fd(h->skel_->maps.nb_progs), &slot, &empty_fd, 0); r < 0)
    return ErrnoStatus(Err(r), "harness: install the empty program");
  return h;
}

Harness::~Harness() {
  if (skel_ != nullptr) nat_path_harness_bpf__destroy(skel_);
  for (int fd : {from_pod_fd_, from_world_fd_, to_world_fd_}) {
    if (fd >= 0) close(fd);
  }
}

absl::Status Harness::SetTarget(datapath::Hook hook) {
  int fd = -1;
  switch (hook) {
    case datapath::Hook::kFromPod:
      fd = from_pod_fd_;
      break;
    case datapath::Hook::kFromWorld:
      fd = from_world_fd_;
      break;
    case datapath::Hook::kToWorld:
      fd = to_world_fd_;
      break;
    case datapath::Hook::kToPod:
      return absl::InvalidArgumentError("the harness has no slot for the to-pod program");
  }
  uint32_t slot = NB_SLOT_TARGET;
  if (int r = bpf_map_update_elem(bpf_map__fd(skel_->maps.nb_progs), &slot, &fd, 0); r < 0)
    return ErrnoStatus(Err(r), StrCat("harness: target ", datapath::HookName(hook)));
  return absl::OkStatus();
}

absl::Status Harness::SetTargetFd(int prog_fd) {
  uint32_t slot = NB_SLOT_TARGET;
  if (int r = bpf_map_update_elem(bpf_map__fd(skel_->maps.nb_progs), &slot, &prog_fd, 0); r < 0)
    return ErrnoStatus(Err(r), "harness: set the target program");
  return absl::OkStatus();
}

absl::Status Harness::SetPacket(std::span<const uint8_t> packet,
                                std::optional<SportSequence> sport) {
  if (packet.size() < 14) return absl::InvalidArgumentError("packet shorter than Ethernet");
  nb_template t{};
  t.len = static_cast<uint32_t>(std::min<size_t>(packet.size(), NB_TEMPLATE_MAX));
  std::memcpy(t.bytes, packet.data(), t.len);
  if (sport) {
    // IPv4 or IPv6 (no extension headers) + TCP/UDP: the port follows the IP header.
    const bool v4 = packet.size() >= 14 + 20 + 8 && packet[12] == 0x08 && packet[13] == 0x00;
    const bool v6 = packet.size() >= 14 + 40 + 8 && packet[12] == 0x86 && packet[13] == 0xdd;
    if (!v4 && !v6)
      return absl::InvalidArgumentError("source-port variation needs an IPv4 or IPv6 packet");
    const uint32_t l4 = v4 ? 14 + (packet[14] & 0x0f) * 4u : 14 + 40u;
    const uint8_t proto = v4 ? packet[14 + 9] : packet[14 + 6];
    if (proto != 6 && proto != 17)
      return absl::InvalidArgumentError("source-port variation needs TCP or UDP");
    if (l4 + 18 > t.len) return absl::InvalidArgumentError("L4 header beyond the template");
    if (sport->span == 0 || sport->base + sport->span - 1 > 65535 || sport->stride == 0 ||
        std::gcd(sport->stride, sport->span) != 1)
      return absl::InvalidArgumentError("bad source-port sequence");
    t.vary_sport = 1;
    t.sport_off = l4;
    t.csum_off = l4 + (proto == 6 ? 16 : 6);
    if (proto == 17 && packet[l4 + 6] == 0 && packet[l4 + 7] == 0) t.csum_off = 0;
    std::memcpy(&t.sport_orig, &packet[l4], 2);
    t.sport_base = sport->base;
    t.sport_span = sport->span;
    t.sport_stride = sport->stride;
  }
  uint32_t zero = 0;
  if (int r = bpf_map_update_elem(bpf_map__fd(skel_->maps.nb_template_map), &zero, &t, 0); r < 0)
    return ErrnoStatus(Err(r), "harness: write the template");
  packet_.assign(packet.begin(), packet.end());
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> Harness::Counter() const {
  nb_template t{};
  uint32_t zero = 0;
  if (int r = bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nb_template_map), &zero, &t); r < 0)
    return ErrnoStatus(Err(r), "harness: read the template");
  return t.counter;
}

absl::StatusOr<HarnessRun> Harness::Run(Slot slot, uint32_t repeat) const {
  if (packet_.empty()) return absl::FailedPreconditionError("harness: no packet set");
  std::vector<uint8_t> out(packet_.size() + 256);
  __sk_buff ctx{};
  ctx.cb[0] = slot == Slot::kEmpty ? NB_SLOT_EMPTY : NB_SLOT_TARGET;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet_.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(packet_.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = static_cast<int>(repeat));
  int r = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.nb_harness), &opts);
  if (r < 0) return ErrnoStatus(Err(r), "BPF_PROG_TEST_RUN (harness)");
  HarnessRun res;
  res.retval = static_cast<int>(opts.retval);
  res.duration_ns = opts.duration;
  out.resize(std::min<size_t>(opts.data_size_out, out.size()));
  res.packet = std::move(out);
  return res;
}

absl::StatusOr<std::unique_ptr<Steps>> Steps::Load(const datapath::Datapath& dp) {
  std::unique_ptr<Steps> st(new Steps());
  st->skel_ = nat_path_steps_bpf__open();
  if (st->skel_ == nullptr) return ErrnoStatus(errno, "open the breakdown programs");
  const datapath::DatapathMaps& m = *dp.maps();
  const std::pair<const char*, int> fds[] = {
      {CN_MAP_CONFIG, m.config.raw().fd()},     {CN_MAP_CT, m.conntrack.raw().fd()},
      {CN_MAP_NAT, m.nat.raw().fd()},           {CN_MAP_SERVICES, m.services.raw().fd()},
      {CN_MAP_BACKENDS, m.backends.raw().fd()}, {CN_MAP_LB_TABLES, m.lb_tables.fd()},
      {CN_MAP_AFFINITY, m.affinity.raw().fd()}, {CN_MAP_ENDPOINTS, m.endpoints.raw().fd()},
      {CN_MAP_COUNTERS, m.counters.raw().fd()}};
  for (const auto& [name, fd] : fds) {
    bpf_map* map = bpf_object__find_map_by_name(st->skel_->obj, name);
    if (map == nullptr) return absl::InternalError(StrCat("breakdown object lacks map ", name));
    if (int r = bpf_map__reuse_fd(map, fd); r < 0)
      return ErrnoStatus(Err(r), StrCat("reuse map ", name));
  }
  if (int r = nat_path_steps_bpf__load(st->skel_); r < 0)
    return ErrnoStatus(Err(r), "load the breakdown programs");
  return st;
}

Steps::~Steps() {
  if (skel_ != nullptr) nat_path_steps_bpf__destroy(skel_);
}

absl::StatusOr<int> Steps::ProgramFd(std::string_view name) const {
  bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, std::string(name).c_str());
  if (prog == nullptr) return absl::NotFoundError(StrCat("no breakdown program ", name));
  return bpf_program__fd(prog);
}

}  // namespace cninet::bench
