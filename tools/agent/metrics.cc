#include "metrics.h"

#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "cninet/base/strings.h"

#ifdef CNINET_AGENT_METRICS
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"
#endif

namespace cninet::agent_tool {

#ifndef CNINET_AGENT_METRICS

bool MetricsAvailable() { return false; }

absl::StatusOr<std::unique_ptr<MetricsServer>> StartMetricsServer(const std::string& address,
                                                                  const agent::Agent*) {
  return absl::UnimplementedError(StrCat("metrics on ", address,
                                         ": cninet-agent was built without prometheus-cpp ",
                                         "(apt-get install prometheus-cpp-dev, then rebuild)"));
}

#else

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric Value(MetricType type, double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  return m;
}

MetricFamily One(std::string name, std::string help, MetricType type, double v) {
  MetricFamily f = Family(std::move(name), std::move(help), type);
  f.metric.push_back(Value(type, v));
  return f;
}

// Agent::Metrics() as metric families (names: cninet_ prefix, _total counters, base units).
class AgentCollector : public prometheus::Collectable {
 public:
  explicit AgentCollector(const agent::Agent* agent) : agent_(agent) {}

  std::vector<MetricFamily> Collect() const override {
    const agent::AgentMetrics m = agent_->Metrics();
    const agent::api::AgentStatus& s = m.status;
    std::vector<MetricFamily> out;
    MetricFamily info = Family("cninet_agent_info", "The agent: node, version, store (always 1).",
                               MetricType::Gauge);
    info.metric.push_back(
        Value(MetricType::Gauge, 1,
              {{"node", s.node()}, {"version", s.version()}, {"store", s.store()}}));
    out.push_back(std::move(info));
    out.push_back(One("cninet_agent_ready", "1 once the first reconcile round succeeded.",
                      MetricType::Gauge, s.ready()));
    out.push_back(One("cninet_agent_healthy", "1 while the agent is healthy (watches, heartbeat).",
                      MetricType::Gauge, s.healthy()));
    out.push_back(One("cninet_agent_problems", "Problems the status report lists.",
                      MetricType::Gauge, s.problems_size()));
    out.push_back(One("cninet_reconcile_rounds_total", "Reconcile rounds run.", MetricType::Counter,
                      static_cast<double>(s.reconciles())));
    out.push_back(One("cninet_store_revision", "Store revision of the agent's cache.",
                      MetricType::Gauge, static_cast<double>(s.store_revision())));

    MetricFamily packets = Family("cninet_datapath_packets_total",
                                  "Packets the datapath counted, by reason (drop=\"true\" for "
                                  "drops).",
                                  MetricType::Counter);
    MetricFamily bytes = Family("cninet_datapath_bytes_total",
                                "Bytes the datapath counted, by reason.", MetricType::Counter);
    for (const auto& c : s.counters()) {
      std::vector<ClientMetric::Label> l = {{"reason", c.name()},
                                            {"drop", c.drop() ? "true" : "false"}};
      packets.metric.push_back(Value(MetricType::Counter, static_cast<double>(c.packets()), l));
      bytes.metric.push_back(Value(MetricType::Counter, static_cast<double>(c.bytes()), l));
    }
    out.push_back(std::move(packets));
    out.push_back(std::move(bytes));

    out.push_back(One("cninet_services_programmed", "Datapath services (service ports) programmed.",
                      MetricType::Gauge, s.services_total()));
    uint32_t programmed = 0;
    for (const auto& e : s.endpoints()) programmed += e.programmed() ? 1 : 0;
    out.push_back(One("cninet_endpoints_programmed",
                      "Local pod addresses in the datapath's endpoint table.", MetricType::Gauge,
                      programmed));
    out.push_back(One("cninet_endpoints_planned", "Local pod addresses the agent knows of.",
                      MetricType::Gauge, s.endpoints_size()));
    uint32_t alive = 0;
    for (const auto& n : s.nodes()) alive += n.alive() ? 1 : 0;
    out.push_back(One("cninet_nodes", "Nodes in the store.", MetricType::Gauge, s.nodes_size()));
    out.push_back(
        One("cninet_nodes_alive", "Nodes whose agent heartbeat exists.", MetricType::Gauge, alive));
    out.push_back(One("cninet_socket_lb_namespaces", "Network namespaces socket LB translates.",
                      MetricType::Gauge, s.socket_lb_netns()));

    const auto& p = s.policy();
    MetricFamily objects = Family("cninet_policy_objects",
                                  "Policy state applied on this node, by kind.", MetricType::Gauge);
    for (const auto& [kind, v] : std::vector<std::pair<std::string, uint32_t>>{
             {"namespaces", p.namespaces()},
             {"isolated_namespaces", p.isolated_namespaces()},
             {"policies", p.policies()},
             {"pods", p.pods()},
             {"identities", p.identities()},
             {"prefixes", p.prefixes()},
             {"endpoints", p.endpoints()},
             {"entries", p.entries()},
             {"hooks", p.hooks()}}) {
      objects.metric.push_back(Value(MetricType::Gauge, v, {{"kind", kind}}));
    }
    out.push_back(std::move(objects));
    MetricFamily verdicts =
        Family("cninet_policy_packets_total",
               "Packets to local pods by the policy rule that decided them.", MetricType::Counter);
    MetricFamily vbytes =
        Family("cninet_policy_bytes_total",
               "Bytes to local pods by the policy rule that decided them.", MetricType::Counter);
    for (const auto& c : p.counters()) {
      std::vector<ClientMetric::Label> l = {
          {"pod", c.pod()}, {"address", c.address()}, {"rule", c.rule()}};
      verdicts.metric.push_back(Value(MetricType::Counter, static_cast<double>(c.packets()), l));
      vbytes.metric.push_back(Value(MetricType::Counter, static_cast<double>(c.bytes()), l));
    }
    out.push_back(std::move(verdicts));
    out.push_back(std::move(vbytes));

    MetricFamily latency = Family("cninet_reconcile_duration_seconds",
                                  "Duration of reconcile passes (pass=\"round\": whole rounds).",
                                  MetricType::Histogram);
    for (const agent::LatencyHistogram& h : m.reconcile_latency) {
      ClientMetric cm;
      cm.label = {{"pass", h.name}};
      cm.histogram.sample_count = h.count;
      cm.histogram.sample_sum = h.sum;
      for (size_t i = 0; i < h.upper_bounds.size(); ++i) {
        cm.histogram.bucket.push_back({h.bucket_counts[i], h.upper_bounds[i]});
      }
      cm.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
      latency.metric.push_back(std::move(cm));
    }
    out.push_back(std::move(latency));
    return out;
  }

 private:
  const agent::Agent* agent_;
};

class PrometheusServer : public MetricsServer {
 public:
  PrometheusServer(std::unique_ptr<prometheus::Exposer> exposer,
                   std::shared_ptr<AgentCollector> collector)
      : exposer_(std::move(exposer)), collector_(std::move(collector)) {}
  ~PrometheusServer() override { exposer_.reset(); }  // stops serving before the collector goes
  int port() const override {
    std::vector<int> ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports[0];
  }

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<AgentCollector> collector_;
};

}  // namespace

bool MetricsAvailable() { return true; }

absl::StatusOr<std::unique_ptr<MetricsServer>> StartMetricsServer(const std::string& address,
                                                                  const agent::Agent* agent) {
  if (address.empty() || address.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("metrics address \"", address, "\": want HOST:PORT, e.g. 127.0.0.1:9464"));
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        StrCat("metrics on ", address, ": cannot listen (", e.what(), ")"));
  }
  auto collector = std::make_shared<AgentCollector>(agent);
  exposer->RegisterCollectable(collector);
  return std::unique_ptr<MetricsServer>(new PrometheusServer(std::move(exposer), collector));
}

#endif  // CNINET_AGENT_METRICS

}  // namespace cninet::agent_tool
