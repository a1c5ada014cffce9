#include "cninet/agent/state.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/ip.h"

namespace cninet::agent {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

struct KindInfo {
  std::string_view prefix;
  std::string_view name;
  std::string_view message;  // protobuf full name
  bool namespaced;
  std::string_view name_field;  // "" for the singleton
};

const KindInfo& Info(ObjectKind kind) {
  static const KindInfo kInfos[] = {
      {"/cninet/v1/nodes/", "Node", "cninet.v1.Node", false, "name"},
      {"/cninet/v1/heartbeats/", "NodeHeartbeat", "cninet.v1.NodeHeartbeat", false, "node"},
      {"/cninet/v1/podcidrs/", "PodCIDRAllocation", "cninet.v1.PodCIDRAllocation", false, "cidr"},
      {"/cninet/v1/pods/", "Pod", "cninet.v1.Pod", true, "name"},
      {"/cninet/v1/services/", "Service", "cninet.v1.Service", true, "name"},
      {"/cninet/v1/endpoints/", "Endpoints", "cninet.v1.Endpoints", true, "name"},
      {"/cninet/v1/namespaces/", "Namespace", "cninet.v1.Namespace", false, "name"},
      {"/cninet/v1/networkpolicies/", "NetworkPolicy", "cninet.v1.NetworkPolicy", true, "name"},
      {"/cninet/v1/config/", "ClusterConfig", "cninet.v1.ClusterConfig", false, ""},
  };
  return kInfos[static_cast<int>(kind)];
}

constexpr std::string_view kClusterConfigName = "cluster";

absl::Status Invalid(std::string_view what) { return absl::InvalidArgumentError(ToAbsl(what)); }

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

absl::Status CheckIP(std::string_view field, std::string_view text) {
  if (auto ip = cni::IPAddress::Parse(text); !ip.ok()) {
    return Invalid(StrCat(field, ": \"", text, "\" is not an IP address"));
  }
  return absl::OkStatus();
}

absl::StatusOr<cni::IPPrefix> CheckCIDR(std::string_view field, std::string_view text) {
  auto prefix = cni::IPPrefix::Parse(text);
  if (!prefix.ok()) return Invalid(StrCat(field, ": \"", text, "\" is not a CIDR"));
  if (prefix->Masked() != *prefix) {
    return Invalid(StrCat(field, ": \"", text, "\" has host bits set (network is ",
                          prefix->Masked().ToString(), ")"));
  }
  return *prefix;
}

absl::Status CheckMAC(std::string_view field, std::string_view mac) {
  bool ok = mac.size() == 17;
  for (size_t i = 0; ok && i < mac.size(); ++i) {
    char c = mac[i];
    if (i % 3 == 2) {
      ok = c == ':';
    } else {
      ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
  }
  if (!ok)
    return Invalid(StrCat(field, ": \"", mac, "\" is not a MAC address (aa:bb:cc:dd:ee:ff)"));
  return absl::OkStatus();
}

absl::Status CheckPort(std::string_view field, uint32_t port, bool zero_ok) {
  if ((port == 0 && !zero_ok) || port > 65535) {
    return Invalid(StrCat(field, ": port ", port, " out of range 1-65535"));
  }
  return absl::OkStatus();
}

absl::Status CheckNamespacedName(std::string_view ns, std::string_view name) {
  if (absl::Status s = ValidateName(ns); !s.ok()) return Annotate(s, "namespace");
  if (absl::Status s = ValidateName(name); !s.ok()) return Annotate(s, "name");
  return absl::OkStatus();
}

absl::Status CheckSelector(std::string_view field, const v1::LabelSelector& selector) {
  for (const auto& req : selector.match_expressions()) {
    if (req.key().empty()) return Invalid(StrCat(field, ": expression without key"));
    bool set_op = req.operator_() == v1::LabelSelectorRequirement::IN ||
                  req.operator_() == v1::LabelSelectorRequirement::NOT_IN;
    if (set_op && req.values().empty()) {
      return Invalid(StrCat(field, ": ", req.key(), ": IN/NOT_IN need values"));
    }
    if (!set_op && !req.values().empty()) {
      return Invalid(StrCat(field, ": ", req.key(), ": EXISTS/DOES_NOT_EXIST take no values"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPeer(std::string_view field, const v1::NetworkPolicyPeer& peer) {
  if (peer.has_ip_block()) {
    if (peer.has_pod_selector() || peer.has_namespace_selector()) {
      return Invalid(StrCat(field, ": ipBlock excludes pod/namespace selectors"));
    }
    CNINET_ASSIGN_OR_RETURN(cni::IPPrefix cidr,
                            CheckCIDR(StrCat(field, ".ipBlock.cidr"), peer.ip_block().cidr()));
    for (const std::string& except : peer.ip_block().except()) {
      auto ex = cni::IPPrefix::Parse(except);
      if (!ex.ok() || ex->is_v4() != cidr.is_v4() || ex->prefix_len() < cidr.prefix_len() ||
          !cidr.Contains(ex->address())) {
        return Invalid(
            StrCat(field, ".ipBlock.except: \"", except, "\" is not inside ", cidr.ToString()));
      }
    }
    return absl::OkStatus();
  }
  if (!peer.has_pod_selector() && !peer.has_namespace_selector()) {
    return Invalid(StrCat(field, ": a peer needs podSelector, namespaceSelector or ipBlock"));
  }
  CNINET_RETURN_IF_ERROR(CheckSelector(StrCat(field, ".podSelector"), peer.pod_selector()));
  return CheckSelector(StrCat(field, ".namespaceSelector"), peer.namespace_selector());
}

absl::Status CheckPolicyPorts(
    std::string_view field,
    const google::protobuf::RepeatedPtrField<v1::NetworkPolicyPort>& ports) {
  for (const auto& port : ports) {
    CNINET_RETURN_IF_ERROR(CheckPort(field, port.port(), true));
    if (port.end_port() != 0) {
      if (port.port() == 0 || port.end_port() < port.port() || port.end_port() > 65535) {
        return Invalid(StrCat(field, ": endPort ", port.end_port(), " needs port <= endPort"));
      }
    }
  }
  return absl::OkStatus();
}

// Splits the part of `key` after the kind's prefix into namespace/name.
absl::Status ParseKey(ObjectKind kind, std::string_view key, std::string* ns, std::string* name) {
  const KindInfo& info = Info(kind);
  if (key.substr(0, info.prefix.size()) != info.prefix) {
    return Invalid(StrCat("key ", key, " is not under ", info.prefix));
  }
  std::string_view rest = key.substr(info.prefix.size());
  if (kind == ObjectKind::kClusterConfig) {
    if (rest != kClusterConfigName) {
      return Invalid(StrCat("key ", key, ": the cluster config lives at ", keys::ClusterConfig()));
    }
    return absl::OkStatus();
  }
  if (info.namespaced) {
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos) {
      return Invalid(StrCat("key ", key, ": expected ", info.prefix, "<namespace>/<name>"));
    }
    *ns = std::string(rest.substr(0, slash));
    rest = rest.substr(slash + 1);
    if (absl::Status s = ValidateName(*ns); !s.ok()) return Annotate(s, StrCat("key ", key));
  }
  if (kind == ObjectKind::kPodCIDRAllocation) {
    size_t dash = rest.rfind('-');
    if (dash == std::string_view::npos || rest.find('/') != std::string_view::npos) {
      return Invalid(StrCat("key ", key, ": expected ", info.prefix, "<address>-<prefix length>"));
    }
    *name = StrCat(rest.substr(0, dash), "/", rest.substr(dash + 1));
    return absl::OkStatus();
  }
  *name = std::string(rest);
  if (absl::Status s = ValidateName(*name); !s.ok()) return Annotate(s, StrCat("key ", key));
  return absl::OkStatus();
}

absl::Status CheckMessageType(ObjectKind kind, const Message& message) {
  if (message.GetDescriptor()->full_name() != Info(kind).message) {
    return absl::InternalError(
        StrCat("a ", message.GetDescriptor()->full_name(), " is not a ", Info(kind).message));
  }
  return absl::OkStatus();
}

std::string GetStringField(const Message& message, std::string_view field) {
  const FieldDescriptor* fd = message.GetDescriptor()->FindFieldByName(std::string(field));
  return fd == nullptr ? std::string() : message.GetReflection()->GetString(message, fd);
}

void SetStringField(Message* message, std::string_view field, std::string value) {
  const FieldDescriptor* fd = message->GetDescriptor()->FindFieldByName(std::string(field));
  if (fd != nullptr) message->GetReflection()->SetString(message, fd, std::move(value));
}

absl::Status ValidateMessage(ObjectKind kind, const Message& message) {
  switch (kind) {
    case ObjectKind::kNode:
      return Validate(static_cast<const v1::Node&>(message));
    case ObjectKind::kNodeHeartbeat:
      return Validate(static_cast<const v1::NodeHeartbeat&>(message));
    case ObjectKind::kPodCIDRAllocation:
      return Validate(static_cast<const v1::PodCIDRAllocation&>(message));
    case ObjectKind::kPod:
      return Validate(static_cast<const v1::Pod&>(message));
    case ObjectKind::kService:
      return Validate(static_cast<const v1::Service&>(message));
    case ObjectKind::kEndpoints:
      return Validate(static_cast<const v1::Endpoints&>(message));
    case ObjectKind::kNamespace:
      return Validate(static_cast<const v1::Namespace&>(message));
    case ObjectKind::kNetworkPolicy:
      return Validate(static_cast<const v1::NetworkPolicy&>(message));
    case ObjectKind::kClusterConfig:
      return Validate(static_cast<const v1::ClusterConfig&>(message));
  }
  return absl::InternalError("unknown object kind");
}

}  // namespace

std::string_view KeyPrefix(ObjectKind kind) { return Info(kind).prefix; }
std::string_view KindName(ObjectKind kind) { return Info(kind).name; }

namespace keys {
std::string Node(std::string_view name) { return StrCat(Info(ObjectKind::kNode).prefix, name); }
std::string Heartbeat(std::string_view node) {
  return StrCat(Info(ObjectKind::kNodeHeartbeat).prefix, node);
}
std::string PodCIDR(std::string_view cidr) {
  std::string escaped(cidr);
  for (char& c : escaped) {
    if (c == '/') c = '-';
  }
  return StrCat(Info(ObjectKind::kPodCIDRAllocation).prefix, escaped);
}
std::string Pod(std::string_view ns, std::string_view name) {
  return StrCat(Info(ObjectKind::kPod).prefix, ns, "/", name);
}
std::string Service(std::string_view ns, std::string_view name) {
  return StrCat(Info(ObjectKind::kService).prefix, ns, "/", name);
}
std::string Endpoints(std::string_view ns, std::string_view name) {
  return StrCat(Info(ObjectKind::kEndpoints).prefix, ns, "/", name);
}
std::string Namespace(std::string_view name) {
  return StrCat(Info(ObjectKind::kNamespace).prefix, name);
}
std::string NetworkPolicy(std::string_view ns, std::string_view name) {
  return StrCat(Info(ObjectKind::kNetworkPolicy).prefix, ns, "/", name);
}
std::string ClusterConfig() {
  return StrCat(Info(ObjectKind::kClusterConfig).prefix, kClusterConfigName);
}
}  // namespace keys

absl::Status ValidateName(std::string_view name) {
  if (name.empty()) return Invalid("name is empty");
  if (name.size() > 253) return Invalid(StrCat("name \"", name, "\" is longer than 253"));
  for (char c : name) {
    if (!IsAlnum(c) && c != '-' && c != '.') {
      return Invalid(
          StrCat("name \"", name, "\" may only contain lower-case letters, digits, '-' and '.'"));
    }
  }
  if (!IsAlnum(name.front()) || !IsAlnum(name.back())) {
    return Invalid(StrCat("name \"", name, "\" must start and end with a letter or digit"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeJson(const Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(StrCat("encoding ", message.GetDescriptor()->full_name(),
                                      " as JSON: ", status.message().ToString()));
  }
  return out;
}

absl::Status DecodeJson(std::string_view json, Message* message) {
  message->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (!status.ok()) {
    message->Clear();
    return Invalid(StrCat("not a valid ", message->GetDescriptor()->name(),
                          " JSON value: ", status.message().ToString()));
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::Node& node) {
  CNINET_RETURN_IF_ERROR(Annotate(ValidateName(node.name()), "name"));
  for (const auto& addr : node.addresses()) {
    if (addr.type() == v1::NodeAddress::HOSTNAME) {
      if (addr.address().empty()) return Invalid("addresses: empty host name");
      continue;
    }
    CNINET_RETURN_IF_ERROR(CheckIP("addresses", addr.address()));
  }
  bool seen_v4 = false, seen_v6 = false;
  for (const std::string& cidr : node.pod_cidrs()) {
    CNINET_ASSIGN_OR_RETURN(cni::IPPrefix prefix, CheckCIDR("podCIDRs", cidr));
    bool& seen = prefix.is_v4() ? seen_v4 : seen_v6;
    if (seen) return Invalid("podCIDRs: at most one CIDR per address family");
    seen = true;
  }
  if (!node.public_ip().empty()) CNINET_RETURN_IF_ERROR(CheckIP("publicIP", node.public_ip()));
  if (!node.vtep_mac().empty()) CNINET_RETURN_IF_ERROR(CheckMAC("vtepMAC", node.vtep_mac()));
  return absl::OkStatus();
}

absl::Status Validate(const v1::NodeHeartbeat& heartbeat) {
  return Annotate(ValidateName(heartbeat.node()), "node");
}

absl::Status Validate(const v1::PodCIDRAllocation& allocation) {
  CNINET_RETURN_IF_ERROR(CheckCIDR("cidr", allocation.cidr()).status());
  return Annotate(ValidateName(allocation.node()), "node");
}

absl::Status Validate(const v1::Pod& pod) {
  CNINET_RETURN_IF_ERROR(CheckNamespacedName(pod.namespace_(), pod.name()));
  if (!pod.node().empty()) CNINET_RETURN_IF_ERROR(Annotate(ValidateName(pod.node()), "node"));
  for (const std::string& ip : pod.ips()) CNINET_RETURN_IF_ERROR(CheckIP("ips", ip));
  if (pod.interface().size() > 15) {
    return Invalid(StrCat("interface: \"", pod.interface(), "\" is longer than 15 characters"));
  }
  if (!pod.mac().empty()) CNINET_RETURN_IF_ERROR(CheckMAC("mac", pod.mac()));
  return absl::OkStatus();
}

std::vector<std::string> ServiceClusterIPs(const v1::Service& service) {
  std::vector<std::string> out;
  if (service.cluster_ips_size() == 0) {
    if (!service.cluster_ip().empty()) out.push_back(service.cluster_ip());
    return out;
  }
  for (const std::string& ip : service.cluster_ips()) {
    if (cni::IPAddress::Parse(ip).ok()) out.push_back(ip);
  }
  return out;
}

namespace {

v1::IPFamily FamilyOf(const cni::IPAddress& ip) { return ip.is_v4() ? v1::IPV4 : v1::IPV6; }

// Kubernetes' rules for clusterIP, clusterIPs, ipFamilies and ipFamilyPolicy.
absl::Status CheckServiceFamilies(const v1::Service& service) {
  if (!service.cluster_ip().empty()) {
    CNINET_RETURN_IF_ERROR(CheckIP("clusterIP", service.cluster_ip()));
  }
  if (service.cluster_ips_size() > 2) return Invalid("clusterIPs: at most two (one per family)");
  if (service.ip_families_size() > 2) return Invalid("ipFamilies: at most two");
  if (service.cluster_ips_size() > 0 && !service.cluster_ip().empty() &&
      service.cluster_ips(0) != service.cluster_ip()) {
    return Invalid(StrCat("clusterIPs[0] ", service.cluster_ips(0), " must equal clusterIP ",
                          service.cluster_ip()));
  }
  std::vector<v1::IPFamily> families;
  for (const std::string& text : service.cluster_ips()) {
    CNINET_RETURN_IF_ERROR(CheckIP("clusterIPs", text));
    families.push_back(FamilyOf(*cni::IPAddress::Parse(text)));
  }
  if (families.empty() && !service.cluster_ip().empty()) {
    families.push_back(FamilyOf(*cni::IPAddress::Parse(service.cluster_ip())));
  }
  if (families.size() == 2 && families[0] == families[1]) {
    return Invalid("clusterIPs: two addresses of the same family");
  }
  for (int i = 0; i < service.ip_families_size(); ++i) {
    v1::IPFamily f = service.ip_families(i);
    if (f != v1::IPV4 && f != v1::IPV6) return Invalid("ipFamilies: IPV4 or IPV6 only");
    if (i == 1 && f == service.ip_families(0)) return Invalid("ipFamilies: a family twice");
    if (static_cast<size_t>(i) < families.size() && families[i] != f) {
      return Invalid(
          StrCat("ipFamilies[", i, "] does not match the family of clusterIPs[", i, "]"));
    }
  }
  size_t count = std::max(families.size(), static_cast<size_t>(service.ip_families_size()));
  switch (service.ip_family_policy()) {
    case v1::Service::SINGLE_STACK:
      if (count > 1) return Invalid("ipFamilyPolicy SINGLE_STACK allows one family");
      break;
    case v1::Service::REQUIRE_DUAL_STACK:
      if (count != 2) return Invalid("ipFamilyPolicy REQUIRE_DUAL_STACK needs two families");
      break;
    case v1::Service::PREFER_DUAL_STACK:
      break;
    default:
      if (count > 1) {
        return Invalid(
            "ipFamilyPolicy must be PREFER_DUAL_STACK or REQUIRE_DUAL_STACK when two families "
            "are given");
      }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Validate(const v1::Service& service) {
  CNINET_RETURN_IF_ERROR(CheckNamespacedName(service.namespace_(), service.name()));
  CNINET_RETURN_IF_ERROR(CheckServiceFamilies(service));
  for (const std::string& ip : service.external_ips()) {
    CNINET_RETURN_IF_ERROR(CheckIP("externalIPs", ip));
  }
  std::set<std::string> names;
  std::set<std::pair<int, uint32_t>> ports;
  for (const auto& port : service.ports()) {
    CNINET_RETURN_IF_ERROR(CheckPort("ports.port", port.port(), false));
    CNINET_RETURN_IF_ERROR(CheckPort("ports.nodePort", port.node_port(), true));
    if (port.node_port() != 0 && service.type() == v1::Service::CLUSTER_IP) {
      return Invalid(StrCat("ports: nodePort ", port.node_port(), " on a CLUSTER_IP service"));
    }
    if (service.ports_size() > 1 && port.name().empty()) {
      return Invalid("ports: every port of a multi-port service needs a name");
    }
    if (!names.insert(port.name()).second) {
      return Invalid(StrCat("ports: duplicate port name \"", port.name(), "\""));
    }
    int proto = port.protocol() == v1::PROTOCOL_UNSPECIFIED ? v1::TCP : port.protocol();
    if (!ports.insert({proto, port.port()}).second) {
      return Invalid(StrCat("ports: duplicate port ", port.port()));
    }
  }
  if (service.session_affinity_timeout_seconds() > 86400) {
    return Invalid("sessionAffinityTimeoutSeconds: at most 86400");
  }
  for (const std::string& ip : service.load_balancer_ips()) {
    CNINET_RETURN_IF_ERROR(CheckIP("loadBalancerIPs", ip));
  }
  CNINET_RETURN_IF_ERROR(CheckPort("healthCheckNodePort", service.health_check_node_port(), true));
  if (service.health_check_node_port() != 0 &&
      (service.type() == v1::Service::CLUSTER_IP ||
       service.external_traffic_policy() != v1::Service::LOCAL)) {
    return Invalid(
        "healthCheckNodePort: only for NODE_PORT/LOAD_BALANCER services with "
        "externalTrafficPolicy LOCAL");
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::Endpoints& endpoints) {
  CNINET_RETURN_IF_ERROR(CheckNamespacedName(endpoints.namespace_(), endpoints.name()));
  std::set<std::string> names;
  for (const auto& port : endpoints.ports()) {
    if (!names.insert(port.port_name()).second) {
      return Invalid(StrCat("ports: duplicate portName \"", port.port_name(), "\""));
    }
    for (const auto& backend : port.backends()) {
      CNINET_RETURN_IF_ERROR(CheckIP("backends.ip", backend.ip()));
      if (backend.ip_family() != v1::IP_FAMILY_UNSPECIFIED &&
          backend.ip_family() != FamilyOf(*cni::IPAddress::Parse(backend.ip()))) {
        return Invalid(StrCat("backends.ipFamily: ", backend.ip(), " is not of that family"));
      }
      CNINET_RETURN_IF_ERROR(CheckPort("backends.port", backend.port(), false));
      if (!backend.node().empty()) {
        CNINET_RETURN_IF_ERROR(Annotate(ValidateName(backend.node()), "backends.node"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::Namespace& ns) { return Annotate(ValidateName(ns.name()), "name"); }

absl::Status Validate(const v1::NetworkPolicy& policy) {
  CNINET_RETURN_IF_ERROR(CheckNamespacedName(policy.namespace_(), policy.name()));
  CNINET_RETURN_IF_ERROR(CheckSelector("podSelector", policy.pod_selector()));
  for (const auto& rule : policy.ingress()) {
    for (const auto& peer : rule.from()) CNINET_RETURN_IF_ERROR(CheckPeer("ingress.from", peer));
    CNINET_RETURN_IF_ERROR(CheckPolicyPorts("ingress.ports", rule.ports()));
  }
  for (const auto& rule : policy.egress()) {
    for (const auto& peer : rule.to()) CNINET_RETURN_IF_ERROR(CheckPeer("egress.to", peer));
    CNINET_RETURN_IF_ERROR(CheckPolicyPorts("egress.ports", rule.ports()));
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::ClusterConfig& config) {
  std::optional<cni::IPPrefix> cluster;
  if (!config.cluster_cidr().empty()) {
    CNINET_ASSIGN_OR_RETURN(cluster, CheckCIDR("clusterCIDR", config.cluster_cidr()));
  }
  if (!config.service_cidr().empty()) {
    CNINET_ASSIGN_OR_RETURN(cni::IPPrefix service, CheckCIDR("serviceCIDR", config.service_cidr()));
    if (cluster && cluster->Overlaps(service)) {
      return Invalid("serviceCIDR overlaps clusterCIDR");
    }
  }
  std::optional<cni::IPPrefix> cluster6;
  if (!config.cluster_cidr_ipv6().empty()) {
    CNINET_ASSIGN_OR_RETURN(cluster6, CheckCIDR("clusterCIDRIPv6", config.cluster_cidr_ipv6()));
    if (cluster6->is_v4()) return Invalid("clusterCIDRIPv6: not an IPv6 prefix");
  }
  if (!config.service_cidr_ipv6().empty()) {
    CNINET_ASSIGN_OR_RETURN(cni::IPPrefix service6,
                            CheckCIDR("serviceCIDRIPv6", config.service_cidr_ipv6()));
    if (service6.is_v4()) return Invalid("serviceCIDRIPv6: not an IPv6 prefix");
    if (cluster6 && cluster6->Overlaps(service6)) {
      return Invalid("serviceCIDRIPv6 overlaps clusterCIDRIPv6");
    }
  }
  if (uint32_t mask = config.node_cidr_mask_size_ipv6(); mask != 0) {
    if (mask > 126 || (cluster6 && static_cast<int>(mask) < cluster6->prefix_len())) {
      return Invalid(StrCat("nodeCIDRMaskSizeIPv6: ", mask, " does not fit the clusterCIDRIPv6"));
    }
  }
  if (uint32_t mask = config.node_cidr_mask_size(); mask != 0) {
    int bits = cluster ? cluster->address().bit_length() : 128;
    if (static_cast<int>(mask) > bits ||
        (cluster && static_cast<int>(mask) < cluster->prefix_len())) {
      return Invalid(StrCat("nodeCIDRMaskSize: ", mask, " does not fit the clusterCIDR"));
    }
  }
  if (config.vxlan_vni() > 0xffffff) return Invalid("vxlanVNI: at most 16777215");
  CNINET_RETURN_IF_ERROR(CheckPort("vxlanPort", config.vxlan_port(), true));
  if (config.has_node_port_range()) {
    const auto& range = config.node_port_range();
    CNINET_RETURN_IF_ERROR(CheckPort("nodePortRange.min", range.min(), false));
    CNINET_RETURN_IF_ERROR(CheckPort("nodePortRange.max", range.max(), false));
    if (range.min() > range.max()) return Invalid("nodePortRange: min > max");
  }
  if (config.mtu() != 0 && (config.mtu() < 576 || config.mtu() > 65535)) {
    return Invalid("mtu: out of range 576-65535");
  }
  return absl::OkStatus();
}

void ApplyDefaults(v1::ClusterConfig* config) {
  if (config->node_cidr_mask_size() == 0) {
    auto cluster = cni::IPPrefix::Parse(config->cluster_cidr());
    config->set_node_cidr_mask_size(cluster.ok() && !cluster->is_v4() ? 64 : 24);
  }
  if (config->node_cidr_mask_size_ipv6() == 0) config->set_node_cidr_mask_size_ipv6(64);
  if (config->vxlan_vni() == 0) config->set_vxlan_vni(1);
  if (config->vxlan_port() == 0) config->set_vxlan_port(8472);
  if (!config->has_node_port_range()) {
    config->mutable_node_port_range()->set_min(30000);
    config->mutable_node_port_range()->set_max(32767);
  }
}

absl::StatusOr<std::string> KeyOf(ObjectKind kind, const Message& object) {
  CNINET_RETURN_IF_ERROR(CheckMessageType(kind, object));
  const KindInfo& info = Info(kind);
  if (kind == ObjectKind::kClusterConfig) return keys::ClusterConfig();
  std::string name = GetStringField(object, info.name_field);
  if (kind == ObjectKind::kPodCIDRAllocation) {
    CNINET_RETURN_IF_ERROR(CheckCIDR("cidr", name).status());
    return keys::PodCIDR(name);
  }
  CNINET_RETURN_IF_ERROR(Annotate(ValidateName(name), info.name_field));
  if (!info.namespaced) return StrCat(info.prefix, name);
  std::string ns = GetStringField(object, "namespace");
  CNINET_RETURN_IF_ERROR(Annotate(ValidateName(ns), "namespace"));
  return StrCat(info.prefix, ns, "/", name);
}

absl::Status IdentityFromKey(ObjectKind kind, std::string_view key, Message* object) {
  CNINET_RETURN_IF_ERROR(CheckMessageType(kind, *object));
  std::string ns, name;
  CNINET_RETURN_IF_ERROR(ParseKey(kind, key, &ns, &name));
  const KindInfo& info = Info(kind);
  if (!info.name_field.empty()) SetStringField(object, info.name_field, name);
  if (info.namespaced) SetStringField(object, "namespace", ns);
  return absl::OkStatus();
}

absl::Status DecodeObject(ObjectKind kind, std::string_view key, std::string_view value,
                          Message* object) {
  CNINET_RETURN_IF_ERROR(CheckMessageType(kind, *object));
  std::string ns, name;
  CNINET_RETURN_IF_ERROR(ParseKey(kind, key, &ns, &name));
  absl::Status status = DecodeJson(value, object);
  const KindInfo& info = Info(kind);
  auto reconcile = [&](std::string_view field, const std::string& from_key) -> absl::Status {
    std::string current = GetStringField(*object, field);
    if (current.empty()) {
      SetStringField(object, field, from_key);
    } else if (current != from_key) {
      return Invalid(StrCat(field, " \"", current, "\" does not match the key"));
    }
    return absl::OkStatus();
  };
  if (status.ok() && !info.name_field.empty()) status = reconcile(info.name_field, name);
  if (status.ok() && info.namespaced) status = reconcile("namespace", ns);
  if (status.ok()) status = ValidateMessage(kind, *object);
  if (!status.ok()) {
    object->Clear();
    return absl::InvalidArgumentError(StrCat(key, ": ", status.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeObject(ObjectKind kind, const Message& object) {
  CNINET_RETURN_IF_ERROR(CheckMessageType(kind, object));
  CNINET_RETURN_IF_ERROR(Annotate(ValidateMessage(kind, object), KindName(kind)));
  return EncodeJson(object);
}

}  // namespace cninet::agent
