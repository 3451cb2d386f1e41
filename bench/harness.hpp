// What the bench programs share: a case's forked workers released together
// and counted in a window (Round), mqfs queue files written and read one
// message per call or in u32 batches (a reader may acknowledge what it read:
// ReaderHooks), the statistics of rounds (medians, ratios within a round) and
// a main that runs subcommands.
#ifndef MQFS_BENCH_HARNESS_HPP
#define MQFS_BENCH_HARNESS_HPP

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

using Ns = int64_t;
constexpr Ns kMs = 1000000;
constexpr int kMaxProcs = 40;
constexpr size_t kSize = 64;      // the rate cases' message size
constexpr size_t kBatch = 65536;  // bytes per framed write and read, as mqfs_bench's mqfs-u32
constexpr long kFramedDepth = 4096;

inline Ns clock_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return Ns{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

inline std::runtime_error failure(const std::string& what) { return std::runtime_error(what + ": " + std::strerror(errno)); }

inline volatile sig_atomic_t g_stopped = 0;
inline void on_usr1(int) { g_stopped = 1; }

// SIGUSR1 stops a worker: without SA_RESTART, a blocked call returns EINTR.
inline void catch_stop_signal() {
  struct sigaction sa {};
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

// A bench program's subcommand: its exit status, or kBadArguments.
using Command = std::function<int(int argc, char** argv)>;
constexpr int kBadArguments = -1;

// A bench program's main: runs the subcommand argv[1] names; prints `usage`
// when there is none or its arguments are wrong, and an error as the program.
inline int run_command(int argc, char** argv, const std::map<std::string, Command>& commands, const char* usage) {
  catch_stop_signal();
  const auto command = argc >= 2 ? commands.find(argv[1]) : commands.end();
  int status = kBadArguments;
  try {
    if (command != commands.end()) status = command->second(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, e.what());
    return 1;
  }
  if (status == kBadArguments) std::fputs(usage, stderr);
  return status == kBadArguments ? 2 : status;
}

// ------------------------------------------------------------------ a case's workers

// Forks a child that runs `body` and exits (status 0; 1 if this process
// ended before it started); it is killed if this process ends.
inline pid_t fork_child(const std::function<void()>& body) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw failure("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    body();
    _exit(0);
  }
  return pid;
}

// Shared with the workers: the window and what each counted.
struct Tally {
  Ns warm, end;
  uint64_t counted[kMaxProcs];
  char error[kMaxProcs][120];
};

// One worker: opens what it needs, calls ready() (which returns at the
// release), then works and counts what completes in the window (in_window).
using Body = std::function<void(const std::function<void()>& ready, uint64_t& count)>;

struct Worker {
  Body body;
  bool counted;  // its count is the case's messages
};

class Round {
 public:
  Round(Ns warmup, Ns window) : warmup_(warmup), window_(window) {
    void* p = mmap(nullptr, sizeof(Tally), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw failure("mmap");
    tally_ = static_cast<Tally*>(p);
  }
  ~Round() { munmap(tally_, sizeof(Tally)); }
  Round(const Round&) = delete;
  Round& operator=(const Round&) = delete;

  const Tally& tally() const { return *tally_; }
  double window_s() const { return static_cast<double>(window_) / 1e9; }

  // Messages/s of the counted workers, or NaN and a line on stderr.
  double run(const std::string& name, const std::vector<Worker>& workers) {
    std::memset(tally_, 0, sizeof(Tally));
    tally_->warm = tally_->end = INT64_MAX;
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) != 0) throw failure("pipe");
    std::vector<pid_t> pids;
    for (size_t i = 0; i < workers.size() && i < kMaxProcs; ++i) {
      pids.push_back(fork_child([&] {
        close(gate[1]);
        try {
          workers[i].body([&] { char c; while (read(gate[0], &c, 1) < 0 && errno == EINTR) {} },
                          tally_->counted[i]);
        } catch (const std::exception& e) {
          std::snprintf(tally_->error[i], sizeof tally_->error[i], "%s", e.what());
        }
      }));
    }
    close(gate[0]);
    usleep(20000);  // let them open their queues
    tally_->warm = clock_ns() + warmup_;
    tally_->end = tally_->warm + window_;
    close(gate[1]);
    reap(pids);
    double messages = 0;
    std::string errors;
    for (size_t i = 0; i < workers.size(); ++i) {
      if (tally_->error[i][0]) errors += std::string(errors.empty() ? "" : "; ") + tally_->error[i];
      if (workers[i].counted) messages += static_cast<double>(tally_->counted[i]);
    }
    if (!errors.empty()) {
      std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, name.c_str(), errors.c_str());
      return NAN;
    }
    return messages / window_s();
  }

 private:
  void reap(std::vector<pid_t>& pids) const {
    while (clock_ns() < tally_->end) usleep(2000);
    const Ns interrupt_at = tally_->end + 20 * kMs, kill_at = tally_->end + 5000 * kMs;
    while (!pids.empty()) {
      std::erase_if(pids, [](pid_t pid) { return waitpid(pid, nullptr, WNOHANG) == pid; });
      const Ns t = clock_ns();
      if (t >= interrupt_at)
        for (pid_t pid : pids) kill(pid, t >= kill_at ? SIGKILL : SIGUSR1);
      if (!pids.empty()) usleep(1000);
    }
  }

  Ns warmup_, window_;
  Tally* tally_;
};

// Counts `n` if now is inside the window; false once it is over (or a stop
// signal came).
inline bool in_window(const Tally& t, uint64_t& count, uint64_t n = 1) {
  if (g_stopped) return false;
  const Ns now = clock_ns();
  if (now >= t.end) return false;
  if (now >= t.warm) count += n;
  return true;
}

// ------------------------------------------------------------------ transports

inline int open_queue(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw failure("open " + path);
  return fd;
}

inline void set_attr(const std::string& path, const char* name, const std::string& value) {
  if (setxattr(path.c_str(), (std::string("user.mq.") + name).c_str(), value.data(), value.size(), 0) != 0)
    throw failure("setxattr " + path + " " + name);
}

// A new queue in an mqfs mount; framed: u32, read_mode=stream, maxmsg=depth.
inline std::string make_queue(const std::string& path, bool framed, long depth = kFramedDepth) {
  unlink(path.c_str());
  close(open_queue(path, O_CREAT | O_EXCL | O_RDWR));
  if (framed) {
    set_attr(path, "maxmsg", std::to_string(depth));
    set_attr(path, "read_mode", "stream");
    set_attr(path, "framing", "u32");
  }
  return path;
}

// One write(2) per message.
inline Worker file_writer(const std::string& path, const Tally& t) {
  return {[&t, path](auto ready, uint64_t& count) {
            const int fd = open_queue(path, O_WRONLY);
            const std::string msg(kSize, 'm');
            ready();
            while (write(fd, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size()) && in_window(t, count)) {
            }
            if (!g_stopped && clock_ns() < t.end) throw failure("write " + path);
          },
          false};
}

// What a reader does besides reading: `opened` once, before the release;
// `after_read` after each read, before its messages are counted (an
// acknowledgement). Empty: a plain reader.
struct ReaderHooks {
  std::function<void(int fd)> opened;
  std::function<void(int fd)> after_read;
};

inline Worker file_reader(const std::string& path, const Tally& t, const ReaderHooks& hooks = {}) {
  return {[&t, path, hooks](auto ready, uint64_t& count) {
            const int fd = open_queue(path, O_RDONLY);
            if (hooks.opened) hooks.opened(fd);
            char buf[kSize];
            ready();
            while (read(fd, buf, sizeof buf) == static_cast<ssize_t>(kSize)) {
              if (hooks.after_read) hooks.after_read(fd);
              if (!in_window(t, count)) break;
            }
            if (!g_stopped && clock_ns() < t.end) throw failure("read " + path);
          },
          true};
}

// u32 frames: a 4-byte little-endian length and the payload.
inline std::string u32_frames(size_t size, size_t count) {
  std::string frame(4 + size, 'm');
  for (int b = 0; b < 4; ++b) frame[b] = static_cast<char>((size >> (8 * b)) & 0xff);
  std::string batch;
  for (size_t i = 0; i < count; ++i) batch += frame;
  return batch;
}

// Writes all of `data`, continuing a write a signal cut short. False when
// stopped.
inline bool write_all(int fd, const std::string& data) {
  for (size_t off = 0; off < data.size();) {
    const ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR && g_stopped) return false;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw failure("framed write");
    off += static_cast<size_t>(n);
  }
  return true;
}

// Messages in one read of u32 frames of `size` bytes.
inline uint64_t frames_in(ssize_t n, size_t size) {
  if (n <= 0 || n % static_cast<ssize_t>(size + 4) != 0)
    throw std::runtime_error("framed read of " + std::to_string(n) + " bytes: not whole frames");
  return static_cast<uint64_t>(n) / (size + 4);
}

inline Worker batch_writer(const std::string& path, const Tally& t) {
  return {[&t, path](auto ready, uint64_t& count) {
            const int fd = open_queue(path, O_WRONLY);
            const std::string batch = u32_frames(kSize, kBatch / (kSize + 4));
            ready();
            while (write_all(fd, batch) && in_window(t, count)) {
            }
          },
          false};
}

inline Worker batch_reader(const std::string& path, const Tally& t, const ReaderHooks& hooks = {}) {
  return {[&t, path, hooks](auto ready, uint64_t& count) {
            const int fd = open_queue(path, O_RDONLY);
            if (hooks.opened) hooks.opened(fd);
            std::vector<char> buf(kBatch);
            ready();
            for (;;) {
              const ssize_t n = read(fd, buf.data(), buf.size());
              if (n < 0 && errno == EINTR) break;
              const uint64_t messages = frames_in(n, kSize);
              if (hooks.after_read) hooks.after_read(fd);
              if (!in_window(t, count, messages)) break;
            }
          },
          true};
}

// ------------------------------------------------------------------ statistics

inline double median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return std::isnan(x); });
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Every key's value in every round; ratios are taken within a round.
using Series = std::map<std::string, std::vector<double>>;

inline std::string fmt(double v, const char* spec = "%.0f") {
  if (std::isnan(v)) return "—";
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

inline const char* verdict(double ratio, double target) { return std::isnan(ratio) ? "not measured" : ratio >= target ? "**met**" : "**not met**"; }

// Ratio a/b of each round, then the median.
inline double median_ratio(const Series& s, const std::string& a, const std::string& b, double scale = 1) {
  std::vector<double> r;
  const auto &x = s.at(a), &y = s.at(b);
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) r.push_back(x[i] / (y[i] * scale));
  return median(r);
}

// Every value of `s` into the CSV file `path` (key,round,value); none: no file.
inline void write_csv(const std::string& path, const Series& s) {
  if (path.empty()) return;
  std::ofstream csv(path);
  csv << "key,round,value\n";
  for (const auto& [key, values] : s)
    for (size_t i = 0; i < values.size(); ++i) csv << key << ',' << i + 1 << ',' << values[i] << '\n';
}

// Rows of a report's targets table, appended to the file `path`.
inline void append_targets(const std::string& path, const std::string& rows) {
  if (path.empty()) return;
  std::ofstream(path, std::ios::app) << rows;
}

inline const char* verdict_at_most(double value, double target) {
  return std::isnan(value) ? "not measured" : value <= target ? "**met**" : "**not met**";
}

// ------------------------------------------------------------------ the daemon's memory, a queue's counters

// KiB, from /proc/PID/smaps_rollup.
struct Memory {
  double rss = 0, pss = 0, priv = 0;  // priv: Private_Clean + Private_Dirty
};

inline Memory daemon_memory(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/smaps_rollup";
  std::ifstream in(path);
  if (!in) throw failure("open " + path);
  Memory m;
  for (std::string line; std::getline(in, line);) {
    char key[64];
    double kib;
    if (std::sscanf(line.c_str(), "%63s %lf kB", key, &kib) != 2) continue;
    const std::string k = key;
    if (k == "Rss:") m.rss = kib;
    else if (k == "Pss:") m.pss = kib;
    else if (k == "Private_Clean:" || k == "Private_Dirty:") m.priv += kib;
  }
  return m;
}

// A numeric attribute (user.mq.NAME) of a queue.
inline int64_t attr(const std::string& path, const char* name) {
  char buf[64];
  const ssize_t n = getxattr(path.c_str(), (std::string("user.mq.") + name).c_str(), buf, sizeof buf - 1);
  if (n < 0) throw failure(std::string("getxattr ") + path + " " + name);
  buf[n] = 0;
  return std::stoll(buf);
}

inline std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  for (size_t at = 0; at < text.size();) {
    size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(std::stoi(text.substr(at, comma - at)));
    at = comma + 1;
  }
  return out;
}

inline void fill(const std::string& path, uint64_t count, size_t size) {
  const int fd = open_queue(path, O_WRONLY);
  const uint64_t per_write = std::max<uint64_t>(1, kBatch / (size + 4));
  const std::string batch = u32_frames(size, per_write);
  for (uint64_t done = 0; done < count; done += per_write)
    write_all(fd, count - done >= per_write ? batch : u32_frames(size, count - done));
  close(fd);
}

}  // namespace bench

#endif  // MQFS_BENCH_HARNESS_HPP
