// The shape every benchmark main shares: the binary's own flags taken out of argv, the rest
// handed to Google Benchmark, the registered benchmarks run with the binary's reporter.
#ifndef CNINET_BENCH_COMMON_BENCH_MAIN_H_
#define CNINET_BENCH_COMMON_BENCH_MAIN_H_

#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <vector>

#include "benchmark/benchmark.h"

namespace cninet::bench {

// argv[0] and every argument `own` does not take (it returns false for them), for Google
// Benchmark; `own` sees each argument once, in order.
inline std::vector<char*> SplitArgs(int argc, char** argv,
                                    const std::function<bool(const char* arg)>& own) {
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (!own(argv[i])) rest.push_back(argv[i]);
  }
  return rest;
}

// Initializes Google Benchmark with `args` (from SplitArgs) and runs what is registered, through
// `reporter` when given.
inline void RunBenchmarks(std::vector<char*> args,
                          benchmark::BenchmarkReporter* reporter = nullptr) {
  int argc = static_cast<int>(args.size());
  benchmark::Initialize(&argc, args.data());
  if (reporter != nullptr) {
    benchmark::RunSpecifiedBenchmarks(reporter);
  } else {
    benchmark::RunSpecifiedBenchmarks();
  }
}

// Initializes Google Benchmark with `args`; false (after printing them) when arguments are left
// that neither the binary nor Google Benchmark knows: the main then exits with 2.
inline bool InitBenchmarks(std::vector<char*>& args) {
  int argc = static_cast<int>(args.size());
  benchmark::Initialize(&argc, args.data());
  return !benchmark::ReportUnrecognizedArguments(argc, args.data());
}

// For benchmarks that load BPF programs: checks for root, then moves the process into a private,
// empty network namespace (gone when it exits), so FIB lookups see no routes and nothing can
// touch the caller's namespace. False (with the reason on stderr) when either step fails.
inline bool EnterPrivateNetns(const char* binary) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "%s needs root (BPF programs and maps)\n", binary);
    return false;
  }
  if (unshare(CLONE_NEWNET) != 0) {
    std::perror("unshare(CLONE_NEWNET)");
    return false;
  }
  return true;
}

}  // namespace cninet::bench

#endif  // CNINET_BENCH_COMMON_BENCH_MAIN_H_
