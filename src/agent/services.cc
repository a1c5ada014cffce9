#include "cninet/agent/services.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <tuple>
#include <utility>

#include "cninet/agent/state.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet::agent {
namespace {

using cni::IPAddress;
namespace dp = ::cninet::datapath;

// Where a frontend lives in the datapath's services map: node ports occupy (every node address,
// port, proto), addressed frontends (address, port, proto).
using FrontendSlot = std::tuple<bool, IPAddress, uint16_t, uint8_t>;

FrontendSlot SlotOf(const dp::Frontend& f) {
  bool node_port = f.kind == dp::FrontendKind::kNodePort;
  // Node ports occupy one slot per family (the address is the family's unspecified one).
  IPAddress any = f.address.is_v6() ? *IPAddress::Parse("::") : IPAddress();
  return {node_port, node_port ? any : f.address, f.port, static_cast<uint8_t>(f.protocol)};
}

std::string FrontendText(const dp::Frontend& f) {
  std::string proto = dp::ToString(f.protocol);
  if (f.kind == dp::FrontendKind::kNodePort) {
    return StrCat("nodePort ", f.port, "/", proto, f.address.is_v6() ? " (IPv6)" : "");
  }
  return StrCat(f.address.ToString(), ":", f.port, "/", proto);
}

bool FrontendLess(const dp::Frontend& a, const dp::Frontend& b) {
  return std::make_tuple(static_cast<int>(a.kind), a.address, a.port,
                         static_cast<int>(a.protocol)) <
         std::make_tuple(static_cast<int>(b.kind), b.address, b.port, static_cast<int>(b.protocol));
}

bool BackendLess(const dp::Backend& a, const dp::Backend& b) {
  return std::tie(a.address, a.port) < std::tie(b.address, b.port);
}

v1::Protocol Effective(v1::Protocol p) { return p == v1::PROTOCOL_UNSPECIFIED ? v1::TCP : p; }

}  // namespace

std::string ServicePortKey::ToString() const {
  std::string base = port.empty() ? StrCat(ns, "/", name) : StrCat(ns, "/", name, ":", port);
  if (family == IPAddress::Family::kV6) base += "@IPv6";
  return external ? StrCat(base, "/external") : base;
}

BackendConditions BackendConditions::Of(const v1::Backend& b) {
  BackendConditions c;
  c.ready = b.has_ready() ? b.ready() : !b.terminating();
  c.serving = b.has_serving() ? b.serving() : c.ready;
  return c;
}

void Normalize(dp::Service* s) {
  std::sort(s->frontends.begin(), s->frontends.end(), FrontendLess);
  std::sort(s->backends.begin(), s->backends.end(), BackendLess);
}

bool SameProgramming(const dp::Service& a, const dp::Service& b) {
  if (a.frontends != b.frontends || a.backends != b.backends || a.algorithm != b.algorithm ||
      a.affinity_timeout != b.affinity_timeout ||
      a.reject_without_backends != b.reject_without_backends ||
      dp::EffectiveFamily(a) != dp::EffectiveFamily(b)) {
    return false;
  }
  // The table size only matters (and is only recorded in the maps) when there is a table.
  if (a.algorithm == dp::LbAlgorithm::kMaglev && !a.backends.empty() &&
      a.maglev_size != b.maglev_size) {
    return false;
  }
  return true;
}

std::vector<PlannedService> PlanServices(std::span<const v1::Service> services,
                                         std::span<const v1::Endpoints> endpoints,
                                         const ServicePlanOptions& options,
                                         std::vector<PlanWarning>* warnings) {
  std::vector<const v1::Service*> s;
  std::vector<const v1::Endpoints*> e;
  for (const v1::Service& x : services) s.push_back(&x);
  for (const v1::Endpoints& x : endpoints) e.push_back(&x);
  return PlanServices(std::span<const v1::Service* const>(s),
                      std::span<const v1::Endpoints* const>(e), options, warnings);
}

namespace {

// The addresses of a service in one family.
struct ServiceAddresses {
  IPAddress::Family family = IPAddress::Family::kV4;
  std::optional<IPAddress> cluster_ip;
  std::vector<IPAddress> external;
};

const char* FamilyName(IPAddress::Family f) {
  return f == IPAddress::Family::kV6 ? "IPv6" : "IPv4";
}

// One PlanServices run: the Endpoints by service, the frontend slots taken so far (first service
// in name order wins), the warnings and the plan.
class ServicePlanner {
 public:
  ServicePlanner(std::span<const v1::Endpoints* const> endpoints, const ServicePlanOptions& options,
                 std::vector<PlanWarning>* warnings)
      : options_(options), warnings_(warnings) {
    for (const v1::Endpoints* e : endpoints) endpoints_[{e->namespace_(), e->name()}] = e;
  }

  // Plans every port of `s`.
  void Add(const v1::Service& s) {
    std::vector<ServiceAddresses> families = ParseAddresses(s);
    const v1::Endpoints* ep = nullptr;
    if (auto it = endpoints_.find({s.namespace_(), s.name()}); it != endpoints_.end()) {
      ep = it->second;
    }
    for (const ServiceAddresses& a : families) {
      if (a.family == IPAddress::Family::kV6 && !options_.ipv6) {
        Warn(s, "IPv6 frontends not programmed: the datapath serves IPv4 services only");
        continue;
      }
      for (const v1::ServicePort& port : s.ports()) PlanPort(s, port, a, ep);
    }
  }

  // The plan, in key order.
  std::vector<PlannedService> Finish() {
    std::sort(out_.begin(), out_.end(),
              [](const PlannedService& a, const PlannedService& b) { return a.key < b.key; });
    return std::move(out_);
  }

 private:
  void Warn(const v1::Service& s, std::string msg) {
    if (warnings_ != nullptr) warnings_->push_back({StrCat(s.namespace_(), "/", s.name()), msg});
  }

  // The service's families in order (its ClusterIPs', else its externalIPs', else IPv4) with
  // their addresses.
  std::vector<ServiceAddresses> ParseAddresses(const v1::Service& s) {
    std::vector<ServiceAddresses> out;
    auto family = [&](IPAddress::Family f) -> ServiceAddresses* {
      for (ServiceAddresses& a : out) {
        if (a.family == f) return &a;
      }
      return nullptr;
    };
    for (const std::string& text : ServiceClusterIPs(s)) {
      auto ip = IPAddress::Parse(text);
      if (!ip.ok() || family(ip->family()) != nullptr) {
        Warn(s, StrCat("clusterIP ", text, " is invalid or a second of its family; skipped"));
        continue;
      }
      out.push_back({ip->family(), *ip, {}});
    }
    bool from_cluster_ips = !out.empty();
    std::vector<std::string> external(s.external_ips().begin(), s.external_ips().end());
    if (s.type() == v1::Service::LOAD_BALANCER) {
      external.insert(external.end(), s.load_balancer_ips().begin(), s.load_balancer_ips().end());
    }
    std::set<IPAddress> seen;
    for (const std::string& text : external) {
      auto ip = IPAddress::Parse(text);
      if (!ip.ok()) {
        Warn(s, StrCat("externalIP ", text, " is not an address; skipped"));
        continue;
      }
      if (!seen.insert(*ip).second) continue;  // Listed as externalIP and load balancer IP.
      ServiceAddresses* a = family(ip->family());
      if (a == nullptr && from_cluster_ips) {
        Warn(s, StrCat("externalIP ", text, ": the service has no ", FamilyName(ip->family()),
                       " ClusterIP; skipped"));
        continue;
      }
      if (a == nullptr) {
        out.push_back({ip->family(), std::nullopt, {}});
        a = &out.back();
      }
      a->external.push_back(*ip);
    }
    if (out.empty()) {
      // No addresses (e.g. a NodePort-only service): the families it names, else IPv4.
      for (int f : s.ip_families()) {
        if (f == v1::IPV6) out.push_back({IPAddress::Family::kV6, std::nullopt, {}});
        if (f == v1::IPV4) out.push_back({IPAddress::Family::kV4, std::nullopt, {}});
      }
    }
    if (out.empty()) out.push_back({});
    return out;
  }

  // The frontends of one port and family: those of traffic from the cluster (the ClusterIP) and
  // those of traffic from outside (externalIPs, load balancer IPs, the nodePort).
  struct PortFrontends {
    std::vector<dp::Frontend> internal, external;
  };

  // The backends of one port and family, each with where it runs and its conditions.
  struct Candidate {
    dp::Backend backend;
    bool local = false;
    BackendConditions conditions;
  };

  void PlanPort(const v1::Service& s, const v1::ServicePort& port, const ServiceAddresses& a,
                const v1::Endpoints* ep) {
    ServicePortKey key{s.namespace_(), s.name(), port.name(), a.family};
    v1::Protocol proto = Effective(port.protocol());
    if (proto == v1::SCTP) {
      // One warning per port, not per family.
      if (!sctp_warned_.insert(StrCat(s.namespace_(), "/", s.name(), ":", port.name())).second) {
        return;
      }
      Warn(s, StrCat("port ", port.port(), "/SCTP: the datapath has no SCTP; skipped"));
      return;
    }
    PortFrontends fe = Frontends(s, port, proto, a, key);
    if (fe.internal.empty() && fe.external.empty()) {
      if (!a.cluster_ip && a.external.empty() && !HasNodePorts(s)) {
        Warn(s, StrCat("port ", key.ToString(), " has no clusterIP, externalIP or nodePort"));
      }
      return;
    }
    std::vector<Candidate> candidates;
    if (ep != nullptr) candidates = Candidates(s, port, proto, *ep, a.family);
    const bool int_local = s.internal_traffic_policy() == v1::Service::LOCAL;
    const bool ext_local = s.external_traffic_policy() == v1::Service::LOCAL;
    if (int_local == ext_local || fe.external.empty() || fe.internal.empty()) {
      // One backend set serves every frontend.
      const bool local = fe.internal.empty() ? ext_local : int_local;
      std::vector<dp::Frontend> all = std::move(fe.internal);
      all.insert(all.end(), fe.external.begin(), fe.external.end());
      Emit(s, key, std::move(all), Select(s, candidates, local), local);
      return;
    }
    Emit(s, key, std::move(fe.internal), Select(s, candidates, int_local), int_local);
    key.external = true;
    Emit(s, key, std::move(fe.external), Select(s, candidates, ext_local), ext_local);
  }

  static bool HasNodePorts(const v1::Service& s) {
    return s.type() == v1::Service::NODE_PORT || s.type() == v1::Service::LOAD_BALANCER;
  }

  // One datapath service. `local`: a LOCAL traffic policy (no backends here: drop).
  void Emit(const v1::Service& s, const ServicePortKey& key, std::vector<dp::Frontend> frontends,
            std::vector<dp::Backend> backends, bool local) {
    PlannedService planned;
    planned.key = key;
    dp::Service& svc = planned.service;
    svc.frontends = std::move(frontends);
    svc.backends = std::move(backends);
    svc.algorithm = options_.algorithm;
    svc.maglev_size = options_.maglev_size;
    svc.reject_without_backends = !local;
    svc.family = key.family;
    if (s.session_affinity() == v1::Service::CLIENT_IP) {
      uint32_t t = s.session_affinity_timeout_seconds();
      svc.affinity_timeout = std::chrono::seconds(t == 0 ? 10800 : t);
    }
    Normalize(&svc);
    out_.push_back(std::move(planned));
  }

  // clusterIP, externalIPs, load balancer IPs and nodePort of one port, each unless another
  // service has its slot.
  PortFrontends Frontends(const v1::Service& s, const v1::ServicePort& port, v1::Protocol proto,
                          const ServiceAddresses& a, const ServicePortKey& key) {
    PortFrontends out;
    dp::Protocol dproto = proto == v1::UDP ? dp::Protocol::kUdp : dp::Protocol::kTcp;
    auto add = [&](dp::Frontend f, std::vector<dp::Frontend>* to) {
      auto [it, inserted] = taken_.insert({SlotOf(f), key.ToString()});
      if (!inserted) {
        Warn(s, StrCat(FrontendText(f), " already belongs to ", it->second, "; skipped"));
        return;
      }
      to->push_back(f);
    };
    uint16_t p16 = static_cast<uint16_t>(port.port());
    if (a.cluster_ip)
      add({*a.cluster_ip, p16, dproto, dp::FrontendKind::kClusterIP}, &out.internal);
    for (const IPAddress& ip : a.external) {
      add({ip, p16, dproto, dp::FrontendKind::kExternalIP}, &out.external);
    }
    if (!HasNodePorts(s) || port.node_port() == 0) return out;
    if (port.node_port() < options_.node_port_min || port.node_port() > options_.node_port_max) {
      Warn(s, StrCat("nodePort ", port.node_port(), " is outside ", options_.node_port_min, "-",
                     options_.node_port_max, "; skipped"));
      return out;
    }
    IPAddress any = a.family == IPAddress::Family::kV6 ? *IPAddress::Parse("::") : IPAddress();
    add({any, static_cast<uint16_t>(port.node_port()), dproto, dp::FrontendKind::kNodePort},
        &out.external);
    return out;
  }

  // The backends of `family` of the Endpoints port with the same name and protocol.
  std::vector<Candidate> Candidates(const v1::Service& s, const v1::ServicePort& port,
                                    v1::Protocol proto, const v1::Endpoints& ep,
                                    IPAddress::Family family) {
    std::vector<Candidate> out;
    const v1::PortBackends* pb = nullptr;
    for (const v1::PortBackends& candidate : ep.ports()) {
      if (candidate.port_name() == port.name()) pb = &candidate;
    }
    if (pb == nullptr) return out;
    if (Effective(pb->protocol()) != proto) {
      Warn(s, StrCat("endpoints port \"", port.name(), "\" has another protocol; no backends"));
      return out;
    }
    std::set<std::pair<IPAddress, uint16_t>> seen;
    for (const v1::Backend& b : pb->backends()) {
      auto ip = IPAddress::Parse(b.ip());
      if (!ip.ok()) {
        if (family == IPAddress::Family::kV4) {
          Warn(s, StrCat("backend ", b.ip(), " is not an address; skipped"));
        }
        continue;
      }
      // A ClusterIP of one family is balanced over that family's endpoints only.
      if (ip->family() != family) continue;
      uint16_t bport = static_cast<uint16_t>(b.port());
      if (!seen.insert({*ip, bport}).second) continue;
      bool local = !options_.node_name.empty() && b.node() == options_.node_name;
      out.push_back({{*ip, bport}, local, BackendConditions::Of(b)});
    }
    return out;
  }

  // The backends new connections go to: the ready ones (of this node when `local`), or when none
  // is ready the serving ones (terminating endpoints finishing their work).
  std::vector<dp::Backend> Select(const v1::Service& s, const std::vector<Candidate>& candidates,
                                  bool local) {
    std::vector<dp::Backend> out;
    for (bool fallback : {false, true}) {
      for (const Candidate& c : candidates) {
        if (local && !c.local) continue;
        if (fallback ? !c.conditions.serving : !c.conditions.ready) continue;
        if (out.size() >= dp::kMaxBackendsPerService) {
          Warn(s, StrCat("more than ", dp::kMaxBackendsPerService,
                         " backends; the rest are left out"));
          return out;
        }
        out.push_back(c.backend);
      }
      if (!out.empty()) break;
    }
    return out;
  }

  const ServicePlanOptions& options_;
  std::vector<PlanWarning>* warnings_;
  std::map<std::pair<std::string, std::string>, const v1::Endpoints*> endpoints_;
  std::map<FrontendSlot, std::string> taken_;  // slot -> owner ("ns/name:port")
  std::set<std::string> sctp_warned_;          // SCTP ports warned about (once per family set)
  std::vector<PlannedService> out_;
};

}  // namespace

std::vector<PlannedService> PlanServices(std::span<const v1::Service* const> services,
                                         std::span<const v1::Endpoints* const> endpoints,
                                         const ServicePlanOptions& options,
                                         std::vector<PlanWarning>* warnings) {
  std::vector<const v1::Service*> sorted(services.begin(), services.end());
  std::sort(sorted.begin(), sorted.end(), [](const v1::Service* a, const v1::Service* b) {
    return std::tie(a->namespace_(), a->name()) < std::tie(b->namespace_(), b->name());
  });
  ServicePlanner planner(endpoints, options, warnings);
  for (const v1::Service* s : sorted) planner.Add(*s);
  return planner.Finish();
}

absl::StatusOr<std::unique_ptr<ServiceReconciler>> ServiceReconciler::Create(
    dp::ServiceTable* table, uint32_t id_limit) {
  if (table == nullptr || id_limit < 2) {
    return absl::InvalidArgumentError("ServiceReconciler needs a table and id_limit >= 2");
  }
  std::unique_ptr<ServiceReconciler> r(new ServiceReconciler(table, id_limit));
  for (dp::Service s : table->List()) {
    if (s.id == 0 || s.id >= id_limit) continue;
    Normalize(&s);
    r->programmed_[s.id] = ProgrammedService{{}, std::move(s)};
  }
  if (!r->programmed_.empty()) {
    CNINET_LOG(kInfo, "recovered ", r->programmed_.size(), " programmed services from the maps");
  }
  return r;
}

uint32_t ServiceReconciler::FreeId(const std::set<uint32_t>& claimed) {
  for (int pass = 0; pass < 2; ++pass) {
    // The hint may have skipped ids freed since; the second pass searches from the start.
    for (uint32_t id = pass == 0 ? next_free_hint_ : 1; id < id_limit_; ++id) {
      if (!programmed_.count(id) && !claimed.count(id)) {
        next_free_hint_ = id + 1;
        return id;
      }
    }
  }
  return 0;
}

absl::StatusOr<ServiceChanges> ServiceReconciler::Apply(std::vector<PlannedService> desired) {
  ServiceChanges ch;
  std::map<uint32_t, PlannedService*> want = AssignIds(desired, &ch);
  // Deletes first: a frontend may move from a deleted service to a new one.
  DeleteUnwanted(want, &ch);
  std::vector<const PlannedService*> changed;
  for (auto& [id, p] : want) {
    p->service.id = id;
    auto it = programmed_.find(id);
    if (it != programmed_.end() && SameProgramming(it->second.service, p->service)) {
      it->second.key = p->key;  // A recovered service is now matched.
      ++ch.unchanged;
      continue;
    }
    changed.push_back(p);
  }
  constexpr size_t kBatch = 8192;
  for (size_t off = 0; off < changed.size(); off += kBatch) {
    size_t n = std::min(kBatch, changed.size() - off);
    UpsertBatch(std::span<const PlannedService* const>(changed.data() + off, n), &ch);
  }
  return ch;
}

std::map<uint32_t, PlannedService*> ServiceReconciler::AssignIds(
    std::vector<PlannedService>& desired, ServiceChanges* ch) {
  std::map<uint32_t, PlannedService*> want;
  std::set<uint32_t> claimed;
  std::vector<PlannedService*> unassigned;
  for (PlannedService& p : desired) {
    Normalize(&p.service);
    auto it = ids_.find(p.key);
    if (it != ids_.end() && !claimed.count(it->second)) {
      claimed.insert(it->second);
      want[it->second] = &p;
    } else {
      unassigned.push_back(&p);
    }
  }
  std::map<FrontendSlot, uint32_t> recovered = RecoveredSlots(claimed, unassigned.empty());
  for (PlannedService* p : unassigned) {
    uint32_t id = 0;
    for (const dp::Frontend& f : p->service.frontends) {
      auto it = recovered.find(SlotOf(f));
      if (it != recovered.end() && !claimed.count(it->second)) {
        id = it->second;
        break;
      }
    }
    if (id == 0) id = FreeId(claimed);
    if (id == 0) {
      CNINET_LOG(kError, "no free service id below ", id_limit_, " for ", p->key.ToString());
      ++ch->failed;
      continue;
    }
    claimed.insert(id);
    want[id] = p;
    ids_[p->key] = id;
  }
  return want;
}

// Services recovered from the maps after a restart (key unknown) are matched by a frontend.
std::map<FrontendSlot, uint32_t> ServiceReconciler::RecoveredSlots(
    const std::set<uint32_t>& claimed, bool none_needed) const {
  std::map<FrontendSlot, uint32_t> recovered;
  if (none_needed) return recovered;
  for (const auto& [id, prog] : programmed_) {
    if (!prog.key.name.empty() || claimed.count(id)) continue;
    for (const dp::Frontend& f : prog.service.frontends) recovered.emplace(SlotOf(f), id);
  }
  return recovered;
}

void ServiceReconciler::DeleteUnwanted(const std::map<uint32_t, PlannedService*>& want,
                                       ServiceChanges* ch) {
  std::vector<uint32_t> gone;
  for (const auto& [id, prog] : programmed_) {
    if (!want.count(id)) gone.push_back(id);
  }
  for (uint32_t id : gone) {
    absl::Status st = table_->Delete(id);
    if (!st.ok() && !absl::IsNotFound(st)) {
      CNINET_LOG(kError, "delete service ", id, ": ", st.message());
      ++ch->failed;
      continue;
    }
    ++ch->deleted;
    // UDP flows of a deleted service must not keep going to its backends.
    if (HasUdp(programmed_[id].service)) FlushUdp(id, {}, ch);
    programmed_.erase(id);
  }
  for (auto it = ids_.begin(); it != ids_.end();) {
    auto w = want.find(it->second);
    if (w == want.end() || w->second->key != it->first) {
      it = ids_.erase(it);
    } else {
      ++it;
    }
  }
  if (!gone.empty()) next_free_hint_ = 1;
}

bool ServiceReconciler::HasUdp(const dp::Service& s) {
  return std::any_of(s.frontends.begin(), s.frontends.end(),
                     [](const dp::Frontend& f) { return f.protocol == dp::Protocol::kUdp; });
}

void ServiceReconciler::FlushUdp(uint32_t id, std::span<const dp::Backend> removed,
                                 ServiceChanges* ch) {
  absl::StatusOr<size_t> n = table_->FlushConntrack(id, removed);
  if (!n.ok()) {
    CNINET_LOG(kWarning, "service ", id, ": conntrack flush: ", n.status().message());
    return;
  }
  ch->conntrack_flushed += *n;
}

// Programs `s` as a replacement of what programmed_ holds for its id (if anything); UDP flows to
// backends it no longer has are flushed (a connected UDP socket would keep sending to them).
void ServiceReconciler::Programmed(const ServicePortKey& key, const dp::Service& s,
                                   ServiceChanges* ch) {
  auto old = programmed_.find(s.id);
  if (old != programmed_.end() && HasUdp(old->second.service)) {
    std::vector<dp::Backend> removed;
    for (const dp::Backend& b : old->second.service.backends) {
      if (std::find(s.backends.begin(), s.backends.end(), b) == s.backends.end())
        removed.push_back(b);
    }
    if (!removed.empty()) FlushUdp(s.id, removed, ch);
  }
  programmed_[s.id] = ProgrammedService{key, s};
}

void ServiceReconciler::UpsertBatch(std::span<const PlannedService* const> batch,
                                    ServiceChanges* ch) {
  std::vector<dp::Service> services;
  services.reserve(batch.size());
  for (const PlannedService* p : batch) services.push_back(p->service);
  absl::Status st = table_->UpsertBatch(services);
  if (st.ok()) {
    for (size_t i = 0; i < batch.size(); ++i) Programmed(batch[i]->key, services[i], ch);
    ch->upserted += batch.size();
    return;
  }
  // Isolate the service(s) the datapath refuses; the others still go in.
  CNINET_LOG(kWarning, "batch of ", batch.size(), " services refused (", st.message(),
             "); programming them one by one");
  for (size_t i = 0; i < batch.size(); ++i) {
    absl::Status one = table_->Upsert(services[i]);
    if (one.ok()) {
      Programmed(batch[i]->key, services[i], ch);
      ++ch->upserted;
    } else {
      CNINET_LOG(kError, "service ", batch[i]->key.ToString(), " (id ", services[i].id,
                 ") not programmed: ", one.message());
      ++ch->failed;
    }
  }
}

}  // namespace cninet::agent
