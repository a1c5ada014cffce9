/// @file
/// Rollback: undo actions registered while a multi-step operation (a plugin's ADD) builds kernel
/// state, run in reverse order when the guard is destroyed without Commit().
#ifndef CNINET_NETLINK_ROLLBACK_H_
#define CNINET_NETLINK_ROLLBACK_H_

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace cninet::netlink {

/// Collects undo steps; on destruction (or Undo()) runs those not yet committed, newest first.
/// Undo failures are logged and the remaining steps still run. Not thread-safe.
class Rollback {
 public:
  Rollback() = default;
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;
  ~Rollback();

  /// Registers `undo` for a step that just succeeded; `what` names it in logs and errors.
  void Add(std::string_view what, std::function<absl::Status()> undo);
  /// Keeps everything: the registered steps are dropped without running.
  void Commit();
  /// Runs the pending steps now, newest first; returns the first failure (all are attempted).
  absl::Status Undo();
  /// Number of pending steps.
  size_t size() const { return steps_.size(); }

 private:
  std::vector<std::pair<std::string, std::function<absl::Status()>>> steps_;
};

}  // namespace cninet::netlink

#endif  // CNINET_NETLINK_ROLLBACK_H_
