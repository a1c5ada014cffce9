/// @file
/// The runtime side of CNI (what libcni is to Go runtimes): executes a network configuration list
/// for one attachment - ADD through the chain with prevResult, DEL in reverse, CHECK, GC, STATUS -
/// injects runtimeConfig from capabilities and caches results on disk in libcni's layout
/// (`<cache_dir>/results/<network>-<containerID>-<ifname>`), so cninet and libcni-based runtimes
/// can read each other's entries.
#ifndef CNINET_CNI_RUNTIME_H_
#define CNINET_CNI_RUNTIME_H_

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/conf.h"
#include "cninet/cni/plugin.h"
#include "cninet/cni/types.h"
#include "nlohmann/json.hpp"

namespace cninet::cni {

/// Per-attachment parameters (libcni's RuntimeConf).
struct RuntimeConf {
  std::string container_id;     ///< CNI_CONTAINERID.
  std::string netns;            ///< CNI_NETNS: path of the sandbox's network namespace.
  std::string ifname = "eth0";  ///< CNI_IFNAME.
  std::vector<std::pair<std::string, std::string>> args;      ///< Become CNI_ARGS.
  nlohmann::json capability_args = nlohmann::json::object();  ///< e.g. {"portMappings": [...]}.
};

/// How plugins are found and run, and where results are cached.
struct RuntimeOptions {
  std::vector<std::string> plugin_paths;     ///< CNI_PATH.
  std::string cache_dir = "/var/lib/cni";    ///< libcni's default.
  std::chrono::milliseconds timeout{60000};  ///< Per plugin execution.
  /// Extra "K=V" entries for the plugins' environment. The runtime's own environment (minus
  /// CNI_*) is passed too, as libcni does.
  std::vector<std::string> extra_env;
};

/// Executes network configuration lists. Thread-compatible; holds no kernel resources.
class Runtime {
 public:
  /// A runtime with `options` (nothing is checked or opened here).
  explicit Runtime(RuntimeOptions options);

  /// Runs ADD on every plugin in order, each getting the previous one's result as prevResult;
  /// caches and returns the final result (in the list's selected version). On error, the
  /// error of the failing plugin is returned and nothing is cached.
  absl::StatusOr<Result> AddNetworkList(const NetConfList& list, const RuntimeConf& rt);
  /// Runs CHECK on every plugin with the cached result as prevResult. OK without running
  /// anything when disableCheck is set; code 1 for versions before 0.4.0; NotFound when there
  /// is no cached result.
  absl::Status CheckNetworkList(const NetConfList& list, const RuntimeConf& rt);
  /// Runs DEL on every plugin in reverse order with the cached result (when readable) as
  /// prevResult, then removes the cache entry. A corrupt or empty cache entry is logged and
  /// ignored: it never blocks DEL.
  absl::Status DelNetworkList(const NetConfList& list, const RuntimeConf& rt);
  /// Runs GC on every plugin with cni.dev/valid-attachments = `valid`, continuing past errors
  /// (all errors are returned, joined); removes cache entries of attachments not in `valid`.
  /// No-op before 1.1.0 or with disableGC.
  absl::Status GcNetworkList(const NetConfList& list, const std::vector<GcAttachment>& valid);
  /// Runs STATUS on every plugin; the first error is returned. No-op before 1.1.0.
  absl::Status StatusNetworkList(const NetConfList& list);
  /// The cached result of an attachment: nullopt when there is none.
  absl::StatusOr<std::optional<Result>> GetCachedResult(const NetConfList& list,
                                                        const RuntimeConf& rt) const;
  /// Attachments with a cache entry for `network`.
  std::vector<GcAttachment> CachedAttachments(std::string_view network) const;
  /// Runs VERSION on plugin `type`; returns its supported versions.
  absl::StatusOr<std::vector<std::string>> PluginVersions(std::string_view type,
                                                          std::string_view cni_version) const;

  /// The request configuration for plugin `index` of `list` (spec section 3, "Deriving request
  /// configuration"): cniVersion and name injected, runtimeConfig derived from capabilities,
  /// prevResult set when given, capabilities removed, everything else untouched.
  static absl::StatusOr<nlohmann::json> BuildPluginConfig(const NetConfList& list, size_t index,
                                                          std::string_view version,
                                                          const std::optional<Result>& prev,
                                                          const RuntimeConf& rt, Command command);

  /// The options it was created with.
  const RuntimeOptions& options() const { return options_; }

 private:
  absl::StatusOr<std::string> Exec(std::string_view type, Command command, const RuntimeConf* rt,
                                   const std::string& config) const;
  std::string CachePath(std::string_view network, const RuntimeConf& rt) const;
  absl::Status WriteCache(const NetConfList& list, const RuntimeConf& rt, const Result& result,
                          std::string_view version) const;

  RuntimeOptions options_;
};

}  // namespace cninet::cni

#endif  // CNINET_CNI_RUNTIME_H_
