// Command-line helpers shared by the benchmark binaries (their own flags come before Google
// Benchmark's, which get the rest of argv).
#ifndef CNINET_BENCH_COMMON_BENCH_FLAGS_H_
#define CNINET_BENCH_COMMON_BENCH_FLAGS_H_

#include <cstring>
#include <string>

namespace cninet::bench {

// True when `arg` is `name=VALUE`; stores VALUE in `value`.
inline bool ParseFlag(const char* arg, const char* name, std::string* value) {
  size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *value = arg + n + 1;
  return true;
}

}  // namespace cninet::bench

#endif  // CNINET_BENCH_COMMON_BENCH_FLAGS_H_
