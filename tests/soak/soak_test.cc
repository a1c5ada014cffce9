// The churn soak (issue 19, "Must show" 3): the agent e2e cluster (3 netns nodes, a real etcd over
// mutual TLS, real cninet-agent processes) under continuous churn for CNINET_SOAK_SECONDS:
//   - pods created and deleted through each node's conflist (cninet-cni -> cninet-agent-cni), each
//     new pod making a short connection to a server pod and to the ClusterIP (so conntrack and NAT
//     hold entries of it to be cleaned up);
//   - Service and Endpoints updates (backends drawn from the live pods, services deleted and
//     written again), NetworkPolicy puts and deletes;
//   - `kill -9` of a random agent at intervals (the datapath keeps running; a store change lands
//     while it is down), one `kill -9` + restart of etcd;
//   - long-lived TCP connections (pod -> ClusterIP, pod -> pod on another node) exchanging a line
//     every second throughout.
// After each disruption (a checkpoint) and at the end it waits for convergence and compares the
// desired state in the store with what every node programmed, then counts what must be zero:
// leaked host-local leases, stale datapath endpoints and store Pods, leftover host veths,
// conntrack/NAT entries of deleted pods, broken long-lived connections, desired/programmed
// differences. It prints a report (tests/soak/README.md explains it and how to run a long soak).
//
// Knobs (environment): CNINET_SOAK_SECONDS (churn time, default 60), CNINET_SOAK_SEED (random
// seed, printed; default from the clock), CNINET_SOAK_RATE (churn operations per second, default
// 4), CNINET_SOAK_KILL_SECONDS (interval between agent kills, default duration/4, at least 10).
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "cluster_testing.h"
#include "cninet/agent/local_api.h"
#include "cninet/agent/state.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/datapath.h"
#include "cninet/v1/network_policy.pb.h"
#include "dp_test_util.h"
#include "gtest/gtest.h"

namespace cninet::agent::testing {
namespace {

using ::cninet::testing::CommandResult;
using Clock = std::chrono::steady_clock;
namespace dp = ::cninet::datapath;

constexpr uint16_t kPodPort = 8080;
// The agents' --resync-interval (Cluster::AgentArgs): the unit of the convergence ratios.
constexpr double kResyncSeconds = 2.0;
// How long an expired flow entry may stay before it counts as leaked: the agents collect
// expired conntrack/NAT entries at each resync; the entries' clock has 1 s granularity.
constexpr int64_t kGcGraceSeconds = static_cast<int64_t>(kResyncSeconds) + 1;
// The long-lived service (backends: the server pods, never churned).
constexpr char kStableService[] = "soak-stable";
constexpr char kStableIp[] = "10.96.0.50";
// A server in the cluster's external namespace (pods reach it masqueraded: NAT entries).
constexpr char kExternalIp[] = "192.168.50.100";
// Churned services soak-churn-K at 10.96.1.(10+K).
constexpr int kChurnServices = 3;
constexpr int kChurnPolicies = 3;
// Churn pods live at most this many at a time.
constexpr int kMaxChurnPods = 8;
// How long a checkpoint waits for every node to converge.
constexpr auto kConvergeTimeout = std::chrono::seconds(60);

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

long EnvLong(const char* name, long fallback) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long n = strtol(v, &end, 10);
  return (end != nullptr && *end == '\0' && n > 0) ? n : fallback;
}

// A long-lived connection: opened once, a line exchanged every second by the keeper thread.
struct LongConn {
  std::string what;   // "pod-1c -> 10.96.0.50:80 (ClusterIP)"
  std::string netns;  // client namespace path
  std::string ip;     // destination
  uint16_t port = 0;
  Sock sock;
  std::string answer;  // the first reply (the backend serving it)
  int exchanges = 0;
  int breaks = 0;          // failed exchanges (the connection is opened again afterwards)
  int breaks_in_kill = 0;  // of which while an agent was down or converging after a kill
  int breaks_in_etcd = 0;  // of which during the etcd restart window
  int moved = 0;           // replies from another backend than the first on the same socket
};

// One disruption and how long the cluster took to converge after it.
struct Disruption {
  std::string what;  // "kill -9 agent node-2", "etcd kill -9 + restart"
  double down_s = 0;
  double converge_s = -1;  // from the restart until desired == programmed everywhere (-1: never)
};

// Counts of what must be zero (a checkpoint's or the final one).
struct Leaks {
  int leases = 0, stale_endpoints = 0, stale_pods = 0, veths = 0, conntrack = 0, nat = 0,
      differences = 0;
  std::vector<std::string> details;
  int total() const {
    return leases + stale_endpoints + stale_pods + veths + conntrack + nat + differences;
  }
};

class Soak {
 public:
  explicit Soak(uint64_t seed) : rng_(seed) {}

  absl::Status SetUp() {
    ClusterOptions o;
    o.etcd_tls = true;
    // etcd's authentication on with the per-node roles of scripts/etcd-roles.sh: the agents run
    // with their node identities; the soak's own writes use the admin store.
    o.etcd_auth = true;
    cluster_ = std::make_unique<Cluster>(o);
    if (!cluster_->status().ok()) return cluster_->status();
    // Two static pods per node: a server (backend of the stable service, pod-to-pod target) and
    // a client holding the long-lived connections.
    for (int n = 0; n < 3; ++n) {
      for (const char* role : {"srv", "cli"}) {
        auto p = cluster_->AddPod(n, StrCat(role, "-", n + 1));
        if (!p.ok()) return p.status();
        (role[0] == 's' ? servers_ : clients_).push_back(*p);
      }
    }
    if (absl::Status s = cluster_->ServeEverywhere(kPodPort); !s.ok()) return s;
    if (absl::Status s = cluster_->PutService(kStableService, kStableIp, 80, servers_, kPodPort);
        !s.ok()) {
      return s;
    }
    external_server_ = std::make_unique<::cninet::testing::LineServer>(
        ::cninet::testing::LineServerOptions{.netns_path = cluster_->external().path(),
                                             .port = kPodPort,
                                             .name = "external",
                                             .echo_line = false});
    if (!external_server_->status().ok()) return external_server_->status();
    if (absl::Status s = ConvergeAll(nullptr); !s.ok()) return s;
    // pod -> ClusterIP from every client; pod -> pod across nodes (client n -> server n+1);
    // pod -> the external namespace (masqueraded) from the first client.
    for (int n = 0; n < 3; ++n) {
      Pod& c = cluster_->pods()[clients_[n]];
      Pod& s = cluster_->pods()[servers_[(n + 1) % 3]];
      std::vector<std::tuple<std::string, uint16_t, const char*>> targets = {
          {kStableIp, 80, "ClusterIP"}, {s.ip, kPodPort, "pod"}};
      if (n == 0) targets.push_back({kExternalIp, kPodPort, "external, masqueraded"});
      for (auto [ip, port, kind] : targets) {
        auto conn = std::make_unique<LongConn>();
        conn->what = StrCat(c.name, " -> ", ip, ":", port, " (", kind, ")");
        conn->netns = c.ns->path();
        conn->ip = ip;
        conn->port = port;
        auto sock = Connect(conn->netns, ip, port);
        if (!sock.ok()) return sock.status();
        conn->sock = *std::move(sock);
        auto answer = Ask(conn->sock, "hello");
        if (!answer.ok()) return answer.status();
        conn->answer = answer->substr(0, answer->find(' '));
        conns_.push_back(std::move(conn));
      }
    }
    keeper_ = std::thread([this] { KeepConnections(); });
    return absl::OkStatus();
  }

  ~Soak() {
    stop_ = true;
    if (keeper_.joinable()) keeper_.join();
    conns_.clear();
    external_server_.reset();
    cluster_.reset();
  }

  // The churn with disruptions for `duration`; returns the first harness failure (not leaks).
  absl::Status Run(std::chrono::seconds duration, double rate, std::chrono::seconds kill_every) {
    const Clock::time_point start = Clock::now();
    const Clock::time_point end = start + duration;
    Clock::time_point next_kill = start + kill_every / 2;
    const Clock::time_point etcd_at = start + duration * 6 / 10;
    bool etcd_done = false;
    Clock::time_point next_op = start;
    const auto op_gap =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
    while (Clock::now() < end) {
      if (!etcd_done && Clock::now() >= etcd_at) {
        etcd_done = true;
        if (absl::Status s = RestartEtcd(); !s.ok()) return s;
        next_op = Clock::now();
        continue;
      }
      if (Clock::now() >= next_kill) {
        if (absl::Status s = KillAgent(); !s.ok()) return s;
        next_kill = Clock::now() + kill_every;
        next_op = Clock::now();
        continue;
      }
      if (Clock::now() < next_op) {
        std::this_thread::sleep_for(
            std::min<Clock::duration>(next_op - Clock::now(), std::chrono::milliseconds(50)));
        continue;
      }
      next_op += op_gap;
      if (absl::Status s = ChurnOnce(); !s.ok()) return s;
    }
    churn_seconds_ = Seconds(Clock::now() - start);
    return absl::OkStatus();
  }

  // The final checkpoint; prints the report; the counts that must be zero.
  Leaks Finish(uint64_t seed, int duration_s) {
    Leaks leaks;
    Clock::time_point t0 = Clock::now();
    absl::Status conv = ConvergeAll(&leaks);
    double final_converge = Seconds(Clock::now() - t0);
    if (!conv.ok()) leaks.details.push_back(StrCat("final convergence: ", conv.message()));
    CountLeaks(&leaks);
    stop_ = true;
    if (keeper_.joinable()) keeper_.join();

    int breaks = 0, in_kill = 0, in_etcd = 0, exchanges = 0, moved = 0;
    for (const auto& c : conns_) {
      breaks += c->breaks;
      in_kill += c->breaks_in_kill;
      in_etcd += c->breaks_in_etcd;
      exchanges += c->exchanges;
      moved += c->moved;
    }
    int kills = 0, etcd = 0;
    for (const Disruption& d : disruptions_) (d.what.rfind("etcd", 0) == 0 ? etcd : kills)++;
    std::string r;
    r += "\n==== cninet soak report ====\n";
    r += StrCat("seed ", seed, " (CNINET_SOAK_SEED), duration ", duration_s, " s of churn (",
                churn_seconds_, " s measured), 3 nodes, etcd with mutual TLS\n");
    r +=
        StrCat("operations applied: ", ops_total(), " = ", ops_total() / churn_seconds_,
               " per second (pods added ", pods_added_, ", pods deleted ", pods_deleted_,
               ", service/endpoints writes ", service_ops_, ", policy writes ", policy_ops_, ")\n");
    r += StrCat("churn pod probes (new pod -> server pod, -> ClusterIP, -> external): ", probes_ok_,
                " ok, ", probes_failed_, " failed\n");
    r += StrCat("agent kills survived: ", kills, ", etcd restarts survived: ", etcd, "\n");
    for (const Disruption& d : disruptions_) {
      r += StrCat("  ", d.what, ": down ", d.down_s, " s, converged in ",
                  d.converge_s < 0 ? std::string("NEVER") : StrCat(d.converge_s, " s"), " = ",
                  d.converge_s < 0 ? std::string("-") : StrCat(d.converge_s / kResyncSeconds),
                  " x resync interval (", kResyncSeconds, " s)\n");
    }
    r += StrCat("final convergence: ", final_converge, " s\n");
    r += StrCat("long-lived connections: ", conns_.size(), ", ", exchanges,
                " exchanges, moved to another backend: ", moved, "\n");
    r += "counts that must be zero:\n";
    r += StrCat("  leaked IP leases:                         ", leaks.leases, "\n");
    r += StrCat("  stale endpoints (datapath table):         ", leaks.stale_endpoints, "\n");
    r += StrCat("  stale Pod objects in the store:           ", leaks.stale_pods, "\n");
    r += StrCat("  leftover host veths:                      ", leaks.veths, "\n");
    r += StrCat("  conntrack entries of deleted pods:        ", leaks.conntrack, "\n");
    r += StrCat("  NAT entries of deleted pods:              ", leaks.nat, "\n");
    r += StrCat("  long-lived connections broken (all):      ", breaks, "\n");
    r += StrCat("    of which by an agent kill:              ", in_kill, "\n");
    r += StrCat("    of which during the etcd restart:       ", in_etcd, "\n");
    r += StrCat("  desired vs programmed after convergence:  ", leaks.differences, "\n");
    r += StrCat(
        "(not leaks: conntrack/NAT entries of deleted pods on other nodes still in their closing "
        "timeout or expired less than ",
        kGcGraceSeconds, " s ago: ", remote_unexpired_, ")\n");
    r += StrCat("flow entries scanned at the end (all nodes): conntrack ", ct_entries_, ", NAT ",
                nat_entries_, "\n");
    r += StrCat("checkpoints: ", checkpoints_, ", leaks seen at checkpoints: ", checkpoint_leaks_,
                "\n");
    for (size_t i = 0; i < leaks.details.size() && i < 40; ++i) {
      r += StrCat("  detail: ", leaks.details[i], "\n");
    }
    for (const auto& c : conns_) {
      if (c->breaks > 0) r += StrCat("  broken: ", c->what, " x", c->breaks, "\n");
    }
    r += "============================\n";
    fputs(r.c_str(), stdout);
    fflush(stdout);
    broken_ = breaks;
    return leaks;
  }

  int broken() const { return broken_; }
  int disruptions_unconverged() const {
    int n = 0;
    for (const Disruption& d : disruptions_) n += d.converge_s < 0;
    return n;
  }
  Cluster& cluster() { return *cluster_; }

 private:
  int ops_total() const { return pods_added_ + pods_deleted_ + service_ops_ + policy_ops_; }

  // ---- churn ----

  absl::Status ChurnOnce() {
    int live = static_cast<int>(churn_.size());
    int pick = static_cast<int>(rng_() % 100);
    if (pick < 30 && live < kMaxChurnPods) return AddChurnPod();
    if (pick < 55 && live > 0) return DeleteChurnPod();
    if (pick < 85) return ChurnService();
    return ChurnPolicy();
  }

  // Nodes whose agent is up (a pod ADD needs the node's agent).
  absl::Status AddChurnPod() {
    int node = static_cast<int>(rng_() % 3);
    std::string name = StrCat("churn-", ++churn_seq_);
    auto idx = cluster_->AddPod(node, name, "churn");
    if (!idx.ok()) return idx.status();
    churn_.push_back(*idx);
    ++pods_added_;
    // Short connections from the new pod: to a server pod on another node and to the ClusterIP.
    Pod& p = cluster_->pods()[*idx];
    const Pod& target = cluster_->pods()[servers_[(node + 1) % 3]];
    for (auto [ip, port] : {std::pair<std::string, uint16_t>{target.ip, kPodPort},
                            {std::string(kStableIp), 80},
                            {std::string(kExternalIp), kPodPort}}) {
      auto who = WhoAnswers(p.ns->path(), ip, port);
      if (who.ok()) {
        ++probes_ok_;
      } else {
        ++probes_failed_;
        fprintf(stderr, "soak: probe %s -> %s:%u failed: %s\n", name.c_str(), ip.c_str(), port,
                who.status().ToString().c_str());
      }
    }
    return absl::OkStatus();
  }

  absl::Status DeleteChurnPod() {
    size_t k = rng_() % churn_.size();
    int idx = churn_[k];
    if (absl::Status s = cluster_->DeletePod(idx); !s.ok()) return s;
    Pod& p = cluster_->pods()[idx];
    deleted_ips_[p.ip] = p.node;
    p.ns.reset();  // the runtime removes the sandbox after DEL
    churn_.erase(churn_.begin() + static_cast<long>(k));
    ++pods_deleted_;
    return absl::OkStatus();
  }

  // Puts a churned service with a random non-empty subset of the live pods as backends, or (one
  // time in five) deletes it.
  absl::Status ChurnService() {
    int k = static_cast<int>(rng_() % kChurnServices);
    std::string name = StrCat("soak-churn-", k);
    ++service_ops_;
    if (rng_() % 5 == 0) {
      for (const std::string& key :
           {keys::Service("default", name), keys::Endpoints("default", name)}) {
        if (auto r = WithRetry([&] { return cluster_->store().Delete(key).status(); }); !r.ok()) {
          return r;
        }
      }
      return absl::OkStatus();
    }
    std::vector<int> live = LivePods();
    std::vector<int> backends;
    for (int i : live) {
      if (rng_() % 2 == 0) backends.push_back(i);
    }
    if (backends.empty()) backends.push_back(live[rng_() % live.size()]);
    return WithRetry([&] {
      return cluster_->PutService(name, StrCat("10.96.1.", 10 + k), 80, backends, kPodPort);
    });
  }

  // Puts or deletes a NetworkPolicy in the churn namespace (its selector matches no pod, so it
  // compiles and programs without cutting the probes).
  absl::Status ChurnPolicy() {
    int k = static_cast<int>(rng_() % kChurnPolicies);
    std::string name = StrCat("soak-policy-", k);
    ++policy_ops_;
    if (rng_() % 3 == 0) {
      return WithRetry(
          [&] { return cluster_->store().Delete(keys::NetworkPolicy("churn", name)).status(); });
    }
    v1::NetworkPolicy pol;
    pol.set_namespace_("churn");
    pol.set_name(name);
    (*pol.mutable_pod_selector()->mutable_match_labels())["soak-policy"] = StrCat("v", rng_() % 4);
    pol.add_policy_types(v1::NetworkPolicy::INGRESS);
    v1::NetworkPolicyIngressRule* rule = pol.add_ingress();
    v1::NetworkPolicyPort* port = rule->add_ports();
    port->set_protocol(v1::TCP);
    port->set_port(static_cast<uint32_t>(8000 + rng_() % 100));
    return WithRetry([&] { return PutObject(cluster_->store(), pol).status(); });
  }

  // Retries a store write for up to 20 s (the harness's own client reconnecting after etcd).
  absl::Status WithRetry(const std::function<absl::Status()>& write) {
    auto deadline = Clock::now() + std::chrono::seconds(20);
    absl::Status s;
    while (true) {
      s = write();
      if (s.ok() || Clock::now() > deadline) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  std::vector<int> LivePods() const {
    std::vector<int> out;
    for (size_t i = 0; i < cluster_->pods().size(); ++i) {
      if (cluster_->pods()[i].ns) out.push_back(static_cast<int>(i));
    }
    return out;
  }

  // ---- disruptions ----

  absl::Status KillAgent() {
    int node = static_cast<int>(rng_() % 3);
    Disruption d;
    d.what = StrCat("kill -9 agent ", cluster_->nodes()[node].name);
    Clock::time_point t0 = Clock::now();
    in_kill_ = true;
    cluster_->nodes()[node].agent->Kill();  // SIGKILL: the datapath keeps running
    // A change lands while the agent is down: the restarted agent must pick it up.
    if (absl::Status s = ChurnService(); !s.ok()) return s;
    std::this_thread::sleep_for(std::chrono::seconds(1));
    Clock::time_point restart = Clock::now();
    d.down_s = Seconds(restart - t0);
    if (absl::Status s = cluster_->StartAgent(node); !s.ok()) return s;
    Leaks at;
    absl::Status conv = ConvergeAll(&at);
    d.converge_s = conv.ok() ? Seconds(Clock::now() - restart) : -1;
    // Breaks show within an exchange period (1 s) plus a read timeout: keep the window open.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    in_kill_ = false;
    Checkpoint(d, conv);
    return absl::OkStatus();
  }

  absl::Status RestartEtcd() {
    Disruption d;
    d.what = "etcd kill -9 + restart";
    Clock::time_point t0 = Clock::now();
    in_etcd_ = true;
    if (absl::Status s = cluster_->etcd()->Stop(/*graceful=*/false); !s.ok()) return s;
    std::this_thread::sleep_for(std::chrono::seconds(2));
    if (absl::Status s = cluster_->etcd()->Restart(); !s.ok()) return s;
    Clock::time_point restart = Clock::now();
    d.down_s = Seconds(restart - t0);
    // A change right after the restart: every agent must see it through its re-established watch.
    if (absl::Status s = ChurnService(); !s.ok()) return s;
    Leaks at;
    absl::Status conv = ConvergeAll(&at);
    d.converge_s = conv.ok() ? Seconds(Clock::now() - restart) : -1;
    std::this_thread::sleep_for(std::chrono::seconds(2));
    in_etcd_ = false;
    Checkpoint(d, conv);
    return absl::OkStatus();
  }

  void Checkpoint(Disruption d, const absl::Status& conv) {
    Leaks leaks;
    if (!conv.ok()) leaks.details.push_back(std::string(conv.message()));
    CountLeaks(&leaks);
    ++checkpoints_;
    checkpoint_leaks_ += leaks.total();
    printf(
        "soak: checkpoint after %s: converged %s, leases %d, stale endpoints %d, stale pods %d, "
        "veths %d, conntrack %d, nat %d\n",
        d.what.c_str(), conv.ok() ? StrCat("in ", d.converge_s, " s").c_str() : "NO", leaks.leases,
        leaks.stale_endpoints, leaks.stale_pods, leaks.veths, leaks.conntrack, leaks.nat);
    for (size_t i = 0; i < leaks.details.size() && i < 10; ++i) {
      printf("soak:   %s\n", leaks.details[i].c_str());
    }
    fflush(stdout);
    disruptions_.push_back(std::move(d));
  }

  // ---- the long-lived connections ----

  void KeepConnections() {
    while (!stop_) {
      Clock::time_point tick = Clock::now();
      for (auto& c : conns_) {
        if (stop_) return;
        absl::StatusOr<std::string> reply =
            c->sock.fd >= 0 ? Ask(c->sock, "ping") : absl::UnavailableError("not connected");
        if (reply.ok()) {
          ++c->exchanges;
          if (reply->substr(0, reply->find(' ')) != c->answer) ++c->moved;
          continue;
        }
        ++c->breaks;
        c->breaks_in_kill += in_kill_.load();
        c->breaks_in_etcd += in_etcd_.load();
        fprintf(stderr, "soak: long-lived connection %s broke: %s\n", c->what.c_str(),
                reply.status().ToString().c_str());
        // Open it again so later disruptions are measured too.
        auto sock = Connect(c->netns, c->ip, c->port);
        c->sock = sock.ok() ? *std::move(sock) : Sock();
        if (c->sock.fd >= 0) {
          auto answer = Ask(c->sock, "hello");
          if (answer.ok()) c->answer = answer->substr(0, answer->find(' '));
        }
      }
      std::this_thread::sleep_until(tick + std::chrono::seconds(1));
    }
  }

  // ---- desired vs programmed ----

  // Differences between the store's services/endpoints/policies and live pods and node i's
  // status (empty = converged).
  std::vector<std::string> Differences(int i) {
    std::vector<std::string> diffs;
    auto st = cluster_->AgentStatus(i);
    if (!st.ok()) return {StrCat("node ", i + 1, " status: ", st.status().message())};
    const std::string node = cluster_->nodes()[i].name;
    auto services = ListObjects<v1::Service>(cluster_->store());
    auto endpoints = ListObjects<v1::Endpoints>(cluster_->store());
    auto policies = ListObjects<v1::NetworkPolicy>(cluster_->store());
    if (!services.ok() || !endpoints.ok() || !policies.ok()) {
      return {StrCat("store list failed: ", services.status().message(),
                     endpoints.status().message(), policies.status().message())};
    }
    std::map<std::string, std::set<std::string>> want_backends, want_frontends;
    for (const auto& s : services->items) {
      std::string key = StrCat(s.value.namespace_(), "/", s.value.name());
      for (const auto& p : s.value.ports()) {
        want_frontends[key].insert(StrCat(s.value.cluster_ip(), ":", p.port(), "/tcp"));
      }
      want_backends[key];
    }
    for (const auto& e : endpoints->items) {
      std::string key = StrCat(e.value.namespace_(), "/", e.value.name());
      if (!want_backends.contains(key)) continue;
      for (const auto& pb : e.value.ports()) {
        for (const auto& b : pb.backends())
          want_backends[key].insert(StrCat(b.ip(), ":", b.port()));
      }
    }
    std::map<std::string, std::set<std::string>> have_backends, have_frontends;
    for (const auto& s : st->services()) {
      have_frontends[s.key()].insert(s.frontends().begin(), s.frontends().end());
      have_backends[s.key()].insert(s.backends().begin(), s.backends().end());
    }
    for (const auto& [key, fe] : want_frontends) {
      if (!have_frontends.contains(key)) {
        diffs.push_back(StrCat(node, ": service ", key, " not programmed"));
        continue;
      }
      if (have_frontends[key] != fe) diffs.push_back(StrCat(node, ": service ", key, " frontends"));
      if (have_backends[key] != want_backends[key]) {
        diffs.push_back(StrCat(node, ": service ", key, " backends: want ",
                               StrJoin(want_backends[key], ","), " have ",
                               StrJoin(have_backends[key], ",")));
      }
    }
    for (const auto& [key, fe] : have_frontends) {
      if (!want_frontends.contains(key)) {
        diffs.push_back(StrCat(node, ": service ", key, " programmed but not in the store"));
      }
    }
    // Endpoints: every live pod of the node programmed, nothing else planned.
    std::set<std::string> live;
    for (const Pod& p : cluster_->pods()) {
      if (p.ns && p.node == i) live.insert(p.ip);
    }
    std::set<std::string> planned;
    for (const auto& e : st->endpoints()) {
      planned.insert(e.address());
      if (!live.contains(e.address())) {
        diffs.push_back(StrCat(node, ": endpoint ", e.pod(), " ", e.address(), " of no live pod"));
      } else if (!e.programmed()) {
        diffs.push_back(StrCat(node, ": endpoint ", e.pod(), " ", e.address(), " not programmed"));
      }
    }
    for (const std::string& ip : live) {
      if (!planned.contains(ip)) diffs.push_back(StrCat(node, ": live pod ", ip, " not planned"));
    }
    if (st->policy().policies() != policies->items.size()) {
      diffs.push_back(StrCat(node, ": ", st->policy().policies(), " policies, store has ",
                             policies->items.size()));
    }
    return diffs;
  }

  // Waits until every node converged (`leaks`, when given, gets the differences left at the
  // timeout).
  absl::Status ConvergeAll(Leaks* leaks) {
    auto deadline = Clock::now() + kConvergeTimeout;
    std::vector<std::string> diffs;
    while (true) {
      diffs.clear();
      for (int i = 0; i < 3; ++i) {
        std::vector<std::string> d = Differences(i);
        diffs.insert(diffs.end(), d.begin(), d.end());
      }
      if (diffs.empty()) return absl::OkStatus();
      if (Clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (leaks != nullptr) {
      leaks->differences += static_cast<int>(diffs.size());
      leaks->details.insert(leaks->details.end(), diffs.begin(), diffs.end());
    }
    return absl::DeadlineExceededError(
        StrCat("not converged after ", kConvergeTimeout.count(), " s: ", diffs.front()));
  }

  // ---- what must be zero ----

  void CountLeaks(Leaks* leaks) {
    remote_unexpired_ = ct_entries_ = nat_entries_ = 0;
    std::set<std::string> live;  // every live pod address (addresses are reused)
    for (const Pod& p : cluster_->pods()) {
      if (p.ns) live.insert(p.ip);
    }
    std::map<std::string, int> gone;  // addresses of deleted pods no live pod holds again
    for (const auto& [ip, node] : deleted_ips_) {
      if (!live.contains(ip)) gone[ip] = node;
    }
    // Pod objects in the store: one per live pod.
    auto pods = ListObjects<v1::Pod>(cluster_->store());
    if (pods.ok()) {
      std::set<std::string> live_names;
      for (const Pod& p : cluster_->pods()) {
        if (p.ns) live_names.insert(StrCat(p.namespace_name, "/", p.name));
      }
      for (const auto& p : pods->items) {
        std::string name = StrCat(p.value.namespace_(), "/", p.value.name());
        if (!live_names.contains(name)) {
          ++leaks->stale_pods;
          leaks->details.push_back(StrCat("store: Pod ", name, " of a deleted pod"));
        }
      }
    } else {
      leaks->details.push_back(StrCat("store: listing pods: ", pods.status().message()));
    }
    for (int i = 0; i < 3; ++i) {
      Node& n = cluster_->nodes()[i];
      std::set<std::string> node_live;
      int live_pods = 0;
      for (const Pod& p : cluster_->pods()) {
        if (p.ns && p.node == i) {
          node_live.insert(p.ip);
          ++live_pods;
        }
      }
      // host-local leases: files named by address under <state>/ipam/<network>/.
      CommandResult r = ::cninet::testing::Run(
          {"sh", "-c", StrCat("ls -1 ", n.state_dir, "/ipam/*/ 2>/dev/null")});
      std::vector<std::string> files = absl::StrSplit(r.out, '\n');
      for (const std::string& f : files) {
        if (f.empty() || f.find('.') == std::string::npos || f.rfind("last_reserved", 0) == 0) {
          continue;
        }
        if (!node_live.contains(f)) {
          ++leaks->leases;
          leaks->details.push_back(StrCat(n.name, ": lease ", f, " held by no live pod"));
        }
      }
      // Host veths in the node (eth0 is the node's own uplink).
      r = n.ns->Exec("ip -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1");
      int veths = 0;
      std::vector<std::string> names;
      std::vector<std::string> links = absl::StrSplit(r.out, '\n');
      for (const std::string& l : links) {
        if (l.empty() || l == "eth0") continue;
        ++veths;
        names.push_back(l);
      }
      if (veths > live_pods) {
        leaks->veths += veths - live_pods;
        leaks->details.push_back(StrCat(n.name, ": ", veths, " host veths for ", live_pods,
                                        " live pods: ", StrJoin(names, ",")));
      }
      // The datapath's pinned maps of the node.
      auto st = cluster_->AgentStatus(i);
      if (!st.ok()) {
        leaks->details.push_back(StrCat(n.name, ": status: ", st.status().message()));
        continue;
      }
      auto d = dp::Datapath::OpenPinned(st->pin_dir());
      if (!d.ok()) {
        leaks->details.push_back(StrCat(n.name, ": open pins: ", d.status().message()));
        continue;
      }
      if (auto eps = (*d)->endpoints().List(); eps.ok()) {
        for (const dp::Endpoint& e : *eps) {
          if (!node_live.contains(e.address.ToString())) {
            ++leaks->stale_endpoints;
            leaks->details.push_back(
                StrCat(n.name, ": endpoint ", e.address.ToString(), " of no live pod"));
          }
        }
      }
      // A flow entry naming a deleted pod's address is a leak on the pod's own node (the DEL
      // flushes them there) and, on the other nodes, once it has expired (the peer's side of a
      // closed connection lives out its closing timeout, then the agent's garbage collection at
      // each resync must take it: expired for longer than a resync interval and a second of
      // clock granularity). Younger ones on other nodes are counted apart, for information.
      auto leaked = [&](std::initializer_list<const cni::IPAddress*> addrs, int64_t expires_in) {
        for (const cni::IPAddress* a : addrs) {
          auto it = gone.find(a->ToString());
          if (it == gone.end()) continue;
          if (it->second == i || expires_in < -kGcGraceSeconds) return 1;
          ++remote_unexpired_;
          return 0;
        }
        return 0;
      };
      if (auto ct = (*d)->conntrack().Dump(); ct.ok()) {
        ct_entries_ += static_cast<int>(ct->size());
        for (const dp::ConntrackEntry& e : *ct) {
          if (leaked({&e.tuple.src, &e.tuple.dst, &e.nat_address}, e.expires_in_s)) {
            ++leaks->conntrack;
            leaks->details.push_back(StrCat(n.name, ": conntrack ", e.tuple.ToString(),
                                            " expires_in=", e.expires_in_s, "s"));
          }
        }
      } else {
        leaks->details.push_back(StrCat(n.name, ": conntrack dump: ", ct.status().message()));
      }
      if (auto nat = (*d)->nat().Dump(); nat.ok()) {
        nat_entries_ += static_cast<int>(nat->size());
        for (const dp::NatEntry& e : *nat) {
          if (leaked({&e.tuple.src, &e.tuple.dst, &e.to_address}, e.expires_in_s)) {
            ++leaks->nat;
            leaks->details.push_back(
                StrCat(n.name, ": NAT ", e.tuple.ToString(), " expires_in=", e.expires_in_s, "s"));
          }
        }
      } else {
        leaks->details.push_back(StrCat(n.name, ": NAT dump: ", nat.status().message()));
      }
    }
  }

  std::mt19937_64 rng_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<::cninet::testing::LineServer> external_server_;
  std::vector<int> servers_, clients_, churn_;
  std::map<std::string, int> deleted_ips_;  // address of a deleted pod -> its node
  std::vector<std::unique_ptr<LongConn>> conns_;
  std::thread keeper_;
  std::atomic<bool> stop_{false}, in_kill_{false}, in_etcd_{false};
  std::vector<Disruption> disruptions_;
  int churn_seq_ = 0, pods_added_ = 0, pods_deleted_ = 0, service_ops_ = 0, policy_ops_ = 0;
  int probes_ok_ = 0, probes_failed_ = 0, checkpoints_ = 0, checkpoint_leaks_ = 0, broken_ = 0;
  double churn_seconds_ = 0;
  int remote_unexpired_ = 0;
  int ct_entries_ = 0,
      nat_entries_ = 0;  // entries scanned on all nodes (last count)  // unexpired flow entries of
                         // deleted pods on other nodes (last count)
};

TEST(Soak, ChurnWithAgentKillsAndAnEtcdRestartLeavesNothingBehind) {
  CNINET_REQUIRE_ROOT();
  const int seconds = static_cast<int>(EnvLong("CNINET_SOAK_SECONDS", 60));
  const uint64_t seed = static_cast<uint64_t>(
      EnvLong("CNINET_SOAK_SEED",
              std::chrono::system_clock::now().time_since_epoch().count() % 1000000007));
  const double rate = static_cast<double>(EnvLong("CNINET_SOAK_RATE", 4));
  const int kill_every =
      static_cast<int>(EnvLong("CNINET_SOAK_KILL_SECONDS", std::max(10, seconds / 4)));
  printf(
      "soak: seed %llu (rerun with CNINET_SOAK_SEED=%llu), %d s, %g ops/s, agent kill every "
      "%d s\n",
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed), seconds, rate,
      kill_every);
  fflush(stdout);
  Soak soak(seed);
  ASSERT_OK(soak.SetUp());
  absl::Status run =
      soak.Run(std::chrono::seconds(seconds), rate, std::chrono::seconds(kill_every));
  Leaks leaks = soak.Finish(seed, seconds);
  ASSERT_OK(run);
  EXPECT_EQ(leaks.leases, 0);
  EXPECT_EQ(leaks.stale_endpoints, 0);
  EXPECT_EQ(leaks.stale_pods, 0);
  EXPECT_EQ(leaks.veths, 0);
  EXPECT_EQ(leaks.conntrack, 0);
  EXPECT_EQ(leaks.nat, 0);
  EXPECT_EQ(leaks.differences, 0);
  EXPECT_EQ(soak.broken(), 0);
  EXPECT_EQ(soak.disruptions_unconverged(), 0);
}

}  // namespace
}  // namespace cninet::agent::testing
