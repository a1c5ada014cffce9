/// @file
/// The healthCheckNodePort of Services with externalTrafficPolicy LOCAL: every node answers HTTP
/// GET on that port with 200 while it has local endpoints of the service and 503 otherwise, so a
/// load balancer sends the service's traffic only to nodes that can serve it (kube-proxy's
/// behaviour, with its JSON body). PlanHealthChecks (pure) derives the ports from the store;
/// HealthCheckServer listens on them (both families) in the caller's network namespace.
#ifndef CNINET_AGENT_HEALTH_CHECK_H_
#define CNINET_AGENT_HEALTH_CHECK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "cninet/base/fd.h"
#include "cninet/v1/service.pb.h"

namespace cninet::agent {

/// One health-check port: the service it reports on and its local endpoint count.
struct HealthCheck {
  uint16_t port = 0;           ///< healthCheckNodePort.
  std::string ns;              ///< Service namespace.
  std::string name;            ///< Service name.
  size_t local_endpoints = 0;  ///< Distinct local endpoint addresses taking new connections.
  /// Field-wise equality.
  friend bool operator==(const HealthCheck&, const HealthCheck&) = default;
};

/// The health checks of `services` (externalTrafficPolicy LOCAL, type NODE_PORT or
/// LOAD_BALANCER, healthCheckNodePort set) on node `node_name`, by port. Local endpoints are the
/// backends of the service's Endpoints on this node that are ready (or, when no backend of the
/// service is ready, serving), counted once per address.
std::vector<HealthCheck> PlanHealthChecks(std::span<const v1::Service* const> services,
                                          std::span<const v1::Endpoints* const> endpoints,
                                          const std::string& node_name);

/// The HTTP body kube-proxy answers: {"service":{"namespace":..,"name":..},"localEndpoints":N,
/// "serviceProxyHealthy":true}.
std::string HealthCheckBody(const HealthCheck& check);

/// Runs a function in the network namespace the ports belong in (the node's).
using NetnsRunner = std::function<absl::Status(const std::function<absl::Status()>&)>;

/// Serves health checks on [::]:port (IPv4 too) from its own thread. Thread-safe.
class HealthCheckServer {
 public:
  /// A server without ports; its thread starts now. Listening sockets are opened through
  /// `in_netns` (default: in the caller's namespace).
  explicit HealthCheckServer(NetnsRunner in_netns = nullptr);
  ~HealthCheckServer();
  HealthCheckServer(const HealthCheckServer&) = delete;
  HealthCheckServer& operator=(const HealthCheckServer&) = delete;

  /// Serves exactly `checks` from now on: opens the new ports, closes the ones no longer listed
  /// and updates the counts. A port that cannot be opened (in use) is reported in the status
  /// and retried at the next Update; the others are served regardless.
  absl::Status Update(const std::vector<HealthCheck>& checks);
  /// The ports served now.
  std::vector<uint16_t> ports() const;

 private:
  struct Listener {
    UniqueFd fd;
    HealthCheck check;
  };
  void Loop();
  void Serve(int listen_fd);

  NetnsRunner in_netns_;
  mutable std::mutex mu_;
  std::map<uint16_t, Listener> listeners_;
  UniqueFd wake_;  // eventfd: the poll set changed or the server stops
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace cninet::agent

#endif  // CNINET_AGENT_HEALTH_CHECK_H_
