// ipam_bench: allocations per second of the in-process allocator on a /16, with the memory
// store and with the host-local compatible DiskStore (fsync on and off), each next to a baseline
// measured in the same iterations (tmpfile:0 is DiskStore's named-temporary-file path):
//   * memory: inserting the same address into a std::set (the bare bookkeeping of a lease);
//   * disk: creating (O_EXCL), writing, optionally fsync'ing and unlinking one small file (the
//     bare filesystem work of a lease), in the same filesystem.
// Every benchmark reports its time per operation, allocations/s and `x_baseline`, the ratio of
// its time to the baseline's; no number is asserted anywhere.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "cninet/base/strings.h"
#include "cninet/ipam/ipam.h"

namespace {

using cninet::cni::IPAddress;
using cninet::ipam::Allocator;
using cninet::ipam::DiskStore;
using cninet::ipam::MemoryStore;
using cninet::ipam::Range;
using cninet::ipam::RangeSet;
using cninet::ipam::Store;
using Clock = std::chrono::steady_clock;

// Scratch directories alive now, removed by Die() too (exit() runs no destructors).
std::vector<std::string>& LiveScratchDirs() {
  static auto* dirs = new std::vector<std::string>();
  return *dirs;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "ipam_bench: %s\n", what.c_str());
  std::error_code ec;
  for (const std::string& d : LiveScratchDirs()) std::filesystem::remove_all(d, ec);
  std::exit(1);
}

RangeSet Slash16() {
  auto r = Range::Parse("10.128.0.0/16");
  if (!r.ok()) Die("bad range");
  return RangeSet{{*r}};
}

// A scratch directory on the filesystem that holds /tmp, removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "cninet-ipam-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp failed");
    path_ = tmpl;
    LiveScratchDirs().push_back(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    auto& dirs = LiveScratchDirs();
    dirs.erase(std::remove(dirs.begin(), dirs.end(), path_), dirs.end());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

void Report(benchmark::State& state, double own_seconds, double baseline_seconds, int64_t allocs) {
  state.SetItemsProcessed(allocs);
  state.counters["allocs_per_s"] =
      benchmark::Counter(static_cast<double>(allocs) / own_seconds, benchmark::Counter::kDefaults);
  state.counters["x_baseline"] = own_seconds / baseline_seconds;
}

// Fills the whole /16 (65533 addresses: no network, broadcast or gateway) with the memory
// store, one allocation per iteration, starting over when it is full.
void BM_FillSlash16Memory(benchmark::State& state) {
  const RangeSet set = Slash16();
  const uint64_t capacity = set.AllocatableCount();
  auto store = std::make_unique<MemoryStore>();
  std::set<IPAddress> baseline_set;
  IPAddress next = *IPAddress::Parse("10.128.0.2");
  uint64_t used = 0;
  int64_t allocs = 0;
  double own = 0, base = 0;
  for (auto _ : state) {
    if (used == capacity) {
      store = std::make_unique<MemoryStore>();
      baseline_set.clear();
      next = *IPAddress::Parse("10.128.0.2");
      used = 0;
    }
    auto t0 = Clock::now();
    {
      auto lock = store->Lock();
      Allocator alloc(set, *store, 0);
      auto ip = alloc.Allocate(*lock, cninet::StrCat("c", used), "eth0");
      if (!ip.ok()) Die("allocation failed: " + ip.status().ToString());
      benchmark::DoNotOptimize(ip);
    }
    auto t1 = Clock::now();
    baseline_set.insert(next);
    benchmark::DoNotOptimize(baseline_set);
    auto t2 = Clock::now();
    next = next.Next();
    own += Seconds(t1 - t0);
    base += Seconds(t2 - t1);
    state.SetIterationTime(Seconds(t1 - t0));
    ++used;
    ++allocs;
  }
  Report(state, own, base, allocs);
}
BENCHMARK(BM_FillSlash16Memory)->Name("Fill/16/memory")->UseManualTime()->Iterations(65533 * 2);

// Steady state on a /16 with `live` leases held: one ADD (allocate) and one DEL (release by
// owner) per iteration, each under the store lock, as the plugin does them.
void AllocReleaseLoop(benchmark::State& state, Store& store, int live,
                      const std::function<void(int64_t)>& baseline) {
  const RangeSet set = Slash16();
  std::deque<std::string> owners;
  int64_t n = 0;
  auto allocate = [&](const std::string& id) {
    auto lock = store.Lock();
    if (!lock.ok()) Die(lock.status().ToString());
    Allocator alloc(set, store, 0);
    auto ip = alloc.Allocate(*lock, id, "eth0");
    if (!ip.ok()) Die("allocation failed: " + ip.status().ToString());
  };
  for (; n < live; ++n) {
    owners.push_back(cninet::StrCat("c", n));
    allocate(owners.back());
  }
  double own = 0, base = 0;
  int64_t allocs = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    owners.push_back(cninet::StrCat("c", n++));
    allocate(owners.back());
    {
      auto lock = store.Lock();
      auto freed = cninet::ipam::ReleaseOwner(*lock, store, owners.front(), "eth0");
      if (!freed.ok() || freed->size() != 1) Die("release failed");
    }
    owners.pop_front();
    auto t1 = Clock::now();
    baseline(n);
    auto t2 = Clock::now();
    own += Seconds(t1 - t0);
    base += Seconds(t2 - t1);
    state.SetIterationTime(Seconds(t1 - t0));
    ++allocs;
  }
  Report(state, own, base, allocs);
}

void BM_AllocReleaseMemory(benchmark::State& state) {
  MemoryStore store;
  std::set<IPAddress> s;
  IPAddress ip = *IPAddress::Parse("10.128.0.2");
  AllocReleaseLoop(state, store, static_cast<int>(state.range(0)), [&](int64_t) {
    s.insert(ip);
    s.erase(ip);
    benchmark::DoNotOptimize(s);
  });
}
BENCHMARK(BM_AllocReleaseMemory)
    ->Name("AllocRelease/16/memory")
    ->ArgName("live")
    ->Arg(64)
    ->Arg(1024)
    ->UseManualTime();

void BM_AllocReleaseDisk(benchmark::State& state) {
  ScratchDir dir;
  const bool sync = state.range(1) != 0;
  const bool tmpfile = state.range(2) != 0;
  auto store =
      DiskStore::Open(dir.path(), "bench", {.create = true, .sync = sync, .use_tmpfile = tmpfile});
  if (!store.ok()) Die(store.status().ToString());
  const std::string raw_dir = dir.path() + "/raw";
  std::filesystem::create_directories(raw_dir);
  AllocReleaseLoop(state, **store, static_cast<int>(state.range(0)), [&](int64_t n) {
    std::string path = cninet::StrCat(raw_dir, "/10.128.", n % 256);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) Die("baseline create failed");
    if (::write(fd, "c0\r\neth0", 8) != 8) Die("baseline write failed");
    if (sync && ::fsync(fd) != 0) Die("baseline fsync failed");
    ::close(fd);
    ::unlink(path.c_str());
  });
}
BENCHMARK(BM_AllocReleaseDisk)
    ->Name("AllocRelease/16/disk")
    ->ArgNames({"live", "fsync", "tmpfile"})
    ->Args({64, 0, 1})
    ->Args({1024, 0, 1})
    ->Args({64, 1, 1})
    ->Args({64, 1, 0})
    ->UseManualTime();

// The allocations are what they must be: distinct, allocatable, round-robin order.
void CheckAllocator() {
  const RangeSet set = Slash16();
  MemoryStore store;
  std::set<IPAddress> seen;
  for (int i = 0; i < 1000; ++i) {
    auto lock = store.Lock();
    Allocator alloc(set, store, 0);
    auto ip = alloc.Allocate(*lock, cninet::StrCat("k", i), "eth0");
    if (!ip.ok()) Die("check allocation failed");
    if (!set.ranges[0].IsAllocatable(ip->address.address()) ||
        !seen.insert(ip->address.address()).second) {
      Die("check: bad or duplicate address " + ip->address.ToString());
    }
  }
  if (seen.begin()->ToString() != "10.128.0.2" || seen.rbegin()->ToString() != "10.128.3.233") {
    Die("check: allocations are not sequential round-robin");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CheckAllocator();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
