// One reconcile pass per concern (overlay, services, endpoints, policy), each wrapping a
// Plan/Apply pair: it plans from an immutable snapshot and applies through its reconciler. The
// agent's loop runs the passes whose topics changed, in order, and knows nothing else of them.
#ifndef CNINET_SRC_AGENT_RECONCILE_PASS_H_
#define CNINET_SRC_AGENT_RECONCILE_PASS_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "cninet/agent/health_check.h"
#include "cninet/agent/overlay.h"
#include "cninet/agent/pods.h"
#include "cninet/agent/policy.h"
#include "cninet/agent/services.h"
#include "store_cache.h"

namespace cninet::agent {

// What a pass gets besides the snapshot.
struct PassInput {
  const Snapshot& snapshot;
  // A periodic resync (not the first round): passes verify what they would otherwise trust.
  bool full_check = false;
};

// One level-triggered reconcile pass.
class ReconcilePass {
 public:
  virtual ~ReconcilePass() = default;
  // Its name, prefixing its errors ("services: ...").
  virtual std::string_view name() const = 0;
  // The topics that make it run.
  virtual Topics topics() const = 0;
  // Plans from the snapshot and applies; problems it skipped go to `warnings`.
  virtual absl::Status Run(const PassInput& in, std::vector<PlanWarning>* warnings) = 0;
};

// Overlay: nodes -> routes, neighbours and FDB entries (PlanOverlay / OverlayReconciler).
class OverlayPass : public ReconcilePass {
 public:
  // `self` without direct_routing: that comes from this node's object in each snapshot.
  OverlayPass(OverlayReconciler* reconciler, OverlaySelf self)
      : reconciler_(reconciler), self_(std::move(self)) {}
  std::string_view name() const override { return "overlay"; }
  Topics topics() const override { return kTopicNodes; }
  absl::Status Run(const PassInput& in, std::vector<PlanWarning>* warnings) override;
  // The last plan (status reports).
  const OverlayPlan& plan() const { return plan_; }

 private:
  OverlayReconciler* reconciler_;
  OverlaySelf self_;
  OverlayPlan plan_;
};

// Services: Services + Endpoints -> ServiceTable (PlanServices / ServiceReconciler).
class ServicesPass : public ReconcilePass {
 public:
  // `health_checks` (may be null) serves the healthCheckNodePorts of the planned services.
  ServicesPass(ServiceReconciler* reconciler, ServicePlanOptions options,
               HealthCheckServer* health_checks = nullptr)
      : reconciler_(reconciler), options_(options), health_checks_(health_checks) {}
  std::string_view name() const override { return "services"; }
  Topics topics() const override { return kTopicServices; }
  absl::Status Run(const PassInput& in, std::vector<PlanWarning>* warnings) override;

 private:
  ServiceReconciler* reconciler_;
  ServicePlanOptions options_;
  HealthCheckServer* health_checks_;
};

// Endpoints: local pods -> endpoint table (PlanEndpoints / EndpointReconciler).
class EndpointsPass : public ReconcilePass {
 public:
  // `pod_cidrs`: the node's podCIDR of each family it serves.
  EndpointsPass(EndpointReconciler* reconciler, std::string node,
                std::vector<cni::IPPrefix> pod_cidrs, LinkIndexFn link_index)
      : reconciler_(reconciler),
        node_(std::move(node)),
        pod_cidrs_(std::move(pod_cidrs)),
        link_index_(std::move(link_index)) {}
  std::string_view name() const override { return "endpoints"; }
  Topics topics() const override { return kTopicPods; }
  absl::Status Run(const PassInput& in, std::vector<PlanWarning>* warnings) override;
  // The endpoints of the last plan (status reports).
  const std::vector<PlannedEndpoint>& planned() const { return planned_; }

 private:
  EndpointReconciler* reconciler_;
  std::string node_;
  std::vector<cni::IPPrefix> pod_cidrs_;
  LinkIndexFn link_index_;
  std::vector<PlannedEndpoint> planned_;
};

// Policy: namespaces, pods, NetworkPolicies -> policy maps and to-pod hooks (PolicyReconciler).
// Runs after the endpoints pass: the pods' interfaces are known then.
class PolicyPass : public ReconcilePass {
 public:
  explicit PolicyPass(PolicyReconciler* reconciler) : reconciler_(reconciler) {}
  std::string_view name() const override { return "policy"; }
  Topics topics() const override { return kTopicPolicy; }
  absl::Status Run(const PassInput& in, std::vector<PlanWarning>* warnings) override;

 private:
  PolicyReconciler* reconciler_;
};

}  // namespace cninet::agent

#endif  // CNINET_SRC_AGENT_RECONCILE_PASS_H_
