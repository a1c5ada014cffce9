#include "cninet/datapath/datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include "cninet/base/fd.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath_maps.h"
#include "cninet/datapath/types.h"
#include "cninet_bpf/from_pod.skel.h"
#include "cninet_bpf/noop.skel.h"
#include "cninet_bpf/sock.skel.h"
#include "cninet_bpf/to_pod.skel.h"
#include "cninet_bpf/world.skel.h"
#include "socket_lb_internal.h"
#include "tc_internal.h"

namespace cninet::datapath {

// Loaded skeletons (owned).
struct DatapathPrograms {
  from_pod_bpf* pod = nullptr;
  world_bpf* world = nullptr;
  noop_bpf* noop = nullptr;
  to_pod_bpf* to_pod = nullptr;
  sock_bpf* sock = nullptr;
  ~DatapathPrograms() {
    if (sock) sock_bpf__destroy(sock);
    if (to_pod) to_pod_bpf__destroy(to_pod);
    if (noop) noop_bpf__destroy(noop);
    if (world) world_bpf__destroy(world);
    if (pod) from_pod_bpf__destroy(pod);
  }
  int ProgFd(Hook hook) const {
    switch (hook) {
      case Hook::kFromPod:
        return bpf_program__fd(pod->progs.cn_from_pod);
      case Hook::kFromWorld:
        return bpf_program__fd(world->progs.cn_from_world);
      case Hook::kToWorld:
        return bpf_program__fd(world->progs.cn_to_world);
      case Hook::kToPod:
        return bpf_program__fd(to_pod->progs.cn_to_pod);
    }
    return -1;
  }
};

namespace {

int Err(int ret) { return ret < 0 ? -ret : errno; }

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[1024];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  std::string_view msg(buf, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1) : 0);
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  // bpf_tc_hook_create on an interface that already has clsact reports EEXIST this way; expected.
  bool expected = msg.find("Exclusivity flag on") != std::string_view::npos;
  if (level == LIBBPF_WARN && !expected) {
    CNINET_LOG(kWarning, "libbpf: ", msg);
  } else {
    CNINET_LOG(kDebug, "libbpf: ", msg);
  }
  return n;
}

void InstallLibbpfLogger() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(LibbpfPrint); });
}

uint32_t MaxEntriesFor(std::string_view name, const MapSizes& m) {
  if (name == CN_MAP_CT) return m.conntrack;
  if (name == CN_MAP_NAT) return m.nat;
  if (name == CN_MAP_NAT_PORTS) return m.nat / 2;  // at most one block per ingress mapping
  if (name == CN_MAP_SERVICES) return m.services;
  if (name == CN_MAP_BACKENDS) return m.backends;
  if (name == CN_MAP_LB_TABLES) return m.service_slots;
  if (name == CN_MAP_AFFINITY) return m.affinity;
  if (name == CN_MAP_ENDPOINTS) return m.endpoints;
  if (name == CN_MAP_POL_EPS) return m.policy_endpoints;
  if (name == CN_MAP_POL_IDS) return m.policy_identities;
  if (name == CN_MAP_POL_CIDRS) return m.policy_prefixes;
  if (name == CN_MAP_POL_RULES) return m.policy_rules;
  if (name == CN_MAP_POL_STATS) return m.policy_counters;
  if (name == CN_MAP_SOCK_NETNS) return m.sock_netns;
  if (name == CN_MAP_SOCK_REV) return m.sock_reverse;
  if (name == CN_MAP_SOCK_FLOWS) return m.sock_flows;
  if (name == CN_MAP_EVENTS) return m.monitor_ring_bytes;
  return 0;  // keep the object's own size (config, counters)
}

absl::Status ConfigureMaps(bpf_object* obj, const DatapathConfig& cfg, const std::string& pin_dir) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    std::string_view name = bpf_map__name(map);
    if (uint32_t n = MaxEntriesFor(name, cfg.map_sizes); n != 0) {
      if (int r = bpf_map__set_max_entries(map, n); r < 0)
        return ErrnoStatus(Err(r), StrCat("size map ", name));
    }
    if (name == CN_MAP_CT && cfg.conntrack_map_type == ConntrackMapType::kHash) {
      if (int r = bpf_map__set_type(map, BPF_MAP_TYPE_HASH); r < 0)
        return ErrnoStatus(Err(r), "conntrack map type");
    }
    if (!pin_dir.empty() && name != CN_MAP_NAT_SCRATCH) {
      std::string path = StrCat(pin_dir, "/", name);
      if (int r = bpf_map__set_pin_path(map, path.c_str()); r < 0)
        return ErrnoStatus(Err(r), StrCat("pin path ", path));
    }
  }
  return absl::OkStatus();
}

// Makes every map of `obj` use the already created map of the same name in `from`.
absl::Status ReuseMaps(bpf_object* obj, bpf_object* from) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    bpf_map* src = bpf_object__find_map_by_name(from, name);
    if (src == nullptr) continue;
    if (int r = bpf_map__reuse_fd(map, bpf_map__fd(src)); r < 0)
      return ErrnoStatus(Err(r), StrCat("reuse map ", name));
  }
  return absl::OkStatus();
}

template <typename K, typename V>
absl::Status WrapInto(Map<K, V>* out, int fd, std::string_view name) {
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return ErrnoStatus(errno, StrCat("dup ", name));
  auto m = Map<K, V>::Wrap(RawMap::Adopt(dup));
  if (!m.ok()) return Annotate(m.status(), name);
  *out = std::move(*m);
  return absl::OkStatus();
}

// The policy maps (only the to-pod object has them).
constexpr const char* kPolicyMaps[] = {CN_MAP_POL_EPS, CN_MAP_POL_IDS, CN_MAP_POL_CIDRS,
                                       CN_MAP_POL_RULES, CN_MAP_POL_STATS};

// The socket-LB maps (created and pinned by the from-pod object like the shared maps).
constexpr const char* kSockMaps[] = {CN_MAP_SOCK_NETNS, CN_MAP_SOCK_REV, CN_MAP_SOCK_FLOWS};

// Maps a pinned set of an earlier version may lack (opened as invalid members).
bool IsOptionalMap(std::string_view name) {
  for (const char* p : kPolicyMaps)
    if (name == p) return true;
  for (const char* p : kSockMaps)
    if (name == p) return true;
  return name == CN_MAP_NAT_PORTS;
}

// Opens every map through `fd_of`. With `policy_optional`, absent policy maps (NotFound; maps
// pinned by a version without policy) leave those members invalid.
absl::Status OpenMaps(const std::function<absl::StatusOr<int>(std::string_view)>& fd_of,
                      DatapathMaps* m, bool policy_optional = false) {
  auto wrap = [&](auto* out, std::string_view name) -> absl::Status {
    CNINET_ASSIGN_OR_RETURN(int fd, fd_of(name));
    return WrapInto(out, fd, name);
  };
  auto wrap_policy = [&](auto* out, std::string_view name) -> absl::Status {
    absl::StatusOr<int> fd = fd_of(name);
    if (!fd.ok() && policy_optional && absl::IsNotFound(fd.status())) return absl::OkStatus();
    if (!fd.ok()) return fd.status();
    return WrapInto(out, *fd, name);
  };
  CNINET_RETURN_IF_ERROR(wrap_policy(&m->pol_endpoints, CN_MAP_POL_EPS));
  CNINET_RETURN_IF_ERROR(wrap_policy(&m->pol_identities, CN_MAP_POL_IDS));
  CNINET_RETURN_IF_ERROR(wrap_policy(&m->pol_prefixes, CN_MAP_POL_CIDRS));
  CNINET_RETURN_IF_ERROR(wrap_policy(&m->pol_rules, CN_MAP_POL_RULES));
  CNINET_RETURN_IF_ERROR(wrap_policy(&m->pol_counters, CN_MAP_POL_STATS));
  CNINET_RETURN_IF_ERROR(wrap_policy(&m->sock_netns, CN_MAP_SOCK_NETNS));
  CNINET_RETURN_IF_ERROR(wrap_policy(&m->sock_rev, CN_MAP_SOCK_REV));
  CNINET_RETURN_IF_ERROR(wrap_policy(&m->sock_flows, CN_MAP_SOCK_FLOWS));
  CNINET_RETURN_IF_ERROR(wrap(&m->config, CN_MAP_CONFIG));
  CNINET_RETURN_IF_ERROR(wrap(&m->conntrack, CN_MAP_CT));
  CNINET_RETURN_IF_ERROR(wrap(&m->nat, CN_MAP_NAT));
  CNINET_RETURN_IF_ERROR(wrap_policy(&m->nat_ports, CN_MAP_NAT_PORTS));
  CNINET_RETURN_IF_ERROR(wrap(&m->services, CN_MAP_SERVICES));
  CNINET_RETURN_IF_ERROR(wrap(&m->backends, CN_MAP_BACKENDS));
  CNINET_RETURN_IF_ERROR(wrap(&m->affinity, CN_MAP_AFFINITY));
  CNINET_RETURN_IF_ERROR(wrap(&m->endpoints, CN_MAP_ENDPOINTS));
  CNINET_RETURN_IF_ERROR(wrap(&m->counters, CN_MAP_COUNTERS));
  if (absl::StatusOr<int> ev = fd_of(CN_MAP_EVENTS); ev.ok()) {
    int evdup = fcntl(*ev, F_DUPFD_CLOEXEC, 0);
    if (evdup < 0) return ErrnoStatus(errno, "dup events");
    m->events = RawMap::Adopt(evdup);
  } else if (!policy_optional || !absl::IsNotFound(ev.status())) {
    return ev.status();
  }
  CNINET_ASSIGN_OR_RETURN(int lb, fd_of(CN_MAP_LB_TABLES));
  int dup = fcntl(lb, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return ErrnoStatus(errno, "dup lb tables");
  m->lb_tables = RawMap::Adopt(dup);
  return absl::OkStatus();
}

cn_config EncodeConfig(const DatapathConfig& c) {
  cn_config out{};
  out.abi_version = CN_ABI_VERSION;
  for (size_t i = 0; i < c.node_addresses.size() && i < CN_MAX_NODE_ADDRS; ++i)
    out.node_addrs[i] = ToAbiAddr(c.node_addresses[i]);
  for (const cni::IPPrefix& cidr : c.ClusterCidrs()) {
    cni::IPPrefix net = cidr.Masked();
    int fam = net.is_v4() ? CN_FAM_V4 : CN_FAM_V6;
    int len = net.prefix_len() + (net.is_v4() ? 96 : 0);
    out.cluster_prefix_len[fam] = static_cast<uint8_t>(len);
    out.cluster_net[fam] = ToAbiAddr(net.address());
    for (int i = 0; i < len; ++i) out.cluster_mask[fam].a8[i / 8] |= uint8_t(0x80 >> (i % 8));
  }
  out.nat_port_min_h = c.nat_port_min;
  out.nat_port_max_h = c.nat_port_max;
  out.nat_retries = c.nat_retries;
  out.flags = c.masquerade ? CN_CFG_F_MASQUERADE : 0;
  out.tcp_syn_timeout_s = static_cast<uint32_t>(c.timeouts.tcp_syn.count());
  out.tcp_established_timeout_s = static_cast<uint32_t>(c.timeouts.tcp_established.count());
  out.tcp_closing_timeout_s = static_cast<uint32_t>(c.timeouts.tcp_closing.count());
  out.udp_timeout_s = static_cast<uint32_t>(c.timeouts.udp.count());
  out.other_timeout_s = static_cast<uint32_t>(c.timeouts.other.count());
  out.service_mark = c.service_mark;
  out.monitor_sample_h = c.monitor_sample;
  return out;
}

void DecodeConfig(const cn_config& in, DatapathConfig* c) {
  c->node_addresses.clear();
  for (const cn_addr& a : in.node_addrs)
    if (!IsZero(a)) c->node_addresses.push_back(FromAbiAddr(a));
  c->cluster_cidrs.clear();
  for (int fam : {CN_FAM_V4, CN_FAM_V6}) {
    int len = in.cluster_prefix_len[fam];
    if (len == 0) continue;
    cni::IPAddress net = FromAbiAddr(in.cluster_net[fam]);
    c->cluster_cidrs.push_back(cni::IPPrefix(net, net.is_v4() ? len - 96 : len));
  }
  c->cluster_cidr = c->cluster_cidrs.empty() ? cni::IPPrefix() : c->cluster_cidrs.front();
  c->nat_port_min = in.nat_port_min_h;
  c->nat_port_max = in.nat_port_max_h;
  c->nat_retries = in.nat_retries;
  c->masquerade = (in.flags & CN_CFG_F_MASQUERADE) != 0;
  c->timeouts.tcp_syn = std::chrono::seconds(in.tcp_syn_timeout_s);
  c->timeouts.tcp_established = std::chrono::seconds(in.tcp_established_timeout_s);
  c->timeouts.tcp_closing = std::chrono::seconds(in.tcp_closing_timeout_s);
  c->timeouts.udp = std::chrono::seconds(in.udp_timeout_s);
  c->timeouts.other = std::chrono::seconds(in.other_timeout_s);
  c->service_mark = in.service_mark;
  c->monitor_sample = in.monitor_sample_h;
}

// Refuses a pinned map set written with another layout version (a fresh config map, all zeroes,
// passes when `allow_fresh`).
absl::Status CheckAbiVersion(const cn_config& cfg, const std::string& pin_dir, bool allow_fresh) {
  if (cfg.abi_version == CN_ABI_VERSION || (allow_fresh && cfg.abi_version == 0))
    return absl::OkStatus();
  return absl::FailedPreconditionError(
      StrCat("maps pinned in ", pin_dir.empty() ? std::string("(unpinned)") : pin_dir,
             " have map layout version ", cfg.abi_version, ", this datapath uses ", CN_ABI_VERSION,
             ": remove them (cninet-dp unpin, or tear the instance down) and load again"));
}

// The name under /run/netns of the calling thread's network namespace ("" when unnamed).
std::string NamedNetns() {
  struct stat self {};
  if (stat("/proc/thread-self/ns/net", &self) != 0) return "";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
    struct stat st {};
    if (stat(e.path().c_str(), &st) == 0 && st.st_ino == self.st_ino && st.st_dev == self.st_dev)
      return e.path().filename().string();
  }
  return "";
}

// True when the calling thread's network namespace is not init's (unknown counts as not init's:
// in a container /proc/1 may be unreadable).
bool OutsideInitNetns() {
  struct stat self {
  }, init{};
  if (stat("/proc/thread-self/ns/net", &self) != 0) return false;
  if (stat("/proc/1/ns/net", &init) != 0) return true;
  return self.st_ino != init.st_ino;
}

// `root` is not a bpffs. When it is a sysfs directory in a namespace other than init's, this
// process most likely runs under `ip netns exec`, which mounts /sys afresh (without bpffs): say so.
absl::Status NotBpffs(const std::string& root, const struct statfs& st) {
  std::string named = NamedNetns();
  if (static_cast<uint32_t>(st.f_type) == SYSFS_MAGIC && (!named.empty() || OutsideInitNetns())) {
    return absl::FailedPreconditionError(
        StrCat(root,
               " is not a bpf filesystem: this process runs in a network namespace with /sys "
               "mounted afresh, as `ip netns exec` does (that /sys has no bpffs); enter the "
               "namespace with `nsenter --net=/run/netns/",
               named.empty() ? "NAME" : named, "` (or setns) instead, or set pin_maps=false"));
  }
  return absl::FailedPreconditionError(
      StrCat(root, " is not a bpf filesystem; mount one with `mount -t bpf bpf ", root,
             "` or set pin_maps=false"));
}

absl::Status EnsurePinDir(const DatapathConfig& cfg) {
  struct statfs st {};
  if (statfs(cfg.bpffs_root.c_str(), &st) != 0)
    return ErrnoStatus(errno, StrCat("statfs ", cfg.bpffs_root));
  if (static_cast<uint32_t>(st.f_type) != BPF_FS_MAGIC) return NotBpffs(cfg.bpffs_root, st);
  std::error_code ec;
  std::filesystem::create_directories(cfg.PinDir(), ec);
  if (ec) return absl::InternalError(StrCat("create ", cfg.PinDir(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status PinnedMapsMismatch(std::string_view what, int e, const std::string& pin_dir) {
  return absl::FailedPreconditionError(
      StrCat("loading ", what, " failed (", strerror(e), "); maps pinned in ", pin_dir,
             " may have been created with other sizes or types, or by a version with another map "
             "layout (ABI version != ",
             CN_ABI_VERSION,
             "): remove them (cninet-dp unpin, or tear the instance down) "
             "or use the same configuration"));
}

std::string MapTypeName(uint32_t type) {
  const char* n = libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(type));
  return n ? n : StrCat("type ", type);
}

// A pinned map whose layout differs from the programs' only in how the kernel allocates its
// elements (a hash pinned with or without BPF_F_NO_PREALLOC; issue 16 preallocated cn_nat): its
// entries are copied into the map the load creates. Unpinned before the load, re-pinned if it
// fails.
struct PinnedMigration {
  std::string path;
  UniqueFd old_map;
  uint32_t key_size = 0, value_size = 0;
};

// Refuses, before libbpf reuses them, pinned maps whose layout differs from the one `obj` expects
// (type, key/value size, flags, capacity): reading them with this code's structs would misread
// them. The message names the map, the difference and what to do. With `migrations`, a map that
// differs only in BPF_F_NO_PREALLOC is unpinned and returned there, to be copied after the load.
absl::Status CheckPinnedLayouts(bpf_object* obj, std::vector<PinnedMigration>* migrations) {
  std::vector<PinnedMigration> found;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* path = bpf_map__pin_path(map);
    if (path == nullptr) continue;
    UniqueFd fd(bpf_obj_get(path));
    if (!fd.valid()) {
      if (errno == ENOENT) continue;  // created at load
      return ErrnoStatus(errno, StrCat("open pinned map ", path));
    }
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (int r = bpf_obj_get_info_by_fd(fd.get(), &info, &len); r < 0)
      return ErrnoStatus(Err(r), StrCat("inspect pinned map ", path));
    std::string diff;
    auto differ = [&diff](std::string_view what, const std::string& pinned,
                          const std::string& want) {
      if (pinned == want) return;
      diff += StrCat(diff.empty() ? "" : ", ", what, " ", pinned, " (expected ", want, ")");
    };
    differ("type", MapTypeName(info.type), MapTypeName(bpf_map__type(map)));
    differ("key size", StrCat(info.key_size), StrCat(bpf_map__key_size(map)));
    differ("value size", StrCat(info.value_size), StrCat(bpf_map__value_size(map)));
    const bool same_but_flags = diff.empty();
    differ("flags", StrCat("0x", absl::Hex(info.map_flags)),
           StrCat("0x", absl::Hex(bpf_map__map_flags(map))));
    const bool layout = !diff.empty();
    differ("max_entries", StrCat(info.max_entries), StrCat(bpf_map__max_entries(map)));
    if (diff.empty()) continue;
    if (migrations != nullptr && same_but_flags && info.type == BPF_MAP_TYPE_HASH &&
        info.max_entries == bpf_map__max_entries(map) &&
        (info.map_flags ^ bpf_map__map_flags(map)) == BPF_F_NO_PREALLOC) {
      found.push_back({path, std::move(fd), info.key_size, info.value_size});
      continue;
    }
    return absl::FailedPreconditionError(StrCat(
        "pinned map ", path, " does not match this datapath: ", diff, "; ",
        layout ? StrCat("it was created by a version with another map layout (this one: ABI ",
                        CN_ABI_VERSION, "), and is not read with the wrong layout")
               : std::string("it was created with other map sizes"),
        ". Remove the instance's pinned maps (cninet-dp --pin-dir ",
        std::filesystem::path(path).parent_path().string(),
        " unpin: the node's established flows are lost) and load again",
        layout ? "" : ", or load with the sizes it was created with"));
  }
  // Every map passed: only now unpin the ones to migrate (the load pins new ones there).
  for (PinnedMigration& m : found) {
    if (unlink(m.path.c_str()) != 0) return ErrnoStatus(errno, StrCat("unpin ", m.path));
    migrations->push_back(std::move(m));
  }
  return absl::OkStatus();
}

// Puts the migrated maps back at their pins (the load failed).
void RestorePins(std::vector<PinnedMigration>* migrations) {
  for (PinnedMigration& m : *migrations) {
    unlink(m.path.c_str());  // a pin the failed load may have made
    if (bpf_obj_pin(m.old_map.get(), m.path.c_str()) != 0)
      CNINET_LOG(kWarning, "could not restore pinned map ", m.path, ": ", strerror(errno));
  }
  migrations->clear();
}

// Copies the entries of each migrated map into the map the load created at its pin.
absl::Status CopyMigrated(std::vector<PinnedMigration>* migrations) {
  for (PinnedMigration& m : *migrations) {
    UniqueFd to(bpf_obj_get(m.path.c_str()));
    if (!to.valid()) return ErrnoStatus(errno, StrCat("open new map ", m.path));
    std::vector<uint8_t> key(m.key_size), next(m.key_size), value(m.value_size);
    size_t copied = 0;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(m.old_map.get(), prev, next.data()) == 0) {
      key = next;
      prev = key.data();
      if (bpf_map_lookup_elem(m.old_map.get(), key.data(), value.data()) != 0) continue;
      if (bpf_map_update_elem(to.get(), key.data(), value.data(), BPF_NOEXIST) != 0)
        return ErrnoStatus(errno, StrCat("migrate ", m.path, " after ", copied, " entries"));
      ++copied;
    }
    CNINET_LOG(kInfo, "migrated pinned map ", m.path, " (", copied, " entries) to this layout");
  }
  migrations->clear();
  return absl::OkStatus();
}

// Loads the from-pod object: it creates (or reuses, when pinned) the shared maps.
absl::Status LoadFromPod(DatapathPrograms* progs, const DatapathConfig& config,
                         const std::string& pin_dir) {
  progs->pod = from_pod_bpf__open();
  if (progs->pod == nullptr) return ErrnoStatus(errno, "open from_pod object");
  CNINET_RETURN_IF_ERROR(ConfigureMaps(progs->pod->obj, config, pin_dir));
  std::vector<PinnedMigration> migrations;
  CNINET_RETURN_IF_ERROR(CheckPinnedLayouts(progs->pod->obj, &migrations));
  if (int r = from_pod_bpf__load(progs->pod); r < 0) {
    RestorePins(&migrations);
    if (!pin_dir.empty() && Err(r) == EINVAL)
      return PinnedMapsMismatch("the datapath", Err(r), pin_dir);
    return ErrnoStatus(Err(r), "load from_pod programs");
  }
  // The programs still attached use the old maps until Attach() replaces them: a mapping they
  // make meanwhile is not copied (a new SNAT flow of those milliseconds is reset).
  return CopyMigrated(&migrations);
}

// Loads the world and noop objects on the from-pod object's maps.
absl::Status LoadWorldAndNoop(DatapathPrograms* progs, const DatapathConfig& config) {
  progs->world = world_bpf__open();
  if (progs->world == nullptr) return ErrnoStatus(errno, "open world object");
  CNINET_RETURN_IF_ERROR(ConfigureMaps(progs->world->obj, config, ""));
  CNINET_RETURN_IF_ERROR(ReuseMaps(progs->world->obj, progs->pod->obj));
  if (int r = world_bpf__load(progs->world); r < 0)
    return ErrnoStatus(Err(r), "load world programs");
  progs->noop = noop_bpf__open_and_load();
  if (progs->noop == nullptr) return ErrnoStatus(errno, "load noop program");
  return absl::OkStatus();
}

// Loads to-pod: it shares the from-pod object's maps and owns the policy maps (pinned like the
// others).
absl::Status LoadToPod(DatapathPrograms* progs, const DatapathConfig& config,
                       const std::string& pin_dir) {
  progs->to_pod = to_pod_bpf__open();
  if (progs->to_pod == nullptr) return ErrnoStatus(errno, "open to_pod object");
  CNINET_RETURN_IF_ERROR(ConfigureMaps(progs->to_pod->obj, config, ""));
  CNINET_RETURN_IF_ERROR(ReuseMaps(progs->to_pod->obj, progs->pod->obj));
  if (!pin_dir.empty()) {
    for (const char* name : kPolicyMaps) {
      bpf_map* m = bpf_object__find_map_by_name(progs->to_pod->obj, name);
      if (m == nullptr) return absl::InternalError(StrCat("to_pod object lacks map ", name));
      std::string path = StrCat(pin_dir, "/", name);
      if (int r = bpf_map__set_pin_path(m, path.c_str()); r < 0)
        return ErrnoStatus(Err(r), StrCat("pin path ", path));
    }
  }
  CNINET_RETURN_IF_ERROR(CheckPinnedLayouts(progs->to_pod->obj, nullptr));
  if (int r = to_pod_bpf__load(progs->to_pod); r < 0) {
    if (!pin_dir.empty() && Err(r) == EINVAL)
      return PinnedMapsMismatch("the to-pod program", Err(r), pin_dir);
    return ErrnoStatus(Err(r), "load to_pod program");
  }
  return absl::OkStatus();
}

// Loads the socket-LB object on the maps of the from-pod and to-pod objects.
absl::Status LoadSock(DatapathPrograms* progs, const DatapathConfig& config) {
  progs->sock = sock_bpf__open();
  if (progs->sock == nullptr) return ErrnoStatus(errno, "open sock object");
  CNINET_RETURN_IF_ERROR(ConfigureMaps(progs->sock->obj, config, ""));
  CNINET_RETURN_IF_ERROR(ReuseMaps(progs->sock->obj, progs->pod->obj));
  CNINET_RETURN_IF_ERROR(ReuseMaps(progs->sock->obj, progs->to_pod->obj));
  if (int r = sock_bpf__load(progs->sock); r < 0)
    return ErrnoStatus(Err(r), "load socket LB programs");
  return absl::OkStatus();
}

// Every map of the loaded objects.
absl::StatusOr<std::shared_ptr<DatapathMaps>> MapsOfObjects(const DatapathPrograms& progs) {
  auto maps = std::make_shared<DatapathMaps>();
  bpf_object* objs[] = {progs.pod->obj, progs.to_pod->obj};
  CNINET_RETURN_IF_ERROR(OpenMaps(
      [&objs](std::string_view name) -> absl::StatusOr<int> {
        std::string n(name);
        for (bpf_object* obj : objs) {
          if (bpf_map* m = bpf_object__find_map_by_name(obj, n.c_str())) return bpf_map__fd(m);
        }
        return absl::InternalError(StrCat("BPF objects lack map ", name));
      },
      maps.get()));
  return maps;
}

}  // namespace

// ---- Datapath ----

Datapath::Datapath() = default;
Datapath::~Datapath() = default;

absl::StatusOr<std::unique_ptr<Datapath>> Datapath::Create(const DatapathConfig& config) {
  CNINET_RETURN_IF_ERROR(config.Validate());
  InstallLibbpfLogger();
  std::unique_ptr<Datapath> dp(new Datapath());
  dp->config_ = config;
  if (config.pin_maps) {
    CNINET_RETURN_IF_ERROR(EnsurePinDir(config));
    dp->pin_dir_ = config.PinDir();
  }
  auto progs = std::make_unique<DatapathPrograms>();
  CNINET_RETURN_IF_ERROR(LoadFromPod(progs.get(), config, dp->pin_dir_));
  CNINET_RETURN_IF_ERROR(LoadWorldAndNoop(progs.get(), config));
  CNINET_RETURN_IF_ERROR(LoadToPod(progs.get(), config, dp->pin_dir_));
  CNINET_RETURN_IF_ERROR(LoadSock(progs.get(), config));
  CNINET_ASSIGN_OR_RETURN(dp->maps_, MapsOfObjects(*progs));
  dp->programs_ = std::move(progs);
  if (auto old = dp->maps_->config.Lookup(0); old.ok())
    CNINET_RETURN_IF_ERROR(CheckAbiVersion(*old, dp->pin_dir_, /*allow_fresh=*/true));
  cn_config cfg = EncodeConfig(config);
  CNINET_RETURN_IF_ERROR(Annotate(dp->maps_->config.Update(0, cfg), "write config map"));
  CNINET_RETURN_IF_ERROR(dp->InitTables());
  // A pinned set may hold mappings the index lacks (pinned by an earlier version): rebuild it.
  // The index is a hint of the SNAT allocator; failing to rebuild it costs retries, not flows.
  if (!dp->pin_dir_.empty()) {
    if (absl::Status s = dp->nat_->SyncPortIndex(); !s.ok())
      CNINET_LOG(kWarning, "SNAT port index not rebuilt: ", s.ToString());
  }
  CNINET_LOG(
      kInfo, "datapath loaded",
      dp->pin_dir_.empty() ? std::string(" (unpinned)") : StrCat(" pinned in ", dp->pin_dir_));
  return dp;
}

absl::StatusOr<std::unique_ptr<Datapath>> Datapath::OpenPinned(const PinLayout& layout) {
  return OpenPinned(layout.MapDir());
}

absl::StatusOr<std::unique_ptr<Datapath>> Datapath::OpenPinned(const std::string& pin_dir) {
  std::unique_ptr<Datapath> dp(new Datapath());
  dp->pin_dir_ = pin_dir;
  auto maps = std::make_shared<DatapathMaps>();
  std::vector<int> opened;
  absl::Status s = OpenMaps(
      [&](std::string_view name) -> absl::StatusOr<int> {
        std::string path = StrCat(pin_dir, "/", name);
        int fd = bpf_obj_get(path.c_str());
        if (fd < 0) {
          if (Err(fd) == ENOENT && IsOptionalMap(name))
            return absl::NotFoundError(StrCat("no pinned map ", path));
          return ErrnoStatus(Err(fd), StrCat("open pinned map ", path));
        }
        opened.push_back(fd);
        return fd;
      },
      maps.get(), /*policy_optional=*/true);
  for (int fd : opened) close(fd);
  CNINET_RETURN_IF_ERROR(s);
  dp->maps_ = std::move(maps);
  CNINET_ASSIGN_OR_RETURN(cn_config cfg, dp->maps_->config.Lookup(0));
  CNINET_RETURN_IF_ERROR(CheckAbiVersion(cfg, pin_dir, /*allow_fresh=*/false));
  DecodeConfig(cfg, &dp->config_);
  std::filesystem::path p(pin_dir);
  if (!p.has_filename()) p = p.parent_path();  // "DIR/" names DIR
  dp->config_.instance = p.filename().string();
  dp->config_.bpffs_root = p.parent_path().parent_path().string();
  auto mi = [](const auto& m) { return m.info().max_entries; };
  dp->config_.map_sizes.conntrack = mi(dp->maps_->conntrack);
  dp->config_.map_sizes.nat = mi(dp->maps_->nat);
  dp->config_.map_sizes.services = mi(dp->maps_->services);
  dp->config_.map_sizes.backends = mi(dp->maps_->backends);
  dp->config_.map_sizes.affinity = mi(dp->maps_->affinity);
  dp->config_.map_sizes.endpoints = mi(dp->maps_->endpoints);
  if (dp->maps_->pol_rules.raw().valid()) {
    dp->config_.map_sizes.policy_endpoints = mi(dp->maps_->pol_endpoints);
    dp->config_.map_sizes.policy_identities = mi(dp->maps_->pol_identities);
    dp->config_.map_sizes.policy_prefixes = mi(dp->maps_->pol_prefixes);
    dp->config_.map_sizes.policy_rules = mi(dp->maps_->pol_rules);
    dp->config_.map_sizes.policy_counters = mi(dp->maps_->pol_counters);
  }
  if (dp->maps_->sock_netns.raw().valid()) {
    dp->config_.map_sizes.sock_netns = mi(dp->maps_->sock_netns);
    dp->config_.map_sizes.sock_reverse = mi(dp->maps_->sock_rev);
    dp->config_.map_sizes.sock_flows = mi(dp->maps_->sock_flows);
  }
  if (dp->maps_->events.valid()) {
    CNINET_ASSIGN_OR_RETURN(MapInfo ev, dp->maps_->events.Info());
    dp->config_.map_sizes.monitor_ring_bytes = ev.max_entries;
  }
  CNINET_ASSIGN_OR_RETURN(MapInfo lb, dp->maps_->lb_tables.Info());
  dp->config_.map_sizes.service_slots = lb.max_entries;
  dp->config_.conntrack_map_type = dp->maps_->conntrack.info().type == BPF_MAP_TYPE_HASH
                                       ? ConntrackMapType::kHash
                                       : ConntrackMapType::kLruHash;
  CNINET_RETURN_IF_ERROR(dp->InitTables());
  return dp;
}

absl::Status Datapath::InitTables() {
  CNINET_ASSIGN_OR_RETURN(services_, ServiceTable::Load(maps_));
  conntrack_ = std::make_unique<ConntrackTable>(maps_);
  nat_ = std::make_unique<NatTable>(maps_);
  endpoints_ = std::make_unique<EndpointTable>(maps_);
  counters_ = std::make_unique<Counters>(maps_);
  CNINET_ASSIGN_OR_RETURN(policy_, PolicyTable::Load(maps_));
  return absl::OkStatus();
}

absl::StatusOr<TcAttachment> Datapath::Attach(Hook hook, std::string_view ifname) {
  if (!programs_)
    return absl::FailedPreconditionError("datapath opened without programs (OpenPinned)");
  return AttachProgramFd(programs_->ProgFd(hook), hook, ifname);
}

absl::StatusOr<BpfProgram> Datapath::Program(Hook hook) const {
  if (!programs_)
    return absl::FailedPreconditionError("datapath opened without programs (OpenPinned)");
  UniqueFd fd(fcntl(programs_->ProgFd(hook), F_DUPFD_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, StrCat("dup ", HookName(hook), " program"));
  return BpfProgram(std::move(fd));
}

absl::StatusOr<std::string> Datapath::PinProgram(Hook hook) const {
  if (pin_dir_.empty())
    return absl::FailedPreconditionError("datapath created with pin_maps=false");
  CNINET_ASSIGN_OR_RETURN(BpfProgram prog, Program(hook));
  std::string path = layout().ProgramPath(HookPinName(hook));
  CNINET_RETURN_IF_ERROR(prog.Pin(path));
  return path;
}

absl::StatusOr<PodAttachment> Datapath::AttachPod(std::string_view host_ifname) {
  PodAttachment out;
  CNINET_ASSIGN_OR_RETURN(out.from_pod, Attach(Hook::kFromPod, host_ifname));
  CNINET_ASSIGN_OR_RETURN(out.to_pod, Attach(Hook::kToPod, host_ifname));
  return out;
}

namespace {

// BPF_PROG_TEST_RUN of the program `prog_fd` (named `name` in errors) on `packet`.
absl::StatusOr<TestRunResult> RunTest(int prog_fd, std::string_view name,
                                      std::span<const uint8_t> packet, uint32_t repeat,
                                      uint32_t ifindex, uint32_t ingress_ifindex, uint32_t mark) {
  std::vector<uint8_t> out(packet.size() + 256);
  __sk_buff ctx{};
  __sk_buff ctx_out{};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(packet.size()),
              .data_size_out = static_cast<uint32_t>(out.size()),
              .repeat = static_cast<int>(repeat));
  if (ifindex != 0 || ingress_ifindex != 0 || mark != 0) {
    ctx.ifindex = ifindex;
    ctx.ingress_ifindex = ingress_ifindex;
    ctx.mark = mark;
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof(ctx);
    opts.ctx_out = &ctx_out;
    opts.ctx_size_out = sizeof(ctx_out);
  }
  int r = bpf_prog_test_run_opts(prog_fd, &opts);
  if (r < 0) return ErrnoStatus(Err(r), StrCat("BPF_PROG_TEST_RUN ", name));
  TestRunResult res;
  res.retval = static_cast<int>(opts.retval);
  out.resize(std::min<size_t>(opts.data_size_out, out.size()));
  res.packet = std::move(out);
  res.duration_ns = opts.duration;
  res.mark = ctx_out.mark;
  return res;
}

}  // namespace

absl::StatusOr<TestRunResult> Datapath::TestRun(Hook hook, std::span<const uint8_t> packet,
                                                uint32_t repeat, uint32_t ifindex,
                                                uint32_t ingress_ifindex, uint32_t mark) const {
  if (!programs_)
    return absl::FailedPreconditionError("datapath opened without programs (OpenPinned)");
  return RunTest(programs_->ProgFd(hook), HookName(hook), packet, repeat, ifindex, ingress_ifindex,
                 mark);
}

absl::StatusOr<TestRunResult> Datapath::TestRunFloor(std::span<const uint8_t> packet,
                                                     uint32_t repeat) const {
  if (!programs_)
    return absl::FailedPreconditionError("datapath opened without programs (OpenPinned)");
  return RunTest(bpf_program__fd(programs_->noop->progs.cn_noop), "the empty program", packet,
                 repeat, 0, 0, 0);
}

absl::StatusOr<ProgramStats> Datapath::Stats(Hook hook) const {
  if (!programs_)
    return absl::FailedPreconditionError("datapath opened without programs (OpenPinned)");
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  int r = bpf_obj_get_info_by_fd(programs_->ProgFd(hook), &info, &len);
  if (r < 0) return ErrnoStatus(Err(r), "bpf prog info");
  ProgramStats s;
  s.name = info.name;
  s.verified_insns = info.verified_insns;
  s.xlated_bytes = info.xlated_prog_len;
  s.jited_bytes = info.jited_prog_len;
  return s;
}

absl::Status Datapath::SetMonitorSample(uint16_t one_in_n) {
  CNINET_ASSIGN_OR_RETURN(cn_config cfg, maps_->config.Lookup(0));
  cfg.monitor_sample_h = one_in_n;
  CNINET_RETURN_IF_ERROR(Annotate(maps_->config.Update(0, cfg), "write config map"));
  config_.monitor_sample = one_in_n;
  return absl::OkStatus();
}

absl::Status Datapath::Unpin() {
  if (pin_dir_.empty()) return absl::OkStatus();
  // Socket-LB links first: unpinning them detaches the programs from their cgroups.
  CNINET_RETURN_IF_ERROR(DetachAllSocketLb(layout()));
  for (const char* name :
       {CN_MAP_CONFIG, CN_MAP_CT, CN_MAP_NAT, CN_MAP_NAT_PORTS, CN_MAP_SERVICES, CN_MAP_BACKENDS,
        CN_MAP_LB_TABLES, CN_MAP_AFFINITY, CN_MAP_ENDPOINTS, CN_MAP_COUNTERS, CN_MAP_POL_EPS,
        CN_MAP_POL_IDS, CN_MAP_POL_CIDRS, CN_MAP_POL_RULES, CN_MAP_POL_STATS, CN_MAP_SOCK_NETNS,
        CN_MAP_SOCK_REV, CN_MAP_SOCK_FLOWS, CN_MAP_EVENTS}) {
    std::string path = StrCat(pin_dir_, "/", name);
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
      return ErrnoStatus(errno, StrCat("unlink ", path));
  }
  const PinLayout pins = PinLayout::For(config_.bpffs_root, config_.instance);
  for (Hook hook : {Hook::kFromPod, Hook::kFromWorld, Hook::kToWorld, Hook::kToPod}) {
    std::string path = pins.ProgramPath(HookPinName(hook));
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
      return ErrnoStatus(errno, StrCat("unlink ", path));
  }
  for (const std::string& dir : {pins.ProgramDir(), pin_dir_}) {
    if (rmdir(dir.c_str()) != 0 && errno != ENOENT)
      return ErrnoStatus(errno, StrCat("rmdir ", dir));
  }
  // The shared directory goes once no instance is left (another instance keeps it non-empty).
  if (rmdir(pins.Root().c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
    return ErrnoStatus(errno, StrCat("rmdir ", pins.Root()));
  return absl::OkStatus();
}

// ---- Socket-level load balancing ----

absl::StatusOr<SocketLbAttachment> Datapath::AttachSocketLb(const std::string& cgroup_path) {
  if (!programs_)
    return absl::FailedPreconditionError("datapath opened without programs (OpenPinned)");
  const auto& p = programs_->sock->progs;
  std::vector<SockProgram> progs = {
      {bpf_program__fd(p.cn_sock_connect4), BPF_CGROUP_INET4_CONNECT, "connect4"},
      {bpf_program__fd(p.cn_sock_connect6), BPF_CGROUP_INET6_CONNECT, "connect6"},
      {bpf_program__fd(p.cn_sock_sendmsg4), BPF_CGROUP_UDP4_SENDMSG, "sendmsg4"},
      {bpf_program__fd(p.cn_sock_sendmsg6), BPF_CGROUP_UDP6_SENDMSG, "sendmsg6"},
      {bpf_program__fd(p.cn_sock_recvmsg4), BPF_CGROUP_UDP4_RECVMSG, "recvmsg4"},
      {bpf_program__fd(p.cn_sock_recvmsg6), BPF_CGROUP_UDP6_RECVMSG, "recvmsg6"},
      {bpf_program__fd(p.cn_sock_getpeername4), BPF_CGROUP_INET4_GETPEERNAME, "getpeername4"},
      {bpf_program__fd(p.cn_sock_getpeername6), BPF_CGROUP_INET6_GETPEERNAME, "getpeername6"},
      {bpf_program__fd(p.cn_sock_ops), BPF_CGROUP_SOCK_OPS, "sock_ops"},
  };
  std::string pin_dir;
  if (!pin_dir_.empty()) {
    CNINET_ASSIGN_OR_RETURN(uint64_t id, CgroupId(cgroup_path));
    pin_dir = layout().SocketLbLinkDir(id);
  }
  return AttachSockPrograms(progs, cgroup_path, pin_dir);
}

absl::StatusOr<uint64_t> Datapath::ServeNetnsForSocketLb(const std::string& netns_path) {
  if (!maps_->sock_netns.raw().valid())
    return absl::FailedPreconditionError("pinned maps have no socket LB maps (older version)");
  CNINET_ASSIGN_OR_RETURN(uint64_t cookie, NetnsCookie(netns_path));
  cn_sock_netns_entry e{};
  CNINET_RETURN_IF_ERROR(Annotate(maps_->sock_netns.Update(cookie, e), "serve netns"));
  return cookie;
}

absl::Status Datapath::StopServingNetnsForSocketLb(const std::string& netns_path) {
  if (!maps_->sock_netns.raw().valid()) return absl::OkStatus();
  CNINET_ASSIGN_OR_RETURN(uint64_t cookie, NetnsCookie(netns_path));
  return StopServingSocketLbCookie(cookie);
}

absl::Status Datapath::StopServingSocketLbCookie(uint64_t netns_cookie) {
  if (!maps_->sock_netns.raw().valid()) return absl::OkStatus();
  absl::Status s = maps_->sock_netns.Delete(netns_cookie);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint64_t>> Datapath::SocketLbNetns() const {
  std::vector<uint64_t> out;
  if (!maps_->sock_netns.raw().valid()) return out;
  CNINET_ASSIGN_OR_RETURN(auto entries, maps_->sock_netns.Dump());
  for (const auto& [k, v] : entries) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<ProgramStats>> Datapath::SocketLbStats() const {
  if (!programs_)
    return absl::FailedPreconditionError("datapath opened without programs (OpenPinned)");
  std::vector<ProgramStats> out;
  bpf_program* prog;
  bpf_object__for_each_program(prog, programs_->sock->obj) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    int r = bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
    if (r < 0) return ErrnoStatus(Err(r), "bpf prog info");
    ProgramStats s;
    s.name = bpf_program__name(prog);  // the kernel's name is cut at 15 characters
    s.verified_insns = info.verified_insns;
    s.xlated_bytes = info.xlated_prog_len;
    s.jited_bytes = info.jited_prog_len;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace cninet::datapath
