// The shape every benchmark main shares: the binary's own flags taken out of argv, the rest
// handed to Google Benchmark, the registered benchmarks run with the binary's reporter.
#ifndef CNINET_BENCH_COMMON_BENCH_MAIN_H_
#define CNINET_BENCH_COMMON_BENCH_MAIN_H_

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

}  // namespace cninet::bench

#endif  // CNINET_BENCH_COMMON_BENCH_MAIN_H_
