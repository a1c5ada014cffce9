/// @file
/// Typed access to the agent's state model (proto/cninet/v1) in a Store: the key layout, the JSON
/// codec and validation, and Get/List/Put/Create/Watch of whole objects.
///
/// The agent's public API exposes the generated protobuf messages (cninet::v1::Node, ...): the
/// agent component depends on protobuf publicly, and installs the generated headers under
/// include/cninet/v1/. gRPC stays private to the etcd store.
///
/// Values are protobuf's canonical JSON ({"name":"n1","podCIDRs":["10.244.1.0/24"]}), parsed
/// strictly: an unknown field (a typo such as "directRoutng") is an error, not silently dropped.
/// The identity fields (name, namespace) may be left out of a value: they are taken from the key;
/// when present they must agree with it. A value that does not decode or validate is reported as a
/// DecodeError for its key and never stops a list or watch of the other keys.
#ifndef CNINET_AGENT_STATE_H_
#define CNINET_AGENT_STATE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/agent/store.h"
#include "cninet/v1/cluster.pb.h"
#include "cninet/v1/common.pb.h"
#include "cninet/v1/namespace.pb.h"
#include "cninet/v1/network_policy.pb.h"
#include "cninet/v1/node.pb.h"
#include "cninet/v1/pod.pb.h"
#include "cninet/v1/service.pb.h"

namespace cninet::agent {

/// The object kinds of the state model; each has its own key prefix under /cninet/v1/.
enum class ObjectKind {
  kNode,               ///< /cninet/v1/nodes/NAME
  kNodeHeartbeat,      ///< /cninet/v1/heartbeats/NODE
  kPodCIDRAllocation,  ///< /cninet/v1/podcidrs/CIDR, the "/" written as "-"
  kPod,                ///< /cninet/v1/pods/NAMESPACE/NAME
  kService,            ///< /cninet/v1/services/NAMESPACE/NAME
  kEndpoints,          ///< /cninet/v1/endpoints/NAMESPACE/NAME
  kNamespace,          ///< /cninet/v1/namespaces/NAME
  kNetworkPolicy,      ///< /cninet/v1/networkpolicies/NAMESPACE/NAME
  kClusterConfig,      ///< /cninet/v1/config/cluster (a singleton)
};

/// The root of every cninet key.
inline constexpr std::string_view kKeyRoot = "/cninet/v1/";

/// The key prefix of a kind, ending in "/" ("/cninet/v1/nodes/").
std::string_view KeyPrefix(ObjectKind kind);
/// Kind name for messages ("Node", "Service", ...).
std::string_view KindName(ObjectKind kind);

/// Compile-time mapping from message type to kind (specialized for every state message).
template <typename T>
struct ObjectTraits;
/// v1::Node objects are ObjectKind::kNode.
template <>
struct ObjectTraits<v1::Node> {
  static constexpr ObjectKind kKind = ObjectKind::kNode;  ///< The kind.
};
/// v1::NodeHeartbeat objects are ObjectKind::kNodeHeartbeat.
template <>
struct ObjectTraits<v1::NodeHeartbeat> {
  static constexpr ObjectKind kKind = ObjectKind::kNodeHeartbeat;  ///< The kind.
};
/// v1::PodCIDRAllocation objects are ObjectKind::kPodCIDRAllocation.
template <>
struct ObjectTraits<v1::PodCIDRAllocation> {
  static constexpr ObjectKind kKind = ObjectKind::kPodCIDRAllocation;  ///< The kind.
};
/// v1::Pod objects are ObjectKind::kPod.
template <>
struct ObjectTraits<v1::Pod> {
  static constexpr ObjectKind kKind = ObjectKind::kPod;  ///< The kind.
};
/// v1::Service objects are ObjectKind::kService.
template <>
struct ObjectTraits<v1::Service> {
  static constexpr ObjectKind kKind = ObjectKind::kService;  ///< The kind.
};
/// v1::Endpoints objects are ObjectKind::kEndpoints.
template <>
struct ObjectTraits<v1::Endpoints> {
  static constexpr ObjectKind kKind = ObjectKind::kEndpoints;  ///< The kind.
};
/// v1::Namespace objects are ObjectKind::kNamespace.
template <>
struct ObjectTraits<v1::Namespace> {
  static constexpr ObjectKind kKind = ObjectKind::kNamespace;  ///< The kind.
};
/// v1::NetworkPolicy objects are ObjectKind::kNetworkPolicy.
template <>
struct ObjectTraits<v1::NetworkPolicy> {
  static constexpr ObjectKind kKind = ObjectKind::kNetworkPolicy;  ///< The kind.
};
/// v1::ClusterConfig objects are ObjectKind::kClusterConfig.
template <>
struct ObjectTraits<v1::ClusterConfig> {
  static constexpr ObjectKind kKind = ObjectKind::kClusterConfig;  ///< The kind.
};

/// Keys of individual objects. Names must pass ValidateName (no "/", DNS-1123 characters).
namespace keys {
/// /cninet/v1/nodes/NAME
std::string Node(std::string_view name);
/// /cninet/v1/heartbeats/NODE
std::string Heartbeat(std::string_view node);
/// /cninet/v1/podcidrs/CIDR with "/" replaced by "-" ("10.244.3.0-24").
std::string PodCIDR(std::string_view cidr);
/// /cninet/v1/pods/NAMESPACE/NAME
std::string Pod(std::string_view ns, std::string_view name);
/// /cninet/v1/services/NAMESPACE/NAME
std::string Service(std::string_view ns, std::string_view name);
/// /cninet/v1/endpoints/NAMESPACE/NAME
std::string Endpoints(std::string_view ns, std::string_view name);
/// /cninet/v1/namespaces/NAME
std::string Namespace(std::string_view name);
/// /cninet/v1/networkpolicies/NAMESPACE/NAME
std::string NetworkPolicy(std::string_view ns, std::string_view name);
/// /cninet/v1/config/cluster
std::string ClusterConfig();
}  // namespace keys

/// OK for a Kubernetes object name (DNS-1123 subdomain: 1-253 of [a-z0-9.-], alphanumeric ends).
absl::Status ValidateName(std::string_view name);

/// Canonical JSON of `message` (lowerCamelCase / json_name field names, defaults omitted).
absl::StatusOr<std::string> EncodeJson(const google::protobuf::Message& message);
/// Strict JSON parse into `message` (cleared first); unknown fields are InvalidArgument.
absl::Status DecodeJson(std::string_view json, google::protobuf::Message* message);

/// Checks a node: name, addresses, at most one podCIDR per family (network addresses),
/// publicIP, vtepMAC.
absl::Status Validate(const v1::Node& node);
/// Checks a heartbeat: the node name.
absl::Status Validate(const v1::NodeHeartbeat& heartbeat);
/// Checks a podCIDR allocation: the CIDR (a network address) and the owner's name.
absl::Status Validate(const v1::PodCIDRAllocation& allocation);
/// Checks a pod: names, IPs, interface name length, MAC.
absl::Status Validate(const v1::Pod& pod);
/// Checks a service: names, IPs, ports in range and unique, named when several, nodePorts only
/// on NODE_PORT services, affinity timeout, and Kubernetes' dual-stack rules: clusterIP equals
/// clusterIPs[0], at most one ClusterIP per family, ipFamilies matching clusterIPs, one family
/// for SINGLE_STACK, two for REQUIRE_DUAL_STACK, a dual-stack policy when two are given.
absl::Status Validate(const v1::Service& service);
/// Checks endpoints: names, unique port names, backend IPs, ports and families (ipFamily,
/// when set, must be the family of the backend's IP).
absl::Status Validate(const v1::Endpoints& endpoints);
/// Checks a namespace: its name.
absl::Status Validate(const v1::Namespace& ns);
/// Checks a network policy: names, selectors, ipBlocks (excepts inside the CIDR), port ranges.
absl::Status Validate(const v1::NetworkPolicy& policy);
/// Checks a cluster config: CIDRs (not overlapping, the IPv6 ones IPv6), mask sizes, VNI, ports,
/// nodePort range, MTU.
absl::Status Validate(const v1::ClusterConfig& config);

/// A service's ClusterIPs, the primary first: cluster_ips, or cluster_ip alone when cluster_ips
/// is empty; entries that do not parse are left out (Validate rejects them).
std::vector<std::string> ServiceClusterIPs(const v1::Service& service);

/// Fills zero fields of a cluster config with the documented defaults.
void ApplyDefaults(v1::ClusterConfig* config);

/// The key of `object` (a message of `kind`) from its identity fields; InvalidArgument when they
/// are missing or invalid.
absl::StatusOr<std::string> KeyOf(ObjectKind kind, const google::protobuf::Message& object);
/// Decodes the value stored at `key` into `object`: strict JSON, identity filled in from the key
/// (or checked against it), then Validate. Errors are InvalidArgument naming the key.
absl::Status DecodeObject(ObjectKind kind, std::string_view key, std::string_view value,
                          google::protobuf::Message* object);
/// Sets the identity fields of `object` from `key` (used for deletes, where only the key is known).
absl::Status IdentityFromKey(ObjectKind kind, std::string_view key,
                             google::protobuf::Message* object);
/// Validate() for a message of `kind`, then its JSON; what PutObject writes.
absl::StatusOr<std::string> EncodeObject(ObjectKind kind, const google::protobuf::Message& object);

/// A decoded object with its store metadata.
template <typename T>
struct Object {
  std::string key;              ///< Where it is stored.
  T value;                      ///< The decoded, validated message.
  int64_t create_revision = 0;  ///< Store revision of its creation.
  int64_t mod_revision = 0;     ///< Store revision of its last change (for UpdateObject).
  LeaseId lease = 0;            ///< Lease it is attached to, 0 for none.
};

/// A value that could not be decoded or validated; the key is skipped.
struct DecodeError {
  std::string key;           ///< The key whose value is malformed.
  int64_t mod_revision = 0;  ///< Revision of that value.
  absl::Status status;       ///< Why it was rejected (InvalidArgument naming the key).
};

/// The objects under a prefix: every valid one, and the errors of the others.
template <typename T>
struct ObjectList {
  std::vector<Object<T>> items;     ///< Valid objects, in key order.
  std::vector<DecodeError> errors;  ///< Skipped keys, in key order.
  int64_t revision = 0;             ///< Store revision of the list.
};

/// One typed change. For kDelete, object.value holds only the identity taken from the key.
template <typename T>
struct ObjectEvent {
  EventType type = EventType::kPut;  ///< Put or delete.
  Object<T> object;                  ///< The object (only its identity for a delete).
};

/// A typed WatchUpdate: valid events, and errors for put events whose value is malformed (the
/// consumer decides whether such a key keeps its previous state; the agent keeps it and logs).
template <typename T>
struct ObjectUpdate {
  bool reset = false;                  ///< `events` is the complete valid state (relist).
  std::vector<ObjectEvent<T>> events;  ///< Valid changes, in revision order.
  std::vector<DecodeError> errors;     ///< Puts whose value was malformed.
  int64_t revision = 0;                ///< Store revision this update brings the watcher to.
};

/// Decodes one stored key-value as a T.
template <typename T>
absl::StatusOr<Object<T>> DecodeKeyValue(const KeyValue& kv) {
  Object<T> object;
  object.key = kv.key;
  object.create_revision = kv.create_revision;
  object.mod_revision = kv.mod_revision;
  object.lease = kv.lease;
  absl::Status status = DecodeObject(ObjectTraits<T>::kKind, kv.key, kv.value, &object.value);
  if (!status.ok()) return status;
  return object;
}

/// Reads and decodes one object; NotFound when absent, InvalidArgument when malformed.
template <typename T>
absl::StatusOr<Object<T>> GetObject(Store& store, std::string_view key) {
  absl::StatusOr<KeyValue> kv = store.Get(key);
  if (!kv.ok()) return kv.status();
  return DecodeKeyValue<T>(*kv);
}

/// Lists every object of T's kind (or under `prefix`, which must lie inside the kind's prefix).
template <typename T>
absl::StatusOr<ObjectList<T>> ListObjects(Store& store, std::string_view prefix = {}) {
  if (prefix.empty()) prefix = KeyPrefix(ObjectTraits<T>::kKind);
  absl::StatusOr<ListResult> list = store.List(prefix);
  if (!list.ok()) return list.status();
  ObjectList<T> out;
  out.revision = list->revision;
  for (const KeyValue& kv : list->kvs) {
    absl::StatusOr<Object<T>> object = DecodeKeyValue<T>(kv);
    if (object.ok()) {
      out.items.push_back(*std::move(object));
    } else {
      out.errors.push_back({kv.key, kv.mod_revision, object.status()});
    }
  }
  return out;
}

/// Validates and writes `object` at its key; returns the revision.
template <typename T>
absl::StatusOr<int64_t> PutObject(Store& store, const T& object, LeaseId lease = 0) {
  absl::StatusOr<std::string> key = KeyOf(ObjectTraits<T>::kKind, object);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> value = EncodeObject(ObjectTraits<T>::kKind, object);
  if (!value.ok()) return value.status();
  return store.Put(*key, *value, lease);
}

/// Like PutObject, but only when the key does not exist yet (AlreadyExists otherwise).
template <typename T>
absl::StatusOr<int64_t> CreateObject(Store& store, const T& object, LeaseId lease = 0) {
  absl::StatusOr<std::string> key = KeyOf(ObjectTraits<T>::kKind, object);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> value = EncodeObject(ObjectTraits<T>::kKind, object);
  if (!value.ok()) return value.status();
  return store.Create(*key, *value, lease);
}

/// Like PutObject, but only when the stored mod_revision is `expected_mod_revision` (Aborted).
template <typename T>
absl::StatusOr<int64_t> UpdateObject(Store& store, const T& object, int64_t expected_mod_revision,
                                     LeaseId lease = 0) {
  absl::StatusOr<std::string> key = KeyOf(ObjectTraits<T>::kKind, object);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> value = EncodeObject(ObjectTraits<T>::kKind, object);
  if (!value.ok()) return value.status();
  return store.Update(*key, *value, expected_mod_revision, lease);
}

/// Decodes a raw watch update into a typed one.
template <typename T>
ObjectUpdate<T> DecodeUpdate(const WatchUpdate& update) {
  ObjectUpdate<T> out;
  out.reset = update.reset;
  out.revision = update.revision;
  for (const Event& event : update.events) {
    ObjectEvent<T> typed;
    typed.type = event.type;
    if (event.type == EventType::kDelete) {
      typed.object.key = event.kv.key;
      typed.object.mod_revision = event.kv.mod_revision;
      if (absl::Status s =
              IdentityFromKey(ObjectTraits<T>::kKind, event.kv.key, &typed.object.value);
          !s.ok()) {
        out.errors.push_back({event.kv.key, event.kv.mod_revision, s});
        continue;
      }
      out.events.push_back(std::move(typed));
      continue;
    }
    absl::StatusOr<Object<T>> object = DecodeKeyValue<T>(event.kv);
    if (!object.ok()) {
      out.errors.push_back({event.kv.key, event.kv.mod_revision, object.status()});
      continue;
    }
    typed.object = *std::move(object);
    out.events.push_back(std::move(typed));
  }
  return out;
}

/// Watches every object of T's kind (see Store::Watch for from_revision and resets); malformed
/// values arrive as errors in the update and the watch goes on.
template <typename T>
absl::StatusOr<std::unique_ptr<WatchHandle>> WatchObjects(
    Store& store, int64_t from_revision, std::function<void(const ObjectUpdate<T>&)> callback,
    std::string_view prefix = {}) {
  if (prefix.empty()) prefix = KeyPrefix(ObjectTraits<T>::kKind);
  return store.Watch(prefix, from_revision,
                     [callback = std::move(callback)](const WatchUpdate& update) {
                       callback(DecodeUpdate<T>(update));
                     });
}

}  // namespace cninet::agent

#endif  // CNINET_AGENT_STATE_H_
