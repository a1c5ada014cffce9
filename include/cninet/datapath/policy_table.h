/// @file
/// PolicyTable: the ingress policy of local pods (Kubernetes NetworkPolicy ingress rules and
/// Contrail-style isolated namespaces) programmed into the datapath's policy maps. Callers (the
/// agent's policy reconciler) stage pods, namespaces and policies, then Apply() compiles them
/// (PolicyCompiler) and writes only the difference, in an order that never admits a flow that
/// neither the old nor the new policy admits. Enforcement is the kToPod hook on each pod veth.
#ifndef CNINET_DATAPATH_POLICY_TABLE_H_
#define CNINET_DATAPATH_POLICY_TABLE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/policy_compiler.h"
#include "cninet/datapath/policy_types.h"

namespace cninet::datapath {

class DatapathMaps;

/// What one Apply() wrote.
struct PolicyApplyResult {
  bool full_sync = false;         ///< The maps were read back and diffed (first Apply, after an
                                  ///< error, or on request).
  size_t endpoints_written = 0;   ///< cn_pol_eps entries written.
  size_t endpoints_deleted = 0;   ///< cn_pol_eps entries deleted.
  size_t identities_written = 0;  ///< cn_pol_ids entries written.
  size_t identities_deleted = 0;  ///< cn_pol_ids entries deleted.
  size_t prefixes_written = 0;    ///< cn_pol_cidrs entries written.
  size_t prefixes_deleted = 0;    ///< cn_pol_cidrs entries deleted.
  size_t rules_written = 0;       ///< cn_pol_rules entries written.
  size_t rules_deleted = 0;       ///< cn_pol_rules entries deleted.
  std::chrono::microseconds compile_time{0};  ///< Time in PolicyCompiler::Compile().
  std::chrono::microseconds write_time{0};    ///< Time writing the maps.
  /// Total writes and deletes.
  size_t total() const {
    return endpoints_written + endpoints_deleted + identities_written + identities_deleted +
           prefixes_written + prefixes_deleted + rules_written + rules_deleted;
  }
};

/// One per-endpoint verdict counter (summed over CPUs).
struct PolicyCounter {
  cni::IPAddress endpoint;  ///< Local pod address.
  std::string pod;          ///< "namespace/name".
  std::string rule;         ///< Rule description, or "denied", "via service", "from host".
  uint32_t slot = 0;        ///< cn_pol_stats index.
  uint64_t packets = 0;     ///< Packets (admitted new flows; denied or host packets).
  uint64_t bytes = 0;       ///< Bytes of those packets.
};

/// Programs the policy maps. Not thread-safe; one writer per datapath instance. A new table
/// (e.g. after an agent restart with pinned maps) diffs against what the maps hold on its first
/// Apply(), numbering identities above the ones found there.
class PolicyTable {
 public:
  /// Used by Datapath; cheap (the maps are read on the first Apply()).
  static absl::StatusOr<std::unique_ptr<PolicyTable>> Load(std::shared_ptr<DatapathMaps> maps,
                                                           PolicyCompilerOptions options = {});
  ~PolicyTable();
  PolicyTable(const PolicyTable&) = delete;
  PolicyTable& operator=(const PolicyTable&) = delete;

  /// False when the datapath has no policy maps (opened from pins of an older version).
  bool available() const;

  /// Stages a namespace (labels, `isolated`); InvalidArgument on bad input (nothing staged).
  absl::Status UpsertNamespace(const NamespaceInfo& ns);
  /// Stages the removal of a namespace (unknown: OK).
  absl::Status DeleteNamespace(std::string_view name);
  /// Stages a pod (any node; `local` ones are enforced here).
  absl::Status UpsertPod(const PodInfo& pod);
  /// Stages the removal of a pod (unknown: OK).
  absl::Status DeletePod(std::string_view namespace_name, std::string_view name);
  /// Stages a NetworkPolicy.
  absl::Status UpsertPolicy(const NetworkPolicy& policy);
  /// Stages the removal of a NetworkPolicy (unknown: OK).
  absl::Status DeletePolicy(std::string_view namespace_name, std::string_view name);
  /// Stages a complete world (level-triggered resync).
  absl::Status Replace(const PolicySnapshot& snapshot);

  /// Compiles what was staged and writes the difference to the maps. New flows see the new
  /// policy once this returns. On a write error the next Apply() resyncs from the maps.
  absl::StatusOr<PolicyApplyResult> Apply();
  /// Makes the next Apply() read the maps back and rewrite every difference.
  void RequestFullSync();

  /// The compiled (desired) state as of the last Apply().
  const PolicyState& state() const;
  /// Compiler statistics.
  PolicyCompilerStats stats() const;
  /// The compiler's identity of a pod (NotFound when unknown).
  absl::StatusOr<uint32_t> PodIdentity(std::string_view namespace_name,
                                       std::string_view name) const;
  /// Decides a new flow against the applied state without touching the kernel (EvaluatePolicy).
  PolicyVerdict Evaluate(const PolicyQuery& query) const;

  /// Every counter of every default-deny endpoint: its rules, denied, via service, from host.
  absl::StatusOr<std::vector<PolicyCounter>> ReadCounters() const;
  /// Decodes the policy maps as the datapath sees them (identities, prefixes, endpoints with
  /// entries; rule descriptions are not in the maps and stay empty).
  absl::StatusOr<PolicyState> ReadMaps() const;

 private:
  struct Impl;
  explicit PolicyTable(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_POLICY_TABLE_H_
