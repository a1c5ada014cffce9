/// @file
/// The embedded store: a Store kept in a local state directory, for a single node without any
/// daemon. Several processes (the agent and CLI tools) may open the same directory at once; writes
/// are serialized with a file lock, made durable before they return (checksummed log records,
/// fsync; snapshots through temp file + fsync + rename), and every open instance sees the others'
/// changes within about a poll interval (inotify, polling as a fallback).
///
/// Limits: writes are serialized, one fsync each (batch with Store::Apply); lease deadlines are
/// wall-clock times (they must survive the process that granted them); a process that falls a
/// whole log generation behind another process's snapshots resyncs, and its watches get a reset.
#ifndef CNINET_AGENT_EMBEDDED_STORE_H_
#define CNINET_AGENT_EMBEDDED_STORE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/agent/store.h"

namespace cninet::agent {

/// Options of OpenEmbeddedStore.
struct EmbeddedStoreOptions {
  /// State directory (created with mode 0700 when missing), e.g. /var/lib/cninet/store.
  std::string dir;
  /// fsync every write before acknowledging it. Turning it off keeps crash consistency (a torn
  /// tail is discarded) but may lose the last writes on power loss.
  bool sync = true;
  /// The log is folded into a new snapshot once it grows beyond this many bytes, or beyond the
  /// last snapshot's size when that is larger (so rewriting the state costs at most as much as
  /// the writes it folds). Default 8 MiB.
  uint64_t snapshot_threshold_bytes = 8 << 20;
  /// Changes kept in memory for watches resuming from an old revision, at most this many ...
  size_t max_history_events = 100000;
  /// ... and at most about this many bytes of keys and values; older ones are compacted (a watch
  /// from before them gets a reset). Default 32 MiB.
  size_t max_history_bytes = 32 << 20;
  /// How often other processes' changes are looked for when inotify reports nothing, and how often
  /// expired leases are revoked (default 200 ms).
  std::chrono::milliseconds poll_interval{200};

  /// OK when the options are usable (dir set, thresholds positive).
  absl::Status Validate() const;
};

/// Opens (creating if needed) the store in `options.dir`, recovering from an interrupted write:
/// a torn last log record is discarded; a corrupt snapshot is DataLoss.
absl::StatusOr<std::unique_ptr<Store>> OpenEmbeddedStore(const EmbeddedStoreOptions& options);

}  // namespace cninet::agent

#endif  // CNINET_AGENT_EMBEDDED_STORE_H_
