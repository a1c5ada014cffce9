/// @file
/// The plugin side of CNI ("skel"): PluginMain reads CNI_* and stdin, validates them, dispatches
/// to a Plugin object and prints the result (or the spec's error JSON) with the right exit code.
///
/// Writing a plugin:
///   class MyPlugin : public cninet::cni::Plugin {
///     absl::StatusOr<Result> Add(const CmdArgs& a) override { ... }
///     absl::Status Del(const CmdArgs& a) override { ... }
///   };
///   int main() { MyPlugin p; return cninet::cni::PluginMain(p, {.about = "my plugin"}); }
#ifndef CNINET_CNI_PLUGIN_H_
#define CNINET_CNI_PLUGIN_H_

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/conf.h"
#include "cninet/cni/types.h"
#include "cninet/cni/version.h"

namespace cninet::cni {

/// CNI_COMMAND values.
enum class Command { kAdd, kDel, kCheck, kGc, kStatus, kVersion };
/// "ADD", "DEL", ...
std::string_view CommandName(Command c);
/// Parses a CNI_COMMAND value (case-sensitive, as the spec writes them).
std::optional<Command> ParseCommand(std::string_view text);

/// One (container ID, interface) pair, as listed in GC's cni.dev/valid-attachments.
struct GcAttachment {
  std::string container_id;  ///< CNI_CONTAINERID of the attachment.
  std::string ifname;        ///< CNI_IFNAME of the attachment.
  /// Field-wise equality.
  friend bool operator==(const GcAttachment&, const GcAttachment&) = default;
};

/// Everything an invocation passes to the plugin, already validated.
struct CmdArgs {
  Command command = Command::kAdd;              ///< CNI_COMMAND.
  std::string container_id;                     ///< CNI_CONTAINERID (empty for GC/STATUS).
  std::string netns;                            ///< CNI_NETNS (may be empty on DEL).
  std::string ifname;                           ///< CNI_IFNAME.
  CniArgs args;                                 ///< CNI_ARGS, parsed.
  std::vector<std::string> path;                ///< CNI_PATH split on ':'.
  std::string stdin_data;                       ///< The configuration bytes as received.
  NetConf conf;                                 ///< stdin_data, parsed.
  std::vector<GcAttachment> valid_attachments;  ///< GC only: cni.dev/valid-attachments.

  /// The environment a delegated plugin must receive (the CNI_* variables of this call),
  /// with CNI_COMMAND replaced by `command`.
  std::vector<std::string> DelegateEnv(Command command) const;
};

/// A CNI plugin. ADD and DEL are required; the others have sensible defaults.
class Plugin {
 public:
  virtual ~Plugin() = default;
  /// Creates or adjusts the interface; returns the result (prevResult, possibly extended, for
  /// chained plugins). Its version is set by PluginMain to the request's cniVersion.
  virtual absl::StatusOr<Result> Add(const CmdArgs& args) = 0;
  /// Undoes ADD. Must succeed when things are already gone (idempotent, best effort).
  virtual absl::Status Del(const CmdArgs& args) = 0;
  /// Verifies the attachment against args.conf.prev_result (always present here).
  /// Default: OK.
  virtual absl::Status Check(const CmdArgs& args);
  /// Frees resources of attachments not in args.valid_attachments. Default: OK (stateless).
  virtual absl::Status Gc(const CmdArgs& args);
  /// Readiness: OK, or code 50/51. Default: OK.
  virtual absl::Status Status(const CmdArgs& args);
};

/// What VERSION reports and what the plugin accepts. Every field has a default, so
/// `{.about = "..."}` names only what it changes (no -Wmissing-field-initializers).
struct PluginInfo {
  std::string about = {};  ///< Printed to stderr when run by hand without CNI_COMMAND.
  std::vector<std::string> supported_versions = {};  ///< Empty: every version cninet supports.
  /// Whether ADD/CHECK need CNI_NETNS to be an existing network namespace. IPAM plugins never
  /// enter it and set false, as the reference host-local and static do (only a non-empty value).
  bool needs_netns = true;
};

/// Where PluginMain reads and writes; RunPlugin with these is what tests drive in-process.
struct PluginIo {
  std::function<std::optional<std::string>(std::string_view)>
      getenv;                   ///< Default: the process environment (getenv(3)).
  std::istream* in = nullptr;   ///< Default: std::cin.
  std::ostream* out = nullptr;  ///< Default: std::cout. Only the result or error goes here.
  std::ostream* err = nullptr;  ///< Default: std::cerr.
};

/// Runs one invocation and returns the process exit code (0 on success, 1 on error).
/// Validation, in order: CNI_COMMAND known (code 4); required variables present for the command
/// (code 4, naming them); every CNI_* value valid UTF-8 (4); container ID (4), ifname (4);
/// CNI_ARGS K=V pairs (4); config decodes (6) with a valid name (7)
/// and a supported version (1); CHECK needs >= 0.4.0 and prevResult (1/7); GC and STATUS need
/// >= 1.1.0 (1); ADD/CHECK need CNI_NETNS to be a network namespace (3 if missing, 8 if not
/// a netns) unless `info.needs_netns` is false. DEL runs even when the netns is gone. Errors
/// found before the config is parsed use its cniVersion whenever stdin shows one.
int RunPlugin(Plugin& plugin, const PluginInfo& info, const PluginIo& io);
/// RunPlugin with the process environment, stdin, stdout and stderr. Use as `return` of main().
int PluginMain(Plugin& plugin, const PluginInfo& info = {});

}  // namespace cninet::cni

#endif  // CNINET_CNI_PLUGIN_H_
