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

/// TLS of the etcd client (mutual TLS when a client certificate is given), as etcdctl's
/// --cacert/--cert/--key. The files are PEM.
struct EtcdTlsOptions {
  /// CA bundle that signed etcd's server certificate ("" = the system's roots).
  std::string ca_file;
  /// Client certificate (chain) presented to etcd; etcd started with --client-cert-auth needs it,
  /// and with auth enabled takes the user name from its common name.
  std::string cert_file;
  /// The client certificate's private key: a regular file owned by root (or by the user running
  /// the client) and not accessible to group or others (mode 0600 or 0400), as ssh requires of
  /// private keys; anything else is refused, naming the file.
  std::string key_file;
  /// Name checked against etcd's certificate instead of the endpoint's host ("" = the host).
  std::string server_name;

  /// True when any TLS option is set.
  bool any() const {
    return !ca_file.empty() || !cert_file.empty() || !key_file.empty() || !server_name.empty();
  }
};

/// Refuses a private key file that is not a regular file, is owned by another user than root or
/// the effective user, or is accessible to group or others (FailedPrecondition naming the file and
/// its mode, with the chmod/chown that fixes it).
absl::Status CheckPrivateKeyFile(const std::string& path);

/// Options of OpenEtcdStore.
struct EtcdStoreOptions {
  /// Client endpoints: "https://127.0.0.1:2379" (TLS), "http://127.0.0.1:2379" (plain text, only
  /// when asked for like this) or "127.0.0.1:2379" (TLS: then some `tls` option must be set). All
  /// endpoints use the same scheme.
  std::vector<std::string> endpoints;
  /// TLS settings (used for https:// and bare endpoints; an http:// endpoint with TLS options is
  /// refused as contradictory).
  EtcdTlsOptions tls;
  /// Deadline of each unary call.
  std::chrono::milliseconds request_timeout{5000};
  /// How long OpenEtcdStore waits for the first successful request (0: do not wait or check).
  std::chrono::milliseconds connect_timeout{5000};
  /// First reconnect delay of the channel and of watch streams; doubles (with jitter) ...
  std::chrono::milliseconds initial_backoff{100};
  /// ... up to this.
  std::chrono::milliseconds max_backoff{5000};
  /// A key prefix this client may read ("" = every key): Revision() and the connection check read
  /// it. With etcd's authentication on, a node's role reads only cninet's keys.
  std::string readable_prefix = "/cninet/";
  /// Keys per page when listing a prefix (lists are consistent: every page reads one revision).
  int64_t list_page_size = 2000;

  /// OK when the options are usable (at least one endpoint, one scheme, TLS or explicit plain
  /// text, a key with its certificate, positive durations). Does not read the files.
  absl::Status Validate() const;
  /// True when the endpoints are spoken to over TLS (Validate() must pass).
  bool UsesTls() const;
};

/// True when this build includes the etcd store.
bool EtcdStoreAvailable();

/// Connects to etcd; with connect_timeout > 0 fails (Unavailable) when no endpoint answers in time.
absl::StatusOr<std::unique_ptr<Store>> OpenEtcdStore(const EtcdStoreOptions& options);

}  // namespace cninet::agent

#endif  // CNINET_AGENT_ETCD_STORE_H_
