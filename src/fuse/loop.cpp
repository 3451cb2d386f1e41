// The session loop: one thread, one epoll set with the FUSE device, a timerfd
// for the earliest wait deadline, a signalfd for SIGINT, SIGTERM, SIGHUP, and
// (sync=disk) the eventfd of the store's sync thread.
// Waiting requests cost no thread: they are answered from here when a queue's
// state, a deadline or an interrupt ends their wait.
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <malloc.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

namespace {

// A file descriptor closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Arms the timer for the earliest deadline, touching it only when that changes.
class DeadlineTimer {
 public:
  explicit DeadlineTimer(int fd) : fd_(fd) {}

  void arm(std::optional<engine::Clock::time_point> deadline) {
    const engine::Clock::time_point at = deadline.value_or(kDisarmed);
    if (at == armed_) return;
    itimerspec spec{};
    if (deadline) {
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
      if (ns <= 0) ns = 1;
      spec.it_value.tv_sec = ns / 1000000000;
      spec.it_value.tv_nsec = ns % 1000000000;
    }
    // steady_clock is CLOCK_MONOTONIC on Linux.
    timerfd_settime(fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
    armed_ = at;
  }

 private:
  static constexpr engine::Clock::time_point kDisarmed = engine::Clock::time_point::max();
  int fd_;
  engine::Clock::time_point armed_ = kDisarmed;
};

constexpr int kBatch = 64;  // requests handled before timers and signals are looked at again

// Freed messages stay with malloc; when the bytes held have fallen well below
// their peak (by half, at least 1 MiB, at most 32 MiB), the idle loop hands
// the free memory back to the system.
class MemoryTrimmer {
 public:
  void on_idle(uint64_t held) {
    peak_ = std::max(peak_, held);
    const uint64_t step = std::clamp<uint64_t>(peak_ / 2, uint64_t{1} << 20, uint64_t{32} << 20);
    if (peak_ - held < step) return;
    malloc_trim(0);
    peak_ = held;
  }

 private:
  uint64_t peak_ = 0;
};

}  // namespace

int run_loop(fuse_session* session, Filesystem& fs) {
  const int device = fuse_session_fd(session);
  fcntl(device, F_SETFL, fcntl(device, F_GETFL) | O_NONBLOCK);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  Fd signal_fd(signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  Fd timer_fd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  Fd epoll_fd(epoll_create1(EPOLL_CLOEXEC));
  if (signal_fd.get() < 0 || timer_fd.get() < 0 || epoll_fd.get() < 0) {
    spdlog::error("cannot set up the event loop: {}", std::strerror(errno));
    return 1;
  }
  for (int fd : {device, signal_fd.get(), timer_fd.get()}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &event);
  }

  DeadlineTimer timer(timer_fd.get());
  MemoryTrimmer trimmer;
  fuse_buf buf{};
  int sync_fd = -1;
  int status = 0;
  bool stop = false;
  while (!stop && !fuse_session_exited(session)) {
    bool idle = false;
    for (int n = 0; n < kBatch && !fuse_session_exited(session); ++n) {
      int received = fuse_session_receive_buf(session, &buf);
      if (received == -EAGAIN) {
        idle = true;
        break;
      }
      if (received == -EINTR) continue;
      if (received <= 0) {  // 0: unmounted
        if (received < 0) status = 1;
        stop = true;
        break;
      }
      fuse_session_process_buf(session, &buf);
      fs.cancel_interrupted();
    }
    if (fs.timeouts().size() > 0) fs.timeouts().expire(engine::Clock::now());
    timer.arm(fs.timeouts().next());
    fs.end_turn();
    if (sync_fd < 0 && fs.store().completion_fd() >= 0) {  // the store's sync thread started
      sync_fd = fs.store().completion_fd();
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = sync_fd;
      epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, sync_fd, &event);
    }
    if (stop || !idle) continue;
    trimmer.on_idle(fs.budget().bytes());

    epoll_event events[4];
    int ready = epoll_wait(epoll_fd.get(), events, 4, -1);
    if (ready < 0 && errno != EINTR) {
      spdlog::error("epoll_wait: {}", std::strerror(errno));
      status = 1;
      break;
    }
    for (int i = 0; i < ready; ++i) {
      if (events[i].data.fd == signal_fd.get()) {
        signalfd_siginfo info{};
        if (read(signal_fd.get(), &info, sizeof info) == sizeof info)
          spdlog::info("{} received, unmounting", strsignal(static_cast<int>(info.ssi_signo)));
        stop = true;
      } else if (events[i].data.fd == sync_fd) {
        fs.sync_completed();
      } else if (events[i].data.fd == timer_fd.get()) {
        uint64_t expirations;
        [[maybe_unused]] auto n = read(timer_fd.get(), &expirations, sizeof expirations);
        timer.arm(std::nullopt);  // re-armed after the expiry pass
      }
    }
  }
  free(buf.mem);
  // Every waiting request gets its answer before the session goes away,
  // after the store has everything.
  fs.finish();
  return status;
}

}  // namespace mqfs::fuse
