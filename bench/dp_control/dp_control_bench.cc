// dp_control_bench: control-plane costs of the datapath, each with a baseline measured in the same
// iterations (ratio = ours / baseline):
//   Maglev/M:<m>/N:<n>          BuildMaglevTable for n backends, table size m; baseline: filling
//                               the same m-slot table round-robin (the table write alone).
//   Program/10k_x10/<algo>      ServiceTable::UpsertBatch of 10,000 services x 10 backends into an
//                               empty datapath (fresh per iteration). Baseline: batch writes of
//                               the same frontends and backends into the datapath's own service
//                               and backend maps, without load-balancing tables. Goal (issue 16),
//                               at the default table size (Maglev, automatic M): <= 1 s. The other
//                               algorithms/sizes are shown for comparison (M=16381 was the default
//                               before automatic sizing).
//   Update/one_backend/10k      ServiceTable::Upsert of one service whose backend set changes by
//                               one backend (same count: the table is rewritten in place), in a
//                               table of 10,000 services at the default size; baseline: one
//                               bpf_map_update of a backend entry. Goal (issue 16): <= 1 ms.
//   Update/resize/10k           the same with a table size change (explicit M 251 <-> 509): a fresh
//                               inner table swapped into cn_lb_tables, one RCU grace period.
// Extra flags (before the Google Benchmark ones):
//   --quick            smaller tables (1000 services) for the smoke test
//   --table_out=FILE   Markdown table of every case
// Progress goes to stderr. Needs root (BPF maps).
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cninet/base/strings.h"
#include "cninet/cni/ip.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "cninet/datapath/maglev.h"
#include "common/bench_flags.h"
#include "common/bench_main.h"

namespace cninet::bench {
namespace {

namespace dp = datapath;
using Clock = std::chrono::steady_clock;

struct Options {
  bool quick = false;
  std::string table_out;
};
Options g_opt;

template <typename... Args>
void Progress(const Args&... args) {
  std::string line = StrCat("[dp_control] ", args...);
  std::fprintf(stderr, "%s\n", line.c_str());
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Row {
  std::string name;
  double ours_s = 0;
  double base_s = 0;
  std::string unit_note;
  std::string goal;
};
std::vector<Row> g_rows;
int g_errors = 0;

// "<= 1 s: met" / "<= 1 s: MISSED", also printed to stderr.
std::string Goal(const std::string& what, double value_s, double goal_s, const std::string& label) {
  const bool met = value_s <= goal_s;
  std::string g = StrCat(label, ": ", met ? "met" : "MISSED");
  std::fprintf(stderr, "[dp_control] goal %s: %s\n", what.c_str(), g.c_str());
  return g;
}

// Marks the benchmark failed (and the binary's exit status).
void Fail(benchmark::State& state, const std::string& why) {
  ++g_errors;
  Progress("ERROR ", why);
  state.SkipWithError(why.c_str());
}
void Record(Row r) {
  for (auto& x : g_rows)
    if (x.name == r.name) {
      x = std::move(r);
      return;
    }
  g_rows.push_back(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// Maglev.

std::vector<std::string> BackendNames(uint32_t n) {
  std::vector<std::string> names;
  for (uint32_t i = 0; i < n; ++i)
    names.push_back(StrCat("10.244.", i / 250, ".", i % 250 + 2, ":8080"));
  return names;
}

void BM_Maglev(benchmark::State& state) {
  const auto m = static_cast<uint32_t>(state.range(0));
  const auto n = static_cast<uint32_t>(state.range(1));
  Progress("measuring Maglev M=", m, " N=", n);
  const std::vector<std::string> names = BackendNames(n);
  double ours = 0, base = 0;
  uint64_t checksum = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto table = dp::BuildMaglevTable(names, m);
    auto t1 = Clock::now();
    if (!table.ok() || table->size() != m) {
      Fail(state, "BuildMaglevTable failed");
      return;
    }
    // Baseline: the same table written round-robin.
    std::vector<uint32_t> rr(m);
    for (uint32_t i = 0, j = 0; i < m; ++i) {
      rr[i] = j;
      if (++j == n) j = 0;
    }
    benchmark::DoNotOptimize(rr.data());
    auto t2 = Clock::now();
    checksum += (*table)[m / 2] + rr[m / 3];
    ours += Seconds(t1 - t0);
    base += Seconds(t2 - t1);
    state.SetIterationTime(Seconds(t1 - t0));
  }
  benchmark::DoNotOptimize(checksum);
  const double it = static_cast<double>(state.iterations());
  state.counters["ms_per_table"] = ours / it * 1e3;
  state.counters["baseline_ms"] = base / it * 1e3;
  state.counters["ratio_vs_fill"] = base > 0 ? ours / base : 0;
  Record(Row{StrCat("Maglev table build, M=", m, ", N=", n), ours / it, base / it,
             "baseline: writing the M slots round-robin", ""});
}

// ---------------------------------------------------------------------------------------------
// ServiceTable programming.

dp::DatapathConfig ControlConfig(uint32_t services, uint32_t backends_per) {
  dp::DatapathConfig c;
  c.pin_maps = false;
  c.cluster_cidr = *cni::IPPrefix::Parse("10.244.0.0/16");
  c.node_addresses = {*cni::IPAddress::Parse("192.168.50.1")};
  c.map_sizes.services = std::max<uint32_t>(1024, services * 2);
  c.map_sizes.service_slots = std::max<uint32_t>(1024, services + 2);
  c.map_sizes.backends = std::max<uint32_t>(4096, services * (backends_per + 2));
  c.map_sizes.conntrack = 4096;
  c.map_sizes.nat = 4096;
  return c;
}

std::vector<dp::Service> MakeServices(uint32_t count, uint32_t backends_per, dp::LbAlgorithm algo,
                                      uint32_t maglev_size) {
  std::vector<dp::Service> out;
  out.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    dp::Service s;
    s.id = i + 1;
    s.frontends.push_back(dp::Frontend{cni::IPAddress::V4((10u << 24 | 96u << 16) + i + 1), 80,
                                       dp::Protocol::kTcp, dp::FrontendKind::kClusterIP});
    for (uint32_t b = 0; b < backends_per; ++b) {
      s.backends.push_back(dp::Backend{
          cni::IPAddress::V4((10u << 24 | 244u << 16) + ((i * backends_per + b) % 65000) + 2),
          8080});
    }
    s.algorithm = algo;
    s.maglev_size = maglev_size;
    out.push_back(std::move(s));
  }
  return out;
}

// Writes the frontends and backends of `svcs` with batch updates into `maps` (no LB tables).
absl::Status WriteRaw(dp::DatapathMaps& maps, const std::vector<dp::Service>& svcs) {
  std::vector<cn_svc_key> fk;
  std::vector<cn_svc_entry> fv;
  std::vector<uint32_t> bk;
  std::vector<cn_backend> bv;
  for (const auto& s : svcs) {
    for (const auto& f : s.frontends) {
      cn_svc_key k{};
      k.addr = dp::ToAbiAddr(f.address);
      k.port = htons(f.port);
      k.proto = static_cast<uint8_t>(f.protocol);
      cn_svc_entry e{};
      e.svc_id = s.id;
      fk.push_back(k);
      fv.push_back(e);
    }
    for (size_t b = 0; b < s.backends.size(); ++b) {
      bk.push_back(s.id << 12 | static_cast<uint32_t>(b + 1));
      cn_backend v{};
      v.addr = dp::ToAbiAddr(s.backends[b].address);
      v.port = htons(s.backends[b].port);
      bv.push_back(v);
    }
  }
  CNINET_RETURN_IF_ERROR(maps.services.UpdateBatch(fk, fv));
  return maps.backends.UpdateBatch(bk, bv);
}

void BM_Program(benchmark::State& state, dp::LbAlgorithm algo, uint32_t maglev_size) {
  const uint32_t count = g_opt.quick ? 1000 : 10000;
  const uint32_t per = 10;
  const std::string algo_name =
      algo == dp::LbAlgorithm::kRandom ? std::string("random")
      : maglev_size == dp::kMaglevAutoSize
          ? StrCat("maglev, default size: automatic M=", dp::MaglevSizeFor(per))
          : StrCat("maglev M=", maglev_size,
                   maglev_size == dp::kMaglevDefaultSize ? ", the default before automatic sizing"
                                                         : "");
  Progress("measuring UpsertBatch of ", count, " services x ", per, " backends (", algo_name, ")");
  const std::vector<dp::Service> svcs = MakeServices(count, per, algo, maglev_size);
  double ours = 0, base = 0;
  for (auto _ : state) {
    auto d = dp::Datapath::Create(ControlConfig(count, per));
    auto b = dp::Datapath::Create(ControlConfig(count, per));
    if (!d.ok() || !b.ok()) {
      Fail(state, "Datapath::Create failed");
      return;
    }
    auto t0 = Clock::now();
    absl::Status s = (*d)->services().UpsertBatch(svcs);
    auto t1 = Clock::now();
    absl::Status sb = WriteRaw(*(*b)->maps(), svcs);
    auto t2 = Clock::now();
    if (!s.ok() || !sb.ok()) {
      Fail(state, (s.ok() ? sb : s).ToString().c_str());
      return;
    }
    if ((*d)->services().List().size() != count) {
      Fail(state, "not every service was programmed");
      return;
    }
    ours += Seconds(t1 - t0);
    base += Seconds(t2 - t1);
    state.SetIterationTime(Seconds(t1 - t0));
  }
  const double it = static_cast<double>(state.iterations());
  state.counters["seconds"] = ours / it;
  state.counters["services_per_s"] = count / (ours / it);
  state.counters["baseline_s"] = base / it;
  state.counters["ratio_vs_raw_batch"] = base > 0 ? ours / base : 0;
  const std::string name =
      StrCat("Program ", count, " services x ", per, " backends (UpsertBatch, ", algo_name, ")");
  const bool goal_row =
      count == 10000 && algo == dp::LbAlgorithm::kMaglev && maglev_size == dp::kMaglevAutoSize;
  Record(Row{name, ours / it, base / it,
             "baseline: batch-writing the same frontends + backends, no LB tables",
             goal_row ? Goal(name, ours / it, 1.0, "≤ 1 s (was 11 s)") : ""});
}

// One service's update in a table of 10k services: `resize` alternates an explicit M between
// 251 and 509 (a fresh table swapped in), else the last backend is replaced (in place).
void BM_UpdateOne(benchmark::State& state, bool resize) {
  const uint32_t count = g_opt.quick ? 1000 : 10000;
  const uint32_t per = 10;
  Progress("measuring one ", resize ? "table-size change" : "backend change", " in a table of ",
           count, " services (setting up)");
  auto d = dp::Datapath::Create(ControlConfig(count, per));
  if (!d.ok()) {
    Fail(state, "Datapath::Create failed");
    return;
  }
  std::vector<dp::Service> svcs =
      MakeServices(count, per, dp::LbAlgorithm::kMaglev, resize ? 251 : dp::kMaglevAutoSize);
  if (!(*d)->services().UpsertBatch(svcs).ok()) {
    Fail(state, "initial UpsertBatch failed");
    return;
  }
  const dp::ServiceTable::Stats before = (*d)->services().stats();
  double ours = 0, base = 0;
  uint64_t n = 0;
  for (auto _ : state) {
    dp::Service& s = svcs[(n * 7919) % count];
    dp::Backend& last = s.backends.back();
    if (resize) {
      s.maglev_size = s.maglev_size == 251 ? 509 : 251;
    } else {
      // Swap the last backend for another address (and back on the next visit).
      last.address =
          cni::IPAddress::V4((10u << 24 | 245u << 16) + static_cast<uint32_t>(n % 60000));
    }
    auto t0 = Clock::now();
    absl::Status st = (*d)->services().Upsert(s);
    auto t1 = Clock::now();
    uint32_t key = 0xfffff000u | static_cast<uint32_t>(n & 0xfff);
    cn_backend v{};
    v.addr = dp::ToAbiAddr(last.address);
    absl::Status sb = (*d)->maps()->backends.Update(key, v);
    auto t2 = Clock::now();
    if (!st.ok() || !sb.ok()) {
      Fail(state, (st.ok() ? sb : st).ToString().c_str());
      return;
    }
    ++n;
    ours += Seconds(t1 - t0);
    base += Seconds(t2 - t1);
    state.SetIterationTime(Seconds(t1 - t0));
  }
  // The last update is what the datapath now holds.
  const dp::Service& probe = svcs[((n - 1) * 7919) % count];
  auto got = (*d)->services().Get(probe.id);
  if (!got.ok() || got->backends.size() != probe.backends.size() ||
      !std::is_permutation(got->backends.begin(), got->backends.end(), probe.backends.begin())) {
    Fail(state, "the updated service does not read back");
    return;
  }
  // The path taken: every update in place (no outer-map swap), or every one a swap.
  const dp::ServiceTable::Stats& after = (*d)->services().stats();
  const uint64_t in_place = after.tables_rewritten - before.tables_rewritten;
  const uint64_t swapped = after.tables_swapped - before.tables_swapped;
  if (resize ? swapped != n : (in_place != n || swapped != 0)) {
    Fail(state, StrCat("expected every update ", resize ? "swapped" : "in place", ", got ",
                       in_place, " in place and ", swapped, " swapped of ", n));
    return;
  }
  const double it = static_cast<double>(state.iterations());
  state.counters["ms_per_update"] = ours / it * 1e3;
  state.counters["baseline_us"] = base / it * 1e6;
  state.counters["ratio_vs_map_update"] = base > 0 ? ours / base : 0;
  if (!resize) {
    state.counters["slots_per_update"] =
        static_cast<double>(after.slots_rewritten - before.slots_rewritten) / it;
  }
  const std::string name =
      resize ? StrCat("Change one service's table size (M 251 <-> 509) in ", count,
                      " services (Upsert: fresh table + outer-map swap)")
             : StrCat("Update one backend of one service in ", count,
                      " services (Upsert, default size M=", dp::MaglevSizeFor(per),
                      ": rewritten in place)");
  Record(Row{name, ours / it, base / it, "baseline: one bpf_map_update of a backend entry",
             !resize && count == 10000 ? Goal(name, ours / it, 1e-3, "≤ 1 ms (was ~13 ms)") : ""});
}

std::string Human(double s) {
  char buf[64];
  if (s >= 1)
    std::snprintf(buf, sizeof(buf), "%.2f s", s);
  else if (s >= 1e-3)
    std::snprintf(buf, sizeof(buf), "%.2f ms", s * 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.1f us", s * 1e6);
  return buf;
}

void WriteTable(const std::string& path) {
  std::ofstream out(path);
  out << "| operation | cninet | baseline (same run) | ratio | baseline is | goal |\n"
         "|---|---:|---:|---:|---|---|\n";
  for (const auto& r : g_rows) {
    char ratio[32];
    std::snprintf(ratio, sizeof(ratio), "%.1f", r.base_s > 0 ? r.ours_s / r.base_s : 0);
    out << "| " << r.name << " | " << Human(r.ours_s) << " | " << Human(r.base_s) << " | " << ratio
        << " | " << r.unit_note << " | " << r.goal << " |\n";
  }
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
    } else if (ParseFlag(argv[i], "--table_out", &v)) {
      g_opt.table_out = v;
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "dp_control_bench needs root (BPF maps)\n");
    return 1;
  }
  if (!InitBenchmarks(rest)) return 2;
  for (int64_t m : {1021, 16381, 65521}) {
    for (int64_t n : {10, 100, 1000}) {
      benchmark::RegisterBenchmark("Maglev", BM_Maglev)
          ->Args({m, n})
          ->ArgNames({"M", "N"})
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  namespace dp = cninet::datapath;
  const std::string prog = g_opt.quick ? "Program/1k_x10/" : "Program/10k_x10/";
  const std::string upd = g_opt.quick ? "Update/one_backend/1k" : "Update/one_backend/10k";
  benchmark::RegisterBenchmark((prog + "maglev_default").c_str(), BM_Program,
                               dp::LbAlgorithm::kMaglev, dp::kMaglevAutoSize)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(g_opt.quick ? 1 : 3);
  benchmark::RegisterBenchmark((prog + "maglev251").c_str(), BM_Program, dp::LbAlgorithm::kMaglev,
                               251u)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(g_opt.quick ? 1 : 3);
  benchmark::RegisterBenchmark((prog + "random").c_str(), BM_Program, dp::LbAlgorithm::kRandom, 0u)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(g_opt.quick ? 1 : 3);
  if (!g_opt.quick) {
    benchmark::RegisterBenchmark((prog + "maglev16381").c_str(), BM_Program,
                                 dp::LbAlgorithm::kMaglev, 16381u)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1);
  }
  benchmark::RegisterBenchmark(upd.c_str(), BM_UpdateOne, false)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(g_opt.quick ? 5 : 200);
  benchmark::RegisterBenchmark(g_opt.quick ? "Update/resize/1k" : "Update/resize/10k", BM_UpdateOne,
                               true)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->Iterations(g_opt.quick ? 5 : 20);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (!g_opt.table_out.empty()) WriteTable(g_opt.table_out);
  if (g_errors) std::fprintf(stderr, "[dp_control] %d case(s) failed\n", g_errors);
  return g_errors ? 1 : 0;
}
