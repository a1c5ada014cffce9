// Shared by the agent store suites (unit: embedded store; e2e: etcd store): status matchers, a
// watch recorder that rebuilds the watched state from updates, and the store-conformance
// parameter (a way to open clients of one store instance).
#ifndef CNINET_TESTS_UNIT_AGENT_STORE_TEST_SUPPORT_H_
#define CNINET_TESTS_UNIT_AGENT_STORE_TEST_SUPPORT_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/agent/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::agent::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// Matches an OK status / StatusOr.
MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status " << s.ToString();
  return s.ok();
}

// Matches an OK StatusOr whose value equals `expected`.
MATCHER_P(IsOkAndHolds, expected, "is OK and holds " + ::testing::PrintToString(expected)) {
  if (!arg.ok()) {
    *result_listener << "status " << arg.status().ToString();
    return false;
  }
  *result_listener << "value " << ::testing::PrintToString(*arg);
  return *arg == expected;
}

// Matches a failed status with `code` whose message contains `substr`.
MATCHER_P2(StatusIs, code, substr,
           std::string("fails with ") + absl::StatusCodeToString(code) +
               " and a message containing \"" + std::string(substr) + "\"") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status " << s.ToString();
  return s.code() == code && std::string(s.message()).find(substr) != std::string::npos;
}

// Records every update of a watch and the state they describe (resets replace it).
class WatchRecorder {
 public:
  // The callback to hand to Store::Watch.
  WatchCallback Callback() {
    return [this](const WatchUpdate& update) { Record(update); };
  }

  void Record(const WatchUpdate& update) {
    std::lock_guard<std::mutex> lock(mu_);
    updates_.push_back(update);
    if (update.reset) {
      state_.clear();
      resets_++;
    }
    for (const Event& event : update.events) {
      if (!update.reset) events_.push_back(event);
      if (event.type == EventType::kPut) {
        state_[event.kv.key] = event.kv.value;
      } else {
        state_.erase(event.kv.key);
      }
    }
    revision_ = std::max(revision_, update.revision);
    cv_.notify_all();
  }

  // Waits until `pred` holds (checked under the recorder's lock) or `timeout` passes.
  bool WaitFor(const std::function<bool()>& pred,
               std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, pred);
  }
  // Waits until the rebuilt state equals `expected`.
  bool WaitForState(const std::map<std::string, std::string>& expected,
                    std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    return WaitFor([&] { return state_ == expected; }, timeout);
  }

  // Accessors (copies, under the lock).
  std::map<std::string, std::string> state() const {
    std::lock_guard<std::mutex> lock(mu_);
    return state_;
  }
  std::vector<Event> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  std::vector<WatchUpdate> updates() const {
    std::lock_guard<std::mutex> lock(mu_);
    return updates_;
  }
  int resets() const {
    std::lock_guard<std::mutex> lock(mu_);
    return resets_;
  }
  int64_t revision() const {
    std::lock_guard<std::mutex> lock(mu_);
    return revision_;
  }

  // Unlocked views for WaitFor predicates (which run under the lock).
  const std::map<std::string, std::string>& state_locked() const { return state_; }
  const std::vector<Event>& events_locked() const { return events_; }
  int resets_locked() const { return resets_; }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchUpdate> updates_;
  std::vector<Event> events_;  // Non-reset events, in delivery order.
  std::map<std::string, std::string> state_;
  int resets_ = 0;
  int64_t revision_ = 0;
};

// One store instance under test: clients are separate Store objects (separate connections for
// etcd, separate open instances of the same directory for the embedded store).
class StoreEnv {
 public:
  virtual ~StoreEnv() = default;
  virtual absl::StatusOr<std::unique_ptr<Store>> OpenClient() = 0;
};

// Parameter of the conformance suite.
struct StoreKind {
  std::string name;
  std::function<std::unique_ptr<StoreEnv>()> make_env;
};

inline std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info) {
  return info.param.name;
}

// Test names and ctest show the store by name.
inline void PrintTo(const StoreKind& kind, std::ostream* os) { *os << kind.name; }

// The current state under `prefix` as a map (for comparing with a WatchRecorder).
inline std::map<std::string, std::string> Snapshot(Store& store, std::string_view prefix) {
  std::map<std::string, std::string> out;
  absl::StatusOr<ListResult> list = store.List(prefix);
  EXPECT_TRUE(list.ok()) << list.status();
  if (!list.ok()) return out;
  for (const KeyValue& kv : list->kvs) out[kv.key] = kv.value;
  return out;
}

}  // namespace cninet::agent::testing

#endif  // CNINET_TESTS_UNIT_AGENT_STORE_TEST_SUPPORT_H_
