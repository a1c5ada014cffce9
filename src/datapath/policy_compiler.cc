#include "cninet/datapath/policy_compiler.h"

#include <arpa/inet.h>

#include <algorithm>
#include <tuple>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/types.h"

namespace cninet::datapath {
namespace {

// A port specification of one rule, as an LPM entry shape.
struct PortSpec {
  uint8_t protocol = 0;
  uint8_t prefix_len = CN_POL_PREFIX_ANY_PROTO;
  uint16_t port = 0;
};

uint16_t PortMask(uint8_t bits) {
  return bits == 0 ? 0 : static_cast<uint16_t>(0xffffu << (16 - bits));
}

uint32_t PrefixMask(uint8_t len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

// `inner` lies inside `outer` (both host-order IPv4 prefixes).
bool Within(const PolicyPrefix& inner, const PolicyPrefix& outer) {
  return inner.second >= outer.second && (inner.first & PrefixMask(outer.second)) == outer.first;
}

std::vector<PortSpec> PortSpecs(const std::vector<PolicyPort>& ports) {
  std::vector<PortSpec> out;
  if (ports.empty()) {
    out.push_back(PortSpec{});
    return out;
  }
  for (const PolicyPort& p : ports) {
    uint8_t proto = static_cast<uint8_t>(p.protocol);
    if (p.port == 0) {
      out.push_back(PortSpec{proto, CN_POL_PREFIX_PROTO, 0});
      continue;
    }
    uint16_t hi = p.end_port != 0 ? p.end_port : p.port;
    for (auto [start, bits] : PortRangeBlocks(p.port, hi)) {
      out.push_back(PortSpec{proto, static_cast<uint8_t>(CN_POL_PREFIX_PROTO + bits), start});
    }
  }
  return out;
}

std::optional<PolicyPrefix> V4Prefix(const cni::IPPrefix& p) {
  if (!p.is_v4()) return std::nullopt;
  cni::IPPrefix m = p.Masked();
  return PolicyPrefix{m.address().v4_host_order(), static_cast<uint8_t>(m.prefix_len())};
}

std::vector<uint32_t> V4Addresses(const PodInfo& pod) {
  std::vector<uint32_t> out;
  for (const auto& a : pod.addresses) {
    if (a.is_v4()) out.push_back(a.v4_host_order());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Identity of a label set: the pod's namespace and its labels.
struct IdentityKey {
  std::string ns;
  Labels labels;
  friend auto operator<=>(const IdentityKey&, const IdentityKey&) = default;
  friend bool operator==(const IdentityKey&, const IdentityKey&) = default;
};

std::string PodKey(std::string_view ns, std::string_view name) { return StrCat(ns, "/", name); }

// A canonical text of an ingress rule (its counter identity).
std::string RuleFingerprint(const IngressRule& rule) {
  std::string out;
  for (const PolicyPeer& p : rule.from) {
    out += "from(";
    if (p.pod_selector) out += StrCat("pods:", p.pod_selector->ToString(), ";");
    if (p.namespace_selector) out += StrCat("ns:", p.namespace_selector->ToString(), ";");
    if (p.ip_block) {
      out += StrCat("cidr:", p.ip_block->cidr.ToString());
      for (const auto& e : p.ip_block->except) out += StrCat("!", e.ToString());
    }
    out += ")";
  }
  for (const PolicyPort& p : rule.ports)
    out += StrCat("port(", static_cast<int>(p.protocol), ":", p.port, "-", p.end_port, ")");
  return out;
}

}  // namespace

// ---- PolicyEntryKey ----

cn_pol_key PolicyEntryKey::ToAbi() const {
  cn_pol_key k{};
  k.prefixlen = prefix_len;
  k.endpoint = htonl(endpoint);
  k.peer = peer;
  if (prefix_len > CN_POL_PREFIX_ANY_PROTO) {
    k.proto = protocol;
    uint8_t bits = prefix_len > CN_POL_PREFIX_PROTO ? prefix_len - CN_POL_PREFIX_PROTO : 0;
    k.port = htons(static_cast<uint16_t>(port & PortMask(bits)));
  }
  return k;
}

PolicyEntryKey PolicyEntryKey::FromAbi(const cn_pol_key& k) {
  PolicyEntryKey out;
  out.prefix_len = static_cast<uint8_t>(k.prefixlen);
  out.endpoint = ntohl(k.endpoint);
  out.peer = k.peer;
  out.protocol = k.proto;
  out.port = ntohs(k.port);
  return out;
}

bool PolicyEntryKey::Covers(uint8_t proto, uint16_t p) const {
  if (prefix_len <= CN_POL_PREFIX_ANY_PROTO) return true;
  if (protocol != proto) return false;
  uint8_t bits = prefix_len - CN_POL_PREFIX_PROTO;
  return (p & PortMask(bits)) == (port & PortMask(bits));
}

std::string PolicyEntryKey::ToString() const {
  std::string peer_text = peer == CN_POL_ID_ANY ? std::string("any")
                          : (peer & CN_POL_ID_CIDR_BIT)
                              ? StrCat("cidr-id ", peer & ~CN_POL_ID_CIDR_BIT)
                              : StrCat("id ", peer);
  std::string what;
  if (prefix_len <= CN_POL_PREFIX_ANY_PROTO) {
    what = "any protocol";
  } else if (prefix_len == CN_POL_PREFIX_PROTO) {
    what = StrCat(ProtocolName(protocol), " any port");
  } else {
    uint8_t bits = prefix_len - CN_POL_PREFIX_PROTO;
    uint32_t last = port + (uint32_t{1} << (16 - bits)) - 1;
    what = last == port ? StrCat(ProtocolName(protocol), " ", port)
                        : StrCat(ProtocolName(protocol), " ", port, "-", last);
  }
  return StrCat(cni::IPAddress::V4(endpoint).ToString(), " <- ", peer_text, " ", what);
}

std::vector<std::pair<uint16_t, uint8_t>> PortRangeBlocks(uint16_t lo, uint16_t hi) {
  std::vector<std::pair<uint16_t, uint8_t>> out;
  uint32_t cur = lo;
  const uint32_t end = hi;
  while (cur <= end) {
    // The largest aligned block starting at `cur` that stays within [cur, end].
    int size_bits = 0;
    while (size_bits < 16) {
      uint32_t size = uint32_t{1} << (size_bits + 1);
      if ((cur & (size - 1)) != 0 || cur + size - 1 > end) break;
      ++size_bits;
    }
    out.emplace_back(static_cast<uint16_t>(cur), static_cast<uint8_t>(16 - size_bits));
    cur += uint32_t{1} << size_bits;
  }
  return out;
}

cn_pol_endpoint EndpointPolicy::ToAbi() const {
  cn_pol_endpoint e{};
  e.flags = flags;
  e.service_slot = service_slot;
  e.deny_slot = deny_slot;
  e.host_slot = host_slot;
  return e;
}

// ---- EvaluatePolicy ----

namespace {

// The longest entry of (endpoint, peer) covering (protocol, port).
const uint32_t* MatchEntry(const EndpointPolicy& ep, uint32_t endpoint, uint32_t peer,
                           uint8_t protocol, uint16_t port) {
  PolicyEntryKey lo{endpoint, peer, 0, 0, 0};
  const uint32_t* best = nullptr;
  int best_len = -1;
  for (auto it = ep.entries.lower_bound(lo);
       it != ep.entries.end() && it->first.endpoint == endpoint && it->first.peer == peer; ++it) {
    if (it->first.Covers(protocol, port) && it->first.prefix_len > best_len) {
      best_len = it->first.prefix_len;
      best = &it->second;
    }
  }
  return best;
}

}  // namespace

PolicyVerdict EvaluatePolicy(const PolicyState& state, const PolicyQuery& q) {
  PolicyVerdict v;
  if (!q.dst.is_v4()) return v;
  const uint32_t dst = q.dst.v4_host_order();
  auto it = state.endpoints.find(dst);
  if (it == state.endpoints.end() || !(it->second.flags & CN_POL_F_DEFAULT_DENY)) return v;
  const EndpointPolicy& ep = it->second;
  v.managed = true;
  if (q.from_host) {
    v.slot = ep.host_slot;
    return v;
  }
  if (q.via_service && (ep.flags & CN_POL_F_ALLOW_SERVICE)) {
    v.slot = ep.service_slot;
    return v;
  }
  const uint32_t* slot = nullptr;
  if (q.src.is_v4()) {
    const uint32_t src = q.src.v4_host_order();
    if (auto id = state.identities.find(src); id != state.identities.end())
      slot = MatchEntry(ep, dst, id->second, q.protocol, q.port);
    if (slot == nullptr) {
      for (int len = 32; len >= 0; --len) {
        auto c = state.cidrs.find(
            PolicyPrefix{src & PrefixMask(static_cast<uint8_t>(len)), static_cast<uint8_t>(len)});
        if (c == state.cidrs.end()) continue;
        slot = MatchEntry(ep, dst, c->second, q.protocol, q.port);
        break;
      }
    }
  }
  if (slot == nullptr) slot = MatchEntry(ep, dst, CN_POL_ID_ANY, q.protocol, q.port);
  if (slot != nullptr) {
    v.slot = *slot;
    return v;
  }
  v.allowed = false;
  v.slot = ep.deny_slot;
  v.reason = (ep.flags & CN_POL_F_NETPOL) ? CN_R_DROP_POLICY : CN_R_DROP_ISOLATED;
  return v;
}

// ---- PolicyCompiler ----

struct PolicyCompiler::World {
  PolicyCompilerOptions opt;

  // Inputs.
  std::map<std::string, NamespaceInfo, std::less<>> namespaces;
  std::map<std::string, PodInfo, std::less<>> pods;            // "ns/name"
  std::map<std::string, NetworkPolicy, std::less<>> policies;  // "ns/name"

  // What changed since the last Compile().
  std::set<std::string> changed_pods;
  std::set<std::string> dirty_namespaces;
  bool ns_labels_changed = false;
  bool policies_changed = false;

  // Identities of (namespace, labels), reference-counted by pods.
  struct Identity {
    IdentityKey key;
    size_t refs = 0;
  };
  std::map<IdentityKey, uint32_t> identity_by_key;
  std::map<uint32_t, Identity> identities;
  std::map<std::pair<std::string, std::string>, std::set<uint32_t>> label_index;
  std::map<std::string, std::set<uint32_t>, std::less<>> ns_index;
  std::map<std::string, uint32_t, std::less<>> pod_identity;
  std::map<std::string, std::vector<uint32_t>, std::less<>> pod_ips;
  std::map<uint32_t, std::set<std::string>> ip_owners;
  uint32_t next_identity = CN_POL_ID_FIRST_POD;
  uint32_t next_cidr = 1;

  // Endpoints: the IPs compiled for each local pod, and what their rules depend on.
  struct PodMeta {
    bool uses_selectors = false;
    bool uses_cidrs = false;
  };
  std::map<std::string, std::vector<uint32_t>, std::less<>> endpoint_ips;
  std::map<std::string, PodMeta, std::less<>> pod_meta;

  // Counter slots by (endpoint IP, pod, rule description).
  using SlotKey = std::tuple<uint32_t, std::string, std::string>;
  std::map<SlotKey, uint32_t> slots;
  std::set<uint32_t> free_slots;
  std::set<uint32_t> reserved;
  std::vector<uint32_t> pending_free;
  uint32_t next_slot = 1;
  size_t overflows = 0;

  PolicyState state;
  size_t compiled = 0;

  // ---- identities ----
  uint32_t Acquire(const IdentityKey& key, bool* created) {
    auto it = identity_by_key.find(key);
    if (it != identity_by_key.end()) {
      ++identities[it->second].refs;
      return it->second;
    }
    uint32_t id = next_identity++;
    identity_by_key.emplace(key, id);
    identities.emplace(id, Identity{key, 1});
    for (const auto& [k, v] : key.labels) label_index[{k, v}].insert(id);
    ns_index[key.ns].insert(id);
    *created = true;
    return id;
  }
  void Release(uint32_t id, bool* destroyed) {
    auto it = identities.find(id);
    if (it == identities.end() || --it->second.refs > 0) return;
    const IdentityKey& key = it->second.key;
    for (const auto& [k, v] : key.labels) {
      auto li = label_index.find({k, v});
      li->second.erase(id);
      if (li->second.empty()) label_index.erase(li);
    }
    auto ni = ns_index.find(key.ns);
    ni->second.erase(id);
    if (ni->second.empty()) ns_index.erase(ni);
    identity_by_key.erase(key);
    identities.erase(it);
    *destroyed = true;
  }

  // ---- slots ----
  uint32_t Slot(uint32_t ip, const std::string& pod, const std::string& desc,
                std::set<SlotKey>* used, PolicyChanges* ch) {
    SlotKey key{ip, pod, desc};
    used->insert(key);
    if (auto it = slots.find(key); it != slots.end()) return it->second;
    uint32_t s = 0;
    if (!free_slots.empty()) {
      s = *free_slots.begin();
      free_slots.erase(free_slots.begin());
    } else {
      while (next_slot < opt.counter_slots && reserved.count(next_slot)) ++next_slot;
      if (next_slot < opt.counter_slots) s = next_slot++;
    }
    if (s == 0) {
      ++overflows;  // Shared slot 0: counted together with other overflowing rules.
    } else {
      ch->new_slots.push_back(s);
    }
    slots.emplace(key, s);
    return s;
  }

  // ---- compiling one endpoint ----
  Labels NamespaceLabels(const std::string& ns) const {
    auto it = namespaces.find(ns);
    if (it != namespaces.end()) return it->second.SelectorLabels();
    NamespaceInfo n;
    n.name = ns;
    return n.SelectorLabels();
  }

  std::set<uint32_t> Peers(const NetworkPolicy& pol, const IngressRule& rule, PodMeta* meta,
                           std::map<std::string, bool>* ns_match_cache) {
    std::set<uint32_t> out;
    if (rule.from.empty()) {
      out.insert(CN_POL_ID_ANY);
      return out;
    }
    for (const PolicyPeer& peer : rule.from) {
      if (peer.ip_block) {
        meta->uses_cidrs = true;
        std::optional<PolicyPrefix> block = V4Prefix(peer.ip_block->cidr);
        if (!block) continue;  // IPv6: the IPv4 datapath ignores it.
        std::vector<PolicyPrefix> excepts;
        for (const auto& e : peer.ip_block->except) {
          if (auto p = V4Prefix(e)) excepts.push_back(*p);
        }
        uint32_t last = block->first | ~PrefixMask(block->second);
        for (auto it = state.cidrs.lower_bound(PolicyPrefix{block->first, 0});
             it != state.cidrs.end() && it->first.first <= last; ++it) {
          if (!Within(it->first, *block)) continue;
          bool excluded = std::any_of(excepts.begin(), excepts.end(),
                                      [&](const PolicyPrefix& e) { return Within(it->first, e); });
          if (!excluded) out.insert(it->second);
        }
        continue;
      }
      meta->uses_selectors = true;
      const std::set<uint32_t>* candidates = nullptr;
      std::set<uint32_t> all;
      if (peer.pod_selector && !peer.pod_selector->match_labels.empty()) {
        const auto& [k, v] = *peer.pod_selector->match_labels.begin();
        auto li = label_index.find({k, v});
        if (li == label_index.end()) continue;
        candidates = &li->second;
      } else if (!peer.namespace_selector) {
        auto ni = ns_index.find(pol.namespace_name);
        if (ni == ns_index.end()) continue;
        candidates = &ni->second;
      } else {
        for (const auto& [id, ident] : identities) all.insert(id);
        candidates = &all;
      }
      for (uint32_t id : *candidates) {
        const IdentityKey& key = identities.at(id).key;
        if (peer.namespace_selector) {
          auto [c, inserted] = ns_match_cache->try_emplace(StrCat(key.ns));
          if (inserted) c->second = peer.namespace_selector->Matches(NamespaceLabels(key.ns));
          // The cache is per peer: cleared by the caller between peers.
          if (!c->second) continue;
        } else if (key.ns != pol.namespace_name) {
          continue;
        }
        if (peer.pod_selector && !peer.pod_selector->Matches(key.labels)) continue;
        out.insert(id);
      }
      ns_match_cache->clear();
    }
    return out;
  }

  std::optional<EndpointPolicy> CompileEndpoint(uint32_t ip, const std::string& pod_key,
                                                const PodInfo& pod, PodMeta* meta,
                                                std::set<SlotKey>* used, PolicyChanges* ch) {
    ++compiled;
    *meta = PodMeta{};
    auto ns = namespaces.find(pod.namespace_name);
    const bool isolated = ns != namespaces.end() && ns->second.isolated;
    std::vector<const NetworkPolicy*> selecting;
    const std::string prefix = StrCat(pod.namespace_name, "/");
    for (auto it = policies.lower_bound(prefix);
         it != policies.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      if (it->second.AffectsIngress() && it->second.pod_selector.Matches(pod.labels))
        selecting.push_back(&it->second);
    }
    if (isolated) meta->uses_selectors = true;
    if (!isolated && selecting.empty()) {
      // Still record what the (absent) policy depends on: nothing.
      return std::nullopt;
    }
    EndpointPolicy ep;
    ep.address = cni::IPAddress::V4(ip);
    ep.pod = pod_key;
    ep.flags = CN_POL_F_DEFAULT_DENY;
    if (isolated) ep.flags |= CN_POL_F_ISOLATED | CN_POL_F_ALLOW_SERVICE;
    if (!selecting.empty()) ep.flags |= CN_POL_F_NETPOL;
    ep.deny_slot = Slot(ip, pod_key, "denied", used, ch);
    ep.host_slot = Slot(ip, pod_key, "from host", used, ch);
    if (isolated) ep.service_slot = Slot(ip, pod_key, "via service", used, ch);

    // A rule's counter slot follows its content: an edited rule starts counting from zero.
    auto add_rule = [&](const std::string& desc, const std::string& fingerprint,
                        const std::set<uint32_t>& peers, const std::vector<PortSpec>& specs) {
      uint32_t slot = Slot(ip, pod_key, StrCat(desc, "\x1f", fingerprint), used, ch);
      ep.rules.push_back(PolicyRuleInfo{slot, desc});
      for (uint32_t peer : peers) {
        for (const PortSpec& s : specs) {
          PolicyEntryKey k{ip, peer, s.protocol, s.prefix_len, s.port};
          ep.entries.emplace(k, slot);  // The first rule producing an entry counts it.
        }
      }
    };
    if (isolated) {
      std::set<uint32_t> same_ns;
      if (auto ni = ns_index.find(pod.namespace_name); ni != ns_index.end()) same_ns = ni->second;
      add_rule(StrCat("isolation of namespace ", pod.namespace_name), "", same_ns, {PortSpec{}});
    }
    std::map<std::string, bool> ns_cache;
    for (const NetworkPolicy* pol : selecting) {
      for (size_t i = 0; i < pol->ingress.size(); ++i) {
        const IngressRule& rule = pol->ingress[i];
        add_rule(StrCat("policy ", pol->Key(), " ingress[", i, "]"), RuleFingerprint(rule),
                 Peers(*pol, rule, meta, &ns_cache), PortSpecs(rule.ports));
      }
    }
    return ep;
  }

  // The local pod that owns endpoint `ip` (first by key), or nullptr.
  const std::string* LocalOwner(uint32_t ip) const {
    auto it = ip_owners.find(ip);
    if (it == ip_owners.end()) return nullptr;
    for (const std::string& key : it->second) {
      auto p = pods.find(key);
      if (p != pods.end() && p->second.local) return &key;
    }
    return nullptr;
  }

  void RecompileIp(uint32_t ip, PolicyChanges* ch) {
    std::set<SlotKey> used;
    std::optional<EndpointPolicy> np;
    if (const std::string* owner = LocalOwner(ip)) {
      PodMeta meta;
      np = CompileEndpoint(ip, *owner, pods.at(*owner), &meta, &used, ch);
      PodMeta& m = pod_meta[*owner];
      m.uses_selectors |= meta.uses_selectors;
      m.uses_cidrs |= meta.uses_cidrs;
    }
    // Slots of this endpoint no longer used are freed at the next Compile() (entries referring
    // to them are deleted by the writer of this one).
    for (auto it = slots.lower_bound(SlotKey{ip, "", ""});
         it != slots.end() && std::get<0>(it->first) == ip;) {
      if (used.count(it->first) == 0) {
        if (it->second != 0) pending_free.push_back(it->second);
        it = slots.erase(it);
      } else {
        ++it;
      }
    }
    auto old = state.endpoints.find(ip);
    if (np) {
      if (old == state.endpoints.end() || !old->second.SameDatapathState(*np))
        ch->endpoints.insert(ip);
      state.endpoints[ip] = std::move(*np);
    } else if (old != state.endpoints.end()) {
      state.endpoints.erase(old);
      ch->endpoints.insert(ip);
    }
  }
};

PolicyCompiler::PolicyCompiler(PolicyCompilerOptions options) : w_(std::make_unique<World>()) {
  w_->opt = options;
  if (w_->opt.counter_slots < 2) w_->opt.counter_slots = 2;
  w_->next_identity = std::max<uint32_t>(options.first_identity, CN_POL_ID_FIRST_POD);
  w_->next_cidr = std::max<uint32_t>(options.first_cidr_identity, 1);
}

PolicyCompiler::~PolicyCompiler() = default;

absl::Status PolicyCompiler::UpsertNamespace(const NamespaceInfo& ns) {
  CNINET_RETURN_IF_ERROR(ns.Validate());
  auto it = w_->namespaces.find(ns.name);
  if (it != w_->namespaces.end() && it->second == ns) return absl::OkStatus();
  if (it == w_->namespaces.end() || it->second.labels != ns.labels) w_->ns_labels_changed = true;
  w_->dirty_namespaces.insert(ns.name);
  w_->namespaces[ns.name] = ns;
  return absl::OkStatus();
}

absl::Status PolicyCompiler::DeleteNamespace(std::string_view name) {
  auto it = w_->namespaces.find(name);
  if (it == w_->namespaces.end()) return absl::OkStatus();
  if (!it->second.labels.empty()) w_->ns_labels_changed = true;
  w_->dirty_namespaces.insert(std::string(name));
  w_->namespaces.erase(it);
  return absl::OkStatus();
}

absl::Status PolicyCompiler::UpsertPod(const PodInfo& pod) {
  CNINET_RETURN_IF_ERROR(pod.Validate());
  std::string key = pod.Key();
  auto it = w_->pods.find(key);
  if (it != w_->pods.end() && it->second == pod) return absl::OkStatus();
  w_->pods[key] = pod;
  w_->changed_pods.insert(std::move(key));
  return absl::OkStatus();
}

absl::Status PolicyCompiler::DeletePod(std::string_view namespace_name, std::string_view name) {
  std::string key = PodKey(namespace_name, name);
  auto it = w_->pods.find(key);
  if (it == w_->pods.end()) return absl::OkStatus();
  w_->pods.erase(it);
  w_->changed_pods.insert(std::move(key));
  return absl::OkStatus();
}

absl::Status PolicyCompiler::UpsertPolicy(const NetworkPolicy& policy) {
  CNINET_RETURN_IF_ERROR(policy.Validate());
  std::string key = policy.Key();
  auto it = w_->policies.find(key);
  if (it != w_->policies.end() && it->second == policy) return absl::OkStatus();
  w_->policies[key] = policy;
  w_->dirty_namespaces.insert(policy.namespace_name);
  w_->policies_changed = true;
  return absl::OkStatus();
}

absl::Status PolicyCompiler::DeletePolicy(std::string_view namespace_name, std::string_view name) {
  auto it = w_->policies.find(PodKey(namespace_name, name));
  if (it == w_->policies.end()) return absl::OkStatus();
  w_->policies.erase(it);
  w_->dirty_namespaces.insert(std::string(namespace_name));
  w_->policies_changed = true;
  return absl::OkStatus();
}

absl::Status PolicyCompiler::Replace(const PolicySnapshot& snapshot) {
  // Validate everything first: nothing changes on error.
  std::set<std::string> seen;
  for (const auto& ns : snapshot.namespaces) {
    CNINET_RETURN_IF_ERROR(ns.Validate());
    if (!seen.insert(ns.name).second)
      return absl::InvalidArgumentError(StrCat("namespace ", ns.name, " listed twice"));
  }
  seen.clear();
  for (const auto& p : snapshot.pods) {
    CNINET_RETURN_IF_ERROR(p.Validate());
    if (!seen.insert(p.Key()).second)
      return absl::InvalidArgumentError(StrCat("pod ", p.Key(), " listed twice"));
  }
  seen.clear();
  for (const auto& p : snapshot.policies) {
    CNINET_RETURN_IF_ERROR(p.Validate());
    if (!seen.insert(p.Key()).second)
      return absl::InvalidArgumentError(StrCat("networkpolicy ", p.Key(), " listed twice"));
  }
  std::set<std::string> ns_names, pod_keys, pol_keys;
  for (const auto& ns : snapshot.namespaces) ns_names.insert(ns.name);
  for (const auto& p : snapshot.pods) pod_keys.insert(p.Key());
  for (const auto& p : snapshot.policies) pol_keys.insert(p.Key());
  std::vector<std::string> gone;
  for (const auto& [name, ns] : w_->namespaces)
    if (!ns_names.count(name)) gone.push_back(name);
  for (const auto& name : gone) (void)DeleteNamespace(name);
  gone.clear();
  for (const auto& [key, p] : w_->pods)
    if (!pod_keys.count(key)) gone.push_back(key);
  for (const auto& key : gone) {
    size_t slash = key.find('/');
    (void)DeletePod(std::string_view(key).substr(0, slash),
                    std::string_view(key).substr(slash + 1));
  }
  gone.clear();
  for (const auto& [key, p] : w_->policies)
    if (!pol_keys.count(key)) gone.push_back(key);
  for (const auto& key : gone) {
    size_t slash = key.find('/');
    (void)DeletePolicy(std::string_view(key).substr(0, slash),
                       std::string_view(key).substr(slash + 1));
  }
  for (const auto& ns : snapshot.namespaces) (void)UpsertNamespace(ns);
  for (const auto& p : snapshot.pods) (void)UpsertPod(p);
  for (const auto& p : snapshot.policies) (void)UpsertPolicy(p);
  return absl::OkStatus();
}

PolicyChanges PolicyCompiler::Compile() {
  World& w = *w_;
  PolicyChanges ch;
  for (uint32_t s : w.pending_free) w.free_slots.insert(s);
  w.pending_free.clear();

  // 1. Pods -> identities and pod IPv4 -> identity.
  bool identity_set_changed = false;
  std::set<uint32_t> touched_ips;
  for (const std::string& key : w.changed_pods) {
    auto pod = w.pods.find(key);
    auto old_id = w.pod_identity.find(key);
    const bool had_old = old_id != w.pod_identity.end();
    const uint32_t old = had_old ? old_id->second : 0;
    std::vector<uint32_t> old_ips = w.pod_ips[key];
    std::vector<uint32_t> new_ips;
    if (pod != w.pods.end()) {
      IdentityKey ik{pod->second.namespace_name, pod->second.labels};
      uint32_t id = w.Acquire(ik, &identity_set_changed);
      w.pod_identity[key] = id;
      new_ips = V4Addresses(pod->second);
      w.pod_ips[key] = new_ips;
    } else {
      w.pod_identity.erase(key);
      w.pod_ips.erase(key);
    }
    if (had_old) w.Release(old, &identity_set_changed);
    for (uint32_t ip : old_ips) {
      auto o = w.ip_owners.find(ip);
      if (o == w.ip_owners.end()) continue;
      o->second.erase(key);
      if (o->second.empty()) w.ip_owners.erase(o);
      touched_ips.insert(ip);
    }
    for (uint32_t ip : new_ips) {
      w.ip_owners[ip].insert(key);
      touched_ips.insert(ip);
    }
  }
  for (uint32_t ip : touched_ips) {
    auto owners = w.ip_owners.find(ip);
    auto cur = w.state.identities.find(ip);
    if (owners == w.ip_owners.end()) {
      if (cur != w.state.identities.end()) {
        w.state.identities.erase(cur);
        ch.identities.insert(ip);
      }
      continue;
    }
    uint32_t id = w.pod_identity.at(*owners->second.begin());
    if (cur == w.state.identities.end() || cur->second != id) {
      w.state.identities[ip] = id;
      ch.identities.insert(ip);
    }
  }

  // 2. ipBlock prefixes -> CIDR identities.
  if (w.policies_changed) {
    std::set<PolicyPrefix> want;
    for (const auto& [key, pol] : w.policies) {
      if (!pol.AffectsIngress()) continue;
      for (const auto& rule : pol.ingress) {
        for (const auto& peer : rule.from) {
          if (!peer.ip_block) continue;
          if (auto p = V4Prefix(peer.ip_block->cidr)) want.insert(*p);
          for (const auto& e : peer.ip_block->except) {
            if (auto p = V4Prefix(e)) want.insert(*p);
          }
        }
      }
    }
    for (auto it = w.state.cidrs.begin(); it != w.state.cidrs.end();) {
      if (!want.count(it->first)) {
        ch.cidrs.insert(it->first);
        it = w.state.cidrs.erase(it);
      } else {
        ++it;
      }
    }
    for (const PolicyPrefix& p : want) {
      if (w.state.cidrs.count(p)) continue;
      w.state.cidrs[p] = CN_POL_ID_CIDR_BIT | (w.next_cidr++ & ~CN_POL_ID_CIDR_BIT);
      ch.cidrs.insert(p);
    }
  }

  // 3. Endpoints the changes can affect.
  const bool selectors_dirty = identity_set_changed || w.ns_labels_changed;
  const bool cidrs_dirty = !ch.cidrs.empty();
  std::set<std::string> dirty(w.changed_pods.begin(), w.changed_pods.end());
  for (const auto& [key, pod] : w.pods) {
    if (!pod.local) continue;
    const World::PodMeta& m = w.pod_meta[key];
    if (w.dirty_namespaces.count(pod.namespace_name) || (selectors_dirty && m.uses_selectors) ||
        (cidrs_dirty && m.uses_cidrs))
      dirty.insert(key);
  }
  for (const std::string& key : dirty) {
    std::set<uint32_t> ips;
    if (auto e = w.endpoint_ips.find(key); e != w.endpoint_ips.end())
      ips.insert(e->second.begin(), e->second.end());
    auto pod = w.pods.find(key);
    const bool local = pod != w.pods.end() && pod->second.local;
    std::vector<uint32_t> now = local ? V4Addresses(pod->second) : std::vector<uint32_t>{};
    ips.insert(now.begin(), now.end());
    w.pod_meta.erase(key);
    if (local) {
      w.endpoint_ips[key] = now;
    } else {
      w.endpoint_ips.erase(key);
    }
    for (uint32_t ip : ips) w.RecompileIp(ip, &ch);
  }

  w.changed_pods.clear();
  w.dirty_namespaces.clear();
  w.ns_labels_changed = false;
  w.policies_changed = false;
  return ch;
}

const PolicyState& PolicyCompiler::state() const { return w_->state; }

PolicyCompilerStats PolicyCompiler::stats() const {
  PolicyCompilerStats s;
  s.pods = w_->pods.size();
  s.identities = w_->identities.size();
  s.prefixes = w_->state.cidrs.size();
  s.endpoints = w_->state.endpoints.size();
  for (const auto& [ip, ep] : w_->state.endpoints) s.entries += ep.entries.size();
  for (const auto& [k, slot] : w_->slots) s.slots_in_use += slot != 0;
  s.slot_overflows = w_->overflows;
  s.endpoints_compiled = w_->compiled;
  return s;
}

void PolicyCompiler::ReserveSlots(const std::set<uint32_t>& slots) {
  for (uint32_t s : slots) {
    if (s == 0 || s >= w_->opt.counter_slots) continue;
    w_->free_slots.erase(s);
    w_->reserved.insert(s);
  }
}

void PolicyCompiler::ReleaseReservedSlots() {
  std::set<uint32_t> in_use;
  for (const auto& [k, s] : w_->slots) in_use.insert(s);
  for (uint32_t s : w_->reserved) {
    if (s < w_->next_slot && !in_use.count(s)) w_->free_slots.insert(s);
  }
  w_->reserved.clear();
}

void PolicyCompiler::SetIdentityFloor(uint32_t next_pod_identity, uint32_t next_cidr_identity) {
  w_->next_identity = std::max(w_->next_identity, next_pod_identity);
  w_->next_cidr = std::max(w_->next_cidr, next_cidr_identity & ~CN_POL_ID_CIDR_BIT);
}

absl::StatusOr<uint32_t> PolicyCompiler::PodIdentity(std::string_view namespace_name,
                                                     std::string_view name) const {
  auto it = w_->pod_identity.find(PodKey(namespace_name, name));
  if (it == w_->pod_identity.end())
    return absl::NotFoundError(StrCat("no identity for pod ", namespace_name, "/", name));
  return it->second;
}

absl::StatusOr<uint32_t> PolicyCompiler::PrefixIdentity(const cni::IPPrefix& prefix) const {
  std::optional<PolicyPrefix> p = V4Prefix(prefix);
  if (!p) return absl::NotFoundError("IPv6 prefixes have no identity");
  auto it = w_->state.cidrs.find(*p);
  if (it == w_->state.cidrs.end())
    return absl::NotFoundError(StrCat("no policy uses prefix ", prefix.ToString()));
  return it->second;
}

}  // namespace cninet::datapath
