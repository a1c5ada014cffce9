#include "cninet/datapath/policy_types.h"

#include <algorithm>
#include <set>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet::datapath {
namespace {

absl::Status Invalid(std::string_view where, std::string_view why) {
  return absl::InvalidArgumentError(StrCat(where, ": ", why));
}

absl::Status ValidateName(std::string_view where, std::string_view name) {
  if (name.empty()) return Invalid(where, "empty name");
  if (name.find('/') != std::string_view::npos)
    return Invalid(where, StrCat("name \"", name, "\" contains '/'"));
  return absl::OkStatus();
}

absl::Status ValidateLabels(std::string_view where, const Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (k.empty()) return Invalid(where, "empty label key");
  }
  return absl::OkStatus();
}

bool Contains(const std::vector<std::string>& values, std::string_view v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

// Normalised IPv4-or-IPv6 prefix check: `inner` lies inside `outer` (same family).
bool PrefixWithin(const cni::IPPrefix& inner, const cni::IPPrefix& outer) {
  return inner.is_v4() == outer.is_v4() && inner.prefix_len() >= outer.prefix_len() &&
         outer.Masked().Contains(inner.address());
}

}  // namespace

bool LabelSelector::Matches(const Labels& labels) const {
  for (const auto& [k, v] : match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const auto& r : match_expressions) {
    auto it = labels.find(r.key);
    bool has = it != labels.end();
    switch (r.op) {
      case LabelRequirement::Operator::kIn:
        if (!has || !Contains(r.values, it->second)) return false;
        break;
      case LabelRequirement::Operator::kNotIn:
        if (has && Contains(r.values, it->second)) return false;
        break;
      case LabelRequirement::Operator::kExists:
        if (!has) return false;
        break;
      case LabelRequirement::Operator::kDoesNotExist:
        if (has) return false;
        break;
    }
  }
  return true;
}

absl::Status LabelSelector::Validate() const {
  for (const auto& [k, v] : match_labels) {
    if (k.empty()) return Invalid("selector", "empty matchLabels key");
  }
  for (const auto& r : match_expressions) {
    if (r.key.empty()) return Invalid("selector", "empty matchExpressions key");
    bool needs_values =
        r.op == LabelRequirement::Operator::kIn || r.op == LabelRequirement::Operator::kNotIn;
    if (needs_values && r.values.empty())
      return Invalid("selector", StrCat("operator In/NotIn on \"", r.key, "\" needs values"));
    if (!needs_values && !r.values.empty())
      return Invalid("selector",
                     StrCat("operator Exists/DoesNotExist on \"", r.key, "\" takes no values"));
  }
  return absl::OkStatus();
}

std::string LabelSelector::ToString() const {
  if (empty()) return "{}";
  std::vector<std::string> parts;
  for (const auto& [k, v] : match_labels) parts.push_back(StrCat(k, "=", v));
  for (const auto& r : match_expressions) {
    switch (r.op) {
      case LabelRequirement::Operator::kIn:
        parts.push_back(StrCat(r.key, " in (", StrJoin(r.values, ","), ")"));
        break;
      case LabelRequirement::Operator::kNotIn:
        parts.push_back(StrCat(r.key, " notin (", StrJoin(r.values, ","), ")"));
        break;
      case LabelRequirement::Operator::kExists:
        parts.push_back(r.key);
        break;
      case LabelRequirement::Operator::kDoesNotExist:
        parts.push_back(StrCat("!", r.key));
        break;
    }
  }
  return StrJoin(parts, ",");
}

bool NetworkPolicy::AffectsIngress() const {
  return policy_types.empty() || std::find(policy_types.begin(), policy_types.end(),
                                           PolicyType::kIngress) != policy_types.end();
}

absl::Status NetworkPolicy::Validate() const {
  CNINET_RETURN_IF_ERROR(ValidateName("networkpolicy namespace", namespace_name));
  CNINET_RETURN_IF_ERROR(ValidateName("networkpolicy name", name));
  const std::string where = StrCat("networkpolicy ", Key());
  CNINET_RETURN_IF_ERROR(Annotate(pod_selector.Validate(), StrCat(where, " podSelector")));
  for (size_t i = 0; i < ingress.size(); ++i) {
    const IngressRule& rule = ingress[i];
    const std::string rw = StrCat(where, " ingress[", i, "]");
    for (size_t j = 0; j < rule.from.size(); ++j) {
      const PolicyPeer& peer = rule.from[j];
      const std::string pw = StrCat(rw, " from[", j, "]");
      bool selectors = peer.pod_selector || peer.namespace_selector;
      if (!selectors && !peer.ip_block)
        return Invalid(pw, "needs podSelector, namespaceSelector or ipBlock");
      if (selectors && peer.ip_block)
        return Invalid(pw, "ipBlock cannot be combined with selectors");
      if (peer.pod_selector) CNINET_RETURN_IF_ERROR(Annotate(peer.pod_selector->Validate(), pw));
      if (peer.namespace_selector)
        CNINET_RETURN_IF_ERROR(Annotate(peer.namespace_selector->Validate(), pw));
      if (peer.ip_block) {
        const cni::IPPrefix& cidr = peer.ip_block->cidr;
        int max = cidr.address().bit_length();
        if (cidr.prefix_len() < 0 || cidr.prefix_len() > max)
          return Invalid(pw, StrCat("ipBlock cidr ", cidr.ToString(), " has a bad length"));
        for (const cni::IPPrefix& e : peer.ip_block->except) {
          if (e.prefix_len() < 0 || e.prefix_len() > e.address().bit_length() ||
              !PrefixWithin(e, cidr) || e.prefix_len() == cidr.prefix_len()) {
            return Invalid(pw, StrCat("ipBlock except ", e.ToString(), " must lie strictly inside ",
                                      cidr.ToString()));
          }
        }
      }
    }
    for (size_t j = 0; j < rule.ports.size(); ++j) {
      const PolicyPort& p = rule.ports[j];
      const std::string pw = StrCat(rw, " ports[", j, "]");
      if (p.protocol != PolicyProtocol::kTcp && p.protocol != PolicyProtocol::kUdp &&
          p.protocol != PolicyProtocol::kSctp)
        return Invalid(pw, "protocol must be TCP, UDP or SCTP");
      if (p.end_port != 0 && p.port == 0) return Invalid(pw, "endPort needs port");
      if (p.end_port != 0 && p.end_port < p.port)
        return Invalid(pw, StrCat("endPort ", p.end_port, " < port ", p.port));
    }
  }
  std::set<PolicyType> seen;
  for (PolicyType t : policy_types) {
    if (t != PolicyType::kIngress && t != PolicyType::kEgress)
      return Invalid(where, "unknown policyType");
    if (!seen.insert(t).second) return Invalid(where, "duplicate policyType");
  }
  return absl::OkStatus();
}

absl::Status NamespaceInfo::Validate() const {
  CNINET_RETURN_IF_ERROR(ValidateName("namespace", name));
  return ValidateLabels(StrCat("namespace ", name), labels);
}

Labels NamespaceInfo::SelectorLabels() const {
  Labels out = labels;
  out[kNamespaceNameLabel] = name;
  return out;
}

absl::Status PodInfo::Validate() const {
  CNINET_RETURN_IF_ERROR(ValidateName("pod namespace", namespace_name));
  CNINET_RETURN_IF_ERROR(ValidateName("pod name", name));
  return ValidateLabels(StrCat("pod ", Key()), labels);
}

}  // namespace cninet::datapath
