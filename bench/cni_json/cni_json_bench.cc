// cni_json_bench: what JSON handling costs a runtime and a plugin per CNI call.
//   ConfList/ParseDump        NetConfList::Parse + dump of the parsed list
//   ConfList/ParseBuild       NetConfList::Parse + Runtime::BuildPluginConfig + dump for each of
//                             the 3 plugins (what a runtime does for one ADD)
//   NetConf/ParseRequest      NetConf::Parse of a chained plugin's request (with prevResult)
//   Result/ParseEmit/1.1.0    Result::Parse + ToString("1.1.0") of a 1.1.0 result
//   Result/ParseEmit/0.4.0    same, converting down to 0.4.0
// Time is ns/op of our path. Every iteration also runs the baseline - nlohmann::json::parse +
// dump() of the same bytes - so `baseline_ns` and `ratio_vs_nlohmann` (ours / baseline) come
// from the same run, interleaved, on the same input. Both are measured in thread CPU time
// (CLOCK_THREAD_CPUTIME_ID), so other processes on a shared machine do not skew them.
#include <benchmark/benchmark.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

#include "cninet/cni/conf.h"
#include "cninet/cni/runtime.h"
#include "cninet/cni/types.h"
#include "nlohmann/json.hpp"

namespace {

using cninet::cni::NetConf;
using cninet::cni::NetConfList;
using cninet::cni::Result;

// A typical node's network: bridge + host-local dual stack, portmap, bandwidth.
constexpr char kConfList[] = R"({
  "cniVersion": "1.1.0",
  "cniVersions": ["0.4.0", "1.0.0", "1.1.0"],
  "name": "k8s-pod-network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "mtu": 1450,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1"}],
                   [{"subnet": "fd00:10:244:1::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        "dataDir": "/var/lib/cni/networks"
      },
      "dns": {
        "nameservers": ["10.96.0.10"],
        "search": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": ["ndots:5"]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true,
     "externalSetMarkChain": "KUBE-MARK-MASQ"},
    {"type": "bandwidth", "capabilities": {"bandwidth": true}}
  ]
})";

// The bridge plugin's result for one pod, with 1.1.0 fields.
constexpr char kResult[] = R"({
  "cniVersion": "1.1.0",
  "interfaces": [
    {"name": "cni0", "mac": "3a:5c:1e:90:12:7f", "mtu": 1450},
    {"name": "veth8a3c1f2e", "mac": "6e:21:9b:44:0c:d1", "mtu": 1450},
    {"name": "eth0", "mac": "0a:58:0a:f4:01:07", "mtu": 1450,
     "sandbox": "/var/run/netns/cni-5f0c8a2e-3b1d-4c7e-9a6f-2d8e1b7c4a90"}
  ],
  "ips": [
    {"address": "10.244.1.7/24", "gateway": "10.244.1.1", "interface": 2},
    {"address": "fd00:10:244:1::7/64", "gateway": "fd00:10:244:1::1", "interface": 2}
  ],
  "routes": [
    {"dst": "0.0.0.0/0", "gw": "10.244.1.1", "mtu": 1450, "advmss": 1410, "priority": 100},
    {"dst": "::/0", "gw": "fd00:10:244:1::1", "priority": 100, "table": 254, "scope": 0}
  ],
  "dns": {
    "nameservers": ["10.96.0.10"],
    "search": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"],
    "options": ["ndots:5"]
  }
})";

std::string RequestText() {
  nlohmann::json req = nlohmann::json::parse(kConfList)["plugins"][1];
  req["cniVersion"] = "1.1.0";
  req["name"] = "k8s-pod-network";
  req.erase("capabilities");
  req["runtimeConfig"] = {
      {"portMappings", {{{"hostPort", 8080}, {"containerPort", 80}, {"protocol", "tcp"}}}}};
  req["prevResult"] = nlohmann::json::parse(kResult);
  return req.dump();
}

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "cni_json_bench: %s\n", what);
  std::exit(1);
}

// The baseline: generic JSON parse + dump of the same bytes.
size_t Baseline(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text);
  std::string out = j.dump();
  benchmark::DoNotOptimize(out.data());
  return out.size();
}

// CPU time consumed by this thread, in ns.
double ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Runs `ours` and the baseline alternately; reports ours as the iteration time.
void Measure(benchmark::State& state, const std::string& text,
             const std::function<size_t()>& ours) {
  double ours_ns = 0;
  double base_ns = 0;
  for (auto _ : state) {
    double t0 = ThreadCpuNs();
    size_t n = ours();
    double t1 = ThreadCpuNs();
    size_t m = Baseline(text);
    double t2 = ThreadCpuNs();
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(m);
    ours_ns += t1 - t0;
    base_ns += t2 - t1;
    state.SetIterationTime((t1 - t0) * 1e-9);
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["baseline_ns"] = benchmark::Counter(base_ns / iters);
  state.counters["ratio_vs_nlohmann"] = benchmark::Counter(base_ns > 0 ? ours_ns / base_ns : 0);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

void BM_ConfListParseDump(benchmark::State& state) {
  const std::string text = kConfList;
  Measure(state, text, [&]() -> size_t {
    absl::StatusOr<NetConfList> list = NetConfList::Parse(text);
    if (!list.ok() || list->plugins.size() != 3) Die("conflist does not parse");
    return list->raw.dump().size();
  });
}
BENCHMARK(BM_ConfListParseDump)->Name("ConfList/ParseDump")->UseManualTime();

void BM_ConfListParseBuild(benchmark::State& state) {
  const std::string text = kConfList;
  cninet::cni::RuntimeConf rt;
  rt.container_id = "5f0c8a2e3b1d4c7e9a6f2d8e1b7c4a90";
  rt.netns = "/var/run/netns/cni-5f0c8a2e-3b1d-4c7e-9a6f-2d8e1b7c4a90";
  rt.args = {{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "web-0"}};
  rt.capability_args = {
      {"portMappings", {{{"hostPort", 8080}, {"containerPort", 80}, {"protocol", "tcp"}}}},
      {"bandwidth", {{"ingressRate", 1000000}, {"egressRate", 1000000}}}};
  absl::StatusOr<Result> prev = Result::Parse(kResult);
  if (!prev.ok()) Die("result does not parse");
  Measure(state, text, [&]() -> size_t {
    absl::StatusOr<NetConfList> list = NetConfList::Parse(text);
    if (!list.ok()) Die("conflist does not parse");
    absl::StatusOr<std::string> version = list->SelectedVersion();
    if (!version.ok()) Die("no version");
    size_t total = 0;
    for (size_t i = 0; i < list->plugins.size(); ++i) {
      std::optional<Result> p;
      if (i > 0) p = *prev;
      absl::StatusOr<nlohmann::json> req = cninet::cni::Runtime::BuildPluginConfig(
          *list, i, *version, p, rt, cninet::cni::Command::kAdd);
      if (!req.ok()) Die("BuildPluginConfig failed");
      total += req->dump().size();
    }
    return total;
  });
}
BENCHMARK(BM_ConfListParseBuild)->Name("ConfList/ParseBuild")->UseManualTime();

void BM_NetConfParseRequest(benchmark::State& state) {
  const std::string text = RequestText();
  Measure(state, text, [&]() -> size_t {
    absl::StatusOr<NetConf> conf = NetConf::Parse(text);
    if (!conf.ok() || !conf->prev_result.has_value()) Die("request does not parse");
    return conf->prev_result->ips.size();
  });
}
BENCHMARK(BM_NetConfParseRequest)->Name("NetConf/ParseRequest")->UseManualTime();

void BM_ResultParseEmit(benchmark::State& state, const char* version) {
  const std::string text = kResult;
  Measure(state, text, [&]() -> size_t {
    absl::StatusOr<Result> r = Result::Parse(text);
    if (!r.ok()) Die("result does not parse");
    absl::StatusOr<std::string> out = r->ToString(version);
    if (!out.ok()) Die("result does not emit");
    return out->size();
  });
}
BENCHMARK_CAPTURE(BM_ResultParseEmit, v110, "1.1.0")
    ->Name("Result/ParseEmit/1.1.0")
    ->UseManualTime();
BENCHMARK_CAPTURE(BM_ResultParseEmit, v040, "0.4.0")
    ->Name("Result/ParseEmit/0.4.0")
    ->UseManualTime();

// Our outputs are what they must be, checked once before timing anything.
void CheckOutputs() {
  absl::StatusOr<Result> r = Result::Parse(kResult);
  if (!r.ok()) Die("result does not parse");
  absl::StatusOr<std::string> same = r->ToString("1.1.0");
  if (!same.ok() || nlohmann::json::parse(*same) != nlohmann::json::parse(kResult)) {
    Die("1.1.0 result does not round-trip");
  }
  absl::StatusOr<nlohmann::json> down = r->ToJson("0.4.0");
  if (!down.ok() || (*down)["ips"][1]["version"] != "6" || (*down)["routes"][0].contains("mtu")) {
    Die("0.4.0 conversion is wrong");
  }
  absl::StatusOr<NetConfList> list = NetConfList::Parse(kConfList);
  if (!list.ok() || list->raw != nlohmann::json::parse(kConfList))
    Die("conflist does not round-trip");
}

}  // namespace

int main(int argc, char** argv) {
  CheckOutputs();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
