// Maglev table builder: balance (each backend within +-10% of M/N) and minimal disruption
// (removing one of N backends moves at most 1/N + 2% of the slots).
#include "cninet/datapath/maglev.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::datapath {
namespace {

std::vector<std::string> Names(int n, int offset = 0) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i)
    v.push_back("10." + std::to_string((i + offset) / 250) + "." +
                std::to_string((i + offset) % 250) + ".7:8080");
  return v;
}

struct Case {
  uint32_t m;
  int n;
};

class MaglevBalance : public ::testing::TestWithParam<Case> {};

TEST_P(MaglevBalance, EveryBackendOwnsItsShareWithinTenPercent) {
  const auto [m, n] = GetParam();
  auto names = Names(n);
  auto table = BuildMaglevTable(names, m);
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->size(), m);
  std::vector<uint32_t> owned(n, 0);
  for (uint32_t b : *table) {
    ASSERT_LT(b, static_cast<uint32_t>(n));
    ++owned[b];
  }
  const double share = static_cast<double>(m) / n;
  for (int i = 0; i < n; ++i) {
    EXPECT_GE(owned[i], share * 0.9) << "backend " << i << " of " << n << " owns " << owned[i];
    EXPECT_LE(owned[i], share * 1.1) << "backend " << i << " of " << n << " owns " << owned[i];
  }
}

// Maglev's disruption bound holds for tables much larger than N (the paper uses M >= 100 N);
// the cases below are those, including every N the datapath promises at the default M.
class MaglevDisruption : public ::testing::TestWithParam<Case> {};

TEST_P(MaglevDisruption, RemovingOneBackendMovesAtMostItsSharePlusTwoPercent) {
  const auto [m, n] = GetParam();
  auto names = Names(n);
  auto before = BuildMaglevTable(names, m);
  ASSERT_TRUE(before.ok());
  for (int removed : {0, n / 2, n - 1}) {
    std::vector<std::string> fewer = names;
    fewer.erase(fewer.begin() + removed);
    auto after = BuildMaglevTable(fewer, m);
    ASSERT_TRUE(after.ok());
    // Slots whose flow changes backend, excluding those that belonged to the removed backend
    // (those must move); compare by name since indexes shift.
    uint32_t moved = 0;
    for (uint32_t i = 0; i < m; ++i) {
      const std::string& was = names[(*before)[i]];
      const std::string& now = fewer[(*after)[i]];
      if (was != now) ++moved;
    }
    double allowed = (1.0 / n + 0.02) * m;
    EXPECT_LE(moved, allowed) << "N=" << n << " M=" << m << " removed " << removed << " moved "
                              << moved;
    // At least the removed backend's slots moved.
    uint32_t owned = static_cast<uint32_t>(
        std::count(before->begin(), before->end(), static_cast<uint32_t>(removed)));
    EXPECT_GE(moved, owned);
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, MaglevBalance,
                         ::testing::Values(Case{16381, 1}, Case{16381, 3}, Case{16381, 10},
                                           Case{16381, 100}, Case{65521, 100}, Case{251, 3},
                                           Case{251, 10}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return "M" + std::to_string(p.param.m) + "_N" +
                                  std::to_string(p.param.n);
                         });
INSTANTIATE_TEST_SUITE_P(Sizes, MaglevDisruption,
                         ::testing::Values(Case{16381, 3}, Case{16381, 10}, Case{16381, 100},
                                           Case{65521, 100}, Case{65521, 500}, Case{251, 2}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return "M" + std::to_string(p.param.m) + "_N" +
                                  std::to_string(p.param.n);
                         });

TEST(Maglev, TableDependsOnTheSetNotTheOrder) {
  auto names = Names(10);
  auto a = BuildMaglevTable(names, 251);
  std::vector<std::string> rev(names.rbegin(), names.rend());
  auto b = BuildMaglevTable(rev, 251);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_EQ(names[(*a)[i]], rev[(*b)[i]]);
}

TEST(Maglev, RejectsBadInput) {
  auto names = Names(3);
  EXPECT_EQ(BuildMaglevTable(names, 250).status().code(),
            absl::StatusCode::kInvalidArgument);  // not prime
  EXPECT_EQ(BuildMaglevTable(names, 241).status().code(),
            absl::StatusCode::kInvalidArgument);  // < 251
  EXPECT_EQ(BuildMaglevTable(names, 65537).status().code(),
            absl::StatusCode::kInvalidArgument);  // > 65521
  std::vector<std::string> dup = {"a", "b", "a"};
  EXPECT_THAT(std::string(BuildMaglevTable(dup, 251).status().message()),
              ::testing::HasSubstr("duplicate"));
  EXPECT_EQ(BuildMaglevTable(Names(252), 251).status().code(), absl::StatusCode::kInvalidArgument);
  auto empty = BuildMaglevTable(std::vector<std::string>{}, 251);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(Maglev, PrimeCheck) {
  EXPECT_TRUE(IsPrime(251));
  EXPECT_TRUE(IsPrime(16381));
  EXPECT_TRUE(IsPrime(65521));
  EXPECT_FALSE(IsPrime(16383));
  EXPECT_FALSE(IsPrime(1));
  EXPECT_FALSE(IsPrime(65535));
}

}  // namespace
}  // namespace cninet::datapath
