// The local API's status report, built section by section from plain data: what the agent's
// lock-holding caller read from the cache, the passes and the datapath. No kernel, no locks.
#ifndef CNINET_SRC_AGENT_STATUS_BUILDER_H_
#define CNINET_SRC_AGENT_STATUS_BUILDER_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "cninet/agent/api.pb.h"
#include "cninet/agent/overlay.h"
#include "cninet/agent/pods.h"
#include "cninet/agent/policy.h"
#include "cninet/agent/services.h"
#include "cninet/datapath/counters.h"
#include "cninet/datapath/endpoints.h"
#include "cninet/datapath/policy_table.h"
#include "store_cache.h"

namespace cninet::agent {

// At most this many problems are listed.
inline constexpr size_t kMaxStatusProblems = 100;
// At most this many policy counters are listed.
inline constexpr size_t kMaxPolicyCounters = 200;

// What readiness and health are computed from.
struct HealthInputs {
  bool ready = false;                 // first reconcile round succeeded
  bool synced = false;                // the store cache has the complete state
  std::string last_error;             // of the last round ("" = none)
  bool heartbeat_lost = false;        // the heartbeat lease expired
  bool self_removed = false;          // this node's object was deleted
  std::vector<absl::Status> watches;  // health of each store watch
};

// "10.96.0.1:80/TCP", "nodePort:30080/TCP", "external:1.2.3.4:80/TCP".
std::string FrontendString(const datapath::Frontend& f);

// ready, healthy and message (the reasons it is not healthy, joined).
void FillHealth(const HealthInputs& in, api::AgentStatus* s);
// One entry per node of the snapshot: alive, and its route ("self", the plan's, or why skipped).
void AddNodes(const Snapshot& snapshot, const OverlayPlan& plan, std::string_view self,
              api::AgentStatus* s);
// services_total and up to `max_services` programmed services.
void AddServices(const std::map<uint32_t, ProgrammedService>& programmed, uint32_t max_services,
                 api::AgentStatus* s);
// The planned endpoints, each with its pod's interface and whether `table` holds it.
void AddEndpoints(std::span<const PlannedEndpoint> planned,
                  std::span<const datapath::Endpoint> table, const Snapshot& snapshot,
                  api::AgentStatus* s);
// The datapath counters that counted something.
void AddCounters(std::span<const datapath::CounterValue> counters, api::AgentStatus* s);
// `problems`, up to kMaxStatusProblems in all.
void AddProblems(std::span<const std::string> problems, api::AgentStatus* s);
// The policy section: the reconciler's status and the non-zero per-rule counters.
void FillPolicyStatus(const PolicyReconcilerStatus& st,
                      std::span<const datapath::PolicyCounter> counters, api::PolicyStatus* ps);

}  // namespace cninet::agent

#endif  // CNINET_SRC_AGENT_STATUS_BUILDER_H_
