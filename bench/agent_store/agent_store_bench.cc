// agent_store_bench: throughput of the agent's two stores, each next to a baseline measured in the
// same run, and the load that issue 8's "10k services x 10 backends programmed in < 3 s" starts
// with (writing them, and a typed watch decoding all of them).
//
//   Baseline/DurableAppend      append a 350-byte record to a file + fdatasync: the floor of any
//                               durable write on this disk (what one embedded Put must pay)
//   Baseline/DecodeServiceJson  protobuf JSON parse + validation of a Service value in memory (what
//                               a typed list pays per object even with a free store)
//   Put/<store>[/threads:N]     one Service value per Put (etcd also with 4 client threads)
//   Apply100/<store>            batches of 100 puts (one revision each; etcd: one Txn)
//   ListTyped/<store>           ListObjects<Service> over 10k services (items = objects)
//   Watch/<store>               1000 puts in batches of 100, until a watch has delivered them all
//   Load/<store>                N services + N endpoints (10 backends each) written by 4 threads
//                               in batches of 100; time until typed watches decoded all 2N
// After the runs a summary prints every rate as a ratio to its baseline. The binary checks what it
// measures (counts of listed and watched objects) and exits 1 when something is wrong.
//
// Flags (before the Google Benchmark ones): --services=N (default 10000), --no-etcd.
// etcd is Debian's /usr/bin/etcd, started on 127.0.0.1 in a temporary directory and stopped at
// the end; the embedded store lives in the same temporary directory.
#include <benchmark/benchmark.h>
#include <fcntl.h>
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
#include <thread>
#include <vector>

#include "cninet/agent/embedded_store.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/state.h"
#include "common/bench_flags.h"
#include "common/bench_main.h"
#include "testing/etcd_server.h"

namespace {

using cninet::agent::EventType;
using cninet::agent::ObjectUpdate;
using cninet::agent::Op;
using cninet::agent::Store;
namespace v1 = cninet::v1;
namespace keys = cninet::agent::keys;

int g_services = 10000;
std::string g_dir;
std::unique_ptr<cninet::testing::EtcdServer> g_etcd;
std::map<std::string, std::unique_ptr<Store>> g_stores;  // "Embedded", "Etcd".
std::atomic<bool> g_failed{false};

void Fail(const std::string& what) {
  std::fprintf(stderr, "agent_store_bench: %s\n", what.c_str());
  g_failed = true;
}

v1::Service MakeService(int i) {
  v1::Service svc;
  svc.set_namespace_("bench");
  svc.set_name("svc-" + std::to_string(i));
  svc.set_type(v1::Service::NODE_PORT);
  svc.set_cluster_ip("10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
  auto* http = svc.add_ports();
  http->set_name("http");
  http->set_protocol(v1::TCP);
  http->set_port(80);
  http->set_node_port(30000 + i % 2767);
  auto* metrics = svc.add_ports();
  metrics->set_name("metrics");
  metrics->set_protocol(v1::TCP);
  metrics->set_port(9100);
  (*svc.mutable_labels())["app"] = "svc-" + std::to_string(i);
  return svc;
}

v1::Endpoints MakeEndpoints(int i) {
  v1::Endpoints eps;
  eps.set_namespace_("bench");
  eps.set_name("svc-" + std::to_string(i));
  auto* port = eps.add_ports();
  port->set_port_name("http");
  port->set_protocol(v1::TCP);
  for (int b = 0; b < 10; ++b) {
    auto* backend = port->add_backends();
    int host = i * 10 + b;
    backend->set_ip("10.244." + std::to_string(host / 250 % 256) + "." +
                    std::to_string(host % 250 + 1));
    backend->set_port(8080);
    backend->set_node("node-" + std::to_string(b % 3));
  }
  return eps;
}

std::string Json(const google::protobuf::Message& message) {
  auto json = cninet::agent::EncodeJson(message);
  if (!json.ok()) Fail(json.status().ToString());
  return json.ok() ? *json : std::string();
}

Store* GetStore(const std::string& name) {
  auto it = g_stores.find(name);
  return it == g_stores.end() ? nullptr : it->second.get();
}

void BM_DurableAppend(benchmark::State& state) {
  std::string path = g_dir + "/append-baseline";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    state.SkipWithError("open");
    return;
  }
  std::string record(350, 'r');
  for (auto _ : state) {
    if (write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size()) ||
        fdatasync(fd) != 0) {
      state.SkipWithError("write");
      break;
    }
  }
  close(fd);
  unlink(path.c_str());
  state.SetItemsProcessed(state.iterations());
}

void BM_DecodeServiceJson(benchmark::State& state) {
  std::string value = Json(MakeService(7));
  std::string key = keys::Service("bench", "svc-7");
  v1::Service svc;
  for (auto _ : state) {
    if (!cninet::agent::DecodeObject(cninet::agent::ObjectKind::kService, key, value, &svc).ok()) {
      state.SkipWithError("decode");
      break;
    }
    benchmark::DoNotOptimize(svc);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Put(benchmark::State& state, const std::string& name) {
  Store* store = GetStore(name);
  if (store == nullptr) return state.SkipWithError("store not available");
  std::string value = Json(MakeService(1));
  std::string prefix = "/bench/put/" + std::to_string(state.thread_index()) + "/";
  int i = 0;
  for (auto _ : state) {
    if (!store->Put(prefix + std::to_string(i++ % 1000), value).ok()) {
      state.SkipWithError("put failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Apply100(benchmark::State& state, const std::string& name) {
  Store* store = GetStore(name);
  if (store == nullptr) return state.SkipWithError("store not available");
  std::string value = Json(MakeService(1));
  std::vector<Op> ops;
  for (int i = 0; i < 100; ++i)
    ops.push_back({Op::Kind::kPut, "/bench/apply/" + std::to_string(i), value, 0});
  for (auto _ : state) {
    if (!store->Apply(ops).ok()) {
      state.SkipWithError("apply failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * 100);
}

// Writes g_services services (once per store) for the list benchmark.
bool Preload(Store* store) {
  auto existing = store->List("/cninet/v1/services/bench/");
  if (existing.ok() && existing->kvs.size() >= static_cast<size_t>(g_services)) return true;
  std::vector<Op> ops;
  for (int i = 0; i < g_services; ++i) {
    v1::Service svc = MakeService(i);
    ops.push_back({Op::Kind::kPut, keys::Service("bench", svc.name()), Json(svc), 0});
    if (ops.size() == 100 || i == g_services - 1) {
      if (!store->Apply(ops).ok()) return false;
      ops.clear();
    }
  }
  return true;
}

void BM_ListTyped(benchmark::State& state, const std::string& name) {
  Store* store = GetStore(name);
  if (store == nullptr) return state.SkipWithError("store not available");
  if (!Preload(store)) return state.SkipWithError("preload failed");
  for (auto _ : state) {
    auto list = cninet::agent::ListObjects<v1::Service>(*store, "/cninet/v1/services/bench/");
    if (!list.ok() || list->items.size() < static_cast<size_t>(g_services) ||
        !list->errors.empty()) {
      Fail(name + ": typed list returned " +
           (list.ok() ? std::to_string(list->items.size()) : list.status().ToString()));
      state.SkipWithError("list");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * g_services);
}

// Counts delivered events per watch.
struct Counter {
  std::mutex mu;
  std::condition_variable cv;
  int64_t events = 0;
  void Add(int64_t n) {
    std::lock_guard<std::mutex> lock(mu);
    events += n;
    cv.notify_all();
  }
  bool WaitFor(int64_t n, std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return events >= n; });
  }
};

void BM_Watch(benchmark::State& state, const std::string& name) {
  Store* store = GetStore(name);
  if (store == nullptr) return state.SkipWithError("store not available");
  Counter counter;
  auto watch = store->Watch("/bench/watch/", 0, [&](const cninet::agent::WatchUpdate& update) {
    if (!update.reset) counter.Add(static_cast<int64_t>(update.events.size()));
  });
  if (!watch.ok()) return state.SkipWithError("watch");
  std::string value = Json(MakeService(1));
  int64_t expected = 0;
  for (auto _ : state) {
    for (int batch = 0; batch < 10; ++batch) {
      std::vector<Op> ops;
      for (int i = 0; i < 100; ++i) {
        ops.push_back(
            {Op::Kind::kPut, "/bench/watch/" + std::to_string(batch * 100 + i), value, 0});
      }
      if (!store->Apply(ops).ok()) return state.SkipWithError("apply");
    }
    expected += 1000;
    if (!counter.WaitFor(expected, std::chrono::seconds(60))) {
      Fail(name + ": watch did not deliver every event");
      return state.SkipWithError("watch stalled");
    }
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}

void BM_Load(benchmark::State& state, const std::string& name) {
  Store* store = GetStore(name);
  if (store == nullptr) return state.SkipWithError("store not available");
  // Prepared outside the timed part: the values, in batches of 50 services + 50 endpoints, in
  // namespace "load" (the typed list benchmark uses "bench").
  std::vector<std::vector<Op>> batches;
  for (int i = 0; i < g_services; i += 50) {
    std::vector<Op> ops;
    for (int j = i; j < std::min(i + 50, g_services); ++j) {
      v1::Service svc = MakeService(j);
      svc.set_namespace_("load");
      v1::Endpoints eps = MakeEndpoints(j);
      eps.set_namespace_("load");
      ops.push_back({Op::Kind::kPut, keys::Service("load", svc.name()), Json(svc), 0});
      ops.push_back({Op::Kind::kPut, keys::Endpoints("load", eps.name()), Json(eps), 0});
    }
    batches.push_back(std::move(ops));
  }
  for (auto _ : state) {
    Counter services, endpoints;
    std::atomic<int64_t> errors{0};
    auto svc_watch = cninet::agent::WatchObjects<v1::Service>(
        *store, 0,
        [&](const ObjectUpdate<v1::Service>& u) {
          errors += static_cast<int64_t>(u.errors.size());
          services.Add(static_cast<int64_t>(u.events.size()));
        },
        keys::Service("load", ""));
    auto eps_watch = cninet::agent::WatchObjects<v1::Endpoints>(
        *store, 0,
        [&](const ObjectUpdate<v1::Endpoints>& u) {
          errors += static_cast<int64_t>(u.errors.size());
          endpoints.Add(static_cast<int64_t>(u.events.size()));
        },
        keys::Endpoints("load", ""));
    if (!svc_watch.ok() || !eps_watch.ok()) return state.SkipWithError("watch");
    auto start = std::chrono::steady_clock::now();
    std::atomic<size_t> next{0};
    std::atomic<bool> write_failed{false};
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
      writers.emplace_back([&] {
        for (size_t b = next++; b < batches.size(); b = next++) {
          if (!store->Apply(batches[b]).ok()) write_failed = true;
        }
      });
    }
    for (auto& w : writers) w.join();
    auto written = std::chrono::steady_clock::now();
    bool complete = services.WaitFor(g_services, std::chrono::seconds(120)) &&
                    endpoints.WaitFor(g_services, std::chrono::seconds(120));
    auto done = std::chrono::steady_clock::now();
    if (write_failed || !complete || errors > 0) {
      Fail(name + ": load incomplete (write failed " + std::to_string(write_failed.load()) +
           ", decode errors " + std::to_string(errors.load()) + ")");
      return state.SkipWithError("load");
    }
    state.SetIterationTime(std::chrono::duration<double>(done - start).count());
    state.counters["write_s"] = std::chrono::duration<double>(written - start).count();
    state.counters["decoded_s"] = std::chrono::duration<double>(done - start).count();
  }
  state.SetItemsProcessed(state.iterations() * 2 * g_services);
}

// Keeps every run's items/s, then prints the ratios.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const std::string name = Normalize(run.benchmark_name());
      auto it = run.counters.find("items_per_second");
      if (it != run.counters.end()) rates_[name] = it->second.value;
      auto decoded = run.counters.find("decoded_s");
      if (decoded != run.counters.end()) load_s_[name] = decoded->second.value;
    }
  }

  void PrintSummary() const {
    std::printf("\nSummary (ratios to baselines measured in this run)\n");
    Ratio("Put/Embedded", "Baseline/DurableAppend");
    Ratio("Put/Etcd", "Baseline/DurableAppend");
    Ratio("Put/Etcd/threads:4", "Baseline/DurableAppend");
    Ratio("Apply100/Embedded", "Baseline/DurableAppend");
    Ratio("Apply100/Etcd", "Baseline/DurableAppend");
    Ratio("ListTyped/Embedded", "Baseline/DecodeServiceJson");
    Ratio("ListTyped/Etcd", "Baseline/DecodeServiceJson");
    Ratio("Watch/Embedded", "Apply100/Embedded");
    Ratio("Watch/Etcd", "Apply100/Etcd");
    Ratio("Put/Etcd", "Put/Embedded");
    Ratio("ListTyped/Etcd", "ListTyped/Embedded");
    for (const auto& [name, seconds] : load_s_) {
      std::printf(
          "  %-28s %d services + %d endpoints (10 backends) written and decoded in %.2f s\n",
          name.c_str(), g_services, g_services, seconds);
    }
  }

 private:
  void Ratio(const std::string& name, const std::string& base) const {
    auto a = Find(name), b = Find(base);
    if (a < 0 || b <= 0) return;
    std::printf("  %-28s %12.0f items/s = %8.3f x %s (%.0f/s)\n", name.c_str(), a, a / b,
                base.c_str(), b);
  }
  double Find(const std::string& name) const {
    auto it = rates_.find(name);
    return it == rates_.end() ? -1 : it->second;
  }
  // "Put/Etcd/real_time/threads:4" -> "Put/Etcd/threads:4".
  static std::string Normalize(const std::string& name) {
    std::string out;
    size_t start = 0;
    while (start <= name.size()) {
      size_t end = name.find('/', start);
      if (end == std::string::npos) end = name.size();
      std::string part = name.substr(start, end - start);
      if (part != "real_time" && part != "manual_time" && part.rfind("iterations:", 0) != 0) {
        out += (out.empty() ? "" : "/") + part;
      }
      start = end + 1;
    }
    return out;
  }

  std::map<std::string, double> rates_;
  std::map<std::string, double> load_s_;
};

}  // namespace

int main(int argc, char** argv) {
  bool with_etcd = true;
  std::vector<char*> args = cninet::bench::SplitArgs(argc, argv, [&](const char* arg) {
    std::string v;
    if (cninet::bench::ParseFlag(arg, "--services", &v)) {
      g_services = std::max(100, std::atoi(v.c_str()));
    } else if (std::strcmp(arg, "--no-etcd") == 0) {
      with_etcd = false;
    } else {
      return false;
    }
    return true;
  });
  char tmpl[] = "/tmp/cninet-store-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  g_dir = tmpl;
  int rc = 0;
  {
    cninet::agent::EmbeddedStoreOptions embedded;
    embedded.dir = g_dir + "/embedded";
    auto store = cninet::agent::OpenEmbeddedStore(embedded);
    if (!store.ok()) {
      std::fprintf(stderr, "embedded store: %s\n", store.status().ToString().c_str());
      rc = 1;
    } else {
      g_stores["Embedded"] = *std::move(store);
    }
    if (with_etcd && rc == 0) {
      cninet::testing::EtcdServerOptions options;
      options.data_dir = g_dir + "/etcd";
      auto server = cninet::testing::EtcdServer::Start(options);
      if (!server.ok()) {
        std::fprintf(stderr, "etcd: %s\n", server.status().ToString().c_str());
        rc = 1;
      } else {
        g_etcd = *std::move(server);
        cninet::agent::EtcdStoreOptions etcd;
        etcd.endpoints = {g_etcd->url()};
        auto client = cninet::agent::OpenEtcdStore(etcd);
        if (!client.ok()) {
          std::fprintf(stderr, "etcd store: %s\n", client.status().ToString().c_str());
          rc = 1;
        } else {
          g_stores["Etcd"] = *std::move(client);
        }
      }
    }
    if (rc == 0) {
      benchmark::RegisterBenchmark("Baseline/DurableAppend", BM_DurableAppend)->UseRealTime();
      benchmark::RegisterBenchmark("Baseline/DecodeServiceJson", BM_DecodeServiceJson)
          ->UseRealTime();
      for (const auto& entry : g_stores) {
        const std::string& name = entry.first;
        benchmark::RegisterBenchmark(("Put/" + name).c_str(), BM_Put, name)->UseRealTime();
        if (name == "Etcd") {
          benchmark::RegisterBenchmark(("Put/" + name).c_str(), BM_Put, name)
              ->Threads(4)
              ->UseRealTime();
        }
        benchmark::RegisterBenchmark(("Apply100/" + name).c_str(), BM_Apply100, name)
            ->UseRealTime();
        benchmark::RegisterBenchmark(("ListTyped/" + name).c_str(), BM_ListTyped, name)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("Watch/" + name).c_str(), BM_Watch, name)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("Load/" + name).c_str(), BM_Load, name)
            ->Iterations(1)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
      }
      RatioReporter reporter;
      cninet::bench::RunBenchmarks(args, &reporter);
      reporter.PrintSummary();
      benchmark::Shutdown();
    }
    g_stores.clear();
    g_etcd.reset();
  }
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
  if (g_failed) rc = 1;
  return rc;
}
