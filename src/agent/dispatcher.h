// Delivers the updates of one watch to its callback on a dedicated thread, in order. Consecutive
// queued updates that are not resets are merged into one delivery, so a slow consumer sees larger
// batches instead of an ever longer queue.
#ifndef CNINET_SRC_AGENT_DISPATCHER_H_
#define CNINET_SRC_AGENT_DISPATCHER_H_

#include <memory>

#include "cninet/agent/store.h"

namespace cninet::agent::internal {

class Dispatcher {
 public:
  explicit Dispatcher(WatchCallback callback);
  // Stops (see Stop).
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Queues an update; ignored after Stop.
  void Push(WatchUpdate update);
  // No callback starts after this returns; waits for a running one unless called from the
  // callback itself (then the thread finishes on its own).
  void Stop();
  // Number of updates waiting (for tests and backpressure decisions).
  size_t pending() const;

 private:
  struct Shared;
  static void Run(std::shared_ptr<Shared> shared);
  std::shared_ptr<Shared> shared_;
};

}  // namespace cninet::agent::internal

#endif  // CNINET_SRC_AGENT_DISPATCHER_H_
