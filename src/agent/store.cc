#include "cninet/agent/store.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "cninet/base/log.h"
#include "cninet/base/strings.h"

namespace cninet::agent {

std::string PrefixRangeEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return end;  // "" (or all 0xff bytes): no upper bound.
}

struct LeaseKeeper::State {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool lost = false;
  bool abandoned = false;
  std::thread thread;
};

LeaseKeeper::LeaseKeeper(Store& store, LeaseId id, std::chrono::seconds ttl, LostCallback on_lost)
    : store_(store), id_(id), state_(std::make_shared<State>()) {
  state_->thread = std::thread([this, ttl, on_lost = std::move(on_lost), state = state_] {
    const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(ttl) / 3;
    auto next = std::chrono::steady_clock::now() + period;
    std::unique_lock<std::mutex> lock(state->mu);
    while (!state->stop) {
      if (state->cv.wait_until(lock, next, [&] { return state->stop; })) break;
      lock.unlock();
      absl::StatusOr<std::chrono::seconds> refreshed = store_.KeepAlive(id_);
      lock.lock();
      if (refreshed.ok()) {
        next = std::chrono::steady_clock::now() + period;
        continue;
      }
      if (absl::IsNotFound(refreshed.status())) {
        state->lost = true;
        CNINET_LOG(kWarning, "lease ", id_, " lost: ", refreshed.status().ToString());
        lock.unlock();
        if (on_lost) on_lost(refreshed.status());
        return;
      }
      // Transient (store unreachable): retry soon, the lease may still be alive.
      CNINET_LOG(kWarning, "lease ", id_, " keep-alive failed: ", refreshed.status().ToString());
      next = std::chrono::steady_clock::now() +
             std::min<std::chrono::milliseconds>(period, std::chrono::seconds(1));
    }
  });
}

absl::StatusOr<std::unique_ptr<LeaseKeeper>> LeaseKeeper::Start(Store& store,
                                                                std::chrono::seconds ttl,
                                                                LostCallback on_lost) {
  if (ttl < std::chrono::seconds(2)) {
    return absl::InvalidArgumentError("lease TTL must be at least 2 seconds");
  }
  absl::StatusOr<LeaseId> id = store.GrantLease(ttl);
  if (!id.ok()) return id.status();
  return std::unique_ptr<LeaseKeeper>(new LeaseKeeper(store, *id, ttl, std::move(on_lost)));
}

bool LeaseKeeper::lost() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->lost;
}

void LeaseKeeper::Abandon() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
    state_->abandoned = true;
    thread = std::move(state_->thread);
  }
  state_->cv.notify_all();
  if (thread.joinable()) thread.join();
}

LeaseKeeper::~LeaseKeeper() {
  std::thread thread;
  bool revoke;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
    revoke = !state_->abandoned && !state_->lost;
    thread = std::move(state_->thread);
  }
  state_->cv.notify_all();
  if (thread.joinable()) {
    // Destroyed from the lost callback: the thread returns right after it.
    if (thread.get_id() == std::this_thread::get_id()) {
      thread.detach();
    } else {
      thread.join();
    }
  }
  if (revoke) {
    if (absl::Status s = store_.RevokeLease(id_); !s.ok()) {
      CNINET_LOG(kWarning, "revoking lease ", id_, ": ", s.ToString());
    }
  }
}

}  // namespace cninet::agent
