/// @file
/// The agent's local API: length-delimited protobuf (cninet/agent/api.pb.h, generated from
/// src/agent/api/cninet/agent/api.proto) over a Unix stream socket created with mode 0600 and
/// serving only peers with the agent's own user id (root). One request and one response per
/// exchange, each preceded by its length as a 4-byte big-endian integer. Plugins report pods
/// through it; `cninet-agent status|health` and `cninetctl` query it.
#ifndef CNINET_AGENT_LOCAL_API_H_
#define CNINET_AGENT_LOCAL_API_H_

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/agent/api.pb.h"
#include "cninet/v1/pod.pb.h"

namespace cninet::agent {

/// Largest message accepted on the socket (16 MiB).
inline constexpr uint32_t kMaxApiMessageBytes = 16u << 20;

/// Serves the requests; implemented by the Agent. Called from the server's thread.
class LocalApiHandler {
 public:
  virtual ~LocalApiHandler() = default;
  /// The status report.
  virtual api::AgentStatus Status(const api::StatusRequest& request) = 0;
  /// Readiness and health.
  virtual api::HealthReply Health() = 0;
  /// Records a pod of this node.
  virtual absl::Status ReportPod(const v1::Pod& pod) = 0;
  /// Forgets a pod of this node (OK when unknown).
  virtual absl::Status ForgetPod(const api::ForgetPodRequest& request) = 0;
  /// Forgets every pod of this node whose container ID is not in the request.
  virtual absl::Status GcPods(const api::GcPodsRequest& request) = 0;
};

/// A running local API server: one thread accepting and answering connections in turn.
class LocalApiServer {
 public:
  /// Listens on `path` (a stale socket file is replaced; parent directories are created with
  /// mode 0700), mode 0600. `handler` must outlive the server.
  static absl::StatusOr<std::unique_ptr<LocalApiServer>> Start(const std::string& path,
                                                               LocalApiHandler* handler);
  /// Stops serving and removes the socket file.
  ~LocalApiServer();
  LocalApiServer(const LocalApiServer&) = delete;
  LocalApiServer& operator=(const LocalApiServer&) = delete;

  /// The socket path.
  const std::string& path() const { return path_; }

 private:
  LocalApiServer(std::string path, int fd, int wake_fd, LocalApiHandler* handler);
  void Serve();
  void HandleConnection(int fd);

  std::string path_;
  int listen_fd_;
  int wake_fd_;  // eventfd written by the destructor
  LocalApiHandler* handler_;
  std::thread thread_;
};

/// Sends `request` to the agent at `socket` and returns its response; Unavailable when nothing
/// listens there, DeadlineExceeded after `timeout`. A non-OK response code is returned as the
/// error status.
absl::StatusOr<api::Response> CallAgent(
    const std::string& socket, const api::Request& request,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// The agent's status report (listing at most `max_services` services; 0: the server default).
absl::StatusOr<api::AgentStatus> QueryAgentStatus(const std::string& socket,
                                                  uint32_t max_services = 0);
/// The agent's readiness and health.
absl::StatusOr<api::HealthReply> QueryAgentHealth(const std::string& socket);
/// Reports a pod to the agent (its node is the agent's).
absl::Status ReportPodToAgent(const std::string& socket, const v1::Pod& pod);
/// Tells the agent a pod is gone.
absl::Status ForgetPodAtAgent(const std::string& socket, const api::ForgetPodRequest& request);
/// Tells the agent which containers still exist on its node (CNI GC).
absl::Status GcPodsAtAgent(const std::string& socket, const api::GcPodsRequest& request);

}  // namespace cninet::agent

#endif  // CNINET_AGENT_LOCAL_API_H_
