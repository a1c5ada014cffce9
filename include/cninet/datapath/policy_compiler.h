/// @file
/// The policy compiler (pure C++, no kernel): turns namespaces (with the `isolated` flag), pods
/// and NetworkPolicies into the content of the datapath's policy maps — identities for label
/// sets, CIDR identities for ipBlock prefixes, and per local endpoint a default-deny record plus
/// allow entries keyed by (endpoint, peer identity, protocol, port prefix). Updates are
/// incremental: a change recompiles only the endpoints it can affect and reports what changed,
/// so PolicyTable writes only the difference.
///
/// Semantics: a local pod that no ingress NetworkPolicy selects and whose namespace is not
/// isolated accepts everything (it gets no endpoint record). Otherwise it is default-deny and
/// admits the union of (a) its namespace's isolation rule when isolated — every pod of the same
/// namespace, any port, plus every flow a service DNATed to it — and (b) the ingress rules of
/// every NetworkPolicy selecting it. Host-originated traffic and replies are never filtered.
#ifndef CNINET_DATAPATH_POLICY_COMPILER_H_
#define CNINET_DATAPATH_POLICY_COMPILER_H_

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/policy_types.h"

namespace cninet::datapath {

/// An allow entry of cn_pol_rules in host terms. prefix_len is the LPM prefix: 160 = any
/// protocol (protocol and port 0), 176 = any port of `protocol`, 176 + n = the ports whose top n
/// bits equal those of `port` (a block of 2^(16-n) ports starting at `port`).
struct PolicyEntryKey {
  cni::IPAddress endpoint;   ///< Local pod address (either family).
  uint32_t peer = 0;         ///< Pod identity, CIDR identity or CN_POL_ID_ANY.
  uint8_t protocol = 0;      ///< IP protocol (0 with prefix_len 160).
  uint8_t prefix_len = 160;  ///< CN_POL_PREFIX_ANY_PROTO .. CN_POL_PREFIX_FULL.
  uint16_t port = 0;         ///< First port of the block (host order).

  /// The map key (network order, bits beyond the prefix zero).
  cn_pol_key ToAbi() const;
  /// Decodes a map key.
  static PolicyEntryKey FromAbi(const cn_pol_key& key);
  /// True when a packet of `protocol` to `port` (0: none) falls under this entry's prefix.
  bool Covers(uint8_t protocol, uint16_t port) const;
  /// "10.244.1.5 <- id 260 tcp 8080-8087".
  std::string ToString() const;
  /// Ordering (endpoint, peer, protocol, prefix_len, port).
  friend auto operator<=>(const PolicyEntryKey&, const PolicyEntryKey&) = default;
};

/// The port blocks (first port, prefix bits 0..16) covering [lo, hi] exactly, in ascending
/// order; at most 30 for any range. Empty when lo > hi.
std::vector<std::pair<uint16_t, uint8_t>> PortRangeBlocks(uint16_t lo, uint16_t hi);

/// A rule as applied to one endpoint: the unit of the per-rule verdict counters.
struct PolicyRuleInfo {
  uint32_t slot = 0;        ///< cn_pol_stats index.
  std::string description;  ///< "isolation of namespace n" or "policy ns/name ingress[i]".
  /// Field-wise equality.
  friend bool operator==(const PolicyRuleInfo&, const PolicyRuleInfo&) = default;
};

/// The compiled ingress policy of one default-deny local endpoint (one pod address; a
/// dual-stack pod has one per family).
struct EndpointPolicy {
  cni::IPAddress address;                      ///< Endpoint address.
  std::string pod;                             ///< "namespace/name" of the pod.
  uint32_t flags = 0;                          ///< CN_POL_F_* bits.
  uint32_t service_slot = 0;                   ///< Counter of flows admitted through a service.
  uint32_t deny_slot = 0;                      ///< Counter of denied packets.
  uint32_t host_slot = 0;                      ///< Counter of host-originated packets.
  std::vector<PolicyRuleInfo> rules;           ///< Allow rules in precedence order.
  std::map<PolicyEntryKey, uint32_t> entries;  ///< Allow entries -> counter slot.

  /// The cn_pol_eps value.
  cn_pol_endpoint ToAbi() const;
  /// True when the datapath state (flags, slots, entries) equals `o`'s.
  bool SameDatapathState(const EndpointPolicy& o) const {
    return flags == o.flags && service_slot == o.service_slot && deny_slot == o.deny_slot &&
           host_slot == o.host_slot && entries == o.entries;
  }
};

/// An ipBlock prefix of either family, masked (host bits zero). In the maps IPv4 prefixes are
/// IPv4-mapped (see cn_pol_cidr_key); IPv6 ipBlocks inside the IPv4-mapped range
/// (0:0:0:0:0:ffff:0:0/96) are not compiled (they would alias IPv4 prefixes; no IPv6 packet carries
/// such a source on the wire).
using PolicyPrefix = cni::IPPrefix;

/// The cn_pol_cidrs key of `prefix` (IPv4: IPv4-mapped, prefixlen + 96).
cn_pol_cidr_key PolicyPrefixToAbi(const PolicyPrefix& prefix);
/// Decodes a cn_pol_cidrs key (IPv4-mapped keys of length >= 96 become IPv4 prefixes).
PolicyPrefix PolicyPrefixFromAbi(const cn_pol_cidr_key& key);

/// Everything the policy maps should contain.
struct PolicyState {
  std::map<cni::IPAddress, uint32_t> identities;       ///< Pod address -> identity.
  std::map<PolicyPrefix, uint32_t> cidrs;              ///< ipBlock prefix -> CIDR identity.
  std::map<cni::IPAddress, EndpointPolicy> endpoints;  ///< Local pod address -> policy.
};

/// A new flow as the datapath's check sees it (after DNAT).
struct PolicyQuery {
  cni::IPAddress src;                  ///< Source address.
  cni::IPAddress dst;                  ///< Destination (the pod).
  Protocol protocol = Protocol::kTcp;  ///< IP protocol.
  uint16_t port = 0;                   ///< Destination port (0: none, e.g. ICMP).
  bool via_service = false;            ///< A service DNATed the flow to `dst`.
  bool from_host = false;              ///< Sent by the node itself (never filtered).
};

/// Outcome of EvaluatePolicy().
struct PolicyVerdict {
  bool allowed = true;   ///< Admitted.
  bool managed = false;  ///< `dst` is a default-deny endpoint.
  uint32_t slot = 0;     ///< Counter slot the datapath counts the packet under (managed only).
  uint32_t reason = 0;   ///< enum cn_reason: CN_R_DROP_POLICY / CN_R_DROP_ISOLATED when denied.
};

/// Decides a new flow `q` against `state` exactly as bpf/lib/policy.h does: host traffic passes,
/// then the service exception, then the longest allow entry for the source's pod identity, its
/// CIDR identity (longest prefix) and CN_POL_ID_ANY, in that order.
PolicyVerdict EvaluatePolicy(const PolicyState& state, const PolicyQuery& q);

/// What changed in the compiled state since the previous PolicyCompiler::Compile().
struct PolicyChanges {
  std::set<cni::IPAddress> identities;  ///< Pod IPs whose identity changed or vanished.
  std::set<PolicyPrefix> cidrs;         ///< Prefixes added, removed or renumbered.
  std::set<cni::IPAddress> endpoints;   ///< Endpoints whose compiled policy changed or vanished.
  std::vector<uint32_t> new_slots;      ///< Counter slots (re)allocated: zero them before use.
  /// Nothing to write.
  bool empty() const {
    return identities.empty() && cidrs.empty() && endpoints.empty() && new_slots.empty();
  }
};

/// Limits and numbering of a compiler.
struct PolicyCompilerOptions {
  uint32_t counter_slots = 16384;  ///< Size of cn_pol_stats; slots 1..counter_slots-1 are used.
  uint32_t first_identity = CN_POL_ID_FIRST_POD;  ///< First pod identity.
  uint32_t first_cidr_identity = 1;  ///< First CIDR identity number (CN_POL_ID_CIDR_BIT added).
};

/// Sizes of the compiled state, for logs and tests.
struct PolicyCompilerStats {
  size_t pods = 0;                ///< Pods known.
  size_t identities = 0;          ///< Distinct (namespace, labels) identities.
  size_t prefixes = 0;            ///< ipBlock prefixes (CIDR identities).
  size_t endpoints = 0;           ///< Default-deny local endpoints (pod addresses).
  size_t entries = 0;             ///< Allow entries over all endpoints.
  size_t slots_in_use = 0;        ///< Counter slots allocated.
  size_t slot_overflows = 0;      ///< Rules that got the shared slot 0 (counter slots ran out).
  size_t endpoints_compiled = 0;  ///< Endpoint compilations so far (incrementality checks).
};

/// Compiles pods, namespaces and NetworkPolicies into PolicyState. Not thread-safe. Mutations
/// validate their input and change nothing on error; Compile() brings state() up to date.
class PolicyCompiler {
 public:
  /// An empty world.
  explicit PolicyCompiler(PolicyCompilerOptions options = {});
  ~PolicyCompiler();
  PolicyCompiler(const PolicyCompiler&) = delete;
  PolicyCompiler& operator=(const PolicyCompiler&) = delete;

  /// Adds or replaces a namespace (labels, isolation).
  absl::Status UpsertNamespace(const NamespaceInfo& ns);
  /// Removes a namespace (its pods stay, as not isolated and without labels). Unknown: OK.
  absl::Status DeleteNamespace(std::string_view name);
  /// Adds or replaces a pod (addresses, labels, locality).
  absl::Status UpsertPod(const PodInfo& pod);
  /// Removes a pod. Unknown: OK.
  absl::Status DeletePod(std::string_view namespace_name, std::string_view name);
  /// Adds or replaces a NetworkPolicy (InvalidArgument when it does not validate).
  absl::Status UpsertPolicy(const NetworkPolicy& policy);
  /// Removes a NetworkPolicy. Unknown: OK.
  absl::Status DeletePolicy(std::string_view namespace_name, std::string_view name);
  /// Replaces the whole world with `snapshot` (level-triggered resync); validated first.
  absl::Status Replace(const PolicySnapshot& snapshot);

  /// Recompiles what the mutations since the last call affected and returns what changed.
  PolicyChanges Compile();
  /// The compiled state (as of the last Compile()).
  const PolicyState& state() const;
  /// Counts of the current state.
  PolicyCompilerStats stats() const;

  /// Keeps counter slots in use by a previous process out of allocation (until released).
  void ReserveSlots(const std::set<uint32_t>& slots);
  /// Makes reserved slots allocatable again (once the maps no longer reference them).
  void ReleaseReservedSlots();
  /// Numbers new identities at or above these (identities a previous process left in the maps
  /// are then never reused for another label set while its entries are being replaced).
  void SetIdentityFloor(uint32_t next_pod_identity, uint32_t next_cidr_identity);

  /// Identity of a pod's label set (NotFound for unknown pods or before Compile()).
  absl::StatusOr<uint32_t> PodIdentity(std::string_view namespace_name,
                                       std::string_view name) const;
  /// The CIDR identity of an ipBlock prefix (NotFound when no policy uses it).
  absl::StatusOr<uint32_t> PrefixIdentity(const cni::IPPrefix& prefix) const;

 private:
  struct CompilerState;  // Inputs, identities, counter slots and the compiled state.
  std::unique_ptr<CompilerState> cs_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_POLICY_COMPILER_H_
