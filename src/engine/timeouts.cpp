#include <cerrno>

#include "engine/queue.hpp"
#include "engine/waiter.hpp"

namespace mqfs::engine {

void Timeouts::add(Waiter& waiter, Clock::time_point deadline) {
  remove(waiter);
  waiter.deadline_ = waiters_.emplace(deadline, &waiter);
}

void Timeouts::remove(Waiter& waiter) {
  if (!waiter.deadline_) return;
  waiters_.erase(*waiter.deadline_);
  waiter.deadline_.reset();
}

std::optional<Clock::time_point> Timeouts::next() const {
  if (waiters_.empty()) return std::nullopt;
  return waiters_.begin()->first;
}

void Timeouts::expire(Clock::time_point now) {
  while (!waiters_.empty() && waiters_.begin()->first <= now) {
    Waiter* waiter = waiters_.begin()->second;
    waiter->queue()->cancel(*waiter, ETIMEDOUT);  // also removes it from here
  }
}

}  // namespace mqfs::engine
