// The session loop: one thread. While no deadline is armed it blocks in
// read(2) on the FUSE device, so that a request costs one read and its reply.
// While one is (a timed wait, a lease, a retry delay), and always for a store
// that writes its records once a turn (the journal), it waits in one epoll
// set with the device, a timerfd for the earliest deadline, an eventfd for
// SIGINT, SIGTERM and SIGHUP, (sync=disk) the eventfd of the store's sync
// thread, and the descriptor of a store on a server (Redis).
// Waiting requests cost no thread: they are answered from here when a queue's
// state, a deadline or an interrupt ends their wait.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
// their peak (by half, at least 1 MiB, at most 32 MiB), the loop hands the
// free memory back to the system.
class MemoryTrimmer {
 public:
  void check(uint64_t held) {
    peak_ = std::max(peak_, held);
    const uint64_t step = std::clamp<uint64_t>(peak_ / 2, uint64_t{1} << 20, uint64_t{32} << 20);
    if (peak_ - held < step) return;
    malloc_trim(0);
    peak_ = held;
  }

 private:
  uint64_t peak_ = 0;
};

// A stop signal must end a read that blocks on the device, or is about to:
// the handler makes the device non-blocking (a read not yet started returns
// at once) and the signal, arriving without SA_RESTART, interrupts one under
// way. It also wakes the epoll set, for the loop that waits there. A signal
// taken by another thread (the store's sync thread) is passed on to the
// loop's.
volatile sig_atomic_t stop_signal = 0;
int signal_device = -1;
int signal_wake = -1;
pthread_t loop_thread;

extern "C" void on_stop_signal(int signo) {
  const int saved = errno;
  stop_signal = signo;
  fcntl(signal_device, F_SETFL, fcntl(signal_device, F_GETFL) | O_NONBLOCK);
  const uint64_t one = 1;
  [[maybe_unused]] auto n = write(signal_wake, &one, sizeof one);
  if (!pthread_equal(pthread_self(), loop_thread)) pthread_kill(loop_thread, signo);
  errno = saved;
}

sigset_t stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int signo : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, signo);
  return signals;
}

bool catch_stop_signals(int device, int wake) {
  signal_device = device;
  signal_wake = wake;
  loop_thread = pthread_self();
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigfillset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: the device read returns EINTR
  for (int signo : {SIGINT, SIGTERM, SIGHUP})
    if (sigaction(signo, &action, nullptr) < 0) return false;
  const sigset_t signals = stop_signals();
  return pthread_sigmask(SIG_UNBLOCK, &signals, nullptr) == 0;
}

// Once the loop has ended, a later signal waits (the daemon is stopping):
// the handler must not touch descriptors that are about to close.
void hold_stop_signals() {
  const sigset_t signals = stop_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

// The device's O_NONBLOCK, changed only when the loop changes its way of
// waiting. Blocking again is checked against a stop signal taken meanwhile.
class DeviceMode {
 public:
  explicit DeviceMode(int device) : device_(device), flags_(fcntl(device, F_GETFL) & ~O_NONBLOCK) {}
  void set_blocking(bool blocking) {
    if (blocking == blocking_) return;
    fcntl(device_, F_SETFL, blocking ? flags_ : flags_ | O_NONBLOCK);
    blocking_ = blocking;
  }
  bool blocking() const { return blocking_; }

 private:
  int device_;
  int flags_;
  bool blocking_ = true;
};

}  // namespace

int run_loop(fuse_session* session, Filesystem& fs) {
  const int device = fuse_session_fd(session);
  Fd wake_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  Fd timer_fd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  Fd epoll_fd(epoll_create1(EPOLL_CLOEXEC));
  if (wake_fd.get() < 0 || timer_fd.get() < 0 || epoll_fd.get() < 0 || !catch_stop_signals(device, wake_fd.get())) {
    spdlog::error("cannot set up the event loop: {}", std::strerror(errno));
    return 1;
  }
  const int server_fd = fs.store().server_fd();  // a store on a server (Redis)
  for (int fd : {device, wake_fd.get(), timer_fd.get(), server_fd}) {
    if (fd < 0) continue;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &event);
  }

  DeviceMode mode(device);
  DeadlineTimer timer(timer_fd.get());
  MemoryTrimmer trimmer;
  fuse_buf buf{};
  int sync_fd = -1;
  int status = 0;
  bool stop = false;
  // One turn: requests, then deadlines, the store's records and the choice
  // of how to wait for the next.
  auto end_turn = [&] {
    if (fs.timeouts().size() > 0) fs.timeouts().expire(engine::Clock::now());
    fs.end_turn();
    auto deadline = fs.timeouts().next();
    if (const auto server = fs.store().server_deadline(); server && (!deadline || *server < *deadline))
      deadline = server;
    timer.arm(deadline);
    if (sync_fd < 0 && fs.store().completion_fd() >= 0) {  // the store's sync thread started
      sync_fd = fs.store().completion_fd();
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = sync_fd;
      epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, sync_fd, &event);
    }
    // A store that writes its records out once a turn keeps the batches of
    // the epoll path; so does a deadline, which the timerfd must be able to
    // end a wait for.
    // So does a store on a server, whose answers come on its descriptor.
    mode.set_blocking(!deadline && !fs.store().batches_records() && server_fd < 0);
  };
  // Takes one request; false when there was none.
  auto receive = [&] {
    const int received = fuse_session_receive_buf(session, &buf);
    if (received == -EAGAIN || received == -EINTR) return false;
    if (received <= 0) {  // 0: unmounted
      if (received < 0) status = 1;
      stop = true;
      return false;
    }
    fuse_session_process_buf(session, &buf);
    fs.cancel_interrupted();
    return true;
  };

  end_turn();
  while (!stop && !fuse_session_exited(session)) {
    if (const int signo = stop_signal) {
      spdlog::info("{} received, unmounting", strsignal(signo));
      break;
    }
    if (mode.blocking()) {
      if (receive()) end_turn();
      trimmer.check(fs.budget().bytes());
      continue;
    }
    bool idle = false;
    for (int n = 0; n < kBatch && !stop && !fuse_session_exited(session); ++n) {
      if (!receive()) {
        idle = !stop;
        break;
      }
    }
    end_turn();
    if (stop || !idle || mode.blocking()) continue;
    trimmer.check(fs.budget().bytes());

    epoll_event events[4];
    int ready = epoll_wait(epoll_fd.get(), events, 4, -1);
    if (ready < 0 && errno != EINTR) {
      spdlog::error("epoll_wait: {}", std::strerror(errno));
      status = 1;
      break;
    }
    for (int i = 0; i < ready; ++i) {
      if (events[i].data.fd == wake_fd.get()) {
        uint64_t count;
        [[maybe_unused]] auto n = read(wake_fd.get(), &count, sizeof count);
      } else if (events[i].data.fd == sync_fd) {
        fs.sync_completed();
      } else if (events[i].data.fd == timer_fd.get()) {
        uint64_t expirations;
        [[maybe_unused]] auto n = read(timer_fd.get(), &expirations, sizeof expirations);
        timer.arm(std::nullopt);  // re-armed after the expiry pass
        if (server_fd >= 0) fs.store().handle_server(engine::Clock::now());
      } else if (events[i].data.fd == server_fd) {
        fs.store().handle_server(engine::Clock::now());
      }
    }
  }
  hold_stop_signals();
  free(buf.mem);
  // Every waiting request gets its answer before the session goes away,
  // after the store has everything.
  fs.finish();
  return status;
}

}  // namespace mqfs::fuse
