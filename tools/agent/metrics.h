// The agent's Prometheus endpoint (prometheus-cpp): GET /metrics on a local address, rendering
// Agent::Metrics() at each scrape - datapath counters by reason, policy verdicts, programmed
// services/endpoints, reconcile latency histograms, the agent's own health.
#ifndef CNINET_TOOLS_AGENT_METRICS_H_
#define CNINET_TOOLS_AGENT_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cninet/agent/agent.h"

namespace cninet::agent_tool {

// A running metrics endpoint; stops when destroyed (before the agent it reads).
class MetricsServer {
 public:
  virtual ~MetricsServer() = default;
  // The port it listens on (the one picked when the address asked for port 0).
  virtual int port() const = 0;
};

// True when this build has the Prometheus endpoint (prometheus-cpp was found).
bool MetricsAvailable();

// Serves `agent`'s metrics on `address` ("127.0.0.1:9464", "[::1]:9464"; port 0 picks one).
// InvalidArgument/Unavailable naming the address when it cannot listen there.
absl::StatusOr<std::unique_ptr<MetricsServer>> StartMetricsServer(const std::string& address,
                                                                  const agent::Agent* agent);

}  // namespace cninet::agent_tool

#endif  // CNINET_TOOLS_AGENT_METRICS_H_
