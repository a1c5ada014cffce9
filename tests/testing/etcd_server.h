/// @file
/// Runs a private single-member etcd (Debian's /usr/bin/etcd) listening on 127.0.0.1 only, for the
/// agent's demo, tests and benchmarks: free ports are picked, the data directory is the caller's,
/// and the process is stopped (and, by default, killed with its parent) when the object goes.
#ifndef CNINET_TESTS_TESTING_ETCD_SERVER_H_
#define CNINET_TESTS_TESTING_ETCD_SERVER_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cninet::testing {

/// TLS of etcd's client port (mutual with client_cert_auth). PEM files.
struct EtcdServerTls {
  std::string cert_file;          ///< Server certificate ("" = plain text).
  std::string key_file;           ///< Its key.
  std::string trusted_ca_file;    ///< CA of the client certificates etcd accepts.
  bool client_cert_auth = false;  ///< --client-cert-auth: every client must show a certificate.
};

/// Options of EtcdServer::Start.
struct EtcdServerOptions {
  /// The etcd binary.
  std::string binary = "/usr/bin/etcd";
  /// Data directory (must be set; created when missing; kept on Stop so Restart resumes it).
  std::string data_dir;
  /// Member name.
  std::string name = "cninet";
  int client_port = 0;  ///< 127.0.0.1 client port; 0 picks a free one.
  int peer_port = 0;    ///< 127.0.0.1 peer port; 0 picks a free one.
  /// etcd's stdout/stderr are appended here ("" = data_dir + ".log", beside the data directory).
  std::string log_file;
  /// How long Start/Restart wait for etcd to answer.
  std::chrono::milliseconds start_timeout{20000};
  /// Kill etcd when the process that started it dies (PR_SET_PDEATHSIG).
  bool kill_with_parent = true;
  /// TLS on the client port (the health check uses a separate plain-HTTP metrics port).
  EtcdServerTls tls;
  /// Additional etcd flags ("--max-txn-ops=1024").
  std::vector<std::string> extra_args;

  /// OK when the options are usable (data_dir set, ports in range, positive timeout).
  absl::Status Validate() const;
};

/// A running etcd process.
class EtcdServer {
 public:
  /// Starts etcd and waits until it serves requests (Unavailable with its log tail otherwise).
  static absl::StatusOr<std::unique_ptr<EtcdServer>> Start(const EtcdServerOptions& options);
  /// Stops etcd (SIGTERM, then SIGKILL after 5 s).
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  /// "127.0.0.1:<client port>".
  std::string endpoint() const;
  /// "http://127.0.0.1:<client port>" ("https://" with TLS), as etcdctl --endpoints and the
  /// agent's --etcd take it.
  std::string url() const;
  /// Process id while running, -1 when stopped.
  pid_t pid() const { return pid_; }
  /// The log file etcd writes to.
  const std::string& log_file() const { return options_.log_file; }

  /// Stops etcd gracefully (SIGTERM) or abruptly (SIGKILL); the data directory stays.
  absl::Status Stop(bool graceful = true);
  /// Starts etcd again on the same ports and data directory and waits until it serves.
  absl::Status Restart();

 private:
  explicit EtcdServer(EtcdServerOptions options) : options_(std::move(options)) {}
  absl::Status Launch();
  absl::Status WaitReady();

  EtcdServerOptions options_;
  int metrics_port_ = 0;  // plain-HTTP /health (picked with the other ports)
  pid_t pid_ = -1;
};

}  // namespace cninet::testing

#endif  // CNINET_TESTS_TESTING_ETCD_SERVER_H_
