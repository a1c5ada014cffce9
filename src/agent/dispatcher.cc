#include "agent/dispatcher.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

namespace cninet::agent::internal {

struct Dispatcher::Shared {
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<WatchUpdate> queue;
  bool stop = false;
  WatchCallback callback;
  std::thread thread;
};

Dispatcher::Dispatcher(WatchCallback callback) : shared_(std::make_shared<Shared>()) {
  shared_->callback = std::move(callback);
  shared_->thread = std::thread(&Dispatcher::Run, shared_);
}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Push(WatchUpdate update) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->stop) return;
    shared_->queue.push_back(std::move(update));
  }
  shared_->cv.notify_one();
}

size_t Dispatcher::pending() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->queue.size();
}

void Dispatcher::Stop() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->stop = true;
    shared_->queue.clear();
    thread = std::move(shared_->thread);
  }
  shared_->cv.notify_all();
  if (!thread.joinable()) return;
  if (thread.get_id() == std::this_thread::get_id()) {
    thread.detach();  // Stopped from inside the callback; Run() returns right after it.
  } else {
    thread.join();
  }
}

void Dispatcher::Run(std::shared_ptr<Shared> shared) {
  std::unique_lock<std::mutex> lock(shared->mu);
  while (true) {
    shared->cv.wait(lock, [&] { return shared->stop || !shared->queue.empty(); });
    if (shared->stop) return;
    WatchUpdate update = std::move(shared->queue.front());
    shared->queue.pop_front();
    if (!update.reset) {
      while (!shared->queue.empty() && !shared->queue.front().reset) {
        WatchUpdate& next = shared->queue.front();
        update.events.insert(update.events.end(), std::make_move_iterator(next.events.begin()),
                             std::make_move_iterator(next.events.end()));
        update.revision = std::max(update.revision, next.revision);
        shared->queue.pop_front();
      }
    }
    lock.unlock();
    shared->callback(update);
    lock.lock();
  }
}

}  // namespace cninet::agent::internal
