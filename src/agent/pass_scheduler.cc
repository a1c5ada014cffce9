#include "pass_scheduler.h"

namespace cninet::agent {

Round PassScheduler::Next(Clock::time_point now, bool synced) {
  Round r;
  r.first = first_;
  r.resync = now >= next_resync_;
  if (r.resync) next_resync_ = now + interval_;
  if (!synced) return Round{};
  r.topics = (r.first || r.resync) ? kAllTopics : dirty_;
  dirty_ = 0;
  return r;
}

void PassScheduler::Done(const Round& round, Topics failed) {
  if (round.topics != 0) first_ = false;
  dirty_ |= failed & round.topics;
}

}  // namespace cninet::agent
