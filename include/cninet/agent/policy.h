/// @file
/// The agent's policy reconciler: Namespaces (labels, `isolated`), NetworkPolicies and Pods
/// (addresses, labels, node) from the store -> the datapath's PolicyTable (compiled by
/// datapath::PolicyCompiler, written as a difference), plus the to-pod program (the policy hook)
/// on the host-side veth of every local pod. Objects that do not convert are skipped with a
/// warning; everything else is still applied. Level-triggered: every pass hands the complete
/// state to PolicyTable::Replace(), which recompiles only what changed, so pods, labels,
/// namespaces and policies changing update the maps without touching unrelated entries.
#ifndef CNINET_AGENT_POLICY_H_
#define CNINET_AGENT_POLICY_H_

#include <cstddef>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/agent/pods.h"
#include "cninet/agent/services.h"
#include "cninet/datapath/policy_table.h"
#include "cninet/datapath/policy_types.h"
#include "cninet/v1/namespace.pb.h"
#include "cninet/v1/network_policy.pb.h"
#include "cninet/v1/pod.pb.h"

namespace cninet::agent {

/// A state-model label selector as the policy compiler's selector.
datapath::LabelSelector ToPolicySelector(const v1::LabelSelector& selector);
/// A Namespace object as the compiler's namespace; InvalidArgument when it does not validate.
absl::StatusOr<datapath::NamespaceInfo> ToPolicyNamespace(const v1::Namespace& ns);
/// A Pod object as the compiler's pod (`local` when it runs on `node`); unparsable addresses are
/// InvalidArgument.
absl::StatusOr<datapath::PodInfo> ToPolicyPod(const v1::Pod& pod, std::string_view node);
/// A NetworkPolicy object as the compiler's policy (ingress side; an absent podSelector selects
/// every pod of the namespace, as Kubernetes' `podSelector: {}`); InvalidArgument when invalid.
absl::StatusOr<datapath::NetworkPolicy> ToPolicy(const v1::NetworkPolicy& policy);

/// Builds the compiler's complete world from store objects; objects that do not convert are
/// left out with a warning in `warnings` (may be null), as are egress rules (not enforced).
datapath::PolicySnapshot BuildPolicySnapshot(std::span<const v1::Namespace* const> namespaces,
                                             std::span<const v1::Pod* const> pods,
                                             std::span<const v1::NetworkPolicy* const> policies,
                                             std::string_view node,
                                             std::vector<PlanWarning>* warnings);

/// Attaches the to-pod program to a host-side interface in the node's namespace (replacing a
/// previous one) and leaves it there.
using AttachHookFn = std::function<absl::Status(std::string_view ifname)>;

/// What one PolicyReconciler::Apply() did.
struct PolicyPassResult {
  datapath::PolicyApplyResult apply;  ///< What the policy maps got.
  size_t hooks_attached = 0;          ///< To-pod programs attached in this pass.
  size_t hooks_present = 0;           ///< Local pod interfaces with the program (after the pass).
};

/// Counts for the agent's status.
struct PolicyReconcilerStatus {
  size_t namespaces = 0;                   ///< Namespace objects applied.
  size_t isolated_namespaces = 0;          ///< Of those, isolated.
  size_t policies = 0;                     ///< NetworkPolicies applied.
  size_t pods = 0;                         ///< Pods known (any node).
  size_t hooks = 0;                        ///< Local pod interfaces with the to-pod program.
  datapath::PolicyCompilerStats compiler;  ///< Identities, prefixes, endpoints, entries.
  datapath::PolicyApplyResult last_apply;  ///< The last Apply() that wrote something.
  size_t passes = 0;                       ///< Apply() calls that succeeded.
};

/// Keeps the policy maps and the local pods' to-pod programs in sync with the store. Not
/// thread-safe.
class PolicyReconciler {
 public:
  /// Works on `table` (must outlive the reconciler) for node `node`; `attach` puts the to-pod
  /// program on an interface, `link_index` resolves a host-side interface (0: absent).
  PolicyReconciler(datapath::PolicyTable* table, std::string node, AttachHookFn attach,
                   LinkIndexFn link_index);

  /// Applies the complete state: the maps get the difference; every local pod whose interface
  /// exists gets the to-pod program when it has none from this reconciler yet (all of them
  /// again with `full_sync`, which also rereads the maps). Attaching continues past a failure
  /// and returns the first error (the failed interfaces are retried next pass).
  absl::StatusOr<PolicyPassResult> Apply(std::span<const v1::Namespace* const> namespaces,
                                         std::span<const v1::Pod* const> pods,
                                         std::span<const v1::NetworkPolicy* const> policies,
                                         bool full_sync, std::vector<PlanWarning>* warnings);

  /// Counts as of the last Apply().
  const PolicyReconcilerStatus& status() const { return status_; }
  /// Local pod interfaces with the to-pod program: interface name -> ifindex.
  const std::map<std::string, int>& hooks() const { return hooks_; }

 private:
  // Records the counts of a pass in status().
  void RecordPass(const datapath::PolicySnapshot& snapshot,
                  const datapath::PolicyApplyResult& apply);
  // Attaches the to-pod program where it is missing (everywhere with `full_sync`).
  absl::Status AttachHooks(std::span<const v1::Pod* const> pods, bool full_sync,
                           PolicyPassResult* result);
  datapath::PolicyTable* table_;
  std::string node_;
  AttachHookFn attach_;
  LinkIndexFn link_index_;
  std::map<std::string, int> hooks_;
  PolicyReconcilerStatus status_;
};

}  // namespace cninet::agent

#endif  // CNINET_AGENT_POLICY_H_
