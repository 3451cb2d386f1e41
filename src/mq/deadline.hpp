// How long a command may wait (-w SECONDS), and how a blocked read or
// write learns that the time is up.
#pragma once

#include <chrono>
#include <optional>

namespace mq {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Deadline(std::optional<double> seconds);

  bool limited() const { return at_.has_value(); }
  bool immediate() const { return immediate_; }  // -w 0: take or give only what is possible now
  bool passed() const { return at_ && Clock::now() >= *at_; }
  int poll_ms() const;  // for poll(2): -1 without a deadline
  std::optional<Clock::time_point> at() const { return at_; }

 private:
  std::optional<Clock::time_point> at_;
  bool immediate_ = false;
};

// Interrupts a blocked read(2), write(2), fsync(2) or close(2) on a queue
// once the deadline has passed: SIGALRM, without SA_RESTART, at the
// deadline and every 10 ms after it, so a signal that came just before the
// call began still ends the call. A queue takes nothing from an
// interrupted call (SPEC section 4).
class Alarm {
 public:
  explicit Alarm(const Deadline& deadline);
  ~Alarm();
  Alarm(const Alarm&) = delete;
  Alarm& operator=(const Alarm&) = delete;

  bool rang() const;

 private:
  bool armed_ = false;
};

}  // namespace mq
