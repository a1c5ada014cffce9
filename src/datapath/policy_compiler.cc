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

// ::ffff:0:0/96, where the maps keep IPv4 addresses.
const cni::IPPrefix& MappedRange() {
  static const cni::IPPrefix r(cni::IPAddress::FromBytes(ToAbiAddr(cni::IPAddress::V4(0)).a8, 16),
                               96);
  return r;
}

// `inner` lies inside `outer` (same family).
bool Within(const PolicyPrefix& inner, const PolicyPrefix& outer) {
  return inner.is_v4() == outer.is_v4() && inner.prefix_len() >= outer.prefix_len() &&
         outer.Contains(inner.address());
}

// The network of `addr`/`len`.
PolicyPrefix Network(const cni::IPAddress& addr, int len) {
  return cni::IPPrefix(addr, len).Masked();
}

std::vector<PortSpec> PortSpecs(const std::vector<PolicyPort>& ports) {
  std::vector<PortSpec> out;
  if (ports.empty()) {
    out.push_back(PortSpec{});
    return out;
  }
  for (const PolicyPort& p : ports) {
    uint8_t proto = ToNumber(p.protocol);
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

// The compiled form of an ipBlock prefix: masked; nullopt for IPv6 prefixes inside the
// IPv4-mapped range (their keys would alias IPv4 prefixes).
std::optional<PolicyPrefix> CompiledPrefix(const cni::IPPrefix& p) {
  cni::IPPrefix m = p.Masked();
  if (!m.is_v4() && Within(m, MappedRange())) return std::nullopt;
  return m;
}

// An IPv6 prefix whose LPM key would also match IPv4 sources (it covers ::ffff:0:0/96).
bool CoversMappedRange(const PolicyPrefix& p) { return !p.is_v4() && Within(MappedRange(), p); }

std::vector<cni::IPAddress> Addresses(const PodInfo& pod) {
  std::vector<cni::IPAddress> out(pod.addresses.begin(), pod.addresses.end());
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
  k.endpoint = ToAbiAddr(endpoint);
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
  out.endpoint = FromAbiAddr(k.endpoint);
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
  return StrCat(endpoint.ToString(), " <- ", peer_text, " ", what);
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

cn_pol_cidr_key PolicyPrefixToAbi(const PolicyPrefix& prefix) {
  cn_pol_cidr_key k{};
  k.prefixlen = static_cast<uint32_t>(prefix.prefix_len() + (prefix.is_v4() ? 96 : 0));
  k.addr = ToAbiAddr(prefix.address());
  return k;
}

PolicyPrefix PolicyPrefixFromAbi(const cn_pol_cidr_key& key) {
  cni::IPAddress a = FromAbiAddr(key.addr);
  int len = static_cast<int>(key.prefixlen);
  if (a.is_v4() && len < 96) {
    a = cni::IPAddress::FromBytes(key.addr.a8, 16);  // Shorter than the mapped range: IPv6.
  } else if (a.is_v4()) {
    len -= 96;
  }
  return cni::IPPrefix(a, len);
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
const uint32_t* MatchEntry(const EndpointPolicy& ep, const cni::IPAddress& endpoint, uint32_t peer,
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

// The CIDR identity of `src` as the cn_pol_cidrs LPM lookup finds it: the longest prefix of its
// family, then (IPv4, in the IPv4-mapped key space) an IPv6 prefix covering the mapped range.
const uint32_t* CidrIdentity(const PolicyState& state, const cni::IPAddress& src) {
  for (int len = src.bit_length(); len >= 0; --len) {
    auto c = state.cidrs.find(Network(src, len));
    if (c != state.cidrs.end()) return &c->second;
  }
  if (!src.is_v4()) return nullptr;
  cni::IPAddress mapped = cni::IPAddress::FromBytes(ToAbiAddr(src).a8, 16);
  for (int len = 96; len >= 0; --len) {
    auto c = state.cidrs.find(Network(mapped, len));
    if (c != state.cidrs.end()) return &c->second;
  }
  return nullptr;
}

}  // namespace

PolicyVerdict EvaluatePolicy(const PolicyState& state, const PolicyQuery& q) {
  PolicyVerdict v;
  const cni::IPAddress& dst = q.dst;
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
  if (auto id = state.identities.find(q.src); id != state.identities.end())
    slot = MatchEntry(ep, dst, id->second, ToNumber(q.protocol), q.port);
  if (slot == nullptr) {
    if (const uint32_t* cidr = CidrIdentity(state, q.src))
      slot = MatchEntry(ep, dst, *cidr, ToNumber(q.protocol), q.port);
  }
  if (slot == nullptr) slot = MatchEntry(ep, dst, CN_POL_ID_ANY, ToNumber(q.protocol), q.port);
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

// Everything the compiler knows: its inputs, the identities and counter slots it allocated, and
// the compiled state. Member functions are the named steps of Compile().
struct PolicyCompiler::CompilerState {
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
  std::map<std::string, std::vector<cni::IPAddress>, std::less<>> pod_ips;
  std::map<cni::IPAddress, std::set<std::string>> ip_owners;
  uint32_t next_identity = CN_POL_ID_FIRST_POD;
  uint32_t next_cidr = 1;

  // Endpoints: the IPs compiled for each local pod, and what their rules depend on.
  struct PodMeta {
    bool uses_selectors = false;
    bool uses_cidrs = false;
  };
  std::map<std::string, std::vector<cni::IPAddress>, std::less<>> endpoint_ips;
  std::map<std::string, PodMeta, std::less<>> pod_meta;

  // Counter slots by (endpoint IP, pod, rule description).
  using SlotKey = std::tuple<cni::IPAddress, std::string, std::string>;
  std::map<SlotKey, uint32_t> slots;
  std::set<uint32_t> free_slots;
  std::set<uint32_t> reserved;
  std::vector<uint32_t> pending_free;
  uint32_t next_slot = 1;
  size_t overflows = 0;

  PolicyState state;
  size_t compiled = 0;

  // Identities.
  uint32_t Acquire(const IdentityKey& key, bool* created);
  void Release(uint32_t id, bool* destroyed);
  // A counter slot for (ip, pod, desc), recorded in `used`; 0 (shared) when none is left.
  uint32_t Slot(const cni::IPAddress& ip, const std::string& pod, const std::string& desc,
                std::set<SlotKey>* used, PolicyChanges* ch);

  // Compile() step 1: pods -> identities, pod address -> identity; returns whether the set of
  // identities changed.
  bool UpdatePodIdentities(PolicyChanges* ch);
  // The pod owners of `ips` changed: their address -> identity entries follow.
  void UpdateIpIdentities(const std::set<cni::IPAddress>& ips, PolicyChanges* ch);
  // Compile() step 2: ipBlock prefixes -> CIDR identities.
  void UpdateCidrIdentities(PolicyChanges* ch);
  // Compile() step 3: the local pods the changes can affect, recompiled.
  void RecompileDirtyEndpoints(bool identity_set_changed, PolicyChanges* ch);

  // Compiling one endpoint.
  Labels NamespaceLabels(const std::string& ns) const;
  void AddCidrPeers(const PolicyPeer& peer, std::set<uint32_t>* out) const;
  void AddSelectorPeers(const NetworkPolicy& pol, const PolicyPeer& peer,
                        std::map<std::string, bool>* ns_match_cache, std::set<uint32_t>* out) const;
  std::set<uint32_t> Peers(const NetworkPolicy& pol, const IngressRule& rule, PodMeta* meta,
                           std::map<std::string, bool>* ns_match_cache) const;
  std::vector<const NetworkPolicy*> SelectingPolicies(const PodInfo& pod) const;
  std::optional<EndpointPolicy> CompileEndpoint(const cni::IPAddress& ip,
                                                const std::string& pod_key, const PodInfo& pod,
                                                PodMeta* meta, std::set<SlotKey>* used,
                                                PolicyChanges* ch);
  const std::string* LocalOwner(const cni::IPAddress& ip) const;
  void FreeUnusedSlots(const cni::IPAddress& ip, const std::set<SlotKey>& used);
  void RecompileIp(const cni::IPAddress& ip, PolicyChanges* ch);
};

// ---- identities ----

uint32_t PolicyCompiler::CompilerState::Acquire(const IdentityKey& key, bool* created) {
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

void PolicyCompiler::CompilerState::Release(uint32_t id, bool* destroyed) {
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

uint32_t PolicyCompiler::CompilerState::Slot(const cni::IPAddress& ip, const std::string& pod,
                                             const std::string& desc, std::set<SlotKey>* used,
                                             PolicyChanges* ch) {
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

// ---- Compile() steps ----

bool PolicyCompiler::CompilerState::UpdatePodIdentities(PolicyChanges* ch) {
  bool identity_set_changed = false;
  std::set<cni::IPAddress> touched_ips;
  for (const std::string& key : changed_pods) {
    auto pod = pods.find(key);
    auto old_id = pod_identity.find(key);
    const bool had_old = old_id != pod_identity.end();
    const uint32_t old = had_old ? old_id->second : 0;
    std::vector<cni::IPAddress> old_ips = pod_ips[key];
    std::vector<cni::IPAddress> new_ips;
    if (pod != pods.end()) {
      IdentityKey ik{pod->second.namespace_name, pod->second.labels};
      pod_identity[key] = Acquire(ik, &identity_set_changed);
      new_ips = Addresses(pod->second);
      pod_ips[key] = new_ips;
    } else {
      pod_identity.erase(key);
      pod_ips.erase(key);
    }
    if (had_old) Release(old, &identity_set_changed);
    for (const cni::IPAddress& ip : old_ips) {
      auto o = ip_owners.find(ip);
      if (o == ip_owners.end()) continue;
      o->second.erase(key);
      if (o->second.empty()) ip_owners.erase(o);
      touched_ips.insert(ip);
    }
    for (const cni::IPAddress& ip : new_ips) {
      ip_owners[ip].insert(key);
      touched_ips.insert(ip);
    }
  }
  UpdateIpIdentities(touched_ips, ch);
  return identity_set_changed;
}

void PolicyCompiler::CompilerState::UpdateIpIdentities(const std::set<cni::IPAddress>& ips,
                                                       PolicyChanges* ch) {
  for (const cni::IPAddress& ip : ips) {
    auto owners = ip_owners.find(ip);
    auto cur = state.identities.find(ip);
    if (owners == ip_owners.end()) {
      if (cur != state.identities.end()) {
        state.identities.erase(cur);
        ch->identities.insert(ip);
      }
      continue;
    }
    uint32_t id = pod_identity.at(*owners->second.begin());
    if (cur == state.identities.end() || cur->second != id) {
      state.identities[ip] = id;
      ch->identities.insert(ip);
    }
  }
}

void PolicyCompiler::CompilerState::UpdateCidrIdentities(PolicyChanges* ch) {
  if (!policies_changed) return;
  std::set<PolicyPrefix> want;
  for (const auto& [key, pol] : policies) {
    if (!pol.AffectsIngress()) continue;
    for (const auto& rule : pol.ingress) {
      for (const auto& peer : rule.from) {
        if (!peer.ip_block) continue;
        if (auto p = CompiledPrefix(peer.ip_block->cidr)) want.insert(*p);
        for (const auto& e : peer.ip_block->except) {
          if (auto p = CompiledPrefix(e)) want.insert(*p);
        }
      }
    }
  }
  // An IPv6 prefix covering ::ffff:0:0/96 would be the longest match of IPv4 sources outside
  // every IPv4 prefix; 0.0.0.0/0 (the same key as ::ffff:0:0/96) keeps them out of it.
  if (std::any_of(want.begin(), want.end(), CoversMappedRange))
    want.insert(Network(cni::IPAddress::V4(0), 0));
  for (auto it = state.cidrs.begin(); it != state.cidrs.end();) {
    if (!want.count(it->first)) {
      ch->cidrs.insert(it->first);
      it = state.cidrs.erase(it);
    } else {
      ++it;
    }
  }
  for (const PolicyPrefix& p : want) {
    if (state.cidrs.count(p)) continue;
    state.cidrs[p] = CN_POL_ID_CIDR_BIT | (next_cidr++ & ~CN_POL_ID_CIDR_BIT);
    ch->cidrs.insert(p);
  }
}

void PolicyCompiler::CompilerState::RecompileDirtyEndpoints(bool identity_set_changed,
                                                            PolicyChanges* ch) {
  const bool selectors_dirty = identity_set_changed || ns_labels_changed;
  const bool cidrs_dirty = !ch->cidrs.empty();
  std::set<std::string> dirty(changed_pods.begin(), changed_pods.end());
  for (const auto& [key, pod] : pods) {
    if (!pod.local) continue;
    const PodMeta& m = pod_meta[key];
    if (dirty_namespaces.count(pod.namespace_name) || (selectors_dirty && m.uses_selectors) ||
        (cidrs_dirty && m.uses_cidrs))
      dirty.insert(key);
  }
  for (const std::string& key : dirty) {
    std::set<cni::IPAddress> ips;
    if (auto e = endpoint_ips.find(key); e != endpoint_ips.end())
      ips.insert(e->second.begin(), e->second.end());
    auto pod = pods.find(key);
    const bool local = pod != pods.end() && pod->second.local;
    std::vector<cni::IPAddress> now =
        local ? Addresses(pod->second) : std::vector<cni::IPAddress>{};
    ips.insert(now.begin(), now.end());
    pod_meta.erase(key);
    if (local) {
      endpoint_ips[key] = now;
    } else {
      endpoint_ips.erase(key);
    }
    for (const cni::IPAddress& ip : ips) RecompileIp(ip, ch);
  }
}

// ---- compiling one endpoint ----

Labels PolicyCompiler::CompilerState::NamespaceLabels(const std::string& ns) const {
  auto it = namespaces.find(ns);
  if (it != namespaces.end()) return it->second.SelectorLabels();
  NamespaceInfo n;
  n.name = ns;
  return n.SelectorLabels();
}

// The CIDR identities an ipBlock peer covers (its prefix and the longer ones inside it, minus
// its excepts).
void PolicyCompiler::CompilerState::AddCidrPeers(const PolicyPeer& peer,
                                                 std::set<uint32_t>* out) const {
  std::optional<PolicyPrefix> block = CompiledPrefix(peer.ip_block->cidr);
  if (!block) return;  // Inside the IPv4-mapped range: matches nothing.
  std::vector<PolicyPrefix> excepts;
  for (const auto& e : peer.ip_block->except) {
    if (auto p = CompiledPrefix(e)) excepts.push_back(*p);
  }
  // A block covering the IPv4-mapped range must not take in the IPv4 prefixes kept there.
  if (CoversMappedRange(*block)) excepts.push_back(MappedRange());
  const cni::IPAddress last = block->LastAddress();
  for (auto it = state.cidrs.lower_bound(cni::IPPrefix(block->address(), 0));
       it != state.cidrs.end() && it->first.address() <= last; ++it) {
    if (!Within(it->first, *block)) continue;
    bool excluded = std::any_of(excepts.begin(), excepts.end(),
                                [&](const PolicyPrefix& e) { return Within(it->first, e); });
    if (!excluded) out->insert(it->second);
  }
}

// The pod identities a selector peer matches (candidates narrowed by one label or the namespace).
void PolicyCompiler::CompilerState::AddSelectorPeers(const NetworkPolicy& pol,
                                                     const PolicyPeer& peer,
                                                     std::map<std::string, bool>* ns_match_cache,
                                                     std::set<uint32_t>* out) const {
  const std::set<uint32_t>* candidates = nullptr;
  std::set<uint32_t> all;
  if (peer.pod_selector && !peer.pod_selector->match_labels.empty()) {
    const auto& [k, v] = *peer.pod_selector->match_labels.begin();
    auto li = label_index.find({k, v});
    if (li == label_index.end()) return;
    candidates = &li->second;
  } else if (!peer.namespace_selector) {
    auto ni = ns_index.find(pol.namespace_name);
    if (ni == ns_index.end()) return;
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
      if (!c->second) continue;
    } else if (key.ns != pol.namespace_name) {
      continue;
    }
    if (peer.pod_selector && !peer.pod_selector->Matches(key.labels)) continue;
    out->insert(id);
  }
}

std::set<uint32_t> PolicyCompiler::CompilerState::Peers(
    const NetworkPolicy& pol, const IngressRule& rule, PodMeta* meta,
    std::map<std::string, bool>* ns_match_cache) const {
  std::set<uint32_t> out;
  if (rule.from.empty()) {
    out.insert(CN_POL_ID_ANY);
    return out;
  }
  for (const PolicyPeer& peer : rule.from) {
    if (peer.ip_block) {
      meta->uses_cidrs = true;
      AddCidrPeers(peer, &out);
      continue;
    }
    meta->uses_selectors = true;
    AddSelectorPeers(pol, peer, ns_match_cache, &out);
    ns_match_cache->clear();  // The cache is per peer.
  }
  return out;
}

std::vector<const NetworkPolicy*> PolicyCompiler::CompilerState::SelectingPolicies(
    const PodInfo& pod) const {
  std::vector<const NetworkPolicy*> selecting;
  const std::string prefix = StrCat(pod.namespace_name, "/");
  for (auto it = policies.lower_bound(prefix);
       it != policies.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (it->second.AffectsIngress() && it->second.pod_selector.Matches(pod.labels))
      selecting.push_back(&it->second);
  }
  return selecting;
}

std::optional<EndpointPolicy> PolicyCompiler::CompilerState::CompileEndpoint(
    const cni::IPAddress& ip, const std::string& pod_key, const PodInfo& pod, PodMeta* meta,
    std::set<SlotKey>* used, PolicyChanges* ch) {
  ++compiled;
  *meta = PodMeta{};
  auto ns = namespaces.find(pod.namespace_name);
  const bool isolated = ns != namespaces.end() && ns->second.isolated;
  std::vector<const NetworkPolicy*> selecting = SelectingPolicies(pod);
  if (isolated) meta->uses_selectors = true;
  if (!isolated && selecting.empty()) return std::nullopt;
  EndpointPolicy ep;
  ep.address = ip;
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
const std::string* PolicyCompiler::CompilerState::LocalOwner(const cni::IPAddress& ip) const {
  auto it = ip_owners.find(ip);
  if (it == ip_owners.end()) return nullptr;
  for (const std::string& key : it->second) {
    auto p = pods.find(key);
    if (p != pods.end() && p->second.local) return &key;
  }
  return nullptr;
}

// Slots of endpoint `ip` no longer used are freed at the next Compile() (entries referring to
// them are deleted by the writer of this one).
void PolicyCompiler::CompilerState::FreeUnusedSlots(const cni::IPAddress& ip,
                                                    const std::set<SlotKey>& used) {
  for (auto it = slots.lower_bound(SlotKey{ip, "", ""});
       it != slots.end() && std::get<0>(it->first) == ip;) {
    if (used.count(it->first) == 0) {
      if (it->second != 0) pending_free.push_back(it->second);
      it = slots.erase(it);
    } else {
      ++it;
    }
  }
}

void PolicyCompiler::CompilerState::RecompileIp(const cni::IPAddress& ip, PolicyChanges* ch) {
  std::set<SlotKey> used;
  std::optional<EndpointPolicy> np;
  if (const std::string* owner = LocalOwner(ip)) {
    PodMeta meta;
    np = CompileEndpoint(ip, *owner, pods.at(*owner), &meta, &used, ch);
    PodMeta& m = pod_meta[*owner];
    m.uses_selectors |= meta.uses_selectors;
    m.uses_cidrs |= meta.uses_cidrs;
  }
  FreeUnusedSlots(ip, used);
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

PolicyCompiler::PolicyCompiler(PolicyCompilerOptions options)
    : cs_(std::make_unique<CompilerState>()) {
  cs_->opt = options;
  if (cs_->opt.counter_slots < 2) cs_->opt.counter_slots = 2;
  cs_->next_identity = std::max<uint32_t>(options.first_identity, CN_POL_ID_FIRST_POD);
  cs_->next_cidr = std::max<uint32_t>(options.first_cidr_identity, 1);
}

PolicyCompiler::~PolicyCompiler() = default;

absl::Status PolicyCompiler::UpsertNamespace(const NamespaceInfo& ns) {
  CNINET_RETURN_IF_ERROR(ns.Validate());
  auto it = cs_->namespaces.find(ns.name);
  if (it != cs_->namespaces.end() && it->second == ns) return absl::OkStatus();
  if (it == cs_->namespaces.end() || it->second.labels != ns.labels) cs_->ns_labels_changed = true;
  cs_->dirty_namespaces.insert(ns.name);
  cs_->namespaces[ns.name] = ns;
  return absl::OkStatus();
}

absl::Status PolicyCompiler::DeleteNamespace(std::string_view name) {
  auto it = cs_->namespaces.find(name);
  if (it == cs_->namespaces.end()) return absl::OkStatus();
  if (!it->second.labels.empty()) cs_->ns_labels_changed = true;
  cs_->dirty_namespaces.insert(std::string(name));
  cs_->namespaces.erase(it);
  return absl::OkStatus();
}

absl::Status PolicyCompiler::UpsertPod(const PodInfo& pod) {
  CNINET_RETURN_IF_ERROR(pod.Validate());
  std::string key = pod.Key();
  auto it = cs_->pods.find(key);
  if (it != cs_->pods.end() && it->second == pod) return absl::OkStatus();
  cs_->pods[key] = pod;
  cs_->changed_pods.insert(std::move(key));
  return absl::OkStatus();
}

absl::Status PolicyCompiler::DeletePod(std::string_view namespace_name, std::string_view name) {
  std::string key = PodKey(namespace_name, name);
  auto it = cs_->pods.find(key);
  if (it == cs_->pods.end()) return absl::OkStatus();
  cs_->pods.erase(it);
  cs_->changed_pods.insert(std::move(key));
  return absl::OkStatus();
}

absl::Status PolicyCompiler::UpsertPolicy(const NetworkPolicy& policy) {
  CNINET_RETURN_IF_ERROR(policy.Validate());
  std::string key = policy.Key();
  auto it = cs_->policies.find(key);
  if (it != cs_->policies.end() && it->second == policy) return absl::OkStatus();
  cs_->policies[key] = policy;
  cs_->dirty_namespaces.insert(policy.namespace_name);
  cs_->policies_changed = true;
  return absl::OkStatus();
}

absl::Status PolicyCompiler::DeletePolicy(std::string_view namespace_name, std::string_view name) {
  auto it = cs_->policies.find(PodKey(namespace_name, name));
  if (it == cs_->policies.end()) return absl::OkStatus();
  cs_->policies.erase(it);
  cs_->dirty_namespaces.insert(std::string(namespace_name));
  cs_->policies_changed = true;
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
  for (const auto& [name, ns] : cs_->namespaces)
    if (!ns_names.count(name)) gone.push_back(name);
  for (const auto& name : gone) (void)DeleteNamespace(name);
  gone.clear();
  for (const auto& [key, p] : cs_->pods)
    if (!pod_keys.count(key)) gone.push_back(key);
  for (const auto& key : gone) {
    size_t slash = key.find('/');
    (void)DeletePod(std::string_view(key).substr(0, slash),
                    std::string_view(key).substr(slash + 1));
  }
  gone.clear();
  for (const auto& [key, p] : cs_->policies)
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
  CompilerState& cs = *cs_;
  PolicyChanges ch;
  for (uint32_t s : cs.pending_free) cs.free_slots.insert(s);
  cs.pending_free.clear();
  const bool identity_set_changed = cs.UpdatePodIdentities(&ch);
  cs.UpdateCidrIdentities(&ch);
  cs.RecompileDirtyEndpoints(identity_set_changed, &ch);
  cs.changed_pods.clear();
  cs.dirty_namespaces.clear();
  cs.ns_labels_changed = false;
  cs.policies_changed = false;
  return ch;
}

const PolicyState& PolicyCompiler::state() const { return cs_->state; }

PolicyCompilerStats PolicyCompiler::stats() const {
  PolicyCompilerStats s;
  s.pods = cs_->pods.size();
  s.identities = cs_->identities.size();
  s.prefixes = cs_->state.cidrs.size();
  s.endpoints = cs_->state.endpoints.size();
  for (const auto& [ip, ep] : cs_->state.endpoints) s.entries += ep.entries.size();
  for (const auto& [k, slot] : cs_->slots) s.slots_in_use += slot != 0;
  s.slot_overflows = cs_->overflows;
  s.endpoints_compiled = cs_->compiled;
  return s;
}

void PolicyCompiler::ReserveSlots(const std::set<uint32_t>& slots) {
  for (uint32_t s : slots) {
    if (s == 0 || s >= cs_->opt.counter_slots) continue;
    cs_->free_slots.erase(s);
    cs_->reserved.insert(s);
  }
}

void PolicyCompiler::ReleaseReservedSlots() {
  std::set<uint32_t> in_use;
  for (const auto& [k, s] : cs_->slots) in_use.insert(s);
  for (uint32_t s : cs_->reserved) {
    if (s < cs_->next_slot && !in_use.count(s)) cs_->free_slots.insert(s);
  }
  cs_->reserved.clear();
}

void PolicyCompiler::SetIdentityFloor(uint32_t next_pod_identity, uint32_t next_cidr_identity) {
  cs_->next_identity = std::max(cs_->next_identity, next_pod_identity);
  cs_->next_cidr = std::max(cs_->next_cidr, next_cidr_identity & ~CN_POL_ID_CIDR_BIT);
}

absl::StatusOr<uint32_t> PolicyCompiler::PodIdentity(std::string_view namespace_name,
                                                     std::string_view name) const {
  auto it = cs_->pod_identity.find(PodKey(namespace_name, name));
  if (it == cs_->pod_identity.end())
    return absl::NotFoundError(StrCat("no identity for pod ", namespace_name, "/", name));
  return it->second;
}

absl::StatusOr<uint32_t> PolicyCompiler::PrefixIdentity(const cni::IPPrefix& prefix) const {
  std::optional<PolicyPrefix> p = CompiledPrefix(prefix);
  if (!p) return absl::NotFoundError("IPv6 prefixes inside ::ffff:0:0/96 have no identity");
  auto it = cs_->state.cidrs.find(*p);
  if (it == cs_->state.cidrs.end())
    return absl::NotFoundError(StrCat("no policy uses prefix ", prefix.ToString()));
  return it->second;
}

}  // namespace cninet::datapath
