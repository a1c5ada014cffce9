// policy_bench: per-packet cost of the ingress policy check (cn_to_pod) through
// BPF_PROG_TEST_RUN, with 1, 100 and 10k rules on the destination pod, as ns/packet and as the
// ratio to "no policy" - the same program on a packet to a pod without policy (one map miss) -
// measured in the same run, interleaved with the case. The empty tc program
// (Datapath::TestRunFloor) on the same packet is reported too (floor).
//
// World: namespace web, pod api (role=api, local) selected by one NetworkPolicy with N ingress
// rules; rule i admits pods app=c<i> (N client pods, one identity each, on other nodes) to TCP 80.
// So N rules = N pod identities in cn_pol_ids and N allow entries in cn_pol_rules.
// Cases (every run of a batch takes the same path; cn_to_pod never rewrites the packet):
//   allow_new    SYN from the pod of the last rule: conntrack lookup, identity lookup, rule hit.
//                (A pure SYN is always checked; its conntrack entry exists after the first run,
//                so the pair creation of a first packet is not included.)
//   deny_new     SYN from an address no rule admits: identity, CIDR and any-peer lookups miss.
//   established  ACK of an admitted connection: conntrack hit with the policy-ok flag.
// Each case checks the datapath's counters afterwards (every run took its path).
//
// Flags (before the Google Benchmark ones): --quick (1 and 100 rules, short batches),
// --repeat=N (runs per batch, default 20000), --table_out=FILE (Markdown table).
#include <benchmark/benchmark.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "common/bench_flags.h"
#include "common/bench_main.h"
#include "packet_builder.h"

namespace cninet::bench {
namespace {

using datapath::Datapath;
using datapath::Hook;
namespace dt = datapath::testing;

constexpr uint32_t kForwarded = 1;  // skb_iif of a packet routed to the pod (0 = from the host)
constexpr char kApi[] = "10.244.0.2";
constexpr char kUnmanaged[] = "10.244.0.3";
constexpr char kStranger[] = "192.0.2.1";

struct Options {
  bool quick = false;
  uint32_t repeat = 20000;
  std::string table_out;
};
Options g_opt;

template <typename... Args>
void Progress(const Args&... args) {
  std::string line = StrCat("[policy] ", args...);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }

std::string ClientIp(uint32_t i) { return StrCat("10.245.", i / 250, ".", i % 250 + 1); }

// One datapath with a policy of N rules.
struct Env {
  std::unique_ptr<Datapath> dp;
  uint32_t rules = 0;
  size_t entries = 0;
  double apply_ms = 0;
};

absl::StatusOr<std::unique_ptr<Env>> MakeEnv(uint32_t rules) {
  auto env = std::make_unique<Env>();
  env->rules = rules;
  datapath::DatapathConfig cfg;
  cfg.pin_maps = false;
  cfg.cluster_cidr = *cni::IPPrefix::Parse("10.244.0.0/14");
  cfg.node_addresses = {Ip("192.168.50.1")};
  cfg.map_sizes.conntrack = 4096;
  cfg.map_sizes.nat = 1024;
  cfg.map_sizes.services = 16;
  cfg.map_sizes.service_slots = 16;
  cfg.map_sizes.backends = 16;
  cfg.map_sizes.affinity = 16;
  cfg.map_sizes.endpoints = 16;
  cfg.map_sizes.policy_identities = std::max<uint32_t>(1024, rules + 16);
  cfg.map_sizes.policy_rules = std::max<uint32_t>(1024, rules + 16);
  cfg.map_sizes.policy_counters = std::max<uint32_t>(1024, rules + 16);
  CNINET_ASSIGN_OR_RETURN(env->dp, Datapath::Create(cfg));
  datapath::PolicySnapshot world;
  world.namespaces = {datapath::NamespaceInfo{"web", {}, false}};
  auto pod = [](std::string name, std::string ip, datapath::Labels labels, bool local) {
    datapath::PodInfo p;
    p.namespace_name = "web";
    p.name = std::move(name);
    p.addresses = {Ip(ip)};
    p.labels = std::move(labels);
    p.local = local;
    return p;
  };
  world.pods.push_back(pod("api", kApi, {{"role", "api"}}, true));
  world.pods.push_back(pod("other", kUnmanaged, {{"role", "other"}}, true));
  datapath::NetworkPolicy pol;
  pol.namespace_name = "web";
  pol.name = "api";
  pol.pod_selector.match_labels = {{"role", "api"}};
  for (uint32_t i = 0; i < rules; ++i) {
    world.pods.push_back(pod(StrCat("c", i), ClientIp(i), {{"app", StrCat("c", i)}}, false));
    datapath::PolicyPeer peer;
    peer.pod_selector = datapath::LabelSelector{{{"app", StrCat("c", i)}}, {}};
    pol.ingress.push_back(datapath::IngressRule{
        {peer}, {datapath::PolicyPort{datapath::PolicyProtocol::kTcp, 80, 0}}});
  }
  world.policies = {pol};
  CNINET_RETURN_IF_ERROR(env->dp->policy().Replace(world));
  auto t0 = std::chrono::steady_clock::now();
  CNINET_ASSIGN_OR_RETURN(datapath::PolicyApplyResult r, env->dp->policy().Apply());
  env->apply_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  env->entries = r.rules_written;
  if (env->entries != rules)
    return absl::InternalError(StrCat("expected ", rules, " allow entries, wrote ", env->entries));
  return env;
}

std::map<uint32_t, std::unique_ptr<Env>> g_envs;

absl::StatusOr<Env*> GetEnv(uint32_t rules) {
  auto it = g_envs.find(rules);
  if (it != g_envs.end()) return it->second.get();
  g_envs.clear();  // one datapath at a time
  Progress("setting up ", rules, " rules");
  CNINET_ASSIGN_OR_RETURN(std::unique_ptr<Env> env, MakeEnv(rules));
  Env* raw = env.get();
  g_envs[rules] = std::move(env);
  Progress(rules, " rules: ", raw->entries, " allow entries applied in ", raw->apply_ms, " ms");
  return raw;
}

enum class Kind { kAllowNew, kDenyNew, kEstablished };
const char* KindName(Kind k) {
  switch (k) {
    case Kind::kAllowNew:
      return "allow_new";
    case Kind::kDenyNew:
      return "deny_new";
    case Kind::kEstablished:
      return "established";
  }
  return "?";
}

struct Result {
  Kind kind;
  uint32_t rules;
  double ns = 0, base_ns = 0, floor_ns = 0, apply_ms = 0;
  bool ok = false;
};
// By (rules, case): Google Benchmark may run a case more than once (its first short run
// estimates the iteration count); the last run is the one it reports.
std::map<std::pair<uint32_t, int>, Result> g_results;
void Record(const Result& r) { g_results[{r.rules, static_cast<int>(r.kind)}] = r; }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

absl::StatusOr<uint64_t> Count(Datapath& dp, uint32_t reason) {
  return dp.counters().Packets(reason);
}

void RunCase(benchmark::State& state, Kind kind, uint32_t rules) {
  Result res{kind, rules};
  auto env_or = GetEnv(rules);
  if (!env_or.ok()) {
    state.SkipWithError(std::string(env_or.status().message()).c_str());
    Record(res);
    return;
  }
  Env& env = **env_or;
  Datapath& dp = *env.dp;
  const std::string client = ClientIp(rules - 1);
  const uint16_t sport = static_cast<uint16_t>(40000 + static_cast<int>(kind));
  dt::Bytes pkt;
  switch (kind) {
    case Kind::kAllowNew:
      pkt = dt::PacketBuilder().Ipv4(client, kApi).Tcp(sport, 80, dt::kSyn).Build();
      break;
    case Kind::kDenyNew:
      pkt = dt::PacketBuilder().Ipv4(kStranger, kApi).Tcp(sport, 80, dt::kSyn).Build();
      break;
    case Kind::kEstablished: {
      dt::Bytes syn = dt::PacketBuilder().Ipv4(client, kApi).Tcp(sport, 80, dt::kSyn).Build();
      auto r = dp.TestRun(Hook::kToPod, syn, 1, 0, kForwarded);
      if (!r.ok() || r->retval != 0) {
        state.SkipWithError("the connection's SYN was not admitted");
        Record(res);
        return;
      }
      pkt = dt::PacketBuilder().Ipv4(client, kApi).Tcp(sport, 80, dt::kAck).Build();
      break;
    }
  }
  const dt::Bytes base =
      dt::PacketBuilder().Ipv4(client, kUnmanaged).Tcp(41000, 80, dt::kSyn).Build();
  const int want = kind == Kind::kDenyNew ? 2 : 0;  // TC_ACT_SHOT / TC_ACT_OK

  auto allow0 = Count(dp, CN_R_POLICY_ALLOW);
  auto drop0 = Count(dp, CN_R_DROP_POLICY);
  std::vector<double> ns, base_ns, floor_ns;
  uint64_t runs = 0;
  for (auto _ : state) {
    auto f = dp.TestRunFloor(pkt, g_opt.repeat);
    auto b = dp.TestRun(Hook::kToPod, base, g_opt.repeat, 0, kForwarded);
    auto m = dp.TestRun(Hook::kToPod, pkt, g_opt.repeat, 0, kForwarded);
    if (!f.ok() || !b.ok() || !m.ok()) {
      state.SkipWithError("BPF_PROG_TEST_RUN failed");
      break;
    }
    if (m->retval != want || b->retval != 0) {
      state.SkipWithError(StrCat(KindName(kind), ": verdict ", m->retval, ", want ", want).c_str());
      break;
    }
    state.SetIterationTime(static_cast<double>(m->duration_ns) * g_opt.repeat * 1e-9);
    ns.push_back(m->duration_ns);
    base_ns.push_back(b->duration_ns);
    floor_ns.push_back(f->duration_ns);
    runs += g_opt.repeat;
  }
  // Every run took the case's path.
  auto allow1 = Count(dp, CN_R_POLICY_ALLOW);
  auto drop1 = Count(dp, CN_R_DROP_POLICY);
  if (!allow0.ok() || !allow1.ok() || !drop0.ok() || !drop1.ok()) {
    state.SkipWithError("reading counters failed");
  } else if (runs > 0) {
    uint64_t allowed = *allow1 - *allow0, dropped = *drop1 - *drop0;
    bool path_ok = (kind == Kind::kAllowNew && allowed == runs && dropped == 0) ||
                   (kind == Kind::kDenyNew && dropped == runs && allowed == 0) ||
                   (kind == Kind::kEstablished && allowed == 0 && dropped == 0);
    if (!path_ok) {
      state.SkipWithError(StrCat(KindName(kind), ": ", runs, " runs but ", allowed,
                                 " rule admissions and ", dropped, " policy drops")
                              .c_str());
    } else {
      res.ok = true;
    }
  }
  res.ns = Median(ns);
  res.base_ns = Median(base_ns);
  res.floor_ns = Median(floor_ns);
  res.apply_ms = env.apply_ms;
  state.counters["rules"] = rules;
  state.counters["ns_per_pkt"] = res.ns;
  state.counters["no_policy_ns"] = res.base_ns;
  state.counters["floor_ns"] = res.floor_ns;
  state.counters["ratio_to_no_policy"] = res.base_ns > 0 ? res.ns / res.base_ns : 0;
  state.counters["policy_cost_ns"] = res.ns - res.base_ns;
  state.counters["floor_ratio"] = res.floor_ns > 0 ? res.ns / res.floor_ns : 0;
  state.counters["apply_ms"] = env.apply_ms;
  Record(res);
}

void WriteTable(const std::string& path) {
  std::ofstream out(path);
  out << "| rules | case | ns/packet | no policy (ns) | ratio to no policy | policy cost (ns) | "
         "empty program (ns) | Apply() of the policy (ms) |\n"
         "|---:|---|---:|---:|---:|---:|---:|---:|\n";
  char buf[256];
  for (const auto& [key, r] : g_results) {
    if (!r.ok) continue;
    std::snprintf(buf, sizeof(buf), "| %u | %s | %.1f | %.1f | %.2f | %+.1f | %.1f | %.1f |\n",
                  r.rules, KindName(r.kind), r.ns, r.base_ns, r.base_ns > 0 ? r.ns / r.base_ns : 0,
                  r.ns - r.base_ns, r.floor_ns, r.apply_ms);
    out << buf;
  }
  out << "\nMedians over the benchmark's iterations; each iteration runs the empty program, the "
         "no-policy packet and the case's packet in interleaved batches of "
      << g_opt.repeat << " BPF_PROG_TEST_RUN runs.\n";
}

}  // namespace
}  // namespace cninet::bench

int main(int argc, char** argv) {
  using namespace cninet::bench;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string v;
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_opt.quick = true;
    } else if (ParseFlag(argv[i], "--repeat", &v)) {
      g_opt.repeat = static_cast<uint32_t>(std::stoul(v));
    } else if (ParseFlag(argv[i], "--table_out", &v)) {
      g_opt.table_out = v;
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (g_opt.quick) g_opt.repeat = std::min<uint32_t>(g_opt.repeat, 1000);
  if (g_opt.repeat == 0) {
    std::fprintf(stderr, "--repeat must be >= 1\n");
    return 2;
  }
  if (!EnterPrivateNetns("policy_bench")) return 1;
  if (!InitBenchmarks(rest)) return 2;
  std::vector<uint32_t> sizes = {1, 100, 10000};
  if (g_opt.quick) sizes = {1, 100};
  for (uint32_t n : sizes) {
    for (Kind k : {Kind::kAllowNew, Kind::kDenyNew, Kind::kEstablished}) {
      std::string name = cninet::StrCat("policy/", KindName(k), "/rules:", n);
      benchmark::RegisterBenchmark(name.c_str(), [k, n](benchmark::State& s) { RunCase(s, k, n); })
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_envs.clear();
  if (!g_opt.table_out.empty()) WriteTable(g_opt.table_out);
  int errors = 0;
  for (const auto& [key, r] : g_results) errors += !r.ok;
  if (errors) std::fprintf(stderr, "[policy] %d case(s) failed\n", errors);
  return errors == 0 ? 0 : 1;
}
