/// @file
/// Whole-file helpers with one durability policy for every component (CNI cache, agent state,
/// conflists, plugin state records).
#ifndef CNINET_BASE_FILE_H_
#define CNINET_BASE_FILE_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet {

/// Options of WriteFileAtomic. Defaults suit configuration and state files.
struct WriteFileOptions {
  /// Permission bits of the new file (applied with fchmod, so the umask does not narrow them).
  mode_t mode = 0644;
  /// Create missing parent directories (mode 0755) first.
  bool create_parent_dirs = false;
  /// Called after the temporary file is durable and before it is renamed over the target: a
  /// place for callers that inject faults or must act between the two steps. Usually empty.
  std::function<void()> before_rename;
};

/// Replaces `path` with `data` so that readers and a crash see either the old or the new content,
/// never a torn file: a temporary file with a unique name in the same directory (O_EXCL,
/// O_NOFOLLOW), write, fchmod, fsync, rename over `path`, fsync of the directory. Every error is
/// returned (none ignored) and the temporary file is removed on failure.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data,
                             const WriteFileOptions& options = {});

/// Reads the whole file at `path`. NotFound when it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);

/// fsync()s the directory `dir` (makes a rename or create in it durable).
absl::Status SyncDirectory(const std::string& dir);

/// Writes all of `data` to `fd` (retrying short writes and EINTR); `what` names it in errors.
absl::Status WriteAll(int fd, std::string_view data, std::string_view what);

}  // namespace cninet

#endif  // CNINET_BASE_FILE_H_
