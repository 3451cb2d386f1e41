#include "mq/deadline.hpp"

#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <cmath>

namespace mq {
namespace {

volatile sig_atomic_t alarm_rang = 0;

void on_alarm(int) { alarm_rang = 1; }

timeval to_timeval(std::chrono::microseconds span) {
  const auto us = std::max<int64_t>(span.count(), 1);
  return {static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

}  // namespace

Deadline::Deadline(std::optional<double> seconds) {
  if (!seconds) return;
  immediate_ = *seconds == 0;
  const auto span = std::chrono::duration<double>(std::min(*seconds, 1e9));
  at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(span);
}

int Deadline::poll_ms() const {
  if (!at_) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*at_ - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

Alarm::Alarm(const Deadline& deadline) {
  if (!deadline.at() || deadline.immediate()) return;
  struct sigaction action {};
  action.sa_handler = on_alarm;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: the blocked call returns EINTR
  sigaction(SIGALRM, &action, nullptr);
  alarm_rang = 0;
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(*deadline.at() - Deadline::Clock::now());
  itimerval timer{};
  timer.it_value = to_timeval(left);
  timer.it_interval = to_timeval(std::chrono::milliseconds(10));
  setitimer(ITIMER_REAL, &timer, nullptr);
  armed_ = true;
}

Alarm::~Alarm() {
  if (!armed_) return;
  itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
}

bool Alarm::rang() const { return armed_ && alarm_rang != 0; }

}  // namespace mq
