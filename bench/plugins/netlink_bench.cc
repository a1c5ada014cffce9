// netlink_bench: costs of the netlink component's building blocks, against the real kernel, in
// namespaces this binary creates (needs root). Each benchmark reports per-operation times and,
// where there is a natural baseline, the ratio to it measured in the same run:
//   * Netns::Run (enter/restore on the calling thread) vs Netns::RunInThread (new thread);
//   * a veth pair created into another namespace and deleted (the kernel's part of every pod
//     ADD+DEL: the floor under cninet-ptp and the reference ptp alike), for an idle pair and for
//     one configured like a pod (up, addresses, routes);
//   * GetLink and a route add+delete round trip (what most plugin steps cost).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "cninet/netlink/netlink.h"

namespace nl = cninet::netlink;

namespace {

// Two namespaces for the whole run, removed at exit.
struct Env {
  std::unique_ptr<nl::NamedNetns> node, pod;
  std::unique_ptr<nl::Handle> h;
  static Env& Get();
};

Env& Env::Get() {
  static Env* env = [] {
    auto* e = new Env();
    std::string suffix = std::to_string(getpid());
    auto node = nl::NamedNetns::Create("cnbn" + suffix);
    auto pod = nl::NamedNetns::Create("cnbp" + suffix);
    if (!node.ok() || !pod.ok()) {
      std::cerr << "cannot create namespaces (root needed): "
                << (node.ok() ? pod.status() : node.status()) << "\n";
      std::exit(1);
    }
    e->node = std::make_unique<nl::NamedNetns>(std::move(*node));
    e->pod = std::make_unique<nl::NamedNetns>(std::move(*pod));
    auto h = nl::Handle::OpenIn(e->node->ns());
    if (!h.ok()) std::exit(1);
    e->h = std::make_unique<nl::Handle>(std::move(*h));
    std::atexit([] {
      Env& self = Get();
      self.h.reset();
      self.node.reset();
      self.pod.reset();
    });
    return e;
  }();
  return *env;
}

Env& Get() { return Env::Get(); }

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Netns::Run vs RunInThread, alternated within each iteration so both see the same load.
void BM_NetnsRunVsThread(benchmark::State& state) {
  Env& env = Get();
  double run = 0, thread = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    absl::Status a = env.pod->ns().Run([] { return absl::OkStatus(); });
    auto t1 = std::chrono::steady_clock::now();
    absl::Status b = env.pod->ns().RunInThread([] { return absl::OkStatus(); });
    auto t2 = std::chrono::steady_clock::now();
    if (!a.ok() || !b.ok()) state.SkipWithError("setns failed");
    run += Seconds(t0, t1);
    thread += Seconds(t1, t2);
  }
  state.counters["run_us"] = benchmark::Counter(run * 1e6 / state.iterations());
  state.counters["thread_us"] = benchmark::Counter(thread * 1e6 / state.iterations());
  state.counters["run/thread"] = benchmark::Counter(run / thread);
}
BENCHMARK(BM_NetnsRunVsThread)->UseRealTime();

// Create a veth into the pod namespace and delete it: `configured` also brings both ends up
// with an address and a route each, as a pod attachment has them.
void VethCycle(benchmark::State& state, bool configured) {
  Env& env = Get();
  auto pod = nl::Handle::OpenIn(env.pod->ns());
  if (!pod.ok()) return state.SkipWithError("pod handle");
  double create = 0, remove = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    auto v = env.h->CreateVeth({.name = "bvh0", .peer_name = "eth0", .peer_netns = &env.pod->ns()});
    if (!v.ok()) return state.SkipWithError(std::string(v.status().message()).c_str());
    if (configured) {
      auto eth0 = pod->GetLinkByIndex(v->peer_index);
      bool ok =
          eth0.ok() && env.h->SetLinkUp(v->index).ok() && pod->SetLinkUp(eth0->index).ok() &&
          pod->AddAddress(eth0->index, *cninet::cni::IPPrefix::Parse("10.80.0.2/24")).ok() &&
          env.h->AddAddress(v->index, *cninet::cni::IPPrefix::Parse("10.80.0.1/32")).ok() &&
          env.h->AddRoute({.dst = *cninet::cni::IPPrefix::Parse("10.80.0.2/32"), .oif = v->index})
              .ok();
      if (!ok) return state.SkipWithError("configuring the veth failed");
    }
    auto t1 = std::chrono::steady_clock::now();
    if (!env.h->DeleteLink(v->index).ok()) return state.SkipWithError("delete failed");
    auto t2 = std::chrono::steady_clock::now();
    create += Seconds(t0, t1);
    remove += Seconds(t1, t2);
  }
  state.counters["create_us"] = benchmark::Counter(create * 1e6 / state.iterations());
  state.counters["delete_us"] = benchmark::Counter(remove * 1e6 / state.iterations());
  state.counters["delete/create"] = benchmark::Counter(remove / create);
}
void BM_VethCycleIdle(benchmark::State& state) { VethCycle(state, false); }
void BM_VethCycleConfigured(benchmark::State& state) { VethCycle(state, true); }
BENCHMARK(BM_VethCycleIdle)->UseRealTime()->Iterations(30);
BENCHMARK(BM_VethCycleConfigured)->UseRealTime()->Iterations(30);

// GetLink (one request/reply) vs a route add+delete (two requests with kernel work).
void BM_GetLinkVsRouteCycle(benchmark::State& state) {
  Env& env = Get();
  auto lo = env.h->GetLink("lo");
  if (!lo.ok() || !env.h->SetLinkUp(lo->index).ok()) return state.SkipWithError("lo");
  nl::Route r{.dst = *cninet::cni::IPPrefix::Parse("10.81.0.0/24"), .oif = lo->index};
  double get = 0, route = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    auto l = env.h->GetLink("lo");
    auto t1 = std::chrono::steady_clock::now();
    bool ok = l.ok() && env.h->AddRoute(r).ok() && env.h->DeleteRoute(r).ok();
    auto t2 = std::chrono::steady_clock::now();
    if (!ok) return state.SkipWithError("netlink failed");
    get += Seconds(t0, t1);
    route += Seconds(t1, t2);
  }
  state.counters["getlink_us"] = benchmark::Counter(get * 1e6 / state.iterations());
  state.counters["route_cycle_us"] = benchmark::Counter(route * 1e6 / state.iterations());
  state.counters["route/getlink"] = benchmark::Counter(route / get);
}
BENCHMARK(BM_GetLinkVsRouteCycle)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
