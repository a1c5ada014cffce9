/// @file
/// The etcd v3 store: a Store on an etcd cluster, spoken to over gRPC (C++ stubs generated at build
/// time from cninet's own subset of etcd's KV/Watch/Lease protos). Reconnects with backoff, resumes
/// watches from the last seen revision and relists after compaction. Optional part of the agent
/// component (CNINET_WITH_ETCD, on when gRPC is found); without it OpenEtcdStore is Unimplemented.
#ifndef CNINET_AGENT_ETCD_STORE_H_
#define CNINET_AGENT_ETCD_STORE_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/agent/store.h"

namespace cninet::agent {

/// Options of OpenEtcdStore.
struct EtcdStoreOptions {
  /// Client endpoints, "127.0.0.1:2379" or "http://127.0.0.1:2379" (plain text; no TLS yet).
  std::vector<std::string> endpoints;
  /// Deadline of each unary call.
  std::chrono::milliseconds request_timeout{5000};
  /// How long OpenEtcdStore waits for the first successful request (0: do not wait or check).
  std::chrono::milliseconds connect_timeout{5000};
  /// First reconnect delay of the channel and of watch streams; doubles (with jitter) ...
  std::chrono::milliseconds initial_backoff{100};
  /// ... up to this.
  std::chrono::milliseconds max_backoff{5000};
  /// Keys per page when listing a prefix (lists are consistent: every page reads one revision).
  int64_t list_page_size = 2000;

  /// OK when the options are usable (at least one endpoint, positive durations).
  absl::Status Validate() const;
};

/// True when this build includes the etcd store.
bool EtcdStoreAvailable();

/// Connects to etcd; with connect_timeout > 0 fails (Unavailable) when no endpoint answers in time.
absl::StatusOr<std::unique_ptr<Store>> OpenEtcdStore(const EtcdStoreOptions& options);

}  // namespace cninet::agent

#endif  // CNINET_AGENT_ETCD_STORE_H_
