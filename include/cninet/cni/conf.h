/// @file
/// Network configuration: NetConf (what a plugin receives), NetConfList (what an administrator
/// writes), CNI_ARGS, and the spec's name validation rules.
#ifndef CNINET_CNI_CONF_H_
#define CNINET_CNI_CONF_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/types.h"
#include "nlohmann/json.hpp"

namespace cninet::cni {

/// One entry of the `portMappings` capability (CONVENTIONS.md).
struct PortMapping {
  uint16_t host_port = 0;        ///< Port on the host ("hostPort").
  uint16_t container_port = 0;   ///< Port in the pod ("containerPort").
  std::string protocol = "tcp";  ///< "tcp", "udp" or "sctp" (lower case).
  std::string host_ip;           ///< Optional: bind to this host address only.
  /// Field-wise equality.
  friend bool operator==(const PortMapping&, const PortMapping&) = default;
};

/// The `bandwidth` capability: rates in bits per second, bursts in bits.
struct BandwidthLimits {
  uint64_t ingress_rate = 0;   ///< "ingressRate", bits/s.
  uint64_t ingress_burst = 0;  ///< "ingressBurst", bits.
  uint64_t egress_rate = 0;    ///< "egressRate", bits/s.
  uint64_t egress_burst = 0;   ///< "egressBurst", bits.
  /// Field-wise equality.
  friend bool operator==(const BandwidthLimits&, const BandwidthLimits&) = default;
};

/// The well-known capability arguments a runtime injects as `runtimeConfig` (CONVENTIONS.md),
/// typed. Keys it does not know stay available in NetConf::runtime_config.
struct RuntimeConfig {
  std::vector<PortMapping> port_mappings;    ///< "portMappings"
  std::vector<std::string> ips;              ///< "ips": requested addresses, "10.1.0.5/24" or bare.
  std::optional<std::string> mac;            ///< "mac"
  std::optional<BandwidthLimits> bandwidth;  ///< "bandwidth"
  std::optional<DNS> dns;                    ///< "dns": servers/searches/options from the runtime.
  std::vector<std::string> aliases;          ///< "aliases"
  std::string cgroup_path;                   ///< "cgroupPath"
  std::string device_id;                     ///< "deviceID"

  /// Parses the known keys of a runtimeConfig object; wrong types are code 6 naming the key.
  static absl::StatusOr<RuntimeConfig> FromJson(const nlohmann::json& j);
};

/// The plugin configuration object a plugin reads on stdin. Typed accessors for the spec's keys;
/// `raw` is the complete object, so plugin-specific keys are read from it and nothing is lost.
struct NetConf {
  std::string cni_version;                         ///< "" is treated as "0.1.0", as libcni does.
  std::string name;                                ///< The network's name ("name").
  std::string type;                                ///< The plugin binary's name ("type").
  std::map<std::string, bool> capabilities;        ///< "capabilities" the plugin declares.
  nlohmann::json ipam = nlohmann::json::object();  ///< {"type": ...} or empty.
  std::optional<DNS> dns;                          ///< "dns", if any.
  nlohmann::json runtime_config = nlohmann::json::object();  ///< Injected by the runtime.
  nlohmann::json args = nlohmann::json::object();            ///< "args" (conventions), if any.
  bool ip_masq = false;                                      ///< "ipMasq".
  std::optional<nlohmann::json> raw_prev_result;             ///< As received.
  std::optional<Result> prev_result;                         ///< Parsed from raw_prev_result.
  nlohmann::json raw = nlohmann::json::object();             ///< The whole object.

  /// Parses and checks the spec keys' types (code 6 on bad JSON or wrong types) and the network
  /// name (code 7). prevResult, when present, must parse as a Result.
  static absl::StatusOr<NetConf> Parse(std::string_view text);
  /// Parse() on an already decoded object.
  static absl::StatusOr<NetConf> FromJson(const nlohmann::json& j);
  /// ipam.type, or "" when there is no IPAM section.
  std::string IpamType() const;
  /// runtime_config with the conventional keys typed (see RuntimeConfig).
  absl::StatusOr<RuntimeConfig> ParsedRuntimeConfig() const {
    return RuntimeConfig::FromJson(runtime_config);
  }
};

/// A network configuration list (.conflist), or a single .conf promoted to a one-plugin list.
struct NetConfList {
  std::string cni_version;                ///< "cniVersion".
  std::vector<std::string> cni_versions;  ///< 1.1.0 "cniVersions".
  std::string name;                       ///< The network's name ("name").
  bool disable_check = false;             ///< "disableCheck": the runtime skips CHECK.
  bool disable_gc = false;                ///< "disableGC" (1.1.0): the runtime skips GC.
  std::vector<nlohmann::json> plugins;    ///< Plugin configuration objects, unknown keys kept.
  nlohmann::json raw = nlohmann::json::object();  ///< The whole object.
  std::string source;                             ///< File it was loaded from, if any.

  /// Parses a conflist object: name (valid network name), plugins (each an object with a valid
  /// `type`), version fields. Code 6 for undecodable input, 7 for invalid configuration.
  static absl::StatusOr<NetConfList> Parse(std::string_view text);
  /// Parse() on an already decoded object.
  static absl::StatusOr<NetConfList> FromJson(const nlohmann::json& j);
  /// A single plugin configuration (.conf) as a list of one, as libcni does.
  static absl::StatusOr<NetConfList> FromSingle(const nlohmann::json& conf);
  /// The version the runtime uses: the highest of cniVersion and cniVersions that cninet
  /// supports; code 1 when there is none.
  absl::StatusOr<std::string> SelectedVersion() const;
};

/// Loads `path` (.conflist as a list; .conf/.json as a single plugin promoted to a list).
absl::StatusOr<NetConfList> LoadConfListFile(const std::string& path);
/// Files in `dir` with the given extensions (default .conf .conflist .json), sorted by name.
absl::StatusOr<std::vector<std::string>> ConfFiles(const std::string& dir);
/// The network named `name` in `dir` (first matching file in name order), NotFound if none.
absl::StatusOr<NetConfList> LoadConfList(const std::string& dir, std::string_view name);
/// The lexicographically first configuration in `dir`, as runtimes pick their default network.
absl::StatusOr<NetConfList> LoadFirstConfList(const std::string& dir);

/// CNI_ARGS: "K=V;K=V". Keys keep their order; typed accessors for the Kubernetes keys.
class CniArgs {
 public:
  CniArgs() = default;
  /// Fails with code 4 (naming CNI_ARGS) on a pair without '=' or with an empty key.
  static absl::StatusOr<CniArgs> Parse(std::string_view text);

  /// The value of `key`, if present (last one wins).
  std::optional<std::string> Get(std::string_view key) const;
  /// Every pair, in order.
  const std::vector<std::pair<std::string, std::string>>& pairs() const { return pairs_; }
  /// IGNORE_UNKNOWN=1|true: unknown keys must not be an error.
  bool ignore_unknown() const;
  /// Code 2 naming the first key not in `known` (unless ignore_unknown()).
  absl::Status CheckKnown(const std::vector<std::string_view>& known) const;

  /// K8S_POD_NAMESPACE, set by Kubernetes runtimes.
  std::optional<std::string> k8s_pod_namespace() const { return Get("K8S_POD_NAMESPACE"); }
  /// K8S_POD_NAME.
  std::optional<std::string> k8s_pod_name() const { return Get("K8S_POD_NAME"); }
  /// K8S_POD_INFRA_CONTAINER_ID.
  std::optional<std::string> k8s_pod_infra_container_id() const {
    return Get("K8S_POD_INFRA_CONTAINER_ID");
  }
  /// K8S_POD_UID.
  std::optional<std::string> k8s_pod_uid() const { return Get("K8S_POD_UID"); }

  /// "K=V;K=V".
  std::string ToString() const;

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

/// Spec rules for names. Container ID: [a-zA-Z0-9][a-zA-Z0-9_.-]* (code 4; empty is code 3).
absl::Status ValidateContainerId(std::string_view id);
/// Interface name: 1..15 bytes, not "." or "..", no '/', ':' or whitespace (code 4).
absl::Status ValidateInterfaceName(std::string_view ifname);
/// Network name: [a-zA-Z0-9][a-zA-Z0-9_.-]* (code 7).
absl::Status ValidateNetworkName(std::string_view name);
/// Plugin type (binary name): non-empty, no '/', '\\' or NUL, not "." or ".." (code 7).
absl::Status ValidatePluginType(std::string_view type);

}  // namespace cninet::cni

#endif  // CNINET_CNI_CONF_H_
