#include <cerrno>

#include "engine/queue.hpp"
#include "engine/waiter.hpp"

namespace mqfs::engine {

void Timeouts::add(Timed& timed, Clock::time_point deadline) {
  remove(timed);
  timed.deadline_ = deadlines_.emplace(deadline, &timed);
}

void Timeouts::remove(Timed& timed) {
  if (!timed.deadline_) return;
  deadlines_.erase(*timed.deadline_);
  timed.deadline_.reset();
}

std::optional<Clock::time_point> Timeouts::next() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

void Timeouts::expire(Clock::time_point now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    Timed* timed = deadlines_.begin()->second;
    remove(*timed);
    timed->expired(now);
  }
}

void Waiter::expired(Clock::time_point) { queue()->cancel(*this, ETIMEDOUT); }

}  // namespace mqfs::engine
