// When the agent reconciles what: the topics marked dirty by the store cache, every topic on the
// first round and on each periodic resync, and a failed topic again on the next round.
#ifndef CNINET_SRC_AGENT_PASS_SCHEDULER_H_
#define CNINET_SRC_AGENT_PASS_SCHEDULER_H_

#include <chrono>

#include "store_cache.h"

namespace cninet::agent {

// One reconcile round as scheduled.
struct Round {
  Topics topics = 0;    // the topics to reconcile (0: nothing to do)
  bool first = false;   // the agent's first round
  bool resync = false;  // a periodic full resync
};

// Pure bookkeeping (no threads, no clock of its own): the loop passes `now`.
class PassScheduler {
 public:
  using Clock = std::chrono::steady_clock;

  PassScheduler(std::chrono::steady_clock::duration resync_interval, Clock::time_point now)
      : interval_(resync_interval), next_resync_(now + resync_interval) {}

  // Records topics a store change touched.
  void MarkDirty(Topics topics) { dirty_ |= topics; }
  // True when a round has something to do before the next resync.
  bool HasWork() const { return first_ || dirty_ != 0; }
  // When the next periodic resync is due.
  Clock::time_point next_resync() const { return next_resync_; }
  // The next round at `now` (clearing the topics it takes); before the cache is `synced` a
  // round has no topics, but a due resync still moves the next one on.
  Round Next(Clock::time_point now, bool synced = true);
  // After a round: its `failed` topics are dirty again (level-triggered retry).
  void Done(const Round& round, Topics failed);

 private:
  std::chrono::steady_clock::duration interval_;
  Clock::time_point next_resync_;
  Topics dirty_ = 0;
  bool first_ = true;
};

}  // namespace cninet::agent

#endif  // CNINET_SRC_AGENT_PASS_SCHEDULER_H_
