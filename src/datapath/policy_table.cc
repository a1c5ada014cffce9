#include "cninet/datapath/policy_table.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath_maps.h"

namespace cninet::datapath {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::microseconds Since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
}

// The policy maps decoded into host terms.
struct MapContent {
  std::map<cni::IPAddress, cn_pol_endpoint> endpoints;
  std::map<cni::IPAddress, uint32_t> identities;
  std::map<PolicyPrefix, uint32_t> cidrs;
  std::map<PolicyEntryKey, uint32_t> rules;
};

bool SameEndpoint(const cn_pol_endpoint& a, const cn_pol_endpoint& b) {
  return a.flags == b.flags && a.service_slot == b.service_slot && a.deny_slot == b.deny_slot &&
         a.host_slot == b.host_slot;
}

}  // namespace

struct PolicyTable::Impl {
  std::shared_ptr<DatapathMaps> maps;
  PolicyCompiler compiler;
  // What the maps hold as far as this process knows (valid unless need_full).
  MapContent written;
  bool need_full = true;
  bool seeded = false;
  bool release_reserved = false;

  Impl(std::shared_ptr<DatapathMaps> m, PolicyCompilerOptions o)
      : maps(std::move(m)), compiler(o) {}

  bool available() const {
    return maps->pol_endpoints.raw().valid() && maps->pol_identities.raw().valid() &&
           maps->pol_prefixes.raw().valid() && maps->pol_rules.raw().valid() &&
           maps->pol_counters.raw().valid();
  }

  absl::StatusOr<MapContent> Read() const {
    MapContent c;
    CNINET_RETURN_IF_ERROR(
        maps->pol_endpoints.ForEach([&](const cn_addr& k, const cn_pol_endpoint& v) {
          c.endpoints[FromAbiAddr(k)] = v;
          return true;
        }));
    CNINET_RETURN_IF_ERROR(maps->pol_identities.ForEach([&](const cn_addr& k, const uint32_t& v) {
      c.identities[FromAbiAddr(k)] = v;
      return true;
    }));
    CNINET_RETURN_IF_ERROR(
        maps->pol_prefixes.ForEach([&](const cn_pol_cidr_key& k, const uint32_t& v) {
          c.cidrs[PolicyPrefixFromAbi(k)] = v;
          return true;
        }));
    CNINET_RETURN_IF_ERROR(maps->pol_rules.ForEach([&](const cn_pol_key& k, const cn_pol_value& v) {
      c.rules[PolicyEntryKey::FromAbi(k)] = v.slot;
      return true;
    }));
    return c;
  }

  // Identities and counter slots a previous process left: never reuse them for something else
  // while its entries are being replaced.
  void Seed(const MapContent& c) {
    uint32_t max_pod = 0, max_cidr = 0;
    auto note = [&](uint32_t id) {
      if (id == CN_POL_ID_ANY) return;
      if (id & CN_POL_ID_CIDR_BIT) {
        max_cidr = std::max(max_cidr, id & ~CN_POL_ID_CIDR_BIT);
      } else {
        max_pod = std::max(max_pod, id);
      }
    };
    for (const auto& [ip, id] : c.identities) note(id);
    for (const auto& [p, id] : c.cidrs) note(id);
    std::set<uint32_t> slots;
    for (const auto& [k, slot] : c.rules) {
      note(k.peer);
      slots.insert(slot);
    }
    for (const auto& [ip, e] : c.endpoints) {
      slots.insert(e.service_slot);
      slots.insert(e.deny_slot);
      slots.insert(e.host_slot);
    }
    compiler.SetIdentityFloor(max_pod + 1, max_cidr + 1);
    compiler.ReserveSlots(slots);
    release_reserved = !slots.empty();
  }

  absl::Status ZeroSlots(const std::vector<uint32_t>& slots) {
    if (slots.empty()) return absl::OkStatus();
    PerCpu<cn_counter> zero;
    zero.values.resize(PossibleCpus());
    for (uint32_t s : slots) CNINET_RETURN_IF_ERROR(maps->pol_counters.Update(s, zero));
    return absl::OkStatus();
  }

  // Writes `want` over `have` (both complete for the keys they cover) and records the result
  // in `written`. Additions first, removals last.
  struct Diff {
    std::vector<cn_pol_key> rule_put_k;
    std::vector<cn_pol_value> rule_put_v;
    std::vector<cn_pol_key> rule_del;
    std::vector<cn_pol_cidr_key> cidr_put_k;
    std::vector<uint32_t> cidr_put_v;
    std::vector<cn_pol_cidr_key> cidr_del;
    std::vector<cn_addr> id_put_k, id_del;
    std::vector<uint32_t> id_put_v;
    std::vector<cn_addr> ep_put_k;
    std::vector<cn_pol_endpoint> ep_put_v;
    std::vector<cn_addr> ep_del;
  };

  static void DiffRules(const std::map<PolicyEntryKey, uint32_t>* have,
                        const std::map<PolicyEntryKey, uint32_t>* want, Diff* d) {
    if (want) {
      for (const auto& [k, slot] : *want) {
        if (have) {
          auto it = have->find(k);
          if (it != have->end() && it->second == slot) continue;
        }
        d->rule_put_k.push_back(k.ToAbi());
        d->rule_put_v.push_back(cn_pol_value{slot, 0});
      }
    }
    if (have) {
      for (const auto& [k, slot] : *have) {
        if (!want || !want->count(k)) d->rule_del.push_back(k.ToAbi());
      }
    }
  }

  absl::Status Write(const Diff& d, PolicyApplyResult* r) {
    auto* m = maps.get();
    CNINET_RETURN_IF_ERROR(
        Annotate(m->pol_rules.UpdateBatch(d.rule_put_k, d.rule_put_v), "write policy rules"));
    r->rules_written += d.rule_put_k.size();
    CNINET_RETURN_IF_ERROR(
        Annotate(m->pol_prefixes.UpdateBatch(d.cidr_put_k, d.cidr_put_v), "write policy prefixes"));
    r->prefixes_written += d.cidr_put_k.size();
    CNINET_RETURN_IF_ERROR(
        Annotate(m->pol_identities.UpdateBatch(d.id_put_k, d.id_put_v), "write policy identities"));
    r->identities_written += d.id_put_k.size();
    CNINET_RETURN_IF_ERROR(
        Annotate(m->pol_endpoints.UpdateBatch(d.ep_put_k, d.ep_put_v), "write policy endpoints"));
    r->endpoints_written += d.ep_put_k.size();
    CNINET_ASSIGN_OR_RETURN(size_t n, m->pol_endpoints.DeleteBatch(d.ep_del));
    r->endpoints_deleted += n;
    CNINET_ASSIGN_OR_RETURN(n, m->pol_identities.DeleteBatch(d.id_del));
    r->identities_deleted += n;
    CNINET_ASSIGN_OR_RETURN(n, m->pol_prefixes.DeleteBatch(d.cidr_del));
    r->prefixes_deleted += n;
    CNINET_ASSIGN_OR_RETURN(n, m->pol_rules.DeleteBatch(d.rule_del));
    r->rules_deleted += n;
    return absl::OkStatus();
  }

  static MapContent FromState(const PolicyState& s) {
    MapContent c;
    for (const auto& [ip, ep] : s.endpoints) {
      c.endpoints[ip] = ep.ToAbi();
      c.rules.insert(ep.entries.begin(), ep.entries.end());
    }
    c.identities = s.identities;
    c.cidrs = s.cidrs;
    return c;
  }

  absl::Status FullSync(const MapContent& have, PolicyApplyResult* r) {
    MapContent want = FromState(compiler.state());
    Diff d;
    DiffRules(&have.rules, &want.rules, &d);
    for (const auto& [p, id] : want.cidrs) {
      auto it = have.cidrs.find(p);
      if (it == have.cidrs.end() || it->second != id) {
        d.cidr_put_k.push_back(PolicyPrefixToAbi(p));
        d.cidr_put_v.push_back(id);
      }
    }
    for (const auto& [p, id] : have.cidrs)
      if (!want.cidrs.count(p)) d.cidr_del.push_back(PolicyPrefixToAbi(p));
    for (const auto& [ip, id] : want.identities) {
      auto it = have.identities.find(ip);
      if (it == have.identities.end() || it->second != id) {
        d.id_put_k.push_back(ToAbiAddr(ip));
        d.id_put_v.push_back(id);
      }
    }
    for (const auto& [ip, id] : have.identities)
      if (!want.identities.count(ip)) d.id_del.push_back(ToAbiAddr(ip));
    for (const auto& [ip, e] : want.endpoints) {
      auto it = have.endpoints.find(ip);
      if (it == have.endpoints.end() || !SameEndpoint(it->second, e)) {
        d.ep_put_k.push_back(ToAbiAddr(ip));
        d.ep_put_v.push_back(e);
      }
    }
    for (const auto& [ip, e] : have.endpoints)
      if (!want.endpoints.count(ip)) d.ep_del.push_back(ToAbiAddr(ip));
    r->full_sync = true;
    CNINET_RETURN_IF_ERROR(Write(d, r));
    written = std::move(want);
    return absl::OkStatus();
  }

  absl::Status Incremental(const PolicyChanges& ch, PolicyApplyResult* r) {
    const PolicyState& want = compiler.state();
    Diff d;
    for (const cni::IPAddress& ip : ch.endpoints) {
      auto w = want.endpoints.find(ip);
      // The entries this endpoint had: those of `written` under its address.
      std::map<PolicyEntryKey, uint32_t> had;
      for (auto it = written.rules.lower_bound(PolicyEntryKey{ip, 0, 0, 0, 0});
           it != written.rules.end() && it->first.endpoint == ip; ++it)
        had.insert(*it);
      DiffRules(&had, w != want.endpoints.end() ? &w->second.entries : nullptr, &d);
      if (w != want.endpoints.end()) {
        cn_pol_endpoint e = w->second.ToAbi();
        auto have = written.endpoints.find(ip);
        if (have == written.endpoints.end() || !SameEndpoint(have->second, e)) {
          d.ep_put_k.push_back(ToAbiAddr(ip));
          d.ep_put_v.push_back(e);
        }
      } else if (written.endpoints.count(ip)) {
        d.ep_del.push_back(ToAbiAddr(ip));
      }
    }
    for (const PolicyPrefix& p : ch.cidrs) {
      auto w = want.cidrs.find(p);
      if (w != want.cidrs.end()) {
        d.cidr_put_k.push_back(PolicyPrefixToAbi(p));
        d.cidr_put_v.push_back(w->second);
      } else if (written.cidrs.count(p)) {
        d.cidr_del.push_back(PolicyPrefixToAbi(p));
      }
    }
    for (const cni::IPAddress& ip : ch.identities) {
      auto w = want.identities.find(ip);
      if (w != want.identities.end()) {
        d.id_put_k.push_back(ToAbiAddr(ip));
        d.id_put_v.push_back(w->second);
      } else if (written.identities.count(ip)) {
        d.id_del.push_back(ToAbiAddr(ip));
      }
    }
    CNINET_RETURN_IF_ERROR(Write(d, r));
    // Mirror what was written.
    for (const cni::IPAddress& ip : ch.endpoints) {
      for (auto it = written.rules.lower_bound(PolicyEntryKey{ip, 0, 0, 0, 0});
           it != written.rules.end() && it->first.endpoint == ip;)
        it = written.rules.erase(it);
      auto w = want.endpoints.find(ip);
      if (w != want.endpoints.end()) {
        written.endpoints[ip] = w->second.ToAbi();
        written.rules.insert(w->second.entries.begin(), w->second.entries.end());
      } else {
        written.endpoints.erase(ip);
      }
    }
    for (const PolicyPrefix& p : ch.cidrs) {
      auto w = want.cidrs.find(p);
      if (w != want.cidrs.end()) {
        written.cidrs[p] = w->second;
      } else {
        written.cidrs.erase(p);
      }
    }
    for (const cni::IPAddress& ip : ch.identities) {
      auto w = want.identities.find(ip);
      if (w != want.identities.end()) {
        written.identities[ip] = w->second;
      } else {
        written.identities.erase(ip);
      }
    }
    return absl::OkStatus();
  }
};

PolicyTable::PolicyTable(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PolicyTable::~PolicyTable() = default;

absl::StatusOr<std::unique_ptr<PolicyTable>> PolicyTable::Load(std::shared_ptr<DatapathMaps> maps,
                                                               PolicyCompilerOptions options) {
  if (maps->pol_counters.raw().valid())
    options.counter_slots = maps->pol_counters.info().max_entries;
  auto impl = std::make_unique<Impl>(std::move(maps), options);
  return std::unique_ptr<PolicyTable>(new PolicyTable(std::move(impl)));
}

bool PolicyTable::available() const { return impl_->available(); }

absl::Status PolicyTable::UpsertNamespace(const NamespaceInfo& ns) {
  return impl_->compiler.UpsertNamespace(ns);
}
absl::Status PolicyTable::DeleteNamespace(std::string_view name) {
  return impl_->compiler.DeleteNamespace(name);
}
absl::Status PolicyTable::UpsertPod(const PodInfo& pod) { return impl_->compiler.UpsertPod(pod); }
absl::Status PolicyTable::DeletePod(std::string_view namespace_name, std::string_view name) {
  return impl_->compiler.DeletePod(namespace_name, name);
}
absl::Status PolicyTable::UpsertPolicy(const NetworkPolicy& policy) {
  return impl_->compiler.UpsertPolicy(policy);
}
absl::Status PolicyTable::DeletePolicy(std::string_view namespace_name, std::string_view name) {
  return impl_->compiler.DeletePolicy(namespace_name, name);
}
absl::Status PolicyTable::Replace(const PolicySnapshot& snapshot) {
  return impl_->compiler.Replace(snapshot);
}

void PolicyTable::RequestFullSync() { impl_->need_full = true; }

absl::StatusOr<PolicyApplyResult> PolicyTable::Apply() {
  Impl& m = *impl_;
  if (!m.available()) {
    return absl::FailedPreconditionError(
        "the datapath has no policy maps (pinned by an older version?): reload it");
  }
  PolicyApplyResult r;
  std::optional<MapContent> have;
  if (m.need_full) {
    CNINET_ASSIGN_OR_RETURN(have, m.Read());
    if (!m.seeded) m.Seed(*have);
    m.seeded = true;
  }
  auto t0 = Clock::now();
  PolicyChanges ch = m.compiler.Compile();
  r.compile_time = Since(t0);
  auto t1 = Clock::now();
  absl::Status s = m.ZeroSlots(ch.new_slots);
  if (s.ok()) s = have ? m.FullSync(*have, &r) : m.Incremental(ch, &r);
  r.write_time = Since(t1);
  if (!s.ok()) {
    m.need_full = true;
    return Annotate(s, "apply policy");
  }
  m.need_full = false;
  if (m.release_reserved) {
    // The full sync removed every entry of the previous process: its slots are free now.
    m.compiler.ReleaseReservedSlots();
    m.release_reserved = false;
  }
  CNINET_LOG(kDebug, "policy applied: ", r.total(), " map changes", r.full_sync ? " (full)" : "",
             " in ", r.write_time.count(), " us");
  return r;
}

const PolicyState& PolicyTable::state() const { return impl_->compiler.state(); }

PolicyCompilerStats PolicyTable::stats() const { return impl_->compiler.stats(); }

absl::StatusOr<uint32_t> PolicyTable::PodIdentity(std::string_view namespace_name,
                                                  std::string_view name) const {
  return impl_->compiler.PodIdentity(namespace_name, name);
}

PolicyVerdict PolicyTable::Evaluate(const PolicyQuery& query) const {
  return EvaluatePolicy(impl_->compiler.state(), query);
}

absl::StatusOr<std::vector<PolicyCounter>> PolicyTable::ReadCounters() const {
  if (!impl_->available()) return absl::FailedPreconditionError("no policy maps");
  std::vector<PolicyCounter> out;
  auto read = [&](const EndpointPolicy& ep, const std::string& rule,
                  uint32_t slot) -> absl::Status {
    CNINET_ASSIGN_OR_RETURN(PerCpu<cn_counter> v, impl_->maps->pol_counters.Lookup(slot));
    PolicyCounter c;
    c.endpoint = ep.address;
    c.pod = ep.pod;
    c.rule = rule;
    c.slot = slot;
    for (const auto& cpu : v.values) {
      c.packets += cpu.packets;
      c.bytes += cpu.bytes;
    }
    out.push_back(std::move(c));
    return absl::OkStatus();
  };
  for (const auto& [ip, ep] : impl_->compiler.state().endpoints) {
    for (const auto& rule : ep.rules) CNINET_RETURN_IF_ERROR(read(ep, rule.description, rule.slot));
    if (ep.flags & CN_POL_F_ALLOW_SERVICE)
      CNINET_RETURN_IF_ERROR(read(ep, "via service", ep.service_slot));
    CNINET_RETURN_IF_ERROR(read(ep, "denied", ep.deny_slot));
    CNINET_RETURN_IF_ERROR(read(ep, "from host", ep.host_slot));
  }
  return out;
}

absl::StatusOr<PolicyState> PolicyTable::ReadMaps() const {
  if (!impl_->available()) return absl::FailedPreconditionError("no policy maps");
  CNINET_ASSIGN_OR_RETURN(MapContent c, impl_->Read());
  PolicyState s;
  s.identities = std::move(c.identities);
  s.cidrs = std::move(c.cidrs);
  for (const auto& [ip, e] : c.endpoints) {
    EndpointPolicy ep;
    ep.address = ip;
    ep.flags = e.flags;
    ep.service_slot = e.service_slot;
    ep.deny_slot = e.deny_slot;
    ep.host_slot = e.host_slot;
    s.endpoints[ip] = std::move(ep);
  }
  for (const auto& [k, slot] : c.rules) {
    auto it = s.endpoints.find(k.endpoint);
    if (it == s.endpoints.end()) {
      // Entries of an endpoint without a record (only during an Apply): keep them visible.
      EndpointPolicy ep;
      ep.address = k.endpoint;
      it = s.endpoints.emplace(k.endpoint, std::move(ep)).first;
    }
    it->second.entries[k] = slot;
  }
  return s;
}

}  // namespace cninet::datapath
