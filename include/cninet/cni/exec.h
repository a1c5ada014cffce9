/// @file
/// Executing plugins: finding them in CNI_PATH, running them with a timeout, and delegation
/// (a plugin calling another, e.g. IPAM). Used by the plugin side and by Runtime.
#ifndef CNINET_CNI_EXEC_H_
#define CNINET_CNI_EXEC_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/plugin.h"
#include "cninet/cni/types.h"

namespace cninet::cni {

/// The first executable `name` in `paths`; code 7 when `name` is not a valid plugin type,
/// NotFound (naming the paths searched) when it is nowhere.
absl::StatusOr<std::string> FindInPath(std::string_view name,
                                       const std::vector<std::string>& paths);

/// Options for one plugin execution.
struct ExecOptions {
  /// Environment of the child: exactly these "K=V" strings (CNI_* plus whatever the caller adds).
  std::vector<std::string> env;
  std::chrono::milliseconds timeout{60000};  ///< The child is killed (SIGKILL) past this.
  bool forward_stderr = true;  ///< Child's stderr goes to ours (the spec asks this of delegation).
};

/// Runs `binary` with `stdin_data`; returns its stdout on exit code 0. On failure returns the
/// error the plugin printed (its code and msg), or code 5 for exec/IO failures and
/// DeadlineExceeded on timeout.
absl::StatusOr<std::string> ExecPlugin(const std::string& binary, std::string_view stdin_data,
                                       const ExecOptions& options);

/// Process-environment helpers for delegation from inside a plugin.
/// Runs IPAM (or any delegate) `type` for `args.command`'s sibling operations, passing the same
/// CNI_* environment and `conf_bytes` (the complete configuration, as the spec requires).
absl::StatusOr<Result> DelegateAdd(std::string_view type, std::string_view conf_bytes,
                                   const CmdArgs& args);
/// CHECK through delegate `type` (same environment, see DelegateAdd).
absl::Status DelegateCheck(std::string_view type, std::string_view conf_bytes, const CmdArgs& args);
/// DEL through delegate `type`.
absl::Status DelegateDel(std::string_view type, std::string_view conf_bytes, const CmdArgs& args);
/// GC through delegate `type` (a CNI 1.1 plugin).
absl::Status DelegateGc(std::string_view type, std::string_view conf_bytes, const CmdArgs& args);
/// STATUS through delegate `type` (a CNI 1.1 plugin).
absl::Status DelegateStatus(std::string_view type, std::string_view conf_bytes,
                            const CmdArgs& args);

/// The delegations with this call's own configuration (`args.stdin_data`), what an IPAM
/// delegation almost always passes: ADD through delegate `type`.
absl::StatusOr<Result> DelegateAdd(std::string_view type, const CmdArgs& args);
/// CHECK through delegate `type` with `args.stdin_data`.
absl::Status DelegateCheck(std::string_view type, const CmdArgs& args);
/// DEL through delegate `type` with `args.stdin_data`.
absl::Status DelegateDel(std::string_view type, const CmdArgs& args);
/// GC through delegate `type` with `args.stdin_data`.
absl::Status DelegateGc(std::string_view type, const CmdArgs& args);
/// STATUS through delegate `type` with `args.stdin_data`.
absl::Status DelegateStatus(std::string_view type, const CmdArgs& args);

}  // namespace cninet::cni

#endif  // CNINET_CNI_EXEC_H_
