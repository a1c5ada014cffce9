#include "cninet/datapath/maglev.h"

#include <algorithm>
#include <string_view>
#include <unordered_set>

#include "cninet/base/strings.h"

namespace cninet::datapath {
namespace {

// FNV-1a over the name, seeded, finished with the splitmix64 mixer: stable across processes and
// builds (the table must not change when the agent restarts).
uint64_t Hash64(std::string_view s, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

}  // namespace

bool IsPrime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; static_cast<uint64_t>(d) * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

absl::StatusOr<std::vector<uint32_t>> BuildMaglevTable(std::span<const std::string> backends,
                                                       uint32_t m) {
  if (m < kMaglevMinSize || m > kMaglevMaxSize || !IsPrime(m)) {
    return absl::InvalidArgumentError(StrCat("Maglev table size ", m, " must be a prime in [",
                                             kMaglevMinSize, ", ", kMaglevMaxSize, "]"));
  }
  const size_t n = backends.size();
  if (n == 0) return std::vector<uint32_t>{};
  if (n > m)
    return absl::InvalidArgumentError(StrCat(n, " backends do not fit a Maglev table of ", m));
  std::unordered_set<std::string_view> seen;
  for (const auto& b : backends) {
    if (!seen.insert(b).second) return absl::InvalidArgumentError(StrCat("duplicate backend ", b));
  }
  // Populate in name order so the table depends on the set of backends, not on list order.
  std::vector<uint32_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return backends[a] < backends[b]; });
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  for (size_t j = 0; j < n; ++j) {
    offset[j] = Hash64(backends[order[j]], 0x6d61676c65763031ULL) % m;
    skip[j] = Hash64(backends[order[j]], 0x6d61676c65763032ULL) % (m - 1) + 1;
  }
  constexpr uint32_t kEmpty = UINT32_MAX;
  std::vector<uint32_t> table(m, kEmpty);
  uint32_t filled = 0;
  while (true) {
    for (size_t i = 0; i < n; ++i) {
      uint64_t c = (offset[i] + next[i] * skip[i]) % m;
      while (table[c] != kEmpty) {
        ++next[i];
        c = (offset[i] + next[i] * skip[i]) % m;
      }
      table[c] = order[i];
      ++next[i];
      if (++filled == m) return table;
    }
  }
}

}  // namespace cninet::datapath
