/// @file
/// Kubernetes NetworkPolicy (ingress side) and namespace isolation as plain C++ values: the input
/// of the policy compiler (policy_compiler.h). Mirrors the agent's state model
/// (proto/cninet/v1/network_policy.proto, namespace.proto, pod.proto) without depending on it.
#ifndef CNINET_DATAPATH_POLICY_TYPES_H_
#define CNINET_DATAPATH_POLICY_TYPES_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/types.h"

namespace cninet::datapath {

/// Labels of a pod or namespace.
using Labels = std::map<std::string, std::string, std::less<>>;

/// Label every namespace implicitly carries (as Kubernetes sets it): its name.
inline constexpr char kNamespaceNameLabel[] = "kubernetes.io/metadata.name";

/// One set-based requirement of a LabelSelector.
struct LabelRequirement {
  /// How `values` apply to the label `key`.
  enum class Operator : uint8_t {
    kIn,           ///< the label exists and its value is one of `values`
    kNotIn,        ///< the label is absent or its value is none of `values`
    kExists,       ///< the label exists (values empty)
    kDoesNotExist  ///< the label is absent (values empty)
  };
  std::string key;                  ///< Label key.
  Operator op = Operator::kIn;      ///< Operator.
  std::vector<std::string> values;  ///< Non-empty for kIn/kNotIn, empty otherwise.
  /// Field-wise equality.
  friend bool operator==(const LabelRequirement&, const LabelRequirement&) = default;
};

/// Kubernetes label selector: every match_labels pair and every expression must hold. An empty
/// selector matches everything (absence is expressed with std::optional where it matters).
struct LabelSelector {
  Labels match_labels;                              ///< key = value requirements.
  std::vector<LabelRequirement> match_expressions;  ///< Set-based requirements.

  /// True when `labels` satisfy the selector.
  bool Matches(const Labels& labels) const;
  /// True when the selector has no requirement (matches everything).
  bool empty() const { return match_labels.empty() && match_expressions.empty(); }
  /// InvalidArgument for empty keys or operator/values mismatches.
  absl::Status Validate() const;
  /// Canonical text: "app=web,tier in (a,b),!debug" ("{}" when empty).
  std::string ToString() const;
  /// Field-wise equality.
  friend bool operator==(const LabelSelector&, const LabelSelector&) = default;
};

/// A CIDR of either family with exceptions (each inside the CIDR, same family). An IPv6 block
/// never matches IPv4 sources (nor an IPv4 block IPv6 ones), as in Kubernetes.
struct IPBlock {
  cni::IPPrefix cidr;                 ///< Allowed range.
  std::vector<cni::IPPrefix> except;  ///< Sub-ranges excluded from it.
  /// Field-wise equality.
  friend bool operator==(const IPBlock&, const IPBlock&) = default;
};

/// A source of an ingress rule. Kubernetes semantics: pod_selector alone selects pods of the
/// policy's namespace; namespace_selector alone every pod of the selected namespaces; both, the
/// selected pods of the selected namespaces; ip_block (alone) addresses.
struct PolicyPeer {
  std::optional<LabelSelector> pod_selector;        ///< Pods (absent: see above).
  std::optional<LabelSelector> namespace_selector;  ///< Namespaces (absent: the policy's own).
  std::optional<IPBlock> ip_block;                  ///< Addresses.
  /// Field-wise equality.
  friend bool operator==(const PolicyPeer&, const PolicyPeer&) = default;
};

/// L4 protocols of a NetworkPolicy port: Protocol::kTcp, kUdp or kSctp (Validate() rejects others).
using PolicyProtocol = Protocol;

/// A destination port or range. port 0 = every port of the protocol; end_port 0 = just `port`.
/// Named ports are not supported (the caller resolves them to numbers).
/// SCTP ports are matched on unfragmented packets only (the datapath does not track SCTP).
struct PolicyPort {
  PolicyProtocol protocol = PolicyProtocol::kTcp;  ///< Protocol (Kubernetes' default TCP).
  uint16_t port = 0;                               ///< First port, 0 = all.
  uint16_t end_port = 0;                           ///< Last port of a range (>= port), 0 = none.
  /// Field-wise equality.
  friend bool operator==(const PolicyPort&, const PolicyPort&) = default;
};

/// Traffic a policy admits: from any of `from` (everyone when empty) to any of `ports` (every
/// port and protocol when empty).
struct IngressRule {
  std::vector<PolicyPeer> from;   ///< Sources.
  std::vector<PolicyPort> ports;  ///< Destination ports.
  /// Field-wise equality.
  friend bool operator==(const IngressRule&, const IngressRule&) = default;
};

/// Direction a policy applies to.
enum class PolicyType : uint8_t { kIngress, kEgress };

/// A NetworkPolicy. Only its ingress side is enforced by the datapath (egress rules are not
/// part of this model).
struct NetworkPolicy {
  std::string namespace_name;            ///< Namespace of the policy and of the pods it selects.
  std::string name;                      ///< Name, unique in the namespace.
  LabelSelector pod_selector;            ///< Pods the policy applies to (empty: all of them).
  std::vector<PolicyType> policy_types;  ///< Empty means Ingress (as Kubernetes defaults it).
  std::vector<IngressRule> ingress;      ///< Allowed traffic; none = deny all ingress.

  /// True when the policy restricts ingress (policy_types empty or containing kIngress).
  bool AffectsIngress() const;
  /// InvalidArgument with the offending field (selectors, CIDRs, ports).
  absl::Status Validate() const;
  /// "namespace/name".
  std::string Key() const { return namespace_name + "/" + name; }
  /// Field-wise equality.
  friend bool operator==(const NetworkPolicy&, const NetworkPolicy&) = default;
};

/// A namespace: labels (for namespaceSelector) and the isolation flag. Isolation (Contrail
/// semantics): pods of an isolated namespace accept new flows only from pods of the same
/// namespace or through a service, unless a NetworkPolicy admits more; their own traffic out is
/// unrestricted.
struct NamespaceInfo {
  std::string name;       ///< Namespace name.
  Labels labels;          ///< Labels (kNamespaceNameLabel is implied).
  bool isolated = false;  ///< Contrail-style isolation.
  /// InvalidArgument when the name is empty or contains '/', or a label key is empty.
  absl::Status Validate() const;
  /// Labels as a namespaceSelector sees them (kNamespaceNameLabel added).
  Labels SelectorLabels() const;
  /// Field-wise equality.
  friend bool operator==(const NamespaceInfo&, const NamespaceInfo&) = default;
};

/// A pod anywhere in the cluster. Its addresses (both families) get the identity of its (namespace,
/// label set); `local` pods (on this node, with the to-pod hook on their veth) are the endpoints
/// whose ingress the datapath enforces.
struct PodInfo {
  std::string namespace_name;             ///< Namespace.
  std::string name;                       ///< Name.
  std::vector<cni::IPAddress> addresses;  ///< Pod IPs, either family.
  Labels labels;                          ///< Pod labels.
  bool local = false;                     ///< Runs on this node (its veth has the to-pod hook).
  /// InvalidArgument when a name is empty or contains '/', or a label key is empty.
  absl::Status Validate() const;
  /// "namespace/name".
  std::string Key() const { return namespace_name + "/" + name; }
  /// Field-wise equality.
  friend bool operator==(const PodInfo&, const PodInfo&) = default;
};

/// The complete policy-relevant state, for level-triggered resyncs.
struct PolicySnapshot {
  std::vector<NamespaceInfo> namespaces;  ///< Every namespace.
  std::vector<PodInfo> pods;              ///< Every pod.
  std::vector<NetworkPolicy> policies;    ///< Every NetworkPolicy.
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_POLICY_TYPES_H_
