// agent_bench: issue 8's "10k services x 10 backends written into etcd -> all programmed in the
// datapath" time, measured end to end against a real cninet agent, with the two baselines it is
// made of measured in the same run:
//
//   BM_StoreWrite/N        baseline: writing N Services + N Endpoints (10 backends each) into a
//                          private etcd on 127.0.0.1, in transactions of 100 keys
//   BM_ServiceTable/N      baseline: programming the same N services (already planned, Maglev)
//                          into a fresh datapath with ServiceTable::UpsertBatch
//   BM_EndToEnd/N          a running Agent (etcd store, datapath pinned in a private bpffs, node
//                          in a private network namespace): from the first write until the agent
//                          reports all N services programmed with their backends
//
// Every iteration starts from an empty store and a fresh datapath instance; only the measured
// span counts (manual time). The summary prints each time, the end-to-end time as a ratio to the
// sum of the two baselines, and how long programming lagged behind the last write.
//
// Flags (before the Google Benchmark ones): --services=N (default 10000), --backends=B (10),
// --maglev-size=M (default: the agent's, the datapath's automatic size per service, >= 100 slots
// per backend, i.e. M=1021 for 10 backends). Needs root (namespace, bpffs, BPF).
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "cninet/agent/agent.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/services.h"
#include "cninet/agent/state.h"
#include "cninet/base/log.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/maglev.h"
#include "common/bench_flags.h"
#include "common/bench_main.h"
#include "testing/etcd_server.h"

namespace {

namespace agent = ::cninet::agent;
namespace dp = ::cninet::datapath;
using cninet::StrCat;
using Clock = std::chrono::steady_clock;

int g_services = 10000;
int g_backends = 10;
uint32_t g_maglev = 0;  // 0: the agent default (sized per service)
std::string g_dir;      // temporary directory
std::string g_bpffs;    // private bpffs mount
std::string g_netns;    // node namespace name
std::unique_ptr<::cninet::testing::EtcdServer> g_etcd;
std::shared_ptr<agent::Store> g_store;
std::map<std::string, double> g_seconds;  // benchmark name -> mean seconds per iteration

int Sh(const std::string& cmd) { return std::system(cmd.c_str()); }

// The objects an operator writes: N services (ClusterIP 10.96.x.y:80) and their endpoints.
struct Workload {
  std::vector<agent::KeyValue> kvs;  // service i, endpoints i, service i+1, ...
  std::vector<cninet::v1::Service> services;
  std::vector<cninet::v1::Endpoints> endpoints;
};

const Workload& TheWorkload() {
  static Workload* workload = [] {
    auto* w = new Workload;
    for (int i = 0; i < g_services; ++i) {
      cninet::v1::Service s;
      s.set_namespace_("bench");
      s.set_name(StrCat("svc-", i));
      s.set_cluster_ip(StrCat("10.96.", (i + 1) / 250, ".", (i + 1) % 250 + 1));
      s.add_ports()->set_port(80);
      cninet::v1::Endpoints e;
      e.set_namespace_("bench");
      e.set_name(s.name());
      auto* p = e.add_ports();
      for (int b = 0; b < g_backends; ++b) {
        auto* be = p->add_backends();
        be->set_ip(StrCat("10.244.", (i * g_backends + b) / 250 % 250, ".",
                          (i * g_backends + b) % 250 + 2));
        be->set_port(8080);
      }
      w->services.push_back(s);
      w->endpoints.push_back(e);
    }
    // Each Service is written together with its Endpoints (as a service and its endpoint
    // slice appear in Kubernetes), in transactions of 100 keys.
    for (size_t i = 0; i < w->services.size(); ++i) {
      const auto& s = w->services[i];
      const auto& e = w->endpoints[i];
      w->kvs.push_back({*agent::KeyOf(agent::ObjectKind::kService, s),
                        *agent::EncodeObject(agent::ObjectKind::kService, s)});
      w->kvs.push_back({*agent::KeyOf(agent::ObjectKind::kEndpoints, e),
                        *agent::EncodeObject(agent::ObjectKind::kEndpoints, e)});
    }
    return w;
  }();
  return *workload;
}

// Writes (or deletes) the workload in transactions of 100 keys; returns the last revision.
absl::StatusOr<int64_t> WriteAll(bool remove) {
  const Workload& w = TheWorkload();
  int64_t rev = 0;
  std::vector<agent::Op> ops;
  for (size_t i = 0; i < w.kvs.size(); ++i) {
    agent::Op op;
    op.kind = remove ? agent::Op::Kind::kDelete : agent::Op::Kind::kPut;
    op.key = w.kvs[i].key;
    if (!remove) op.value = w.kvs[i].value;
    ops.push_back(std::move(op));
    if (ops.size() == 100 || i + 1 == w.kvs.size()) {
      absl::StatusOr<int64_t> r = g_store->Apply(ops);
      if (!r.ok()) return r.status();
      rev = *r;
      ops.clear();
    }
  }
  return rev;
}

void BM_StoreWrite(benchmark::State& state) {
  for (auto _ : state) {
    auto t0 = Clock::now();
    absl::StatusOr<int64_t> rev = WriteAll(false);
    auto t1 = Clock::now();
    if (!rev.ok()) {
      state.SkipWithError(std::string(rev.status().message()).c_str());
      return;
    }
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    if (!WriteAll(true).ok()) state.SkipWithError("cleanup failed");
  }
  state.counters["keys/s"] = benchmark::Counter(
      static_cast<double>(2 * g_services) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

dp::DatapathConfig BenchDatapathConfig(const std::string& instance) {
  dp::DatapathConfig c;
  c.bpffs_root = g_bpffs;
  c.instance = instance;
  c.cluster_cidr = *cninet::cni::IPPrefix::Parse("10.244.0.0/16");
  c.node_addresses = {*cninet::cni::IPAddress::Parse("192.168.77.1")};
  return c;
}

void BM_ServiceTable(benchmark::State& state) {
  const Workload& w = TheWorkload();
  agent::ServicePlanOptions po;
  po.maglev_size = g_maglev;
  std::vector<agent::PlannedService> planned =
      agent::PlanServices(w.services, w.endpoints, po, nullptr);
  std::vector<dp::Service> services;
  for (size_t i = 0; i < planned.size(); ++i) {
    services.push_back(planned[i].service);
    services.back().id = static_cast<uint32_t>(i + 1);
  }
  int round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto d = dp::Datapath::Create(BenchDatapathConfig(StrCat("table", round++)));
    state.ResumeTiming();
    if (!d.ok()) {
      state.SkipWithError(std::string(d.status().message()).c_str());
      return;
    }
    auto t0 = Clock::now();
    absl::Status st = (*d)->services().UpsertBatch(services);
    auto t1 = Clock::now();
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      return;
    }
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    (void)(*d)->Unpin();
  }
  state.counters["services/s"] =
      benchmark::Counter(static_cast<double>(g_services) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

void BM_EndToEnd(benchmark::State& state) {
  int round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    agent::AgentOptions o;
    o.node_name = "bench-node";
    o.netns = "/run/netns/" + g_netns;
    o.store_instance = g_store;
    o.uplink = "eth0";
    o.state_dir = StrCat(g_dir, "/agent");
    o.socket_path = StrCat(g_dir, "/agent.sock");
    o.cni_conf_dir = StrCat(g_dir, "/net.d");
    o.bpffs_root = g_bpffs;
    o.instance = StrCat("e2e", round++);
    o.maglev_size = g_maglev;
    auto a = agent::Agent::Start(o);
    if (!a.ok()) {
      state.SkipWithError(std::string(a.status().message()).c_str());
      return;
    }
    if (absl::Status st = (*a)->WaitReady(std::chrono::seconds(30)); !st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      return;
    }
    state.ResumeTiming();

    auto t0 = Clock::now();
    absl::StatusOr<int64_t> last = WriteAll(false);
    auto written = Clock::now();
    if (!last.ok()) {
      state.SkipWithError(std::string(last.status().message()).c_str());
      return;
    }
    // The agent's supported observation point: a round covering the last write, then the count.
    bool done = (*a)->WaitReconciled(*last, std::chrono::seconds(120)).ok() &&
                (*a)->programmed_services() == static_cast<size_t>(g_services);
    auto t1 = Clock::now();
    state.PauseTiming();
    if (!done) {
      state.SkipWithError("the agent did not program every service within 120 s");
      return;
    }
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    state.counters["lag_after_last_write_ms"] =
        std::chrono::duration<double, std::milli>(t1 - written).count();
    // Check what is in the maps, not what the agent says.
    auto pinned = dp::Datapath::OpenPinned(StrCat(g_bpffs, "/cninet/", o.instance));
    std::vector<dp::Service> list =
        pinned.ok() ? (*pinned)->services().List() : std::vector<dp::Service>();
    size_t full = 0;
    for (const auto& s : list) full += s.backends.size() == static_cast<size_t>(g_backends);
    if (full != static_cast<size_t>(g_services)) {
      state.SkipWithError(
          StrCat("maps hold ", full, " complete services, want ", g_services).c_str());
      return;
    }
    (*a)->Stop();
    a->reset();
    if (pinned.ok()) (void)(*pinned)->Unpin();
    (void)WriteAll(true);
    state.ResumeTiming();
  }
  state.counters["services/s"] =
      benchmark::Counter(static_cast<double>(g_services) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

// Records mean seconds per benchmark for the summary.
class Recorder : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred || r.iterations == 0) continue;
      g_seconds[r.run_name.function_name] = r.real_accumulated_time / r.iterations;
    }
  }
};

bool Setup() {
  char tmpl[] = "/tmp/cninet-agent-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return false;
  g_dir = tmpl;
  g_bpffs = g_dir + "/bpffs";
  std::filesystem::create_directories(g_bpffs);
  if (mount("bpf", g_bpffs.c_str(), "bpf", 0, "mode=0700") != 0) {
    std::fprintf(stderr, "mount bpffs: %s (run as root)\n", std::strerror(errno));
    return false;
  }
  g_netns = StrCat("cnbench", getpid());
  if (Sh(StrCat("ip netns add ", g_netns, " && ip -n ", g_netns,
                " link add eth0 type veth peer name eth0p && ip -n ", g_netns,
                " link set eth0p up && ip -n ", g_netns,
                " addr add 192.168.77.1/24 dev eth0 && ip -n ", g_netns,
                " link set eth0 up && ip -n ", g_netns, " link set lo up")) != 0) {
    return false;
  }
  ::cninet::testing::EtcdServerOptions eo;
  eo.data_dir = g_dir + "/etcd";
  auto server = ::cninet::testing::EtcdServer::Start(eo);
  if (!server.ok()) {
    std::fprintf(stderr, "etcd: %s\n", server.status().ToString().c_str());
    return false;
  }
  g_etcd = *std::move(server);
  agent::EtcdStoreOptions so;
  so.endpoints = {g_etcd->url()};
  so.request_timeout = std::chrono::seconds(30);
  auto s = agent::OpenEtcdStore(so);
  if (!s.ok()) {
    std::fprintf(stderr, "etcd store: %s\n", s.status().ToString().c_str());
    return false;
  }
  g_store = *std::move(s);
  cninet::v1::ClusterConfig cc;
  cc.set_cluster_cidr("10.244.0.0/16");
  cc.set_service_cidr("10.96.0.0/12");
  return agent::PutObject(*g_store, cc).ok();
}

void Teardown() {
  g_store.reset();
  g_etcd.reset();
  if (!g_netns.empty()) Sh(StrCat("ip netns delete ", g_netns, " 2>/dev/null"));
  if (!g_bpffs.empty()) umount2(g_bpffs.c_str(), MNT_DETACH);
  if (!g_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_dir, ec);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest = cninet::bench::SplitArgs(argc, argv, [](const char* arg) {
    std::string v;
    if (cninet::bench::ParseFlag(arg, "--services", &v)) {
      g_services = std::atoi(v.c_str());
    } else if (cninet::bench::ParseFlag(arg, "--backends", &v)) {
      g_backends = std::atoi(v.c_str());
    } else if (cninet::bench::ParseFlag(arg, "--maglev-size", &v)) {
      g_maglev = static_cast<uint32_t>(std::atoi(v.c_str()));
    } else {
      return false;
    }
    return true;
  });
  if (g_services < 1 || g_services > 60000 || g_backends < 1 || g_backends > 100) {
    std::fprintf(stderr, "--services must be 1..60000 and --backends 1..100\n");
    return 2;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "agent_bench needs root (network namespace, bpffs, BPF)\n");
    return 1;
  }
  if (std::getenv("CNINET_LOG_LEVEL") == nullptr) cninet::SetLogLevel(cninet::LogLevel::kError);
  int rc = 0;
  if (!Setup()) {
    rc = 1;
  } else {
    std::string n = std::to_string(g_services);
    benchmark::RegisterBenchmark(("BM_StoreWrite/" + n).c_str(), BM_StoreWrite)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
    benchmark::RegisterBenchmark(("BM_ServiceTable/" + n).c_str(), BM_ServiceTable)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
    benchmark::RegisterBenchmark(("BM_EndToEnd/" + n).c_str(), BM_EndToEnd)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
    Recorder reporter;
    cninet::bench::RunBenchmarks(rest, &reporter);
    auto get = [](const char* name) {
      auto it = g_seconds.find(StrCat(name, "/", g_services));
      return it == g_seconds.end() ? -1.0 : it->second;
    };
    double write = get("BM_StoreWrite"), table = get("BM_ServiceTable"), e2e = get("BM_EndToEnd");
    uint32_t m = g_maglev != 0 ? g_maglev : dp::MaglevSizeFor(static_cast<size_t>(g_backends));
    std::printf("\n%d services x %d backends (Maglev M=%u%s), mean of the iterations:\n",
                g_services, g_backends, m, g_maglev != 0 ? "" : ", the agent's default sizing");
    std::printf("  store write (baseline)          %8.3f s\n", write);
    std::printf("  ServiceTable batch (baseline)   %8.3f s\n", table);
    std::printf("  end to end (first write -> all programmed)  %8.3f s  (goal < 3 s)\n", e2e);
    if (write > 0 && table > 0 && e2e > 0) {
      std::printf("  end to end / (write + table)    %8.2fx\n", e2e / (write + table));
      std::printf("  end to end / write              %8.2fx\n", e2e / write);
    } else {
      rc = 1;  // a benchmark failed
    }
  }
  Teardown();
  return rc;
}
