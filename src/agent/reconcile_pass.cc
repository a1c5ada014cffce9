#include "reconcile_pass.h"

#include <chrono>
#include <span>

#include "cninet/base/log.h"
#include "cninet/base/strings.h"

namespace cninet::agent {
namespace {

using Clock = std::chrono::steady_clock;

int64_t Ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

absl::Status OverlayPass::Run(const PassInput& in, std::vector<PlanWarning>* /*warnings*/) {
  OverlaySelf self = self_;
  std::vector<v1::Node> copies;  // a handful of small objects
  for (const auto& n : in.snapshot.Get<v1::Node>()) {
    copies.push_back(*n);
    if (n->name() == self.name) self.direct_routing = n->direct_routing();
  }
  plan_ = PlanOverlay(self, copies);
  return reconciler_->Apply(plan_).status();
}

absl::Status ServicesPass::Run(const PassInput& in, std::vector<PlanWarning>* warnings) {
  auto t0 = Clock::now();
  std::vector<const v1::Service*> svcs = in.snapshot.Pointers<v1::Service>();
  std::vector<const v1::Endpoints*> eps = in.snapshot.Pointers<v1::Endpoints>();
  std::vector<PlannedService> planned =
      PlanServices(std::span<const v1::Service* const>(svcs),
                   std::span<const v1::Endpoints* const>(eps), options_, warnings);
  auto t1 = Clock::now();
  absl::StatusOr<ServiceChanges> ch = reconciler_->Apply(std::move(planned));
  auto t2 = Clock::now();
  if (!ch.ok()) return ch.status();
  if (health_checks_ != nullptr) {
    absl::Status hc = health_checks_->Update(
        PlanHealthChecks(std::span<const v1::Service* const>(svcs),
                         std::span<const v1::Endpoints* const>(eps), options_.node_name));
    if (!hc.ok()) warnings->push_back({"healthCheckNodePort", std::string(hc.message())});
  }
  if (ch->upserted + ch->deleted > 0 || ch->failed > 0) {
    CNINET_LOG(kInfo, "services: ", ch->upserted, " programmed, ", ch->deleted, " removed, ",
               ch->unchanged, " unchanged, ", ch->failed, " refused, ", ch->conntrack_flushed,
               " UDP conntrack entries of gone backends flushed (plan ", Ms(t1 - t0), " ms, apply ",
               Ms(t2 - t1), " ms, store revision ", in.snapshot.revision, ")");
  }
  return absl::OkStatus();
}

absl::Status EndpointsPass::Run(const PassInput& in, std::vector<PlanWarning>* warnings) {
  std::vector<const v1::Pod*> pods = in.snapshot.Pointers<v1::Pod>();
  planned_ = PlanEndpoints(std::span<const v1::Pod* const>(pods), node_,
                           std::span<const cni::IPPrefix>(pod_cidrs_), link_index_, warnings);
  return reconciler_->Apply(planned_, in.snapshot.forgotten).status();
}

absl::Status PolicyPass::Run(const PassInput& in, std::vector<PlanWarning>* warnings) {
  std::vector<const v1::Pod*> pods = in.snapshot.Pointers<v1::Pod>();
  std::vector<const v1::Namespace*> nss = in.snapshot.Pointers<v1::Namespace>();
  std::vector<const v1::NetworkPolicy*> nps = in.snapshot.Pointers<v1::NetworkPolicy>();
  absl::StatusOr<PolicyPassResult> ch = reconciler_->Apply(
      std::span<const v1::Namespace* const>(nss), std::span<const v1::Pod* const>(pods),
      std::span<const v1::NetworkPolicy* const>(nps), in.full_check, warnings);
  if (!ch.ok()) return ch.status();
  if (ch->apply.total() > 0 || ch->hooks_attached > 0) {
    CNINET_LOG(kInfo, "policy: ", ch->apply.total(), " map writes, ", ch->hooks_attached,
               " to-pod programs attached (", ch->hooks_present,
               " local pods enforced; store revision ", in.snapshot.revision, ")");
  }
  return absl::OkStatus();
}

}  // namespace cninet::agent
