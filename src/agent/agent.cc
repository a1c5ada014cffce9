#include "cninet/agent/agent.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "cninet/agent/health_check.h"
#include "cninet/agent/local_api.h"
#include "cninet/agent/overlay.h"
#include "cninet/agent/pods.h"
#include "cninet/agent/policy.h"
#include "cninet/agent/services.h"
#include "cninet/agent/state.h"
#include "cninet/base/log.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/base/version_info.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/maglev.h"
#include "cninet/netlink/netlink.h"
#include "node_setup.h"
#include "pass_scheduler.h"
#include "reconcile_pass.h"
#include "status_builder.h"
#include "store_cache.h"

namespace cninet::agent {
namespace {

namespace dp = ::cninet::datapath;
namespace nl = ::cninet::netlink;
using cni::IPAddress;
using cni::IPPrefix;
using Clock = std::chrono::steady_clock;

}  // namespace

absl::Status AgentOptions::Validate() const {
  auto bad = [](std::string_view field, const std::string& why) {
    return absl::InvalidArgumentError(StrCat("agent option ", field, ": ", why));
  };
  if (absl::Status s = ValidateName(node_name); !s.ok()) {
    return bad("node name", std::string(s.message()));
  }
  if (!store_instance) {
    if (store == StoreKind::kEtcd && etcd_endpoints.empty()) return bad("etcd", "no endpoints");
  }
  if (!uplink.empty()) {
    if (absl::Status s = nl::ValidateLinkName(uplink); !s.ok()) {
      return bad("uplink", std::string(s.message()));
    }
  }
  for (const std::string* n : {&bridge, &vxlan_device}) {
    if (absl::Status s = nl::ValidateLinkName(*n); !s.ok()) {
      return bad("interface", std::string(s.message()));
    }
  }
  if (public_ip && !public_ip->empty() && !IPAddress::Parse(*public_ip).ok()) {
    return bad("publicIP", StrCat("\"", *public_ip, "\" is not an address"));
  }
  if (state_dir.empty() || state_dir[0] != '/') return bad("state dir", "must be absolute");
  if (socket_path.empty()) return bad("socket", "is required");
  if (bpffs_root.empty() || bpffs_root[0] != '/') return bad("bpffs root", "must be absolute");
  if (socket_lb_pods && socket_lb_cgroup.empty()) {
    return bad("socket LB for pods", "needs the socket LB cgroup");
  }
  if (!socket_lb_cgroup.empty() && socket_lb_cgroup[0] != '/') {
    return bad("socket LB cgroup", "must be absolute");
  }
  std::string inst = Instance();
  for (char c : inst) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
      return bad("instance", StrCat("\"", inst, "\" may only contain [A-Za-z0-9_-]"));
    }
  }
  if (host_port_ids >= map_sizes.service_slots - 1) {
    return bad("hostPortIds", "must leave service ids for the agent");
  }
  if (maglev_size != 0 && (maglev_size < dp::kMaglevMinSize || maglev_size > dp::kMaglevMaxSize ||
                           !dp::IsPrime(maglev_size))) {
    return bad("maglev size", StrCat(maglev_size, " is not a prime in [", dp::kMaglevMinSize, ", ",
                                     dp::kMaglevMaxSize, "]"));
  }
  if (heartbeat_ttl < std::chrono::seconds(2)) return bad("heartbeat TTL", "at least 2 s");
  if (resync_interval < std::chrono::seconds(1)) return bad("resync interval", "at least 1 s");
  if (!bootstrap_cluster.cluster_cidr().empty()) {
    if (absl::Status s = agent::Validate(bootstrap_cluster); !s.ok()) {
      return bad("cluster config", std::string(s.message()));
    }
  }
  return absl::OkStatus();
}

std::string AgentVersion() { return StrCat("cninet-agent/", Version()); }

std::string AgentOptions::Instance() const {
  if (!instance.empty()) return instance;
  std::string s = node_name;
  std::replace(s.begin(), s.end(), '.', '-');
  return s;
}

// ---------------------------------------------------------------------------------------------

// The datapath serves both families: LoadDatapath passes the node's IPv4 and IPv6 addresses and
// both cluster CIDRs, endpoints of both families are registered, and IPv6 services are planned
// and programmed (NodePorts on the node's IPv6 addresses).
constexpr bool kDatapathServesIPv6 = true;

// The running agent: node setup's results, the reconcilers and their passes, the store cache
// fed by the watch, the scheduler, and the loop running passes over snapshots.
struct Agent::Impl : public LocalApiHandler {
  AgentOptions opt;
  NodeSetup node;
  std::unique_ptr<ServiceReconciler> services;
  std::unique_ptr<EndpointReconciler> endpoints;
  std::unique_ptr<PolicyReconciler> policy;
  std::unique_ptr<HealthCheckServer> health_checks;    // healthCheckNodePorts
  std::vector<std::unique_ptr<ReconcilePass>> passes;  // in the order they run
  OverlayPass* overlay_pass = nullptr;                 // (in passes) for status
  EndpointsPass* endpoints_pass = nullptr;             // (in passes) for status
  std::unique_ptr<LeaseKeeper> heartbeat;
  std::unique_ptr<LocalApiServer> api;
  std::vector<std::unique_ptr<WatchHandle>> watches;
  std::thread loop;

  // The cache, the schedule and the loop's published results (mu).
  mutable std::mutex mu;
  std::condition_variable cv;
  StoreCache cache{""};
  std::optional<PassScheduler> scheduler;
  bool stopping = false;
  bool heartbeat_lost = false;
  bool ready = false;
  uint64_t reconciles = 0;
  int64_t reconciled_revision = 0;  // store revision of the last round without errors
  std::string last_error;
  std::map<std::string, std::vector<std::string>> warnings;  // by pass, of its last run
  std::map<std::string, LatencyHistogram> latency;           // by pass, and "round"

  // Held by the loop during a round; Status() reads the reconcilers and passes under it.
  mutable std::mutex reconcile_mu;

  ~Impl() override { Shutdown(); }

  absl::Status Init();
  absl::Status StartHeartbeat();
  void CreatePasses();
  absl::Status StartWatches();
  void OnUpdate(const WatchUpdate& update);
  void Loop();
  std::optional<Round> NextRound(bool* renew);
  void RenewHeartbeat();
  Topics RunPasses(const Round& round, const Snapshot& snapshot, std::vector<std::string>* errors);
  void CollectExpiredFlows();
  // Records one run of `what` (a pass's name or "round") in its latency histogram.
  void ObserveLatency(std::string_view what, Clock::duration took);
  void Publish(const Round& round, int64_t revision, Topics failed,
               const std::vector<std::string>& errors);
  void Shutdown();
  HealthInputs HealthLocked() const;  // (mu held)

  // LocalApiHandler
  api::AgentStatus Status(const api::StatusRequest& request) override;
  api::HealthReply Health() override;
  absl::Status ReportPod(const v1::Pod& pod) override;
  absl::Status ForgetPod(const api::ForgetPodRequest& request) override;
  absl::Status GcPods(const api::GcPodsRequest& request) override;
  absl::Status DeleteLocalPod(const std::string& key, const std::string& container_id);
  std::vector<std::pair<std::string, std::string>> LocalPods() const;  // key, container ID
};

absl::Status Agent::Impl::Init() {
  cache = StoreCache(opt.node_name);
  scheduler.emplace(opt.resync_interval, Clock::now());
  CNINET_RETURN_IF_ERROR(PrepareNode(opt, &node));
  CNINET_RETURN_IF_ERROR(StartHeartbeat());
  CNINET_RETURN_IF_ERROR(LoadDatapath(opt, &node));
  CNINET_RETURN_IF_ERROR(SetUpSocketLb(opt, &node));
  uint32_t id_limit = opt.map_sizes.service_slots - opt.host_port_ids;
  CNINET_ASSIGN_OR_RETURN(services,
                          ServiceReconciler::Create(&node.datapath->services(), id_limit));
  CreatePasses();
  CNINET_RETURN_IF_ERROR(WriteConflist(opt, node));
  CNINET_RETURN_IF_ERROR(StartWatches());
  loop = std::thread([this] { Loop(); });
  CNINET_ASSIGN_OR_RETURN(api, LocalApiServer::Start(opt.socket_path, this));
  return absl::OkStatus();
}

absl::Status Agent::Impl::StartHeartbeat() {
  heartbeat.reset();
  CNINET_ASSIGN_OR_RETURN(
      heartbeat, LeaseKeeper::Start(*node.store, opt.heartbeat_ttl, [this](const absl::Status& st) {
        CNINET_LOG(kWarning, "heartbeat lease lost: ", st.message());
        std::lock_guard<std::mutex> l(mu);
        heartbeat_lost = true;
        cv.notify_all();
      }));
  v1::NodeHeartbeat hb;
  hb.set_node(opt.node_name);
  hb.set_agent_version(AgentVersion());
  hb.mutable_started()->set_seconds(time(nullptr));
  return PutObject(*node.store, hb, heartbeat->id()).status();
}

// The passes in their order: overlay, services, endpoints, then policy (it needs the pods'
// interfaces; its maps go before its hooks).
void Agent::Impl::CreatePasses() {
  dp::Datapath& d = *node.datapath;
  NodeNamespace& ns = *node.node;
  auto link_index = [&ns](std::string_view ifname) { return ns.LinkIndex(ifname); };
  // The node's podCIDR per family: endpoints of both families (dual-stack).
  std::vector<IPPrefix> pod_cidrs = {node.pod_cidr};
  if (node.pod_cidr_v6) pod_cidrs.push_back(*node.pod_cidr_v6);
  endpoints = std::make_unique<EndpointReconciler>(&d.endpoints(), pod_cidrs, [&ns](int ifindex) {
    return ns.handle().GetLinkByIndex(ifindex).ok();
  });
  // Ingress policy: the maps through PolicyTable, and the to-pod program on each local pod's
  // host-side veth (cninet-ebpf attaches from-pod at ADD; the agent adds the policy hook).
  auto attach_to_pod = [&d, &ns](std::string_view ifname) {
    return ns.Run([&]() -> absl::Status {
      absl::StatusOr<dp::TcAttachment> a = d.Attach(dp::Hook::kToPod, ifname);
      if (!a.ok()) return a.status();
      a->Release();  // Stays with the veth across agent restarts (replaced on re-attach).
      return absl::OkStatus();
    });
  };
  policy =
      std::make_unique<PolicyReconciler>(&d.policy(), opt.node_name, attach_to_pod, link_index);
  OverlaySelf self;
  self.name = opt.node_name;
  self.underlay = node.uplink.addresses[0];
  self.pod_cidr = node.pod_cidr;
  if (node.pod_cidr_v6) self.pod_cidr_v6 = *node.pod_cidr_v6;
  if (!node.uplink.addresses_v6.empty()) self.underlay_v6 = node.uplink.addresses_v6[0];
  ServicePlanOptions po;
  po.ipv6 = kDatapathServesIPv6;
  po.node_name = opt.node_name;
  po.maglev_size = opt.maglev_size;
  po.node_port_min = node.cluster.node_port_range().min();
  po.node_port_max = node.cluster.node_port_range().max();
  auto overlay = std::make_unique<OverlayPass>(node.overlay.get(), self);
  auto eps = std::make_unique<EndpointsPass>(endpoints.get(), opt.node_name, pod_cidrs, link_index);
  overlay_pass = overlay.get();
  endpoints_pass = eps.get();
  passes.push_back(std::move(overlay));
  // The ports belong in the node's namespace (the agent itself may run outside it).
  health_checks = std::make_unique<HealthCheckServer>(
      [&ns](const std::function<absl::Status()>& fn) { return ns.Run(fn); });
  passes.push_back(std::make_unique<ServicesPass>(services.get(), po, health_checks.get()));
  passes.push_back(std::move(eps));
  passes.push_back(std::make_unique<PolicyPass>(policy.get()));
}

// One watch over every cninet key: the kinds the agent follows come in one ordered stream, so a
// Service and the Endpoints written in the same transaction are applied together, and every
// round sees one store revision across kinds.
absl::Status Agent::Impl::StartWatches() {
  absl::StatusOr<std::unique_ptr<WatchHandle>> w =
      node.store->Watch(kKeyRoot, 0, [this](const WatchUpdate& u) { OnUpdate(u); });
  if (!w.ok()) return w.status();
  watches.push_back(*std::move(w));
  return absl::OkStatus();
}

void Agent::Impl::OnUpdate(const WatchUpdate& update) {
  std::lock_guard<std::mutex> l(mu);
  scheduler->MarkDirty(cache.Apply(update));
  cv.notify_all();
}

// The main loop: wait for work, take a snapshot, run the due passes, publish the outcome.
void Agent::Impl::Loop() {
  bool renew = false;
  while (std::optional<Round> round = NextRound(&renew)) {
    if (renew) RenewHeartbeat();
    if (round->topics == 0) {
      if (renew) std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    std::shared_ptr<const Snapshot> snapshot;
    {
      std::lock_guard<std::mutex> l(mu);
      snapshot = cache.Take(round->topics);
    }
    std::vector<std::string> errors;
    const auto round_start = Clock::now();
    Topics failed = RunPasses(*round, *snapshot, &errors);
    if (round->resync) CollectExpiredFlows();
    ObserveLatency("round", Clock::now() - round_start);
    Publish(*round, snapshot->revision, failed, errors);
    std::this_thread::sleep_for(errors.empty() ? opt.min_reconcile_interval
                                               : std::chrono::milliseconds(1000));
  }
}

// Waits for a change, a lost heartbeat or the periodic resync; nullopt when stopping.
std::optional<Round> Agent::Impl::NextRound(bool* renew) {
  std::unique_lock<std::mutex> l(mu);
  cv.wait_until(l, scheduler->next_resync(), [&] {
    return stopping || heartbeat_lost || (cache.synced() && scheduler->HasWork());
  });
  if (stopping) return std::nullopt;
  *renew = heartbeat_lost;
  return scheduler->Next(Clock::now(), cache.synced());
}

void Agent::Impl::RenewHeartbeat() {
  absl::Status st = StartHeartbeat();
  std::lock_guard<std::mutex> l(mu);
  if (st.ok()) {
    heartbeat_lost = false;
    CNINET_LOG(kInfo, "heartbeat renewed");
  } else {
    last_error = StrCat("heartbeat: ", st.message());
  }
}

// Runs the passes following the round's topics; returns the topics of those that failed.
Topics Agent::Impl::RunPasses(const Round& round, const Snapshot& snapshot,
                              std::vector<std::string>* errors) {
  std::lock_guard<std::mutex> rl(reconcile_mu);
  Topics failed = 0;
  PassInput in{.snapshot = snapshot, .full_check = round.resync && !round.first};
  for (const auto& pass : passes) {
    if ((pass->topics() & round.topics) == 0) continue;
    std::vector<PlanWarning> warns;
    const auto start = Clock::now();
    absl::Status st = pass->Run(in, &warns);
    ObserveLatency(pass->name(), Clock::now() - start);
    if (!st.ok()) {
      errors->push_back(StrCat(pass->name(), ": ", st.message()));
      failed |= pass->topics();
    }
    std::vector<std::string> lines;
    for (const PlanWarning& w : warns) lines.push_back(StrCat(w.object, ": ", w.message));
    std::lock_guard<std::mutex> l(mu);
    warnings[std::string(pass->name())] = std::move(lines);
  }
  return failed;
}

// Deletes the expired conntrack and NAT entries (every resync). Nothing else does: the
// conntrack map is an LRU that only evicts under pressure, the NAT map a plain hash that would
// fill up, and a pod's DEL flushes its flows only on its own node, so without this the other
// nodes kept the entries of every deleted pod's closed connections forever (found by the soak).
void Agent::Impl::CollectExpiredFlows() {
  std::lock_guard<std::mutex> rl(reconcile_mu);
  dp::Datapath& d = *node.datapath;
  absl::StatusOr<dp::GcResult> ct = d.conntrack().Gc();
  absl::StatusOr<dp::GcResult> nat = d.nat().Gc();
  if (!ct.ok() || !nat.ok()) {
    CNINET_LOG(kWarning, "flow GC: conntrack ", ct.status().ToString(), ", NAT ",
               nat.status().ToString());
    return;
  }
  if (ct->deleted + nat->deleted > 0) {
    CNINET_LOG(kDebug, "flow GC: ", ct->deleted, " of ", ct->scanned, " conntrack and ",
               nat->deleted, " of ", nat->scanned, " NAT entries expired");
  }
}

void Agent::Impl::Publish(const Round& round, int64_t revision, Topics failed,
                          const std::vector<std::string>& errors) {
  std::lock_guard<std::mutex> l(mu);
  // Level-triggered: a failed topic is planned again from scratch on the next round.
  scheduler->Done(round, failed);
  ++reconciles;
  if (errors.empty()) {
    last_error.clear();
    ready = true;
    reconciled_revision = std::max(reconciled_revision, revision);
  } else {
    last_error = StrJoin(errors, "; ");
    CNINET_LOG(kError, "reconcile: ", last_error);
  }
  cv.notify_all();
}

void Agent::Impl::Shutdown() {
  api.reset();
  watches.clear();  // No watch callback runs after this.
  {
    std::lock_guard<std::mutex> l(mu);
    stopping = true;
    cv.notify_all();
  }
  if (loop.joinable()) loop.join();
  heartbeat.reset();  // Revokes the lease: the heartbeat key goes.
}

HealthInputs Agent::Impl::HealthLocked() const {
  HealthInputs h;
  h.ready = ready;
  h.synced = cache.synced();
  h.last_error = last_error;
  h.heartbeat_lost = heartbeat_lost;
  h.self_removed = cache.self_removed();
  for (const auto& w : watches) h.watches.push_back(w->health());
  return h;
}

api::AgentStatus Agent::Impl::Status(const api::StatusRequest& request) {
  api::AgentStatus s;
  uint32_t max_services = request.max_services() == 0 ? 50 : request.max_services();
  std::lock_guard<std::mutex> rl(reconcile_mu);
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<std::string> problems;
  {
    std::lock_guard<std::mutex> l(mu);
    FillHealth(HealthLocked(), &s);
    snapshot = cache.Peek(kTopicNodes | kTopicPods);
    for (const auto& [key, why] : cache.problems()) problems.push_back(why);
    for (const auto& [pass, lines] : warnings)
      problems.insert(problems.end(), lines.begin(), lines.end());
    s.set_reconciles(reconciles);
  }
  dp::Datapath& d = *node.datapath;
  s.set_node(opt.node_name);
  s.set_version(AgentVersion());
  s.set_pod_cidr(node.pod_cidr.ToString());
  if (node.pod_cidr_v6) s.set_pod_cidr_ipv6(node.pod_cidr_v6->ToString());
  s.set_store(std::string(node.store->kind()));
  s.set_store_revision(snapshot->revision);
  s.set_uplink(node.uplink.name);
  for (const IPPrefix& a : node.uplink.addresses) s.add_node_addresses(a.ToString());
  for (const IPPrefix& a : node.uplink.addresses_v6) s.add_node_addresses(a.ToString());
  s.set_vxlan_device(opt.vxlan_device);
  s.set_pin_dir(d.pin_dir());
  if (!node.socket_lb_cgroup.empty()) {
    s.set_socket_lb_cgroup(node.socket_lb_cgroup);
    if (auto served = d.SocketLbNetns(); served.ok()) s.set_socket_lb_netns(served->size());
  }
  AddNodes(*snapshot, overlay_pass->plan(), opt.node_name, &s);
  AddServices(services->programmed(), max_services, &s);
  absl::StatusOr<std::vector<dp::Endpoint>> table = d.endpoints().List();
  AddEndpoints(endpoints_pass->planned(), table.ok() ? *table : std::vector<dp::Endpoint>{},
               *snapshot, &s);
  if (auto counters = d.counters().Read(); counters.ok()) AddCounters(*counters, &s);
  AddProblems(problems, &s);
  std::vector<dp::PolicyCounter> policy_counters;
  if (policy->status().compiler.endpoints != 0) {
    policy_counters = d.policy().ReadCounters().value_or(std::vector<dp::PolicyCounter>{});
  }
  FillPolicyStatus(policy->status(), policy_counters, s.mutable_policy());
  return s;
}

api::HealthReply Agent::Impl::Health() {
  api::AgentStatus s;
  {
    std::lock_guard<std::mutex> l(mu);
    FillHealth(HealthLocked(), &s);
  }
  api::HealthReply h;
  h.set_ready(s.ready());
  h.set_healthy(s.healthy());
  h.set_message(s.message());
  return h;
}

// This node's pods in the cache that carry a container ID.
std::vector<std::pair<std::string, std::string>> Agent::Impl::LocalPods() const {
  std::vector<std::pair<std::string, std::string>> out;
  std::shared_ptr<const Snapshot> snapshot;
  {
    std::lock_guard<std::mutex> l(mu);
    snapshot = cache.Peek(kTopicPods);
  }
  for (const auto& p : snapshot->Get<v1::Pod>()) {
    if (p->node() == opt.node_name && !p->container_id().empty()) {
      out.push_back({keys::Pod(p->namespace_(), p->name()), p->container_id()});
    }
  }
  return out;
}

absl::Status Agent::Impl::ReportPod(const v1::Pod& in) {
  v1::Pod pod = in;
  if (!pod.node().empty() && pod.node() != opt.node_name) {
    return absl::InvalidArgumentError(StrCat("pod ", pod.namespace_(), "/", pod.name(),
                                             " reported for node ", pod.node(), " to the agent of ",
                                             opt.node_name));
  }
  pod.set_node(opt.node_name);
  for (const std::string& ip : pod.ips()) {
    auto a = IPAddress::Parse(ip);
    if (a.ok() && a->is_v4() && !node.pod_cidr.Contains(*a)) {
      return absl::InvalidArgumentError(
          StrCat("pod address ", ip, " is outside this node's podCIDR ", node.pod_cidr.ToString()));
    }
    if (a.ok() && a->is_v6() && node.pod_cidr_v6 && !node.pod_cidr_v6->Contains(*a)) {
      return absl::InvalidArgumentError(StrCat("pod address ", ip,
                                               " is outside this node's IPv6 podCIDR ",
                                               node.pod_cidr_v6->ToString()));
    }
  }
  absl::StatusOr<int64_t> rev = PutObject(*node.store, pod);
  if (!rev.ok()) return Annotate(rev.status(), "store the pod");
  CNINET_LOG(kInfo, "pod ", pod.namespace_(), "/", pod.name(), " reported (",
             StrJoin(pod.ips(), ","), " on ", pod.interface(), ")");
  return absl::OkStatus();
}

absl::Status Agent::Impl::ForgetPod(const api::ForgetPodRequest& req) {
  std::vector<std::string> doomed;
  if (!req.namespace_().empty() && !req.name().empty()) {
    CNINET_RETURN_IF_ERROR(ValidateName(req.namespace_()));
    CNINET_RETURN_IF_ERROR(ValidateName(req.name()));
    doomed.push_back(keys::Pod(req.namespace_(), req.name()));
  } else if (!req.container_id().empty()) {
    for (const auto& [key, id] : LocalPods()) {
      if (id == req.container_id()) doomed.push_back(key);
    }
  } else {
    return absl::InvalidArgumentError("forget a pod by container ID or by namespace and name");
  }
  for (const std::string& key : doomed) {
    CNINET_RETURN_IF_ERROR(DeleteLocalPod(key, req.container_id()));
  }
  return absl::OkStatus();
}

// Deletes a pod object if it (still) belongs to this node and, when given, to `container_id`.
absl::Status Agent::Impl::DeleteLocalPod(const std::string& key, const std::string& container_id) {
  // Only this node's pods: a pod of the same name may since run elsewhere.
  absl::StatusOr<Object<v1::Pod>> cur = GetObject<v1::Pod>(*node.store, key);
  if (absl::IsNotFound(cur.status())) return absl::OkStatus();
  if (cur.ok() && cur->value.node() != opt.node_name) return absl::OkStatus();
  if (cur.ok() && !container_id.empty() && cur->value.container_id() != container_id) {
    return absl::OkStatus();
  }
  int64_t mod = cur.ok() ? cur->mod_revision : 0;
  absl::Status st = mod != 0 ? node.store->DeleteIf(key, mod) : node.store->Delete(key).status();
  if (!st.ok() && !absl::IsAborted(st)) return Annotate(st, StrCat("delete ", key));
  CNINET_LOG(kInfo, "pod ", key, " forgotten");
  return absl::OkStatus();
}

absl::Status Agent::Impl::GcPods(const api::GcPodsRequest& req) {
  std::set<std::string> valid(req.valid_container_ids().begin(), req.valid_container_ids().end());
  for (const auto& [key, id] : LocalPods()) {
    if (valid.count(id)) continue;
    CNINET_LOG(kInfo, "GC: container ", id, " is gone");
    CNINET_RETURN_IF_ERROR(DeleteLocalPod(key, id));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() { Stop(); }

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  absl::Status st = impl->Init();
  if (!st.ok()) return Annotate(st, StrCat("agent of node ", impl->opt.node_name));
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

void Agent::Stop() {
  if (impl_) impl_->Shutdown();
}

absl::Status Agent::WaitReady(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(impl_->mu);
  if (impl_->cv.wait_for(l, timeout, [&] { return impl_->ready; })) return absl::OkStatus();
  std::string why = impl_->last_error.empty()
                        ? (impl_->cache.synced() ? "first reconcile pending" : "store not synced")
                        : impl_->last_error;
  return absl::DeadlineExceededError(StrCat("agent not ready: ", why));
}

absl::Status Agent::WaitReconciled(int64_t revision, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(impl_->mu);
  if (impl_->cv.wait_for(l, timeout, [&] { return impl_->reconciled_revision >= revision; })) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError(
      StrCat("store revision ", revision, " not reconciled (at ", impl_->reconciled_revision,
             impl_->last_error.empty() ? "" : "; ", impl_->last_error, ")"));
}

api::AgentStatus Agent::Status(uint32_t max_services) const {
  api::StatusRequest req;
  req.set_max_services(max_services);
  return impl_->Status(req);
}

api::HealthReply Agent::Health() const { return impl_->Health(); }

void LatencyHistogram::Observe(double seconds) {
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (seconds <= upper_bounds[i]) ++bucket_counts[i];
  }
  ++count;
  sum += seconds;
}

void Agent::Impl::ObserveLatency(std::string_view what, Clock::duration took) {
  // 100 us .. 10 s: a pass over a few objects up to a full pass over 10k services.
  static const std::vector<double> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10};
  std::lock_guard<std::mutex> l(mu);
  auto [it, added] = latency.try_emplace(std::string(what));
  if (added) {
    it->second.name = std::string(what);
    it->second.upper_bounds = kBounds;
    it->second.bucket_counts.assign(kBounds.size(), 0);
  }
  it->second.Observe(std::chrono::duration<double>(took).count());
}

AgentMetrics Agent::Metrics() const {
  AgentMetrics m;
  api::StatusRequest req;
  req.set_max_services(std::numeric_limits<uint32_t>::max());
  m.status = impl_->Status(req);
  std::lock_guard<std::mutex> l(impl_->mu);
  for (const auto& [name, h] : impl_->latency) {
    if (name != "round") m.reconcile_latency.push_back(h);
  }
  if (auto it = impl_->latency.find("round"); it != impl_->latency.end())
    m.reconcile_latency.push_back(it->second);
  return m;
}

const IPPrefix& Agent::pod_cidr() const { return impl_->node.pod_cidr; }

size_t Agent::programmed_services() const {
  std::lock_guard<std::mutex> rl(impl_->reconcile_mu);
  return impl_->services->size();
}

}  // namespace cninet::agent
