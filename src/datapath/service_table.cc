#include "cninet/datapath/service_table.h"

#include <bpf/bpf.h>
#include <endian.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <tuple>

#include "abi_ops.h"
#include "cninet/base/fd.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath_maps.h"
#include "cninet/datapath/maglev.h"

// Ordering of frontend keys for std::set/sort (ABI structs live in the global namespace).
static bool operator<(const cn_svc_key& a, const cn_svc_key& b) {
  return std::tie(a.addr, a.port, a.proto) < std::tie(b.addr, b.port, b.proto);
}

namespace cninet::datapath {

std::optional<cni::IPAddress::Family> EffectiveFamily(const Service& svc) {
  if (!svc.backends.empty()) return svc.backends.front().address.family();
  for (const auto& f : svc.frontends)
    if (f.kind != FrontendKind::kNodePort) return f.address.family();
  return svc.family;
}

namespace {

std::optional<cni::IPAddress::Family> ServiceFamily(const Service& svc) {
  return EffectiveFamily(svc);
}

// True when node address slot `a` is in use and of the service's family (any when none).
bool NodeAddrServes(const cn_addr& a, std::optional<cni::IPAddress::Family> family) {
  if (IsZero(a)) return false;
  return !family || FromAbiAddr(a).family() == *family;
}

constexpr uint32_t kSlotBits = 12;
// Batches at least this large plan on several threads.
constexpr size_t kParallelBatch = 256;

uint32_t BackendId(uint32_t svc_id, uint32_t slot) { return (svc_id << kSlotBits) | slot; }
uint32_t ServiceOfBackend(uint32_t backend_id) { return backend_id >> kSlotBits; }

// A mapping of an LB table's elements (8-byte aligned: element i's u32 is at byte 8·i).
class TableMapping {
 public:
  ~TableMapping() {
    if (mem_ != MAP_FAILED) munmap(mem_, len_);
  }
  absl::Status Map(int fd, size_t elements) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    len_ = (elements * 8 + page - 1) / page * page;
    mem_ = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem_ == MAP_FAILED) return ErrnoStatus(errno, "mmap LB table");
    return absl::OkStatus();
  }
  uint32_t* Slot(size_t i) {
    return reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(mem_) + i * 8);
  }

 private:
  void* mem_ = MAP_FAILED;
  size_t len_ = 0;
};

// Writes [n, ids...] into a fresh mmapable array (not yet visible to any program).
absl::Status FillTable(int fd, const std::vector<uint32_t>& ids) {
  TableMapping t;
  CNINET_RETURN_IF_ERROR(t.Map(fd, ids.size() + 1));
  *t.Slot(0) = static_cast<uint32_t>(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) *t.Slot(i + 1) = ids[i];
  return absl::OkStatus();
}

// Rewrites the live table `fd` of the same size in place: each changed slot gets one aligned 4-byte
// store (single-copy atomic), so a concurrent program reads either the slot's old or its new
// backend id, both of which exist in cn_backends until DeleteRemovedBackends runs after this.
// Returns the number of slots changed.
absl::StatusOr<size_t> RewriteTable(int fd, const std::vector<uint32_t>& ids) {
  TableMapping t;
  CNINET_RETURN_IF_ERROR(t.Map(fd, ids.size() + 1));
  if (__atomic_load_n(t.Slot(0), __ATOMIC_RELAXED) != ids.size())
    return absl::InternalError("LB table size changed under us");
  size_t changed = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    uint32_t* slot = t.Slot(i + 1);
    if (__atomic_load_n(slot, __ATOMIC_RELAXED) == ids[i]) continue;
    __atomic_store_n(slot, ids[i], __ATOMIC_RELEASE);
    ++changed;
  }
  // The removed backends' deletion (a syscall) follows; make every store visible before it.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return changed;
}

// The table a service uses: explicit M, or MaglevSizeFor its backends (stable near `current`).
uint32_t EffectiveMaglevSize(const Service& svc, uint32_t current) {
  return svc.maglev_size != kMaglevAutoSize ? svc.maglev_size
                                            : MaglevSizeFor(svc.backends.size(), current);
}

}  // namespace

std::string Backend::ToString() const { return HostPort(address, port); }

std::string_view ToString(FrontendKind kind) {
  switch (kind) {
    case FrontendKind::kClusterIP:
      return "clusterip";
    case FrontendKind::kExternalIP:
      return "externalip";
    case FrontendKind::kNodePort:
      return "nodeport";
  }
  return "?";
}

std::string ToString(const Frontend& f) {
  if (f.kind == FrontendKind::kNodePort)
    return StrCat("nodeport:", f.port, "/", ToString(f.protocol));
  return StrCat(ToString(f.kind), ":", HostPort(f.address, f.port), "/", ToString(f.protocol));
}

std::string LbDescription(const Service& s) {
  std::string lb = s.algorithm != LbAlgorithm::kMaglev ? std::string("random")
                   : s.maglev_size == kMaglevAutoSize  ? std::string("maglev/auto")
                                                       : StrCat("maglev/", s.maglev_size);
  if (s.affinity_timeout.count() > 0) lb += StrCat(" affinity=", s.affinity_timeout.count(), "s");
  if (!s.reject_without_backends) lb += " drop-when-empty";
  return lb;
}

std::string ToString(const Service& s) {
  std::vector<std::string> fe, be;
  for (const auto& f : s.frontends) fe.push_back(ToString(f));
  for (const auto& b : s.backends) be.push_back(b.ToString());
  return StrCat(s.id, " ", StrJoin(fe, ","), " ", LbDescription(s), " -> ",
                be.empty()
                    ? std::string(s.reject_without_backends ? "(none: reject)" : "(none: drop)")
                    : StrJoin(be, ","));
}

std::ostream& operator<<(std::ostream& os, FrontendKind kind) { return os << ToString(kind); }
std::ostream& operator<<(std::ostream& os, const Frontend& f) { return os << ToString(f); }
std::ostream& operator<<(std::ostream& os, const Backend& b) { return os << b.ToString(); }
std::ostream& operator<<(std::ostream& os, const Service& s) { return os << ToString(s); }

struct SvcState {
  Service svc;
  std::vector<uint32_t> backend_ids;  // parallel to svc.backends
  std::vector<cn_svc_key> keys;
  uint32_t table_size = 0;  // n of the programmed LB table (M for Maglev with backends)
  bool has_table = false;   // cn_lb_tables holds an inner table for the service
};

struct ServiceTable::State {
  std::map<uint32_t, SvcState> services;
  ServiceTable::Stats stats;
};

ServiceTable::ServiceTable(std::shared_ptr<DatapathMaps> maps)
    : maps_(std::move(maps)), state_(new State) {}
ServiceTable::~ServiceTable() = default;

absl::StatusOr<std::unique_ptr<ServiceTable>> ServiceTable::Load(
    std::shared_ptr<DatapathMaps> maps) {
  std::unique_ptr<ServiceTable> t(new ServiceTable(std::move(maps)));
  CNINET_RETURN_IF_ERROR(Annotate(t->Reload(), "load services from the maps"));
  return t;
}

absl::Status ServiceTable::Reload() {
  state_->services.clear();
  CNINET_ASSIGN_OR_RETURN(auto frontends, maps_->services.Dump());
  std::sort(frontends.begin(), frontends.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [k, v] : frontends) {
    SvcState& st = state_->services[v.svc_id];
    st.svc.id = v.svc_id;
    st.svc.affinity_timeout = std::chrono::seconds(v.affinity_timeout_s);
    st.svc.algorithm = (v.flags & CN_SVC_F_MAGLEV) ? LbAlgorithm::kMaglev : LbAlgorithm::kRandom;
    st.svc.reject_without_backends = !(v.flags & CN_SVC_F_DROP_EMPTY);
    // Explicit sizes (and entries of releases before automatic sizing) read back from the table.
    st.svc.maglev_size = (v.flags & CN_SVC_F_MAGLEV_AUTO) ? kMaglevAutoSize : kMaglevDefaultSize;
    st.keys.push_back(k);
    Frontend f;
    f.port = be16toh(k.port);
    f.protocol = static_cast<Protocol>(k.proto);
    if (v.flags & CN_SVC_F_NODEPORT) {
      f.kind = FrontendKind::kNodePort;
      f.address = cni::IPAddress();
      if (std::find(st.svc.frontends.begin(), st.svc.frontends.end(), f) != st.svc.frontends.end())
        continue;
    } else {
      f.kind = (v.flags & CN_SVC_F_EXTERNAL) ? FrontendKind::kExternalIP : FrontendKind::kClusterIP;
      f.address = FromAbiAddr(k.addr);
    }
    st.svc.frontends.push_back(f);
  }
  CNINET_ASSIGN_OR_RETURN(auto backends, maps_->backends.Dump());
  std::sort(backends.begin(), backends.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [id, b] : backends) {
    auto it = state_->services.find(ServiceOfBackend(id));
    if (it == state_->services.end()) continue;  // orphan of an interrupted update; ignored
    it->second.svc.backends.push_back(Backend{FromAbiAddr(b.addr), be16toh(b.port)});
    it->second.backend_ids.push_back(id);
  }
  // A service with neither backends nor addressed frontends: the family its NodePort keys have
  // (when they are all of one).
  for (auto& [id, st] : state_->services) {
    if (EffectiveFamily(st.svc) || st.keys.empty()) continue;
    std::optional<cni::IPAddress::Family> fam;
    bool one = true;
    for (const cn_svc_key& k : st.keys) {
      cni::IPAddress::Family f = FromAbiAddr(k.addr).family();
      if (fam && *fam != f) one = false;
      fam = f;
    }
    if (one) st.svc.family = fam;
  }
  for (auto& [id, st] : state_->services) {
    uint32_t key = id, inner_id = 0;
    if (!maps_->lb_tables.Lookup(&key, &inner_id).ok()) continue;
    UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
    if (!inner) continue;
    uint32_t zero = 0, size = 0;
    if (bpf_map_lookup_elem(inner.get(), &zero, &size) != 0) continue;
    st.table_size = size;
    st.has_table = true;
    if (st.svc.algorithm == LbAlgorithm::kMaglev && size > 0 &&
        st.svc.maglev_size != kMaglevAutoSize)
      st.svc.maglev_size = size;
  }
  return absl::OkStatus();
}

absl::Status ServiceTable::Validate(const Service& svc, uint32_t service_slots) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("service ", svc.id, ": ", why));
  };
  if (svc.id == 0 || svc.id > kMaxServiceId || svc.id >= service_slots)
    return bad(StrCat("id must be 1..", std::min(kMaxServiceId, service_slots - 1)));
  if (svc.frontends.empty()) return bad("needs at least one frontend");
  std::optional<cni::IPAddress::Family> family = ServiceFamily(svc);
  if (svc.family && family != svc.family)
    return bad("family differs from its backends' and frontends' address family");
  for (const auto& f : svc.frontends) {
    if (f.kind != FrontendKind::kNodePort && f.address.family() != *family)
      return bad("frontends and backends must be of one address family");
    bool icmp = f.protocol == Protocol::kIcmp || f.protocol == Protocol::kIcmpV6;
    if (icmp ? f.port != 0 : f.port == 0)
      return bad("TCP/UDP frontends need a port, ICMP frontends port 0");
  }
  if (svc.backends.size() > kMaxBackendsPerService)
    return bad(StrCat("at most ", kMaxBackendsPerService, " backends"));
  std::set<std::pair<cni::IPAddress, uint16_t>> seen;
  for (const auto& b : svc.backends) {
    if (b.address.IsUnspecified()) return bad("backends must be unicast");
    if (b.address.family() != *family)
      return bad("frontends and backends must be of one address family");
    if (!seen.insert({b.address, b.port}).second)
      return bad(StrCat("duplicate backend ", b.ToString()));
  }
  if (svc.algorithm == LbAlgorithm::kMaglev && svc.maglev_size != kMaglevAutoSize &&
      (svc.maglev_size < kMaglevMinSize || svc.maglev_size > kMaglevMaxSize ||
       !IsPrime(svc.maglev_size)))
    return bad(StrCat("maglev_size must be 0 (auto) or a prime in [", kMaglevMinSize, ", ",
                      kMaglevMaxSize, "]"));
  if (svc.affinity_timeout.count() < 0 || svc.affinity_timeout.count() > 86400)
    return bad("affinity_timeout must be 0..86400 s");
  return absl::OkStatus();
}

namespace {

// What one upsert writes, computed before touching the maps.
struct Plan {
  const Service* svc = nullptr;
  std::vector<uint32_t> ids;      // parallel to svc->backends
  std::vector<uint32_t> new_ids;  // ids that need a backends-map entry
  std::vector<cn_backend> new_backends;
  std::vector<uint32_t> removed_ids;
  std::vector<Backend> removed_backends;
  std::vector<uint32_t> table;  // backend ids, the LB table
  std::vector<cn_svc_key> keys;
  cn_svc_entry entry{};
  std::vector<cn_svc_key> stale_keys;
  bool in_place = false;  // same table size as the live table: rewrite it through its mmap
  RawMap fresh;           // else a new inner table, filled, waiting for the outer swap
};

// Backend ids: kept for backends the service already had, a free slot for new ones; the old
// backends that are not kept become removed_ids.
absl::Status PlanBackendIds(const Service& svc, const SvcState* old, Plan* p) {
  std::set<uint32_t> used;
  std::map<std::pair<cni::IPAddress, uint16_t>, uint32_t> old_ids;
  if (old) {
    for (size_t i = 0; i < old->svc.backends.size(); ++i) {
      old_ids[{old->svc.backends[i].address, old->svc.backends[i].port}] = old->backend_ids[i];
      // Never hand a removed backend's slot to a new backend in the same update: the removed
      // id is deleted after the switch.
      used.insert(old->backend_ids[i] & ((1u << kSlotBits) - 1));
    }
  }
  p->ids.resize(svc.backends.size(), 0);
  for (size_t i = 0; i < svc.backends.size(); ++i) {
    auto it = old_ids.find({svc.backends[i].address, svc.backends[i].port});
    if (it != old_ids.end()) {
      p->ids[i] = it->second;
      old_ids.erase(it);
    }
  }
  uint32_t slot = 1;
  for (size_t i = 0; i < svc.backends.size(); ++i) {
    if (p->ids[i] != 0) continue;
    while (used.count(slot)) ++slot;
    if (slot >= (1u << kSlotBits)) {
      return absl::ResourceExhaustedError(
          StrCat("service ", svc.id, ": no free backend slot (replace fewer backends per update)"));
    }
    used.insert(slot);
    p->ids[i] = BackendId(svc.id, slot);
    p->new_ids.push_back(p->ids[i]);
    cn_backend b{};
    b.addr = ToAbiAddr(svc.backends[i].address);
    b.port = htobe16(svc.backends[i].port);
    p->new_backends.push_back(b);
  }
  for (const auto& [b, id] : old_ids) {
    p->removed_ids.push_back(id);
    p->removed_backends.push_back(Backend{b.first, b.second});
  }
  return absl::OkStatus();
}

// The LB table: Maglev over the backends, or the backend ids themselves (random). The live
// table is rewritten in place when the size stays (Maglev: same M; random: same backend count).
absl::Status PlanTable(const Service& svc, const SvcState* old, Plan* p) {
  if (svc.algorithm != LbAlgorithm::kMaglev || svc.backends.empty()) {
    p->table = p->ids;
  } else {
    uint32_t current = old && old->svc.algorithm == LbAlgorithm::kMaglev ? old->table_size : 0;
    uint32_t m = EffectiveMaglevSize(svc, current);
    thread_local std::vector<std::string> names;
    thread_local std::vector<uint32_t> idx;
    names.resize(svc.backends.size());
    for (size_t i = 0; i < svc.backends.size(); ++i) names[i] = svc.backends[i].ToString();
    CNINET_RETURN_IF_ERROR(BuildMaglevTable(names, m, &idx));
    p->table.resize(idx.size());
    for (size_t i = 0; i < idx.size(); ++i) p->table[i] = p->ids[idx[i]];
  }
  p->in_place = old && old->has_table && old->table_size == p->table.size();
  return absl::OkStatus();
}

// A new inner table holding the plan's table (invisible until SwitchTables).
absl::Status CreateTable(Plan* p) {
  uint32_t n = static_cast<uint32_t>(p->table.size());
  LIBBPF_OPTS(bpf_map_create_opts, copts, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "cn_lb_table", 4, 4, n + 1, &copts);
  if (fd < 0) return ErrnoStatus(errno, StrCat("create LB table of service ", p->svc->id));
  p->fresh = RawMap::Adopt(fd);
  return Annotate(FillTable(fd, p->table), StrCat("fill LB table of service ", p->svc->id));
}

// The frontend keys (a NodePort frontend on every node address) and the keys that went away.
void PlanFrontends(const Service& svc, const SvcState* old, const cn_config& cfg, Plan* p) {
  std::optional<cni::IPAddress::Family> family = ServiceFamily(svc);
  p->entry.svc_id = svc.id;
  p->entry.affinity_timeout_s = static_cast<uint32_t>(svc.affinity_timeout.count());
  p->entry.flags = svc.algorithm == LbAlgorithm::kMaglev ? CN_SVC_F_MAGLEV : 0;
  if (!svc.reject_without_backends) p->entry.flags |= CN_SVC_F_DROP_EMPTY;
  if (svc.algorithm == LbAlgorithm::kMaglev && svc.maglev_size == kMaglevAutoSize)
    p->entry.flags |= CN_SVC_F_MAGLEV_AUTO;
  std::set<cn_svc_key> keys;
  for (const auto& f : svc.frontends) {
    cn_svc_key k{};
    k.port = htobe16(f.port);
    k.proto = ToNumber(f.protocol);
    if (f.kind == FrontendKind::kNodePort) {
      for (const cn_addr& a : cfg.node_addrs) {
        if (!NodeAddrServes(a, family)) continue;
        k.addr = a;
        keys.insert(k);
      }
    } else {
      k.addr = ToAbiAddr(f.address);
      keys.insert(k);
    }
  }
  p->keys.assign(keys.begin(), keys.end());
  if (old) {
    for (const auto& k : old->keys)
      if (!keys.count(k)) p->stale_keys.push_back(k);
  }
}

// The frontend entry of key `k`: the plan's entry with the NodePort/external flags of the
// frontends that produce `k`.
cn_svc_entry FrontendEntry(const Plan& p, const cn_svc_key& k, const cn_config& cfg) {
  cn_svc_entry e = p.entry;
  bool nodeport = false, external = false;
  for (const auto& f : p.svc->frontends) {
    if (htobe16(f.port) != k.port || ToNumber(f.protocol) != k.proto) continue;
    if (f.kind == FrontendKind::kNodePort) {
      for (const cn_addr& a : cfg.node_addrs) nodeport |= (!IsZero(a) && a == k.addr);
    } else if (ToAbiAddr(f.address) == k.addr) {
      external |= f.kind == FrontendKind::kExternalIP;
    }
  }
  if (nodeport) e.flags |= CN_SVC_F_NODEPORT | CN_SVC_F_EXTERNAL;
  if (external) e.flags |= CN_SVC_F_EXTERNAL;
  return e;
}

// Step 1: new backends first, so a table never points at a missing backend.
absl::Status WriteNewBackends(DatapathMaps& maps, const std::vector<Plan>& plans) {
  std::vector<uint32_t> bkeys;
  std::vector<cn_backend> bvals;
  for (const auto& p : plans) {
    bkeys.insert(bkeys.end(), p.new_ids.begin(), p.new_ids.end());
    bvals.insert(bvals.end(), p.new_backends.begin(), p.new_backends.end());
  }
  return Annotate(maps.backends.UpdateBatch(bkeys, bvals), "write backends");
}

// Step 2a: tables of unchanged size rewritten in place (no grace period). A table that is not
// what the state says (missing, other size) gets a fresh one instead.
absl::Status RewriteInPlace(DatapathMaps& maps, std::vector<Plan>& plans,
                            ServiceTable::Stats* stats) {
  for (auto& p : plans) {
    if (!p.in_place) continue;
    uint32_t key = p.svc->id, inner_id = 0;
    UniqueFd inner;
    if (maps.lb_tables.Lookup(&key, &inner_id).ok())
      inner = UniqueFd(bpf_map_get_fd_by_id(inner_id));
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (!inner || bpf_obj_get_info_by_fd(inner.get(), &info, &len) != 0 ||
        info.max_entries != p.table.size() + 1 || !(info.map_flags & BPF_F_MMAPABLE)) {
      p.in_place = false;
      CNINET_RETURN_IF_ERROR(CreateTable(&p));
      continue;
    }
    absl::StatusOr<size_t> changed = RewriteTable(inner.get(), p.table);
    if (!changed.ok())
      return Annotate(changed.status(), StrCat("rewrite LB table of service ", key));
    ++stats->tables_rewritten;
    stats->slots_rewritten += *changed;
  }
  return absl::OkStatus();
}

// Step 2b: the fresh tables all swapped in with one batch update of the outer array (each outer
// update waits for an RCU grace period; a batch waits once).
absl::Status SwitchTables(DatapathMaps& maps, std::vector<Plan>& plans,
                          ServiceTable::Stats* stats) {
  std::vector<uint32_t> slots;
  std::vector<uint32_t> fds;
  for (const auto& p : plans) {
    if (!p.fresh.valid()) continue;
    slots.push_back(p.svc->id);
    fds.push_back(static_cast<uint32_t>(p.fresh.fd()));
  }
  if (slots.empty()) return absl::OkStatus();
  CNINET_RETURN_IF_ERROR(
      Annotate(maps.lb_tables.UpdateBatch(slots.data(), fds.data(),
                                          static_cast<uint32_t>(slots.size()), 4, 4),
               "switch LB tables"));
  stats->tables_swapped += slots.size();
  // The outer map holds the tables now; our descriptors can go.
  for (auto& p : plans) p.fresh = RawMap();
  return absl::OkStatus();
}

// Runs fn(begin, end) over [0, n) in up to `workers` contiguous chunks on their own threads.
absl::Status ParallelFor(size_t n, size_t workers,
                         const std::function<absl::Status(size_t, size_t)>& fn) {
  workers = std::max<size_t>(1, std::min(workers, n));
  if (workers == 1) return fn(0, n);
  std::vector<absl::Status> results(workers);
  std::vector<std::thread> threads;
  const size_t chunk = (n + workers - 1) / workers;
  for (size_t w = 1; w < workers; ++w) {
    auto run = [&, w] { results[w] = fn(w * chunk, std::min(n, (w + 1) * chunk)); };
    try {
      threads.emplace_back(run);
    } catch (const std::system_error&) {
      run();  // no thread to be had: this chunk runs here
    }
  }
  results[0] = fn(0, std::min(n, chunk));
  for (auto& t : threads) t.join();
  for (auto& r : results) CNINET_RETURN_IF_ERROR(r);
  return absl::OkStatus();
}

// True when frontend key `k` still leads to service `id`. A key one service gives up may belong
// to another one by now: a NodePort-only service without backends has no address family, so it
// holds the node addresses of both families until its backends pick one, and a dual-stack
// Service's other family took those keys meanwhile. Only the owner's keys are deleted.
bool OwnedBy(DatapathMaps& maps, const cn_svc_key& k, uint32_t id) {
  absl::StatusOr<cn_svc_entry> e = maps.services.Lookup(k);
  return e.ok() && e->svc_id == id;
}

// Step 3: frontends (new or changed), then the frontends that went away.
absl::Status WriteFrontends(DatapathMaps& maps, const std::vector<Plan>& plans,
                            const cn_config& cfg) {
  std::vector<cn_svc_key> fkeys;
  std::vector<cn_svc_entry> fvals;
  std::vector<std::pair<cn_svc_key, uint32_t>> stale;  // key, the service that gave it up
  for (const auto& p : plans) {
    for (const auto& k : p.keys) {
      fkeys.push_back(k);
      fvals.push_back(FrontendEntry(p, k, cfg));
    }
    for (const auto& k : p.stale_keys) stale.emplace_back(k, p.svc->id);
  }
  CNINET_RETURN_IF_ERROR(Annotate(maps.services.UpdateBatch(fkeys, fvals), "write frontends"));
  std::vector<cn_svc_key> gone;
  for (const auto& [k, id] : stale) {
    if (OwnedBy(maps, k, id)) gone.push_back(k);
  }
  return maps.services.DeleteBatch(gone).status();
}

// Step 4: backends no longer referenced by the new tables, and their affinity entries.
absl::Status DeleteRemovedBackends(DatapathMaps& maps, const std::vector<Plan>& plans) {
  std::vector<uint32_t> removed;
  for (const auto& p : plans)
    removed.insert(removed.end(), p.removed_ids.begin(), p.removed_ids.end());
  if (removed.empty()) return absl::OkStatus();
  CNINET_RETURN_IF_ERROR(maps.backends.DeleteBatch(removed).status());
  std::set<uint32_t> gone(removed.begin(), removed.end());
  std::vector<cn_affinity_key> aff;
  CNINET_RETURN_IF_ERROR(
      maps.affinity.ForEach([&](const cn_affinity_key& k, const cn_affinity_entry& e) {
        if (gone.count(e.backend_id)) aff.push_back(k);
        return true;
      }));
  return maps.affinity.DeleteBatch(aff).status();
}

}  // namespace

absl::Status ServiceTable::Upsert(const Service& svc, const UpsertOptions& options) {
  std::vector<Service> one{svc};
  auto old = state_->services.find(svc.id);
  std::vector<Backend> removed;
  if (old != state_->services.end()) {
    for (const auto& b : old->second.svc.backends)
      if (std::find(svc.backends.begin(), svc.backends.end(), b) == svc.backends.end())
        removed.push_back(b);
  }
  CNINET_RETURN_IF_ERROR(UpsertBatch(one));
  if (options.flush_conntrack_of_removed_backends && !removed.empty()) {
    CNINET_ASSIGN_OR_RETURN(size_t n, FlushConntrack(svc.id, removed));
    CNINET_LOG(kInfo, "service ", svc.id, ": flushed ", n,
               " conntrack entries of removed backends");
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> ServiceTable::FlushConntrack(uint32_t id,
                                                    std::span<const Backend> backends) {
  std::set<std::pair<cn_addr, uint16_t>> gone;
  for (const auto& b : backends) gone.insert({ToAbiAddr(b.address), htobe16(b.port)});
  // Forward entries carry the backend in nat_*, reply entries in the key's source.
  auto matches = [&](const cn_addr& a, uint16_t port) {
    return gone.empty() || gone.count({a, port}) || gone.count({a, 0});
  };
  std::vector<cn_tuple> del;
  CNINET_RETURN_IF_ERROR(maps_->conntrack.ForEach([&](const cn_tuple& k, const cn_ct_entry& e) {
    if (e.svc_id != id || !(e.flags & CN_CT_F_SERVICE)) return true;
    bool match =
        (e.flags & CN_CT_F_REPLY) ? matches(k.saddr, k.sport) : matches(e.nat_addr, e.nat_port);
    if (match) del.push_back(k);
    return true;
  }));
  return maps_->conntrack.DeleteBatch(del);
}

absl::Status ServiceTable::UpsertBatch(std::span<const Service> services) {
  CNINET_ASSIGN_OR_RETURN(cn_config cfg, maps_->config.Lookup(0));
  CNINET_ASSIGN_OR_RETURN(MapInfo lb, maps_->lb_tables.Info());
  std::vector<Plan> plans(services.size());
  // Planning (Maglev builds) and filling fresh tables are independent per service and read the
  // state only, so large batches spread them over the cores; the map writes below stay ordered.
  const size_t workers =
      services.size() >= kParallelBatch ? std::max(1u, std::thread::hardware_concurrency()) : 1;
  auto plan_one = [&](size_t i) -> absl::Status {
    const Service& svc = services[i];
    CNINET_RETURN_IF_ERROR(Validate(svc, lb.max_entries));
    Plan& p = plans[i];
    p.svc = &svc;
    const SvcState* old = nullptr;
    if (auto it = state_->services.find(svc.id); it != state_->services.end()) old = &it->second;
    CNINET_RETURN_IF_ERROR(PlanBackendIds(svc, old, &p));
    CNINET_RETURN_IF_ERROR(PlanTable(svc, old, &p));
    PlanFrontends(svc, old, cfg, &p);
    return p.in_place ? absl::OkStatus() : CreateTable(&p);
  };
  auto plan_range = [&](size_t b, size_t e) {
    absl::Status st;
    for (size_t i = b; i < e && st.ok(); ++i) st = plan_one(i);
    return st;
  };
  CNINET_RETURN_IF_ERROR(ParallelFor(services.size(), std::min<size_t>(workers, 4), plan_range));
  CNINET_RETURN_IF_ERROR(WriteNewBackends(*maps_, plans));
  CNINET_RETURN_IF_ERROR(RewriteInPlace(*maps_, plans, &state_->stats));
  CNINET_RETURN_IF_ERROR(SwitchTables(*maps_, plans, &state_->stats));
  CNINET_RETURN_IF_ERROR(WriteFrontends(*maps_, plans, cfg));
  CNINET_RETURN_IF_ERROR(DeleteRemovedBackends(*maps_, plans));
  for (auto& p : plans) {
    SvcState& st = state_->services[p.svc->id];
    st.svc = *p.svc;
    st.backend_ids = p.ids;
    st.keys = p.keys;
    st.table_size = static_cast<uint32_t>(p.table.size());
    st.has_table = true;
  }
  return absl::OkStatus();
}

absl::Status ServiceTable::Delete(uint32_t id) {
  auto it = state_->services.find(id);
  if (it == state_->services.end()) return absl::NotFoundError(StrCat("no service ", id));
  std::vector<cn_svc_key> keys;
  for (const auto& k : it->second.keys) {
    if (OwnedBy(*maps_, k, id)) keys.push_back(k);
  }
  CNINET_RETURN_IF_ERROR(maps_->services.DeleteBatch(keys).status());
  uint32_t slot = id;
  absl::Status s = maps_->lb_tables.Delete(&slot);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  CNINET_RETURN_IF_ERROR(maps_->backends.DeleteBatch(it->second.backend_ids).status());
  std::vector<cn_affinity_key> aff;
  CNINET_RETURN_IF_ERROR(
      maps_->affinity.ForEach([&](const cn_affinity_key& k, const cn_affinity_entry&) {
        if (k.svc_id == id) aff.push_back(k);
        return true;
      }));
  CNINET_RETURN_IF_ERROR(maps_->affinity.DeleteBatch(aff).status());
  state_->services.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<Service> ServiceTable::Get(uint32_t id) const {
  auto it = state_->services.find(id);
  if (it == state_->services.end()) return absl::NotFoundError(StrCat("no service ", id));
  return it->second.svc;
}

std::vector<Service> ServiceTable::List() const {
  std::vector<Service> out;
  for (const auto& [id, st] : state_->services) out.push_back(st.svc);
  return out;
}

absl::StatusOr<Backend> ServiceTable::PredictBackend(uint32_t id, const FlowTuple& t) const {
  auto it = state_->services.find(id);
  if (it == state_->services.end()) return absl::NotFoundError(StrCat("no service ", id));
  const Service& svc = it->second.svc;
  if (svc.algorithm != LbAlgorithm::kMaglev)
    return absl::FailedPreconditionError("service uses random selection");
  if (svc.backends.empty()) return absl::FailedPreconditionError("service has no backends");
  std::vector<std::string> names;
  for (const auto& b : svc.backends) names.push_back(b.ToString());
  CNINET_ASSIGN_OR_RETURN(std::vector<uint32_t> table,
                          BuildMaglevTable(names, it->second.table_size));
  CNINET_ASSIGN_OR_RETURN(cn_tuple k, ToAbi(t));
  uint32_t h = cn_flow_hash(k.saddr, k.daddr, k.sport, k.dport, k.proto);
  return svc.backends[table[h % table.size()]];
}

absl::StatusOr<uint32_t> ServiceTable::TableSize(uint32_t id) const {
  auto it = state_->services.find(id);
  if (it == state_->services.end()) return absl::NotFoundError(StrCat("no service ", id));
  return it->second.table_size;
}

const ServiceTable::Stats& ServiceTable::stats() const { return state_->stats; }

}  // namespace cninet::datapath
