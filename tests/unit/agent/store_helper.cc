// A second process for the embedded store tests: it opens the same state directory and writes,
// races or holds a lease, printing one line per acknowledged operation (flushed at once, so a
// test that kills it knows exactly what was acknowledged). With CNINET_TEST_CRASH_POINT=<point>
// (and CNINET_TEST_CRASH_AFTER=<n>, default 1) it _exit()s at the n-th pass of that crash point
// of the store's write path, simulating a crash there.
//
// Usage:
//   store_helper DIR write PREFIX FIRST COUNT [SNAPSHOT_THRESHOLD [VALUE_BYTES]]
//                                        -> "ack I REVISION"; values "value-I", padded with dots
//   store_helper DIR create PREFIX COUNT ID                         -> "won I" / "lost I"
//   store_helper DIR lease KEY TTL                                  -> "lease ID", exits unrevoked
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/embedded_store_internal.h"
#include "cninet/agent/embedded_store.h"

namespace {

std::string g_crash_point;
std::atomic<int> g_crash_after{1};

void CrashHook(std::string_view point) {
  if (point == g_crash_point && --g_crash_after == 0) {
    std::fflush(stdout);
    _exit(86);
  }
}

int Usage() {
  std::fprintf(stderr, "usage: store_helper DIR write|create|lease ...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  using cninet::agent::Store;
  cninet::agent::EmbeddedStoreOptions options;
  options.dir = argv[1];
  std::string command = argv[2];
  if (command == "write" && argc >= 7) options.snapshot_threshold_bytes = std::stoull(argv[6]);
  if (const char* point = std::getenv("CNINET_TEST_CRASH_POINT")) {
    g_crash_point = point;
    if (const char* after = std::getenv("CNINET_TEST_CRASH_AFTER"))
      g_crash_after = std::atoi(after);
    cninet::agent::internal::SetEmbeddedStoreCrashHook(&CrashHook);
  }
  auto store = cninet::agent::OpenEmbeddedStore(options);
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 1;
  }
  if (command == "write" && argc >= 6) {
    std::string prefix = argv[3];
    int first = std::atoi(argv[4]);
    int count = std::atoi(argv[5]);
    size_t value_bytes = argc >= 8 ? std::stoul(argv[7]) : 0;
    for (int i = first; i < first + count; ++i) {
      std::string value = "value-" + std::to_string(i);
      if (value.size() < value_bytes) value.resize(value_bytes, '.');
      auto rev = (*store)->Put(prefix + std::to_string(i), value);
      if (!rev.ok()) {
        std::fprintf(stderr, "put %d: %s\n", i, rev.status().ToString().c_str());
        return 1;
      }
      std::printf("ack %d %lld\n", i, static_cast<long long>(*rev));
      std::fflush(stdout);
    }
    return 0;
  }
  if (command == "create" && argc >= 6) {
    std::string prefix = argv[3];
    int count = std::atoi(argv[4]);
    std::string id = argv[5];
    for (int i = 0; i < count; ++i) {
      auto rev = (*store)->Create(prefix + std::to_string(i), id);
      if (rev.ok()) {
        std::printf("won %d\n", i);
      } else if (absl::IsAlreadyExists(rev.status())) {
        std::printf("lost %d\n", i);
      } else {
        std::fprintf(stderr, "create %d: %s\n", i, rev.status().ToString().c_str());
        return 1;
      }
      std::fflush(stdout);
    }
    return 0;
  }
  if (command == "lease" && argc >= 5) {
    auto lease = (*store)->GrantLease(std::chrono::seconds(std::atoi(argv[4])));
    if (!lease.ok() || !(*store)->Put(argv[3], "held", *lease).ok()) return 1;
    std::printf("lease %lld\n", static_cast<long long>(*lease));
    std::fflush(stdout);
    _exit(0);  // Dies without revoking, like a crashed agent.
  }
  return Usage();
}
