#include "cninet/agent/policy.h"

#include <set>
#include <utility>

#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet::agent {
namespace {

namespace dp = ::cninet::datapath;

dp::LabelRequirement::Operator ToOperator(v1::LabelSelectorRequirement::Operator op) {
  switch (op) {
    case v1::LabelSelectorRequirement::NOT_IN:
      return dp::LabelRequirement::Operator::kNotIn;
    case v1::LabelSelectorRequirement::EXISTS:
      return dp::LabelRequirement::Operator::kExists;
    case v1::LabelSelectorRequirement::DOES_NOT_EXIST:
      return dp::LabelRequirement::Operator::kDoesNotExist;
    default:
      return dp::LabelRequirement::Operator::kIn;
  }
}

absl::StatusOr<dp::PolicyProtocol> ToProtocol(v1::Protocol p) {
  switch (p) {
    case v1::PROTOCOL_UNSPECIFIED:
    case v1::TCP:
      return dp::PolicyProtocol::kTcp;
    case v1::UDP:
      return dp::PolicyProtocol::kUdp;
    case v1::SCTP:
      return dp::PolicyProtocol::kSctp;
    default:
      return absl::InvalidArgumentError(StrCat("unknown protocol ", static_cast<int>(p)));
  }
}

dp::Labels ToLabels(const google::protobuf::Map<std::string, std::string>& m) {
  dp::Labels out;
  for (const auto& [k, v] : m) out.emplace(k, v);
  return out;
}

absl::StatusOr<cni::IPPrefix> ParsePrefix(std::string_view field, const std::string& text) {
  absl::StatusOr<cni::IPPrefix> p = cni::IPPrefix::Parse(text);
  if (!p.ok()) {
    return absl::InvalidArgumentError(StrCat(field, ": \"", text, "\" is not a CIDR"));
  }
  return *p;
}

}  // namespace

dp::LabelSelector ToPolicySelector(const v1::LabelSelector& selector) {
  dp::LabelSelector out;
  out.match_labels = ToLabels(selector.match_labels());
  for (const auto& req : selector.match_expressions()) {
    dp::LabelRequirement r;
    r.key = req.key();
    r.op = ToOperator(req.operator_());
    r.values.assign(req.values().begin(), req.values().end());
    out.match_expressions.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<dp::NamespaceInfo> ToPolicyNamespace(const v1::Namespace& ns) {
  dp::NamespaceInfo out;
  out.name = ns.name();
  out.labels = ToLabels(ns.labels());
  out.isolated = ns.isolated();
  CNINET_RETURN_IF_ERROR(out.Validate());
  return out;
}

absl::StatusOr<dp::PodInfo> ToPolicyPod(const v1::Pod& pod, std::string_view node) {
  dp::PodInfo out;
  out.namespace_name = pod.namespace_();
  out.name = pod.name();
  out.labels = ToLabels(pod.labels());
  out.local = !node.empty() && pod.node() == node;
  for (const std::string& ip : pod.ips()) {
    absl::StatusOr<cni::IPAddress> a = cni::IPAddress::Parse(ip);
    if (!a.ok()) return absl::InvalidArgumentError(StrCat("ips: \"", ip, "\" is not an address"));
    out.addresses.push_back(*a);
  }
  CNINET_RETURN_IF_ERROR(out.Validate());
  return out;
}

absl::StatusOr<dp::NetworkPolicy> ToPolicy(const v1::NetworkPolicy& policy) {
  dp::NetworkPolicy out;
  out.namespace_name = policy.namespace_();
  out.name = policy.name();
  out.pod_selector = ToPolicySelector(policy.pod_selector());
  for (int t : policy.policy_types()) {
    if (t == v1::NetworkPolicy::INGRESS) out.policy_types.push_back(dp::PolicyType::kIngress);
    if (t == v1::NetworkPolicy::EGRESS) out.policy_types.push_back(dp::PolicyType::kEgress);
  }
  for (int i = 0; i < policy.ingress_size(); ++i) {
    const v1::NetworkPolicyIngressRule& in = policy.ingress(i);
    std::string field = StrCat("ingress[", i, "]");
    dp::IngressRule rule;
    for (const v1::NetworkPolicyPeer& from : in.from()) {
      dp::PolicyPeer peer;
      if (from.has_pod_selector()) peer.pod_selector = ToPolicySelector(from.pod_selector());
      if (from.has_namespace_selector()) {
        peer.namespace_selector = ToPolicySelector(from.namespace_selector());
      }
      if (from.has_ip_block()) {
        dp::IPBlock block;
        CNINET_ASSIGN_OR_RETURN(
            block.cidr, ParsePrefix(StrCat(field, ".from.ipBlock.cidr"), from.ip_block().cidr()));
        for (const std::string& ex : from.ip_block().except()) {
          CNINET_ASSIGN_OR_RETURN(cni::IPPrefix p,
                                  ParsePrefix(StrCat(field, ".from.ipBlock.except"), ex));
          block.except.push_back(p);
        }
        peer.ip_block = std::move(block);
      }
      rule.from.push_back(std::move(peer));
    }
    for (const v1::NetworkPolicyPort& p : in.ports()) {
      if (p.port() > 65535 || p.end_port() > 65535) {
        return absl::InvalidArgumentError(StrCat(field, ".ports: port out of range"));
      }
      dp::PolicyPort port;
      CNINET_ASSIGN_OR_RETURN(port.protocol, ToProtocol(p.protocol()));
      port.port = static_cast<uint16_t>(p.port());
      port.end_port = static_cast<uint16_t>(p.end_port());
      rule.ports.push_back(port);
    }
    out.ingress.push_back(std::move(rule));
  }
  CNINET_RETURN_IF_ERROR(out.Validate());
  return out;
}

dp::PolicySnapshot BuildPolicySnapshot(std::span<const v1::Namespace* const> namespaces,
                                       std::span<const v1::Pod* const> pods,
                                       std::span<const v1::NetworkPolicy* const> policies,
                                       std::string_view node, std::vector<PlanWarning>* warnings) {
  auto warn = [&](std::string object, std::string message) {
    if (warnings != nullptr) warnings->push_back({std::move(object), std::move(message)});
  };
  dp::PolicySnapshot out;
  std::set<std::string> seen;
  for (const v1::Namespace* ns : namespaces) {
    absl::StatusOr<dp::NamespaceInfo> n = ToPolicyNamespace(*ns);
    if (!n.ok()) {
      warn(StrCat("namespace ", ns->name()), StrCat("skipped for policy: ", n.status().message()));
      continue;
    }
    if (!seen.insert(n->name).second) continue;
    out.namespaces.push_back(*std::move(n));
  }
  seen.clear();
  for (const v1::Pod* p : pods) {
    std::string key = StrCat(p->namespace_(), "/", p->name());
    absl::StatusOr<dp::PodInfo> pod = ToPolicyPod(*p, node);
    if (!pod.ok()) {
      warn(key, StrCat("skipped for policy: ", pod.status().message()));
      continue;
    }
    if (!seen.insert(key).second) continue;
    out.pods.push_back(*std::move(pod));
  }
  seen.clear();
  for (const v1::NetworkPolicy* p : policies) {
    std::string key = StrCat(p->namespace_(), "/", p->name());
    absl::StatusOr<dp::NetworkPolicy> pol = ToPolicy(*p);
    if (!pol.ok()) {
      warn(StrCat("networkpolicy ", key), StrCat("skipped: ", pol.status().message()));
      continue;
    }
    if (!seen.insert(key).second) continue;
    if (p->egress_size() > 0) {
      warn(StrCat("networkpolicy ", key), "egress rules are not enforced (ingress only)");
    }
    out.policies.push_back(*std::move(pol));
  }
  return out;
}

PolicyReconciler::PolicyReconciler(dp::PolicyTable* table, std::string node, AttachHookFn attach,
                                   LinkIndexFn link_index)
    : table_(table),
      node_(std::move(node)),
      attach_(std::move(attach)),
      link_index_(std::move(link_index)) {}

absl::StatusOr<PolicyPassResult> PolicyReconciler::Apply(
    std::span<const v1::Namespace* const> namespaces, std::span<const v1::Pod* const> pods,
    std::span<const v1::NetworkPolicy* const> policies, bool full_sync,
    std::vector<PlanWarning>* warnings) {
  if (!table_->available()) {
    return absl::FailedPreconditionError(
        "the datapath has no policy maps (pinned by an older version); policy is not enforced");
  }
  PolicyPassResult result;
  dp::PolicySnapshot snapshot = BuildPolicySnapshot(namespaces, pods, policies, node_, warnings);
  // The maps first: a pod whose program appears below is enforced from its first packet on.
  CNINET_RETURN_IF_ERROR(table_->Replace(snapshot));
  if (full_sync) table_->RequestFullSync();
  CNINET_ASSIGN_OR_RETURN(result.apply, table_->Apply());

  RecordPass(snapshot, result.apply);
  CNINET_RETURN_IF_ERROR(AttachHooks(pods, full_sync, &result));
  return result;
}

void PolicyReconciler::RecordPass(const dp::PolicySnapshot& snapshot,
                                  const dp::PolicyApplyResult& apply) {
  PolicyReconcilerStatus& st = status_;
  st.namespaces = snapshot.namespaces.size();
  st.isolated_namespaces = 0;
  for (const auto& ns : snapshot.namespaces) st.isolated_namespaces += ns.isolated ? 1 : 0;
  st.policies = snapshot.policies.size();
  st.pods = snapshot.pods.size();
  st.compiler = table_->stats();
  if (apply.total() > 0 || st.passes == 0) st.last_apply = apply;
  ++st.passes;
  if (apply.total() > 0) {
    CNINET_LOG(kInfo, "policy: ", apply.total(), " map writes (", apply.endpoints_written, "/",
               apply.endpoints_deleted, " endpoints, ", apply.identities_written, "/",
               apply.identities_deleted, " identities, ", apply.rules_written, "/",
               apply.rules_deleted, " rules written/deleted; compile ", apply.compile_time.count(),
               " us, write ", apply.write_time.count(), " us)");
  }
}

// The to-pod program on every local pod's host-side veth.
absl::Status PolicyReconciler::AttachHooks(std::span<const v1::Pod* const> pods, bool full_sync,
                                           PolicyPassResult* result) {
  std::map<std::string, int> wanted;
  for (const v1::Pod* p : pods) {
    if (p->node() != node_ || p->interface().empty()) continue;
    int index = link_index_(p->interface());
    if (index > 0) wanted[p->interface()] = index;
  }
  absl::Status first = absl::OkStatus();
  std::map<std::string, int> now;
  for (const auto& [ifname, index] : wanted) {
    auto it = hooks_.find(ifname);
    if (!full_sync && it != hooks_.end() && it->second == index) {
      now[ifname] = index;
      continue;
    }
    absl::Status s = attach_(ifname);
    if (!s.ok()) {
      if (first.ok()) first = Annotate(s, StrCat("attach to-pod to ", ifname));
      continue;
    }
    now[ifname] = index;
    ++result->hooks_attached;
  }
  hooks_ = std::move(now);
  result->hooks_present = hooks_.size();
  status_.hooks = hooks_.size();
  return first;
}

}  // namespace cninet::agent
