// mq work: a command per message, under lease (SPEC section 11): exit 0
// acknowledges it; a failure or a crash returns it for redelivery, or past
// max_deliveries to the dead-letter queue.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "mq/commands.hpp"
#include "mq/queue_file.hpp"

extern char** environ;

namespace mq {
namespace {

// A message whose command runs: the open file that holds its lease, until
// the command's end settles it.
struct Job {
  pid_t pid;
  QueueFile lease;
  mqfs_delivery delivery;
};

std::string how_it_ended(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  const char* name = sigabbrev_np(WTERMSIG(status));
  return "killed by signal " + (name ? "SIG" + std::string(name) : std::to_string(WTERMSIG(status)));
}

// The message as the command's standard input: a file in memory, so that a
// command that never reads it cannot hold mq up, whatever its size.
int message_file(const std::string& queue, std::string_view message) {
  const int fd = ::memfd_create("mq-message", MFD_CLOEXEC);
  if (fd < 0) fail(queue, errno);
  for (std::size_t done = 0; done < message.size();) {
    const ssize_t n = ::write(fd, message.data() + done, message.size() - done);
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      fail(queue, error);
    }
    done += static_cast<std::size_t>(n);
  }
  ::lseek(fd, 0, SEEK_SET);
  return fd;
}

class Worker {
 public:
  explicit Worker(const WorkOptions& options) : options_(options) {
    sigemptyset(&handled_);
    for (int signal : {SIGCHLD, SIGTERM, SIGINT}) sigaddset(&handled_, signal);
    sigprocmask(SIG_BLOCK, &handled_, &before_);
    signals_ = ::signalfd(-1, &handled_, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signals_ < 0) fail(options.queue, errno);

    // What every command gets: the signal mask and handlers mq found, its
    // words, and mq's environment but for the MQ_ variables each message sets.
    posix_spawnattr_init(&spawn_);
    posix_spawnattr_setsigmask(&spawn_, &before_);
    posix_spawnattr_setsigdefault(&spawn_, &handled_);
    posix_spawnattr_setflags(&spawn_, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    for (const std::string& word : options.command) argv_.push_back(const_cast<char*>(word.c_str()));
    argv_.push_back(nullptr);
    for (char** entry = environ; *entry; ++entry)
      if (std::strncmp(*entry, "MQ_", 3) != 0) inherited_.push_back(*entry);
  }

  ~Worker() {
    posix_spawnattr_destroy(&spawn_);
    ::close(signals_);
    sigprocmask(SIG_SETMASK, &before_, nullptr);
  }

  int run() {
    if (attribute(options_.queue, "kind") == "topic")
      throw Failure{options_.queue, "a topic: run workers on a queue that subscribes to it (user.mq.subscribe)"};
    for (;;) {
      const bool taking = !stopping_ && (!options_.count || taken_ < *options_.count);
      if (!taking && jobs_.empty()) break;
      const bool room = taking && static_cast<int64_t>(jobs_.size()) < options_.jobs;
      if (room && !taker_) open_taker();
      if (room && !taker_) continue;  // the queue is gone

      // Once a second an idle worker looks whether its queue is still
      // there: `rm` leaves an open queue working (SPEC section 1), but
      // with no name nobody can send to it any more.
      pollfd fds[2] = {{signals_, POLLIN, 0}, {room ? taker_->fd() : -1, POLLIN, 0}};
      const int ready = ::poll(fds, 2, room ? 1000 : -1);
      if (ready < 0 && errno != EINTR) fail(options_.queue, errno);
      if (fds[0].revents & POLLIN) on_signals();
      if (room && !stopping_ && (fds[1].revents & (POLLIN | POLLERR | POLLHUP))) take();
      if (ready == 0 && taker_ && taker_->removed()) stop(removed());
    }
    if (failure_) throw *failure_;
    return kDone;
  }

 private:
  // The open file the next message is read from, with explicit
  // acknowledgement: it becomes that message's lease.
  void open_taker() {
    try {
      taker_.emplace(options_.queue, O_RDONLY | O_NONBLOCK);
    } catch (const Failure& failure) {
      if (opened_ && failure.error == ENOENT) return stop(removed());
      throw;
    }
    opened_ = true;
    const mqfs_attr attr = taker_->attr();
    framing_ = attr.framing;
    msgsize_ = attr.msgsize;
    taker_->set_read_mode(MQFS_READ_MESSAGE);
    taker_->set_ack(MQFS_ACK_EXPLICIT);
  }

  void take() {
    const ssize_t n = read_message(taker_->fd(), msgsize_, buffer_);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;  // another reader was first
    if (n <= 0) {
      stop(Failure{options_.queue, n < 0 ? reason_of(errno) : "end of file before a message"});
      return;
    }
    const mqfs_delivery delivery = taker_->delivery();
    QueueFile lease = std::move(*taker_);
    taker_.reset();
    ++taken_;
    start(std::move(lease), payload({buffer_.data(), static_cast<std::size_t>(n)}, framing_), delivery);
  }

  void start(QueueFile lease, std::string_view message, const mqfs_delivery& delivery) {
    std::string facts[] = {"MQ_QUEUE=" + options_.queue, "MQ_PRIORITY=" + std::to_string(delivery.priority),
                           "MQ_TYPE=" + std::to_string(delivery.type),
                           "MQ_DELIVERY=" + std::to_string(delivery.deliveries),
                           "MQ_ID=" + std::to_string(delivery.id)};
    std::vector<char*> envp = inherited_;
    for (std::string& fact : facts) envp.push_back(fact.data());
    envp.push_back(nullptr);

    const int input = message_file(options_.queue, message);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, input, STDIN_FILENO);
    pid_t pid = 0;
    const int error = posix_spawnp(&pid, argv_[0], &actions, &spawn_, argv_.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(input);
    if (error != 0) {
      lease.settle(MQFS_IOC_NACK, delivery.id);
      stop(Failure{options_.command.front(), error == ENOENT ? "command not found" : reason_of(error)});
      return;
    }
    jobs_.push_back({pid, std::move(lease), delivery});
  }

  void on_signals() {
    signalfd_siginfo info;
    while (::read(signals_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      if (info.ssi_signo == SIGCHLD) {
        reap();
      } else if (!stopping_) {
        stopping_ = true;  // finish what runs, take nothing more
        taker_.reset();
      } else {
        for (const Job& job : jobs_) ::kill(job.pid, SIGTERM);
        jobs_.clear();  // their leases close: the messages return to the queue
        throw Failure{options_.queue, "stopped by a second signal: the running commands were sent SIGTERM and "
                                      "their messages returned to the queue"};
      }
    }
  }

  void reap() {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto job = std::find_if(jobs_.begin(), jobs_.end(), [pid](const Job& j) { return j.pid == pid; });
      if (job == jobs_.end()) continue;
      settle(*job, status);
      jobs_.erase(job);
    }
  }

  void settle(const Job& job, int status) {
    const bool done = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const int error = job.lease.settle(done ? MQFS_IOC_ACK : MQFS_IOC_NACK, job.delivery.id);
    const std::string message = "message " + std::to_string(job.delivery.id);
    const std::string& command = options_.command.front();
    if (error == ETIMEDOUT) {
      report(message + ": lease expired while " + command + " ran (user.mq.lease_ms); it was returned to the queue");
    } else if (error != 0) {
      report(message + ": " + (done ? "acknowledging" : "returning") + " it failed: " + reason_of(error));
    } else if (!done) {
      report(message + " (delivery " + std::to_string(job.delivery.deliveries) + "): " + command + " " +
             how_it_ended(status) + "; returned to the queue");
    }
  }

  void report(const std::string& line) const { std::fprintf(stderr, "mq: %s: %s\n", options_.queue.c_str(), line.c_str()); }

  Failure removed() const { return Failure{options_.queue, reason_of(EIDRM)}; }

  void stop(Failure failure) {
    if (!failure_) failure_ = std::move(failure);
    stopping_ = true;
    taker_.reset();
  }

  const WorkOptions& options_;
  sigset_t handled_;
  sigset_t before_;
  int signals_ = -1;
  posix_spawnattr_t spawn_;
  std::vector<char*> argv_;
  std::vector<char*> inherited_;
  std::optional<QueueFile> taker_;
  bool opened_ = false;  // the queue was there once
  int64_t framing_ = MQFS_FRAMING_NONE;
  int64_t msgsize_ = 0;
  std::vector<char> buffer_;
  std::vector<Job> jobs_;
  int64_t taken_ = 0;
  bool stopping_ = false;
  std::optional<Failure> failure_;
};

}  // namespace

int work(const WorkOptions& options) { return Worker(options).run(); }

}  // namespace mq
