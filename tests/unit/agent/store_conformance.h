// The Store conformance suite (store_conformance.cc). A test binary links it and instantiates it
// for one implementation:
//   INSTANTIATE_TEST_SUITE_P(Embedded, StoreConformance, ::testing::Values(StoreKind{...}),
//                            StoreKindName);
#ifndef CNINET_TESTS_UNIT_AGENT_STORE_CONFORMANCE_H_
#define CNINET_TESTS_UNIT_AGENT_STORE_CONFORMANCE_H_

#include <memory>
#include <string>
#include <string_view>

#include "store_test_support.h"

namespace cninet::agent::testing {

class StoreConformance : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // A key under this test's private prefix.
  std::string Key(std::string_view name) const { return prefix_ + std::string(name); }

  std::unique_ptr<StoreEnv> env_;
  std::unique_ptr<Store> store_;
  std::string prefix_;
};

}  // namespace cninet::agent::testing

#endif  // CNINET_TESTS_UNIT_AGENT_STORE_CONFORMANCE_H_
