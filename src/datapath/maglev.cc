#include "cninet/datapath/maglev.h"

#include <algorithm>
#include <string_view>

#include "cninet/base/status.h"
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

// Per-thread scratch, so building thousands of tables allocates once.
struct Scratch {
  std::vector<uint32_t> order;
  std::vector<uint32_t> pos, skip;
};

size_t LadderIndex(uint32_t m) {
  const auto* it = std::find(std::begin(kMaglevLadder), std::end(kMaglevLadder), m);
  return static_cast<size_t>(it - std::begin(kMaglevLadder));
}

}  // namespace

bool IsPrime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; static_cast<uint64_t>(d) * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

uint32_t MaglevSizeFor(size_t backends, uint32_t current) {
  constexpr size_t kSteps = std::size(kMaglevLadder);
  const size_t cur = LadderIndex(current);
  if (backends == 0) return cur < kSteps ? current : kMaglevLadder[0];
  const uint64_t want = static_cast<uint64_t>(backends) * kMaglevSlotsPerBackend;
  size_t target = kSteps - 1;
  for (size_t i = 0; i < kSteps; ++i) {
    if (kMaglevLadder[i] >= want) {
      target = i;
      break;
    }
  }
  // Keep the present size within one step of the target, unless the backends no longer fit.
  if (cur < kSteps && cur + 1 >= target && cur <= target + 1 && current >= backends) return current;
  return kMaglevLadder[target];
}

absl::StatusOr<std::vector<uint32_t>> BuildMaglevTable(std::span<const std::string> backends,
                                                       uint32_t m) {
  std::vector<uint32_t> table;
  CNINET_RETURN_IF_ERROR(BuildMaglevTable(backends, m, &table));
  return table;
}

absl::Status BuildMaglevTable(std::span<const std::string> backends, uint32_t m,
                              std::vector<uint32_t>* table) {
  if (m < kMaglevMinSize || m > kMaglevMaxSize || !IsPrime(m)) {
    return absl::InvalidArgumentError(StrCat("Maglev table size ", m, " must be a prime in [",
                                             kMaglevMinSize, ", ", kMaglevMaxSize, "]"));
  }
  table->clear();
  const size_t n = backends.size();
  if (n == 0) return absl::OkStatus();
  if (n > m)
    return absl::InvalidArgumentError(StrCat(n, " backends do not fit a Maglev table of ", m));
  thread_local Scratch s;
  // Populate in name order so the table depends on the set of backends, not on list order; a
  // duplicate is then a neighbour.
  s.order.resize(n);
  for (size_t i = 0; i < n; ++i) s.order[i] = static_cast<uint32_t>(i);
  std::sort(s.order.begin(), s.order.end(),
            [&](uint32_t a, uint32_t b) { return backends[a] < backends[b]; });
  for (size_t i = 1; i < n; ++i) {
    if (backends[s.order[i]] == backends[s.order[i - 1]])
      return absl::InvalidArgumentError(StrCat("duplicate backend ", backends[s.order[i]]));
  }
  // Backend j's permutation is offset_j + k·skip_j (mod m), k = 0, 1, ...: walked incrementally
  // (one add and a conditional subtract per step, no multiply or modulo in the loop).
  s.pos.resize(n);
  s.skip.resize(n);
  for (size_t j = 0; j < n; ++j) {
    s.pos[j] = static_cast<uint32_t>(Hash64(backends[s.order[j]], 0x6d61676c65763031ULL) % m);
    s.skip[j] =
        static_cast<uint32_t>(Hash64(backends[s.order[j]], 0x6d61676c65763032ULL) % (m - 1) + 1);
  }
  constexpr uint32_t kEmpty = UINT32_MAX;
  table->assign(m, kEmpty);
  uint32_t* t = table->data();
  uint32_t* pos = s.pos.data();
  const uint32_t* skip = s.skip.data();
  const uint32_t* order = s.order.data();
  auto advance = [m](uint32_t p, uint32_t k) {
    p += k;  // p < m and k < m, so p + k < 2m < 2^32
    return p >= m ? p - m : p;
  };
  uint32_t filled = 0;
  while (true) {
    for (size_t i = 0; i < n; ++i) {
      uint32_t c = pos[i];
      while (t[c] != kEmpty) c = advance(c, skip[i]);
      t[c] = order[i];
      pos[i] = advance(c, skip[i]);
      if (++filled == m) return absl::OkStatus();
    }
  }
}

}  // namespace cninet::datapath
