// mqfs_bench: how fast mqfs moves messages, next to the kernel's own queues
// (POSIX mq, System V msg, FIFO) and to noop_fs, a FUSE filesystem that does
// nothing and so is the floor of the transport. bench/run.sh builds it, mounts
// mqfs and two noop_fs (single- and multi-threaded loop), and passes them here.
//
// How a case runs: the parent forks the workers, each pinned to its CPUs and
// with its queue already open, then releases them together (a pipe closed).
// Workers count what completes inside a window [warm, end] on CLOCK_MONOTONIC.
// One still blocked after the window is interrupted by SIGUSR1 (no SA_RESTART),
// and killed if that does not end it: no case can hang the run.
//
// Every case is run in every round; ratios are taken within a round (both
// figures measured minutes apart at most, under the same load) and the median
// over the rounds is printed.
//
// The batched cases (mqfs-u32, mqfs-line) are mqfs queues with framing: each
// write(2) carries a batch of messages (u32 frames or lines) and each read(2)
// in stream mode returns as many whole ones as fit; readers count messages.
#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int64_t kMs = 1000000;  // nanoseconds
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kCaseSlack = 15000 * kMs;  // past its expected end, a case is hung
constexpr int64_t kShellTimeout = 30000 * kMs;

// ---------------------------------------------------------------- small tools

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void sleep_until(int64_t t) {
  timespec ts{static_cast<time_t>(t / 1000000000LL), static_cast<long>(t % 1000000000LL)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

// Set by SIGUSR1, which the parent sends to workers still running after their
// window: blocking calls return EINTR, loops see the flag.
volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

// ---------------------------------------------------------------- options

struct Mount {
  std::string dir;
  pid_t daemon = 0;  // pinned with the placement when known
};

struct Options {
  int rounds = 5;
  int64_t warm_ns = 50 * kMs;     // not counted: workers start, caches fill
  int64_t window_ns = 150 * kMs;  // counted, per throughput and latency case
  int64_t op_window_ns = 150 * kMs;
  std::vector<size_t> sizes{64, 1024, 8192, 65536};
  std::vector<int> procs{1, 2, 4};
  std::vector<std::string> placements{"cpu0", "split"};
  long depth = 10;         // messages a queue holds (Linux's mq default)
  size_t op_size = 64;     // message size of the per-message operations
  long op_batch = 200;     // per-message operations timed between two fills
  int shell_echo_n = 1000;
  int shell_cat_n = 100;
  // The batched (framed) mqfs cases.
  std::vector<std::string> framings{"u32", "line"};
  std::vector<int> framed_procs;  // empty: the same as procs
  size_t batch = 65536;           // bytes of frames per write (at least one frame)
  size_t read_buffer = 65536;     // bytes per read (at least one frame)
  long framed_depth = 4096;       // most messages a framed queue holds (else --depth writes' worth)
  std::optional<Mount> mqfs, noop_st, noop_mt;
  std::string scratch;
  std::string markdown, plot_data, plot_vars, raw;
  std::vector<std::string> notes;
  bool quick = false;
};

void usage() {
  std::printf(
      "usage: mqfs_bench [options]\n\n"
      "Measures mqfs against POSIX mq, System V msg, FIFOs and a no-op FUSE filesystem.\n"
      "bench/run.sh mounts the filesystems and runs this; see bench/README.md.\n\n"
      "  --mqfs DIR[:PID]        an mqfs mount (read_mode=stream, msgsize >= largest size)\n"
      "  --noop-st DIR[:PID]     a noop_fs mount running the single-threaded loop (-s)\n"
      "  --noop-mt DIR[:PID]     a noop_fs mount running the multi-threaded loop\n"
      "                          (PID: the daemon, pinned like the workers)\n"
      "  --quick                 about a minute: 3 rounds, short windows\n"
      "  --rounds N              rounds (default 5)\n"
      "  --placements LIST       of cpu0, split, free (default cpu0,split)\n"
      "  --sizes LIST            message sizes in bytes (default 64,1024,8192,65536)\n"
      "  --procs LIST            writers (= readers) per throughput case (default 1,2,4)\n"
      "  --depth N               messages a queue holds (default 10)\n"
      "  --window-ms N           measured window per case (default 150)\n"
      "  --warmup-ms N           uncounted start of each case (default 50)\n"
      "  --framing LIST          batched mqfs cases, of u32, line, or none (default u32,line)\n"
      "  --batch BYTES           frames per write of a batched case: as many as fit (default 65536)\n"
      "  --read-buffer BYTES     read(2) buffer of a batched case's readers (default 65536)\n"
      "  --framed-depth N        most messages a batched case's queue holds: --depth writes'\n"
      "                          worth of frames, at most N (default 4096)\n"
      "  --framed-procs LIST     writers (= readers) of the batched cases, of those in --procs\n"
      "                          (default: all of them; --quick: the first)\n"
      "  --scratch DIR           a directory on tmpfs for FIFOs and files (default: made in /dev/shm)\n"
      "  --markdown FILE         also write the report here\n"
      "  --plot-data FILE        messages/s per size, for plot.gp\n"
      "  --plot-vars FILE        the layout of that data, for plot.gp\n"
      "  --raw FILE              every measurement of every round (CSV)\n"
      "  --note TEXT             a line for the report's header\n");
}

Mount parse_mount(const std::string& arg) {
  Mount m;
  auto colon = arg.rfind(':');
  m.dir = arg.substr(0, colon);
  if (colon != std::string::npos) m.daemon = std::atoi(arg.c_str() + colon + 1);
  return m;
}

Options parse_options(int argc, char** argv) {
  Options o;
  bool rounds_given = false, window_given = false;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "mqfs_bench: %s needs a value\n", argv[i]);
      std::exit(2);
    }
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--rounds") {
      o.rounds = std::max(1, std::atoi(value(i).c_str()));
      rounds_given = true;
    } else if (a == "--placements") {
      o.placements = split(value(i), ',');
    } else if (a == "--sizes") {
      o.sizes.clear();
      for (auto& s : split(value(i), ',')) o.sizes.push_back(std::strtoul(s.c_str(), nullptr, 10));
    } else if (a == "--procs") {
      o.procs.clear();
      for (auto& s : split(value(i), ',')) o.procs.push_back(std::clamp(std::atoi(s.c_str()), 1, 8));
    } else if (a == "--depth") {
      o.depth = std::max(1L, std::atol(value(i).c_str()));
    } else if (a == "--window-ms") {
      o.window_ns = o.op_window_ns = std::max(1L, std::atol(value(i).c_str())) * kMs;
      window_given = true;
    } else if (a == "--warmup-ms") {
      o.warm_ns = std::max(0L, std::atol(value(i).c_str())) * kMs;
    } else if (a == "--framing") {
      o.framings.clear();
      for (auto& f : split(value(i), ',')) {
        if (f == "none") continue;
        if (f != "u32" && f != "line") {
          std::fprintf(stderr, "mqfs_bench: unknown framing %s (u32, line, none)\n", f.c_str());
          std::exit(2);
        }
        o.framings.push_back(f);
      }
    } else if (a == "--batch") {
      o.batch = std::clamp<size_t>(std::strtoul(value(i).c_str(), nullptr, 10), 1, 1 << 20);
    } else if (a == "--read-buffer") {
      o.read_buffer = std::clamp<size_t>(std::strtoul(value(i).c_str(), nullptr, 10), 1, 1 << 20);
    } else if (a == "--framed-depth") {
      o.framed_depth = std::clamp(std::atol(value(i).c_str()), 1L, 1L << 30);
    } else if (a == "--framed-procs") {
      o.framed_procs.clear();
      for (auto& s : split(value(i), ',')) o.framed_procs.push_back(std::clamp(std::atoi(s.c_str()), 1, 8));
    } else if (a == "--mqfs") {
      o.mqfs = parse_mount(value(i));
    } else if (a == "--noop-st") {
      o.noop_st = parse_mount(value(i));
    } else if (a == "--noop-mt") {
      o.noop_mt = parse_mount(value(i));
    } else if (a == "--scratch") {
      o.scratch = value(i);
    } else if (a == "--markdown") {
      o.markdown = value(i);
    } else if (a == "--plot-data") {
      o.plot_data = value(i);
    } else if (a == "--plot-vars") {
      o.plot_vars = value(i);
    } else if (a == "--raw") {
      o.raw = value(i);
    } else if (a == "--note") {
      o.notes.push_back(value(i));
    } else {
      std::fprintf(stderr, "mqfs_bench: unknown argument %s (see --help)\n", a.c_str());
      std::exit(2);
    }
  }
  if (o.quick) {
    if (!rounds_given) o.rounds = 3;
    if (!window_given) o.window_ns = o.op_window_ns = 50 * kMs;
    o.warm_ns = std::min(o.warm_ns, 20 * kMs);
    o.shell_echo_n = 300;
    o.shell_cat_n = 30;
  }
  // --quick keeps to about a minute: batched cases with the first process
  // count only (1+1 by default).
  if (o.framed_procs.empty())
    o.framed_procs = o.quick && !o.procs.empty() ? std::vector<int>{o.procs.front()} : o.procs;
  return o;
}

// ---------------------------------------------------------------- CPU placement

// Where the two sides of a case and the daemon run. "Writers" are the senders
// of a throughput case and the pinger of a ping-pong; "readers" the receivers
// and the ponger. The per-message operations run on the readers' CPUs, so
// that in `split` they and the daemon are on different CPUs.
struct Placement {
  std::string id, title;
  cpu_set_t writers, readers, daemon;
};

cpu_set_t cpus_of(std::initializer_list<int> ids) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int id : ids) CPU_SET(id, &set);
  return set;
}

std::vector<Placement> make_placements(const Options& o, const cpu_set_t& all, std::vector<std::string>& skipped) {
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &all)) cpus.push_back(c);
  std::vector<Placement> out;
  for (const auto& id : o.placements) {
    Placement p;
    p.id = id;
    if (id == "cpu0") {
      p.title = format("all processes on CPU %d (daemon too)", cpus[0]);
      p.writers = p.readers = p.daemon = cpus_of({cpus[0]});
    } else if (id == "split") {
      if (cpus.size() < 2) {
        skipped.push_back("split (one CPU only)");
        continue;
      }
      p.title = format("writers and daemon on CPU %d, readers on CPU %d", cpus[0], cpus[1]);
      p.writers = p.daemon = cpus_of({cpus[0]});
      p.readers = cpus_of({cpus[1]});
    } else if (id == "free") {
      p.title = "not pinned (the scheduler places everything)";
      p.writers = p.readers = p.daemon = all;
    } else {
      std::fprintf(stderr, "mqfs_bench: unknown placement %s (cpu0, split, free)\n", id.c_str());
      std::exit(2);
    }
    out.push_back(p);
  }
  return out;
}

void pin_self(const cpu_set_t& set) {
  if (sched_setaffinity(0, sizeof set, &set) != 0) throw sys_error("sched_setaffinity");
}

// Pins every thread of a daemon; threads it starts later inherit it.
void pin_process(pid_t pid, const cpu_set_t& set) {
  if (pid <= 0) return;
  DIR* dir = opendir(format("/proc/%d/task", pid).c_str());
  if (!dir) return;
  while (dirent* e = readdir(dir)) {
    pid_t tid = std::atoi(e->d_name);
    if (tid > 0) sched_setaffinity(tid, sizeof set, &set);
  }
  closedir(dir);
}

int thread_count(pid_t pid) {
  if (pid <= 0) return 0;
  int n = 0;
  if (DIR* dir = opendir(format("/proc/%d/task", pid).c_str())) {
    while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
    closedir(dir);
  }
  return n;
}

// ---------------------------------------------------------------- transports and queues

// MqfsU32 and MqfsLine: mqfs queues with that framing, measured in batches
// (run_batched), not one message per call.
enum class Kind { Mqfs, NoopSt, NoopMt, Posix, Sysv, Fifo, Tmpfs, MqfsU32, MqfsLine };

struct Transport {
  Kind kind;
  std::string id;     // in keys, the raw CSV and the plot
  std::string title;  // in the report
  std::string dir;    // mounts, FIFOs and tmpfs files live here
  pid_t daemon = 0;
  bool is_floor() const { return kind == Kind::NoopSt || kind == Kind::NoopMt; }
  bool is_file() const { return kind == Kind::Mqfs || is_floor() || kind == Kind::Tmpfs; }
  bool is_batched() const { return kind == Kind::MqfsU32 || kind == Kind::MqfsLine; }
};

// plot.gp's line type (colour, dash, point) of each transport, whatever the
// column it lands in.
int line_type(Kind k) {
  switch (k) {
    case Kind::Mqfs: return 1;
    case Kind::Posix: return 2;
    case Kind::Sysv: return 3;
    case Kind::Fifo: return 4;
    case Kind::NoopSt: return 5;
    case Kind::NoopMt: return 6;
    case Kind::MqfsU32: return 7;
    case Kind::MqfsLine: return 8;
    case Kind::Tmpfs: break;
  }
  return 9;
}

int g_seq = 0;  // makes every queue's name new

// One queue of one transport. The parent makes it (and removes it when the
// object dies); each worker, after fork, attaches and sends or receives
// messages of its own buffer.
class Queue {
 public:
  virtual ~Queue() = default;
  virtual void attach(bool send, bool recv) = 0;
  virtual ssize_t send(size_t n) = 0;    // one message of n bytes; -1 and errno
  virtual ssize_t recv(size_t cap) = 0;  // one message, at most cap bytes
  virtual bool bytes_only() const { return false; }  // a FIFO keeps no boundaries
};

// mqfs queues, noop_fs files and FIFOs: plain read(2) and write(2).
class FileQueue : public Queue {
 public:
  FileQueue(std::string path, size_t size) : path_(std::move(path)), buf_(size, 'm') {}
  ~FileQueue() override {
    if (fd_ >= 0) close(fd_);
  }
  void attach(bool send, bool recv) override {
    int flags = send && recv ? O_RDWR : send ? O_WRONLY : O_RDONLY;
    fd_ = open(path_.c_str(), flags | O_CLOEXEC);
    if (fd_ < 0) throw sys_error("open " + path_);
  }
  ssize_t send(size_t n) override { return write(fd_, buf_.data(), n); }
  ssize_t recv(size_t cap) override { return read(fd_, buf_.data(), cap); }
  const std::string& path() const { return path_; }

 protected:
  std::string path_;
  std::vector<char> buf_;
  int fd_ = -1;
};

void set_xattr(const std::string& path, const char* name, const std::string& value) {
  if (setxattr(path.c_str(), name, value.data(), value.size(), 0) != 0)
    throw sys_error(format("setxattr %s %s=%s", path.c_str(), name, value.c_str()));
}

class MqfsQueue : public FileQueue {
 public:
  // framing: nullptr leaves the mount's default (none, as run.sh mounts it).
  MqfsQueue(const std::string& dir, size_t size, long maxmsg, const char* read_mode, const char* framing = nullptr)
      : FileQueue(format("%s/q%d", dir.c_str(), ++g_seq), size) {
    int fd = open(path_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0666);
    if (fd < 0) throw sys_error("create " + path_);
    close(fd);
    made_ = true;
    set_xattr(path_, "user.mq.maxmsg", std::to_string(maxmsg));
    set_xattr(path_, "user.mq.read_mode", read_mode);
    if (framing) set_xattr(path_, "user.mq.framing", framing);
  }
  ~MqfsQueue() override {
    if (made_) unlink(path_.c_str());  // messages left are freed at the last close
  }

 private:
  bool made_ = false;
};

// A FIFO's capacity is bytes; it is set to hold `depth` messages (at least one
// page, the kernel's minimum). Workers open it read-write, so no open blocks
// and no reader sees end of file when a writer finishes first.
class FifoQueue : public FileQueue {
 public:
  FifoQueue(const std::string& dir, size_t size, long depth)
      : FileQueue(format("%s/fifo%d", dir.c_str(), ++g_seq), size) {
    if (mkfifo(path_.c_str(), 0600) != 0) throw sys_error("mkfifo " + path_);
    holder_ = open(path_.c_str(), O_RDWR | O_CLOEXEC);  // keeps the pipe and its size
    if (holder_ < 0) throw sys_error("open " + path_);
    long bytes = std::max(4096L, depth * static_cast<long>(size));
    if (fcntl(holder_, F_SETPIPE_SZ, bytes) < 0) throw sys_error("F_SETPIPE_SZ");
  }
  ~FifoQueue() override {
    if (holder_ >= 0) close(holder_);
    unlink(path_.c_str());
  }
  void attach(bool, bool) override { FileQueue::attach(true, true); }
  bool bytes_only() const override { return true; }

 private:
  int holder_ = -1;
};

class PosixQueue : public Queue {
 public:
  PosixQueue(size_t size, long depth) : name_(format("/mqfs-bench-%d-%d", getpid(), ++g_seq)), buf_(size, 'm') {
    mq_attr attr{};
    attr.mq_maxmsg = depth;
    attr.mq_msgsize = static_cast<long>(size);
    mqd_t q = mq_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
    if (q == (mqd_t)-1) throw sys_error(format("mq_open maxmsg=%ld msgsize=%zu", depth, size));
    mq_close(q);
  }
  ~PosixQueue() override { mq_unlink(name_.c_str()); }
  void attach(bool send, bool recv) override {
    q_ = mq_open(name_.c_str(), (send && recv ? O_RDWR : send ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    if (q_ == (mqd_t)-1) throw sys_error("mq_open " + name_);
  }
  ssize_t send(size_t n) override { return mq_send(q_, buf_.data(), n, 0) == 0 ? static_cast<ssize_t>(n) : -1; }
  ssize_t recv(size_t) override { return mq_receive(q_, buf_.data(), buf_.size(), nullptr); }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<char> buf_;
  mqd_t q_ = (mqd_t)-1;
};

// msg_qbytes is set so that the queue holds `depth` messages, like the others.
class SysvQueue : public Queue {
 public:
  SysvQueue(size_t size, long depth) : buf_(1 + (size + sizeof(long) - 1) / sizeof(long), 0) {
    buf_[0] = 1;  // mtype
    id_ = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (id_ < 0) throw sys_error("msgget");
    msqid_ds ds{};
    msgctl(id_, IPC_STAT, &ds);
    ds.msg_qbytes = depth * size;
    if (msgctl(id_, IPC_SET, &ds) != 0) throw sys_error("msgctl IPC_SET msg_qbytes");
  }
  ~SysvQueue() override { msgctl(id_, IPC_RMID, nullptr); }
  void attach(bool, bool) override {}
  ssize_t send(size_t n) override { return msgsnd(id_, buf_.data(), n, 0) == 0 ? static_cast<ssize_t>(n) : -1; }
  ssize_t recv(size_t cap) override { return msgrcv(id_, buf_.data(), cap, 0, 0); }

 private:
  std::vector<long> buf_;  // struct msgbuf: a long, then the text
  int id_ = -1;
};

std::unique_ptr<Queue> make_queue(const Transport& t, size_t size, long depth) {
  switch (t.kind) {
    case Kind::Mqfs:
      return std::make_unique<MqfsQueue>(t.dir, size, depth, "stream");
    case Kind::NoopSt:
    case Kind::NoopMt:
      return std::make_unique<FileQueue>(format("%s/q%d.%zu", t.dir.c_str(), ++g_seq, size), size);
    case Kind::Fifo:
      return std::make_unique<FifoQueue>(t.dir, size, depth);
    case Kind::Posix:
      return std::make_unique<PosixQueue>(size, depth);
    case Kind::Sysv:
      return std::make_unique<SysvQueue>(size, depth);
    case Kind::Tmpfs:
    case Kind::MqfsU32:
    case Kind::MqfsLine:
      break;  // run_batched makes its own
  }
  throw std::logic_error("no queue of " + t.id);
}

// ---------------------------------------------------------------- workers

constexpr int kMaxWorkers = 16;
constexpr uint32_t kMaxSamples = 1 << 19;

// What a worker reports back, in memory shared with the parent.
struct Slot {
  int done;  // 1 when the worker ended normally
  uint64_t count;
  uint64_t calls;  // batched readers: the read(2)s counted
  int64_t elapsed_ns;
  char error[160];
};

struct Board {
  int64_t warm, end;  // the counted window, CLOCK_MONOTONIC
  Slot slots[kMaxWorkers];
  uint32_t nsamples;
  uint32_t samples[kMaxSamples];  // round trips, nanoseconds
};

Board* make_board() {
  void* p = mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw sys_error("mmap");
  return static_cast<Board*>(p);
}

// The workers of one case: forked, pinned, released together, reaped within
// bounded time whatever they do.
class Crew {
 public:
  explicit Crew(Board& board) : board_(board) {
    std::memset(board_.slots, 0, sizeof board_.slots);
    board_.nsamples = 0;
    board_.warm = board_.end = INT64_MAX;
    if (pipe2(barrier_, O_CLOEXEC) != 0) throw sys_error("pipe");
  }
  Crew(const Crew&) = delete;
  Crew& operator=(const Crew&) = delete;
  ~Crew() {
    for (int fd : barrier_)
      if (fd >= 0) close(fd);
    for (pid_t pid : running_) kill(pid, SIGKILL);
    for (pid_t pid : running_) waitpid(pid, nullptr, 0);
  }

  // Forks a worker on `cpus` that runs body(slot) and exits. The body opens
  // what it needs, then calls await_start().
  void spawn(const cpu_set_t& cpus, const std::function<void(Slot&)>& body) {
    if (spawned_ >= kMaxWorkers) throw std::logic_error("too many workers");
    Slot& slot = board_.slots[spawned_];
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) throw sys_error("fork");
    if (pid == 0) {
      // A worker blocked on an empty queue must not outlive a killed parent.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      close(barrier_[1]);
      try {
        pin_self(cpus);
        body(slot);
        slot.done = 1;
      } catch (const std::exception& e) {
        std::snprintf(slot.error, sizeof slot.error, "%s", e.what());
      }
      _exit(0);  // no destructors: the queues belong to the parent
    }
    running_.push_back(pid);
    ++spawned_;
  }

  void await_start() const {
    char c;
    while (read(barrier_[0], &c, 1) < 0 && errno == EINTR) {
    }
  }

  // Opens the window: `warm` of uncounted start, then `window` counted.
  void start(int64_t warm, int64_t window) {
    board_.warm = now_ns() + warm;
    board_.end = board_.warm + window;
    close(barrier_[1]);  // every worker's read returns
    barrier_[1] = -1;
  }

  // Waits for the window to pass and for every worker to end. Returns what
  // went wrong, or "" when every worker ended normally.
  std::string finish() {
    sleep_until(board_.end);
    // Workers stuck in a hung mount outlive SIGKILL until the watchdog kills
    // its daemon (kCaseSlack); then they end too.
    const int64_t interrupt_at = board_.end + 5 * kMs;
    const int64_t kill_at = board_.end + 3000 * kMs;
    const int64_t give_up_at = board_.end + kCaseSlack + 5000 * kMs;
    std::string problems;
    while (!running_.empty()) {
      reap();
      if (running_.empty()) break;
      int64_t t = now_ns();
      if (t >= give_up_at) {
        problems += format("%zu workers would not die; ", running_.size());
        running_.clear();  // left as zombies rather than hanging the run
        break;
      }
      int sig = t >= kill_at ? SIGKILL : t >= interrupt_at ? SIGUSR1 : 0;
      if (sig == SIGKILL && !killed_) problems += "a worker had to be killed; ";
      if (sig == SIGKILL) killed_ = true;
      if (sig)
        for (pid_t pid : running_) kill(pid, sig);
      usleep(1000);
    }
    for (size_t i = 0; i < spawned(); ++i) {
      const Slot& s = board_.slots[i];
      if (s.error[0]) problems += std::string(s.error) + "; ";
      else if (!s.done && !killed_) problems += "a worker died; ";
    }
    if (!problems.empty()) problems.resize(problems.size() - 2);
    return problems;
  }

  size_t spawned() const { return spawned_; }

 private:
  void reap() {
    for (auto it = running_.begin(); it != running_.end();) {
      if (waitpid(*it, nullptr, WNOHANG) == *it) {
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
  }

  Board& board_;
  int barrier_[2] = {-1, -1};
  std::vector<pid_t> running_;  // shrinks as workers are reaped
  size_t spawned_ = 0;
  bool killed_ = false;
};

// A whole message: one receive, or for a FIFO as many reads as it takes.
// False when a signal interrupted it.
bool recv_message(Queue& q, size_t size) {
  size_t got = 0;
  do {
    ssize_t n = q.recv(size - got);
    if (n < 0 && errno == EINTR) return false;
    if (n < 0) throw sys_error("receive");
    if (n == 0) throw std::runtime_error("receive: end of file");
    got += static_cast<size_t>(n);
  } while (q.bytes_only() && got < size);
  return true;
}

bool send_message(Queue& q, size_t size) {
  if (q.send(size) >= 0) return true;
  if (errno == EINTR) return false;
  throw sys_error("send");
}

void send_until_end(Queue& q, size_t size, const Board& board) {
  while (!g_stop && send_message(q, size) && now_ns() < board.end) {
  }
}

// Bytes received inside the window.
uint64_t receive_until_end(Queue& q, size_t size, const Board& board) {
  uint64_t bytes = 0;
  while (!g_stop) {
    ssize_t n = q.recv(size);
    if (n < 0) {
      if (errno == EINTR) break;
      throw sys_error("receive");
    }
    if (n == 0) throw std::runtime_error("receive: end of file");
    int64_t t = now_ns();
    if (t >= board.end) break;
    if (t >= board.warm) bytes += static_cast<uint64_t>(n);
  }
  return bytes;
}

struct Outcome {
  double value = kNaN;
  double value2 = kNaN;
  std::string error;
};

// ---------------------------------------------------------------- the cases

// Messages per second through one queue, `procs` writers and `procs` readers.
Outcome run_throughput(const Transport& t, size_t size, int procs, const Placement& p, const Options& o,
                       Board& board) {
  auto q = make_queue(t, size, o.depth);
  Crew crew(board);
  for (int i = 0; i < procs; ++i) {
    crew.spawn(p.writers, [&](Slot&) {
      q->attach(true, false);
      crew.await_start();
      send_until_end(*q, size, board);
    });
  }
  for (int i = 0; i < procs; ++i) {
    crew.spawn(p.readers, [&](Slot& slot) {
      q->attach(false, true);
      crew.await_start();
      slot.count = receive_until_end(*q, size, board);
    });
  }
  crew.start(o.warm_ns, o.window_ns);
  Outcome out;
  out.error = crew.finish();
  if (!out.error.empty()) return out;
  uint64_t bytes = 0;
  for (int i = procs; i < 2 * procs; ++i) bytes += board.slots[i].count;
  out.value = static_cast<double>(bytes) / static_cast<double>(size) / (static_cast<double>(o.window_ns) / 1e9);
  return out;
}

// ---------------------------------------------------------------- batched (framed) mqfs

// One message on the wire of a framed queue: u32, a 4-byte little-endian
// length and `size` bytes; line, `size` bytes of which the last is '\n'.
size_t frame_bytes(Kind k, size_t size) { return k == Kind::MqfsU32 ? size + 4 : size; }

// As many frames as fit in --batch bytes, at least one.
size_t frames_per_write(Kind k, size_t size, const Options& o) {
  return std::max<size_t>(1, o.batch / frame_bytes(k, size));
}

// A framed queue holds --depth writes, as the other cases' queues hold
// --depth messages, but at most --framed-depth messages (u32: 4096 at 64 B,
// 630 at 1 KiB, 70 at 8 KiB, 10 at 64 KiB). A deeper queue of large messages is still
// growing into memory the daemon has never touched when the window ends, and
// the case would measure that instead of the transfer.
long framed_depth_of(Kind k, size_t size, const Options& o) {
  const size_t writes = static_cast<size_t>(o.depth) * frames_per_write(k, size, o);
  return static_cast<long>(std::min(static_cast<size_t>(o.framed_depth), writes));
}

// --read-buffer, but at least one frame (a u32 read too small for the next
// frame fails with EMSGSIZE).
size_t read_buffer_of(Kind k, size_t size, const Options& o) { return std::max(o.read_buffer, frame_bytes(k, size)); }

std::vector<char> make_batch(Kind k, size_t size, size_t frames) {
  const size_t fb = frame_bytes(k, size);
  std::vector<char> batch(fb * frames, 'm');
  for (size_t i = 0; i < frames; ++i) {
    char* f = batch.data() + i * fb;
    if (k == Kind::MqfsU32) {
      for (int b = 0; b < 4; ++b) f[b] = static_cast<char>((size >> (8 * b)) & 0xff);
    } else {
      f[fb - 1] = '\n';
    }
  }
  return batch;
}

// The messages in what one read returned: whole frames (lines) of `size`
// bytes, or the run is wrong and says so.
uint64_t count_frames(Kind k, const char* p, size_t n, size_t size) {
  uint64_t count = 0;
  if (k == Kind::MqfsU32) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    for (size_t at = 0; at < n; ++count) {
      const uint32_t len = n - at < 4 ? 0 : u[at] | u[at + 1] << 8 | u[at + 2] << 16 | static_cast<uint32_t>(u[at + 3]) << 24;
      if (len != size || n - at - 4 < len)
        throw std::runtime_error(format("read %zu bytes: not whole frames of %zu bytes (at %zu, length %u)", n, size,
                                        at, len));
      at += 4 + len;
    }
    return count;
  }
  for (const char* at = p; (at = static_cast<const char*>(std::memchr(at, '\n', static_cast<size_t>(p + n - at))));
       ++at)
    ++count;
  if (count * size != n || p[n - 1] != '\n')
    throw std::runtime_error(format("read %zu bytes: not whole lines of %zu bytes (%llu newlines)", n, size,
                                    static_cast<unsigned long long>(count)));
  return count;
}

// Messages per second through one framed mqfs queue (user.mq.framing u32 or
// line, read_mode=stream, maxmsg=framed_depth_of()), `procs` writers and `procs`
// readers. Each write(2) carries frames_per_write() messages (blocking: it
// returns when all are queued; a short one, on a signal, is continued); each
// read(2) gets as many whole ones as fit in the buffer, and the reader counts
// them. value = messages/s, value2 = messages per read(2).
Outcome run_batched(const Transport& t, size_t size, int procs, const Placement& p, const Options& o, Board& board) {
  MqfsQueue q(t.dir, size, framed_depth_of(t.kind, size, o), "stream", t.kind == Kind::MqfsU32 ? "u32" : "line");
  const std::string& path = q.path();
  const size_t frames = frames_per_write(t.kind, size, o);
  const size_t cap = read_buffer_of(t.kind, size, o);
  Crew crew(board);
  for (int i = 0; i < procs; ++i) {
    crew.spawn(p.writers, [&](Slot&) {
      const std::vector<char> batch = make_batch(t.kind, size, frames);
      const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) throw sys_error("open " + path);
      crew.await_start();
      while (!g_stop && now_ns() < board.end) {
        for (size_t off = 0; off < batch.size() && !g_stop;) {
          const ssize_t n = write(fd, batch.data() + off, batch.size() - off);
          if (n < 0 && errno == EINTR) return;
          if (n < 0) throw sys_error("framed write");
          if (n == 0) throw std::runtime_error("framed write: wrote nothing");
          off += static_cast<size_t>(n);
        }
      }
    });
  }
  for (int i = 0; i < procs; ++i) {
    crew.spawn(p.readers, [&](Slot& slot) {
      std::vector<char> buf(cap);
      const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw sys_error("open " + path);
      crew.await_start();
      while (!g_stop) {
        const ssize_t n = read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) break;
        if (n < 0) throw sys_error("framed read");
        if (n == 0) throw std::runtime_error("framed read: end of file");
        const int64_t now = now_ns();
        if (now >= board.end) break;
        const uint64_t got = count_frames(t.kind, buf.data(), static_cast<size_t>(n), size);
        if (now >= board.warm) {
          slot.count += got;
          ++slot.calls;
        }
      }
    });
  }
  crew.start(o.warm_ns, o.window_ns);
  Outcome out;
  out.error = crew.finish();
  if (!out.error.empty()) return out;
  uint64_t messages = 0, reads = 0;
  for (int i = procs; i < 2 * procs; ++i) {
    messages += board.slots[i].count;
    reads += board.slots[i].calls;
  }
  out.value = static_cast<double>(messages) / (static_cast<double>(o.window_ns) / 1e9);
  if (reads) out.value2 = static_cast<double>(messages) / static_cast<double>(reads);
  return out;
}

double percentile(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return kNaN;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

// Round trips over two queues: the pinger (writers' CPUs) sends on one and
// waits for the answer on the other; the ponger (readers' CPUs) sends back
// each message it gets. On the no-op floor nothing waits, so one process makes
// the four requests of a round trip (send, receive, send, receive) and that
// is the sample; it runs on the readers' CPUs, so that in `split` its
// requests cross to the daemon's CPU as the ponger's do.
// value = p50, value2 = p99, in microseconds.
Outcome run_latency(const Transport& t, size_t size, const Placement& p, const Options& o, Board& board) {
  // One message is ever in flight, so queues of one message do.
  auto ping = make_queue(t, size, 1);
  auto pong = make_queue(t, size, 1);
  const bool floor = t.is_floor();
  Crew crew(board);
  crew.spawn(floor ? p.readers : p.writers, [&](Slot&) {
    ping->attach(true, floor);
    pong->attach(floor, true);
    crew.await_start();
    while (!g_stop && board.nsamples < kMaxSamples) {
      int64_t t0 = now_ns();
      if (!send_message(*ping, size)) break;
      if (floor && !(recv_message(*ping, size) && send_message(*pong, size))) break;
      if (!recv_message(*pong, size)) break;
      int64_t t1 = now_ns();
      if (t1 >= board.end) break;
      if (t0 >= board.warm) board.samples[board.nsamples++] = static_cast<uint32_t>(std::min<int64_t>(t1 - t0, UINT32_MAX));
    }
  });
  if (!floor) {
    crew.spawn(p.readers, [&](Slot&) {
      ping->attach(false, true);
      pong->attach(true, false);
      crew.await_start();
      while (!g_stop && recv_message(*ping, size) && send_message(*pong, size)) {
      }
    });
  }
  crew.start(o.warm_ns, o.window_ns);
  Outcome out;
  out.error = crew.finish();
  if (!out.error.empty()) return out;
  std::vector<uint32_t> samples(board.samples, board.samples + board.nsamples);
  if (samples.size() < 10) {
    out.error = "fewer than 10 round trips";
    return out;
  }
  out.value = percentile(samples, 0.50) / 1000.0;
  out.value2 = percentile(samples, 0.99) / 1000.0;
  return out;
}

// ---------------------------------------------------------------- per-message operations

enum class Op { OpenReadClose, OpenWriteClose, ShellEcho, ShellCat };

struct OpInfo {
  Op op;
  const char* id;
  const char* title;
};

const OpInfo kOps[] = {
    {Op::OpenReadClose, "open-read-close", "open, read to end of file, close (what `cat q` does)"},
    {Op::OpenWriteClose, "open-write-close", "open(O_TRUNC), write, close (what `echo > q` does)"},
    {Op::ShellEcho, "shell-echo", "bash loop `echo $i > q` (builtin echo)"},
    {Op::ShellCat, "shell-cat", "bash loop `cat q > /dev/null` (a process each)"},
};

bool op_applies(Op op, const Transport& t) {
  if (t.kind == Kind::Posix) return op == Op::OpenReadClose || op == Op::OpenWriteClose;
  return t.is_file();
}

// Where a per-message operation works: an mqfs queue in read_mode=message
// (every open file delivers one message, then end of file), a noop_fs "once"
// file that behaves the same, a tmpfs file holding one message, or a POSIX
// queue. Reads need messages waiting and writes need room: fill() and empty()
// make them, untimed, between timed batches. Queues stay small that way, which
// matters for POSIX ones (RLIMIT_MSGQUEUE, 800 KiB by default).
class OpTarget {
 public:
  OpTarget(const Transport& t, size_t size, long room) : t_(t), size_(size) {
    switch (t.kind) {
      case Kind::Mqfs: {
        auto q = std::make_unique<MqfsQueue>(t.dir, size, room, "message");
        path_ = q->path();
        owner_ = std::move(q);
        break;
      }
      case Kind::NoopSt:
      case Kind::NoopMt:
        path_ = format("%s/once%d.%zu", t.dir.c_str(), ++g_seq, size);
        break;
      case Kind::Tmpfs:
        path_ = format("%s/file%d", t.dir.c_str(), ++g_seq);
        if (!write_text(path_, std::string(size, 'm'))) throw sys_error("write " + path_);
        break;
      case Kind::Posix: {
        auto q = std::make_unique<PosixQueue>(size, room);
        path_ = q->name();
        owner_ = std::move(q);
        break;
      }
      default:
        throw std::logic_error("no per-message operation on " + t.id);
    }
  }

  const std::string& path() const { return path_; }

  // Queues n messages (mqfs and POSIX; the others need none).
  void fill(long n) {
    if (!owner_) return;
    if (!attached_) owner_->attach(true, true);
    attached_ = true;
    for (long i = 0; i < n; ++i)
      if (owner_->send(size_) < 0) throw sys_error("fill " + path_);
  }

  // Takes every message the timed writes queued.
  void empty() {
    if (t_.kind == Kind::Mqfs) {
      if (truncate(path_.c_str(), 0) != 0) throw sys_error("truncate " + path_);  // purges the queue
    } else if (t_.kind == Kind::Posix) {
      mqd_t q = mq_open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (q == (mqd_t)-1) throw sys_error("mq_open " + path_);
      std::vector<char> buf(size_);
      while (mq_receive(q, buf.data(), buf.size(), nullptr) >= 0) {
      }
      mq_close(q);
    }
  }

 private:
  const Transport& t_;
  size_t size_;
  std::string path_;  // a file, or the POSIX queue's name
  std::unique_ptr<Queue> owner_;
  bool attached_ = false;
};

void open_read_close(const Transport& t, const std::string& path, std::vector<char>& buf) {
  if (t.kind == Kind::Posix) {
    mqd_t q = mq_open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (q == (mqd_t)-1) throw sys_error("mq_open");
    if (mq_receive(q, buf.data(), buf.size(), nullptr) < 0) throw sys_error("mq_receive");
    mq_close(q);
    return;
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw sys_error("open " + path);
  // Two reads: the message, then end of file. A file that gives neither within
  // four reads is not in message mode.
  for (int reads = 0;; ++reads) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) throw sys_error("read " + path);
    if (n == 0) break;
    if (reads == 3) throw std::runtime_error("no end of file after a message: " + path);
  }
  close(fd);
}

void open_write_close(const Transport& t, const std::string& path, std::vector<char>& buf) {
  if (t.kind == Kind::Posix) {
    mqd_t q = mq_open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (q == (mqd_t)-1) throw sys_error("mq_open");
    if (mq_send(q, buf.data(), buf.size(), 0) != 0) throw sys_error("mq_send");
    mq_close(q);
    return;
  }
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);  // the shell's `>`
  if (fd < 0) throw sys_error("open " + path);
  if (write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) throw sys_error("write " + path);
  close(fd);
}

// Runs a bash loop over `path` on `cpus` and returns the microseconds per
// iteration bash measured itself (so its start-up is not counted).
double run_shell_loop(const char* loop, const std::string& path, int n, const cpu_set_t& cpus,
                      std::string& error) {
  const std::string script = std::string("q=$1; n=$2; s=$EPOCHREALTIME; for ((i = 0; i < n; i++)); do ") + loop +
                             " || exit 1; done; e=$EPOCHREALTIME; echo \"$s $e\"";
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw sys_error("pipe");
  const std::string count = std::to_string(n);
  pid_t pid = fork();
  if (pid < 0) throw sys_error("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setpgid(0, 0);  // so that a timeout kills the loop's children too
    sched_setaffinity(0, sizeof cpus, &cpus);
    dup2(out[1], STDOUT_FILENO);
    setenv("LC_ALL", "C", 1);  // a decimal point in $EPOCHREALTIME
    execl("/bin/bash", "bash", "--norc", "--noprofile", "-c", script.c_str(), "mqfs-bench", path.c_str(),
          count.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string text;
  const int64_t deadline = now_ns() + kShellTimeout;
  for (;;) {
    int64_t left = (deadline - now_ns()) / kMs;
    pollfd pfd{out[0], POLLIN, 0};
    if (left <= 0 || poll(&pfd, 1, static_cast<int>(left)) == 0) {
      kill(-pid, SIGKILL);
      error = "shell loop timed out";
      break;
    }
    char buf[256];
    ssize_t r = read(out[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    text.append(buf, static_cast<size_t>(r));
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!error.empty()) return kNaN;
  double s = 0, e = 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || std::sscanf(text.c_str(), "%lf %lf", &s, &e) != 2) {
    error = format("shell loop failed on %s (status %d)", path.c_str(), status);
    return kNaN;
  }
  return (e - s) / n * 1e6;
}

// Microseconds per message of one operation, one process on the readers' CPUs.
// C loops run batches until op_window of them was timed (or four times that
// passed); the shell loops run once.
Outcome run_op(const OpInfo& op, const Transport& t, const Placement& p, const Options& o, Board& board) {
  Outcome out;
  if (op.op == Op::ShellEcho || op.op == Op::ShellCat) {
    const bool echo = op.op == Op::ShellEcho;
    const int n = echo ? o.shell_echo_n : o.shell_cat_n;
    OpTarget target(t, o.op_size, n + 16);
    if (!echo) target.fill(n);
    out.value = run_shell_loop(echo ? "echo $i > \"$q\"" : "cat \"$q\" > /dev/null", target.path(), n, p.readers,
                               out.error);
    return out;
  }
  const bool reads = op.op == Op::OpenReadClose;
  const long batch = o.op_batch;
  OpTarget target(t, o.op_size, batch + 16);
  Crew crew(board);
  crew.spawn(p.readers, [&](Slot& slot) {
    std::vector<char> buf(o.op_size, 'm');
    crew.await_start();
    int64_t timed = 0;
    uint64_t done = 0;
    while (!g_stop && timed < o.op_window_ns && now_ns() < board.end) {
      if (reads) target.fill(batch);
      const int64_t t0 = now_ns();
      for (long i = 0; i < batch; ++i) {
        if (reads)
          open_read_close(t, target.path(), buf);
        else
          open_write_close(t, target.path(), buf);
      }
      timed += now_ns() - t0;
      done += static_cast<uint64_t>(batch);
      if (!reads) target.empty();
    }
    slot.count = done;
    slot.elapsed_ns = timed;
  });
  crew.start(0, 4 * o.op_window_ns);
  out.error = crew.finish();
  const Slot& s = board.slots[0];
  if (out.error.empty() && s.count > 0)
    out.value = static_cast<double>(s.elapsed_ns) / static_cast<double>(s.count) / 1000.0;
  return out;
}

// ---------------------------------------------------------------- the watchdog

// A FUSE request that its daemon has read but never answers cannot be ended
// from the calling side, not even by SIGKILL: the kernel waits it out. A hung
// mount would so hang its workers, the parent (which makes and removes
// queues) and anything waiting for them. The watchdog, a process of its own,
// gives each case a deadline; past it, it kills the case's daemon, the kernel
// aborts the connection, every waiting call fails with ENOTCONN, and the run
// goes on without that transport. Only daemons given with their pid are
// killed; the kernel's own queues cannot hang this way.
class Watchdog {
 public:
  Watchdog() {
    void* p = mmap(nullptr, sizeof(Watch), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw sys_error("mmap");
    w_ = static_cast<Watch*>(p);
    w_->deadline = INT64_MAX;
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) throw sys_error("fork");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      watch();
    }
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  void arm(pid_t daemon, int64_t budget) {
    w_->killed = 0;
    w_->daemon = daemon;
    w_->deadline = now_ns() + budget;
  }

  // True when the watchdog had to kill the daemon.
  bool disarm() {
    w_->deadline = INT64_MAX;
    return w_->killed != 0;
  }

 private:
  struct Watch {
    volatile int64_t deadline;  // INT64_MAX: nothing to watch
    volatile pid_t daemon;      // of the case running now; 0: none
    volatile pid_t killed;
  };

  [[noreturn]] void watch() {
    for (;;) {
      usleep(200000);
      if (now_ns() > w_->deadline && w_->daemon > 0) {
        kill(w_->daemon, SIGKILL);
        w_->killed = w_->daemon;
        w_->deadline = INT64_MAX;
      }
    }
  }

  Watch* w_;
  pid_t pid_;
};

// ---------------------------------------------------------------- results

// Every value of every round, by key; a round that failed holds NaN.
class Results {
 public:
  explicit Results(int rounds) : rounds_(rounds) {}

  void put(const std::string& key, int round, double v) {
    auto& vs = values_[key];
    if (vs.empty()) vs.assign(static_cast<size_t>(rounds_), kNaN);
    vs[static_cast<size_t>(round)] = v;
  }

  double median(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? kNaN : median_of(it->second);
  }

  // The ratio a/b in each round, then the median of those.
  double ratio(const std::string& a, const std::string& b) const {
    auto ia = values_.find(a), ib = values_.find(b);
    if (ia == values_.end() || ib == values_.end()) return kNaN;
    std::vector<double> r;
    for (size_t i = 0; i < ia->second.size(); ++i) r.push_back(ia->second[i] / ib->second[i]);
    return median_of(r);
  }

  const std::map<std::string, std::vector<double>>& all() const { return values_; }

 private:
  static double median_of(std::vector<double> v) {
    std::erase_if(v, [](double x) { return !std::isfinite(x); });
    if (v.empty()) return kNaN;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }

  int rounds_;
  std::map<std::string, std::vector<double>> values_;
};

std::string tput_key(const Placement& p, size_t size, int procs, const Transport& t) {
  return format("tput/%s/%zu/%d/%s", p.id.c_str(), size, procs, t.id.c_str());
}
std::string lat_key(const char* which, const Placement& p, size_t size, const Transport& t) {
  return format("%s/%s/%zu/%s", which, p.id.c_str(), size, t.id.c_str());
}
std::string per_read_key(const Placement& p, size_t size, int procs, const Transport& t) {
  return format("per-read/%s/%zu/%d/%s", p.id.c_str(), size, procs, t.id.c_str());
}
std::string op_key(const Placement& p, const OpInfo& op, const Transport& t) {
  return format("op/%s/%s/%s", p.id.c_str(), op.id, t.id.c_str());
}

std::string fmt_rate(double v) {
  if (!std::isfinite(v)) return "n/a";
  if (v >= 1e6) return format("%.2fM", v / 1e6);
  if (v >= 1e3) return format("%.1fk", v / 1e3);
  return format("%.0f", v);
}
std::string fmt_mbs(double v) { return std::isfinite(v) ? format("%.1f", v) : "n/a"; }
std::string fmt_us(double v) {
  if (!std::isfinite(v)) return "n/a";
  return v < 10 ? format("%.2f", v) : v < 100 ? format("%.1f", v) : format("%.0f", v);
}
std::string fmt_ratio(double v) { return std::isfinite(v) ? format("%.2f", v) : "n/a"; }
std::string fmt_size(size_t s) {
  if (s >= 1024 && s % 1024 == 0) return format("%zu KiB", s / 1024);
  return format("%zu B", s);
}

// ---------------------------------------------------------------- the machine

struct CpuTimes {
  uint64_t total = 0, steal = 0, idle = 0;
};

CpuTimes cpu_times() {
  CpuTimes c;
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t v[10] = {};
  in >> cpu;
  for (auto& x : v) in >> x;
  for (auto x : v) c.total += x;
  c.idle = v[3] + v[4];
  c.steal = v[7];
  return c;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string loadavg() {
  auto parts = split(read_text("/proc/loadavg"), ' ');
  return parts.size() >= 3 ? parts[0] + " " + parts[1] + " " + parts[2] : "?";
}

// System V and POSIX queues of 64 KiB messages exceed Linux's default limits
// (kernel.msgmax 8192, kernel.msgmnb 16384, fs.mqueue.msgsize_max 8192), and
// only CAP_SYS_RESOURCE passes them. The limits belong to the IPC namespace:
// in a private one, raised here, the host's stay untouched and nothing needs
// restoring afterwards.
std::vector<std::string> prepare_kernel_limits(const Options& o) {
  std::vector<std::string> notes;
  const long largest = static_cast<long>(*std::max_element(o.sizes.begin(), o.sizes.end()));
  const long msgmax = std::max(largest, 8192L);
  const long msgmnb = std::max(o.depth * largest, 16384L);
  const long msg_max = std::max({o.depth, o.op_batch + 16, 10L});
  if (unshare(CLONE_NEWIPC) == 0) {
    bool ok = write_text("/proc/sys/kernel/msgmax", std::to_string(msgmax)) &&
              write_text("/proc/sys/kernel/msgmnb", std::to_string(msgmnb)) &&
              write_text("/proc/sys/fs/mqueue/msgsize_max", std::to_string(msgmax)) &&
              write_text("/proc/sys/fs/mqueue/msg_max", std::to_string(msg_max));
    notes.push_back(format("System V and POSIX queue limits %s in a private IPC namespace (unshare(CLONE_NEWIPC)): "
                           "kernel.msgmax=%ld, kernel.msgmnb=%ld, fs.mqueue.msgsize_max=%ld, fs.mqueue.msg_max=%ld; "
                           "the host's limits are untouched, nothing to restore.",
                           ok ? "raised" : "could not be raised", msgmax, msgmnb, msgmax, msg_max));
  } else {
    notes.push_back(format("No private IPC namespace (%s; run as root): the host's System V and POSIX queue limits "
                           "apply, sizes above them show as n/a.",
                           std::strerror(errno)));
  }
  // POSIX queues count their bytes against RLIMIT_MSGQUEUE (819200 by
  // default): one queue of 10 x 64 KiB fits, and the ping-pong uses queues of
  // one message. Raise it when allowed.
  rlimit lim{};
  getrlimit(RLIMIT_MSGQUEUE, &lim);
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  if (setrlimit(RLIMIT_MSGQUEUE, &unlimited) == 0) {
    notes.push_back("RLIMIT_MSGQUEUE raised to unlimited for this process.");
  } else {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_MSGQUEUE, &lim);
    notes.push_back(format("RLIMIT_MSGQUEUE is %llu bytes (raising it needs CAP_SYS_RESOURCE).",
                           static_cast<unsigned long long>(lim.rlim_cur)));
  }
  return notes;
}

// ---------------------------------------------------------------- the report

struct Run {
  const Options& o;
  std::vector<Placement> placements;
  std::vector<Transport> queues;  // throughput and latency
  std::vector<Transport> files;   // per-message operations
  std::vector<Transport> batched;  // framed mqfs: throughput only
  Results results;
  std::map<std::string, int> errors;  // distinct error -> how many cases
  std::vector<std::string> header_notes;
  int noop_mt_threads = 0;

  const Transport* find(Kind k, const std::vector<Transport>& ts) const {
    for (auto& t : ts)
      if (t.kind == k) return &t;
    return nullptr;
  }
};

void report_error(Run& run, const std::string& what, const std::string& error) {
  if (error.empty()) return;
  if (run.errors[error]++ == 0) std::fprintf(stderr, "  %s: %s\n", what.c_str(), error.c_str());
}

// Ratio columns: mqfs against the POSIX queue and the two floors.
struct RatioColumn {
  Kind of;
  const char* title;
};
const RatioColumn kRatios[] = {
    {Kind::Posix, "mqfs / POSIX"},
    {Kind::NoopSt, "mqfs / floor 1t"},
    {Kind::NoopMt, "mqfs / floor mt"},
};

std::string render(const Run& run, const std::string& started, const std::string& load_before,
                   const std::string& load_after, double steal_pct, double busy_pct, double seconds) {
  const Options& o = run.o;
  const Results& r = run.results;
  const Transport* mqfs = run.find(Kind::Mqfs, run.queues);
  std::ostringstream md;
  utsname u{};
  uname(&u);

  md << "# mqfs benchmark\n\n";
  md << "- " << started << ", " << format("%.0f s", seconds) << (o.quick ? ", **quick mode**" : "") << "\n";
  md << "- " << u.sysname << " " << u.release << ", " << cpu_model() << ", " << sysconf(_SC_NPROCESSORS_ONLN)
     << " CPUs online\n";
  md << "- load average before: " << load_before << "; after: " << load_after
     << format("; during the run the CPUs were %.0f%% busy, %.1f%% stolen by the host", busy_pct, steal_pct)
     << "\n";
  for (auto& n : o.notes) md << "- " << n << "\n";
  for (auto& n : run.header_notes) md << "- " << n << "\n";
  md << format("- %d rounds; each throughput and latency case: %lld ms warm-up, then %lld ms counted. "
               "Queues hold %ld messages (POSIX `mq_maxmsg`, mqfs `maxmsg`, System V `msg_qbytes` = %ld x size, "
               "FIFO buffer = max(one page, %ld x size)).\n",
               o.rounds, static_cast<long long>(o.warm_ns / kMs), static_cast<long long>(o.window_ns / kMs), o.depth,
               o.depth, o.depth);
  md << "- Values are medians over the rounds; every ratio is taken within a round, then its median is shown "
        "(so it is not the ratio of the medians). MB = 10^6 bytes.\n";
  md << "- `floor 1t` / `floor mt`: noop_fs, a FUSE filesystem that answers every request at once, run with "
        "libfuse's single-threaded loop (`fuse_session_loop`) or multi-threaded loop (`fuse_session_loop_mt`)";
  if (run.noop_mt_threads) md << format("; the multi-threaded one had %d threads at the end", run.noop_mt_threads);
  md << ". Its files are opened direct_io + nonseekable like mqfs queues, and it asks the kernel for the same "
        "capabilities.\n";
  md << "- Placements: ";
  for (size_t i = 0; i < run.placements.size(); ++i)
    md << (i ? "; " : "") << "`" << run.placements[i].id << "` = " << run.placements[i].title;
  md << ".\n";
  const Transport* posix = run.find(Kind::Posix, run.queues);
  if (!run.batched.empty()) {
    md << "- Batched cases (";
    for (size_t i = 0; i < run.batched.size(); ++i) md << (i ? ", " : "") << "`" << run.batched[i].id << "`";
    md << format("): an mqfs queue with `user.mq.framing` = u32 or line, "
                 "`read_mode=stream`, `maxmsg` = %ld writes' worth of messages, at most %ld; each write carries "
                 "as many messages as fit in %zu bytes (a u32 frame is 4 + size bytes, a line is size bytes with its "
                 "newline), each read has a buffer of %zu bytes (at least one frame) and its messages are counted; ",
                 o.depth, o.framed_depth, o.batch, o.read_buffer);
    md << "writers+readers: ";
    bool first = true;
    for (int n : o.framed_procs)
      if (std::count(o.procs.begin(), o.procs.end(), n)) {
        md << (first ? "" : ", ") << n << "+" << n;
        first = false;
      }
    md << ".\n";
    // The project's target: one framed write of 64-byte messages moves at
    // least as many messages per second as the kernel's queue, one call each.
    const Transport* u32 = run.find(Kind::MqfsU32, run.batched);
    const bool measured = std::count(o.sizes.begin(), o.sizes.end(), 64) &&
                          std::count(o.procs.begin(), o.procs.end(), 1) &&
                          std::count(o.framed_procs.begin(), o.framed_procs.end(), 1);
    if (u32 && posix && measured) {
      md << "- **Target** (u32 framing, 64 B messages, 1+1: mqfs-u32 messages/s >= POSIX mq in the same round): ";
      for (size_t i = 0; i < run.placements.size(); ++i) {
        const auto& p = run.placements[i];
        double v = r.ratio(tput_key(p, 64, 1, *u32), tput_key(p, 64, 1, *posix));
        md << (i ? "; " : "") << p.id << " " << fmt_ratio(v)
           << (!std::isfinite(v) ? "" : v >= 1 ? " (met)" : " (not met)");
      }
      md << ".\n";
    }
  }
  md << "\n";

  for (const auto& p : run.placements) {
    md << "## Throughput, " << p.id << ": " << p.title << "\n\n";
    md << "Messages per second through one queue, N writers and N readers.\n\n";
    md << "| size | procs | mqfs msg/s | mqfs MB/s |";
    for (auto& t : run.queues)
      if (t.kind != Kind::Mqfs) md << " " << t.title << " |";
    if (mqfs)
      for (auto& c : kRatios)
        if (run.find(c.of, run.queues)) md << " " << c.title << " |";
    md << "\n|---|---|---:|---:|";
    for (auto& t : run.queues)
      if (t.kind != Kind::Mqfs) md << "---:|";
    if (mqfs)
      for (auto& c : kRatios)
        if (run.find(c.of, run.queues)) md << "---:|";
    md << "\n";
    for (size_t size : o.sizes)
      for (int procs : o.procs) {
        md << "| " << fmt_size(size) << " | " << procs << "+" << procs << " | ";
        if (mqfs) {
          double v = r.median(tput_key(p, size, procs, *mqfs));
          md << fmt_rate(v) << " | " << fmt_mbs(v * static_cast<double>(size) / 1e6) << " |";
        } else {
          md << "n/a | n/a |";
        }
        for (auto& t : run.queues)
          if (t.kind != Kind::Mqfs) md << " " << fmt_rate(r.median(tput_key(p, size, procs, t))) << " |";
        if (mqfs)
          for (auto& c : kRatios)
            if (auto* t = run.find(c.of, run.queues))
              md << " " << fmt_ratio(r.ratio(tput_key(p, size, procs, *mqfs), tput_key(p, size, procs, *t))) << " |";
        md << "\n";
      }
    md << "\n";

    if (!run.batched.empty()) {
      md << "## Batched (framed) mqfs, " << p.id << "\n\n";
      md << format("Messages per second through one framed mqfs queue (`maxmsg` = %ld writes' worth, at most %ld; "
                   "`read_mode=stream`), N writers and N readers, many messages per write(2) and per read(2); beside "
                   "it the one-message-per-call cases of the table above, measured in the same round just before. "
                   "`per write / read`: messages each write carried / the mean each read returned. Ratios are taken "
                   "within a round.\n\n",
                   o.depth, o.framed_depth);
      md << "| size | procs |";
      for (auto& b : run.batched) md << " " << b.id << " msg/s | " << b.id << " per write / read |";
      if (posix) md << " POSIX mq msg/s |";
      if (mqfs) md << " mqfs msg/s |";
      for (auto& b : run.batched) {
        if (posix) md << " " << b.id << " / POSIX |";
        if (mqfs) md << " " << b.id << " / mqfs |";
      }
      md << "\n|---|---|";
      for (size_t i = 0; i < run.batched.size(); ++i) md << "---:|---:|";
      if (posix) md << "---:|";
      if (mqfs) md << "---:|";
      for (size_t i = 0; i < run.batched.size(); ++i) md << (posix ? "---:|" : "") << (mqfs ? "---:|" : "");
      md << "\n";
      for (size_t size : o.sizes)
        for (int procs : o.procs) {
          if (!std::count(o.framed_procs.begin(), o.framed_procs.end(), procs)) continue;
          md << "| " << fmt_size(size) << " | " << procs << "+" << procs << " |";
          for (auto& b : run.batched) {
            const double per_read = r.median(per_read_key(p, size, procs, b));
            md << " " << fmt_rate(r.median(tput_key(p, size, procs, b))) << " | "
               << frames_per_write(b.kind, size, o) << " / "
               << (std::isfinite(per_read) ? format("%.0f", per_read) : "n/a") << " |";
          }
          if (posix) md << " " << fmt_rate(r.median(tput_key(p, size, procs, *posix))) << " |";
          if (mqfs) md << " " << fmt_rate(r.median(tput_key(p, size, procs, *mqfs))) << " |";
          for (auto& b : run.batched) {
            if (posix) md << " " << fmt_ratio(r.ratio(tput_key(p, size, procs, b), tput_key(p, size, procs, *posix))) << " |";
            if (mqfs) md << " " << fmt_ratio(r.ratio(tput_key(p, size, procs, b), tput_key(p, size, procs, *mqfs))) << " |";
          }
          md << "\n";
        }
      md << "\n";
    }

    md << "## Round-trip latency, " << p.id << "\n\n";
    md << "Ping-pong over two queues of one message each, microseconds, p50 / p99. On the floors nothing waits: "
          "one process on the readers' CPU makes the four requests of a round trip.\n\n";
    md << "| size |";
    for (auto& t : run.queues) md << " " << t.title << " |";
    if (mqfs)
      for (auto& c : kRatios)
        if (run.find(c.of, run.queues)) md << " " << c.title << " (p50) |";
    md << "\n|---|";
    for (size_t i = 0; i < run.queues.size(); ++i) md << "---:|";
    if (mqfs)
      for (auto& c : kRatios)
        if (run.find(c.of, run.queues)) md << "---:|";
    md << "\n";
    for (size_t size : o.sizes) {
      md << "| " << fmt_size(size) << " |";
      for (auto& t : run.queues)
        md << " " << fmt_us(r.median(lat_key("p50", p, size, t))) << " / "
           << fmt_us(r.median(lat_key("p99", p, size, t))) << " |";
      if (mqfs)
        for (auto& c : kRatios)
          if (auto* t = run.find(c.of, run.queues))
            md << " " << fmt_ratio(r.ratio(lat_key("p50", p, size, *mqfs), lat_key("p50", p, size, *t))) << " |";
      md << "\n";
    }
    md << "\n";

    md << "## Per-message cost of opening, " << p.id << "\n\n";
    md << format("Microseconds per message of %zu bytes; one process (for the shell loops, bash) on the readers' "
                 "CPU. mqfs: a queue in read_mode=message, so every open delivers one message; floors: a file that "
                 "does the same; tmpfs: a file holding one message. C loops: batches of %ld, refilled or emptied "
                 "untimed between batches, %lld ms timed. Shell loops: %d `echo`s, %d `cat`s, timed by bash "
                 "itself.\n\n",
                 o.op_size, o.op_batch, static_cast<long long>(o.op_window_ns / kMs), o.shell_echo_n, o.shell_cat_n);
    md << "| operation |";
    for (auto& t : run.files) md << " " << t.title << " |";
    const Transport* mq_file = run.find(Kind::Mqfs, run.files);
    const Kind refs[] = {Kind::Tmpfs, Kind::Posix, Kind::NoopSt, Kind::NoopMt};
    if (mq_file)
      for (Kind k : refs)
        if (auto* t = run.find(k, run.files)) md << " mqfs / " << t->title << " |";
    md << "\n|---|";
    for (size_t i = 0; i < run.files.size(); ++i) md << "---:|";
    if (mq_file)
      for (Kind k : refs)
        if (run.find(k, run.files)) md << "---:|";
    md << "\n";
    for (const auto& op : kOps) {
      md << "| " << op.title << " |";
      for (auto& t : run.files) md << " " << fmt_us(r.median(op_key(p, op, t))) << " |";
      if (mq_file)
        for (Kind k : refs)
          if (auto* t = run.find(k, run.files)) md << " " << fmt_ratio(r.ratio(op_key(p, op, *mq_file), op_key(p, op, *t))) << " |";
      md << "\n";
    }
    md << "\n";
  }

  // The question the floors answer: does libfuse's multi-threaded loop move
  // messages faster than the single-threaded one on this machine?
  const Transport* st = run.find(Kind::NoopSt, run.queues);
  const Transport* mt = run.find(Kind::NoopMt, run.queues);
  if (st && mt) {
    md << "## The FUSE floor: single- vs multi-threaded loop\n\n";
    md << "noop_fs throughput (messages/s) and round-trip floor (p50, microseconds); `mt / 1t` > 1 means the "
          "multi-threaded loop is faster (for latency: < 1).\n\n";
    md << "| placement | size | procs | floor 1t msg/s | floor mt msg/s | mt / 1t |\n|---|---|---|---:|---:|---:|\n";
    for (const auto& p : run.placements)
      for (size_t size : o.sizes)
        for (int procs : o.procs)
          md << "| " << p.id << " | " << fmt_size(size) << " | " << procs << "+" << procs << " | "
             << fmt_rate(r.median(tput_key(p, size, procs, *st))) << " | "
             << fmt_rate(r.median(tput_key(p, size, procs, *mt))) << " | "
             << fmt_ratio(r.ratio(tput_key(p, size, procs, *mt), tput_key(p, size, procs, *st))) << " |\n";
    md << "\n| placement | size | floor 1t p50 us | floor mt p50 us | mt / 1t |\n|---|---|---:|---:|---:|\n";
    for (const auto& p : run.placements)
      for (size_t size : o.sizes)
        md << "| " << p.id << " | " << fmt_size(size) << " | " << fmt_us(r.median(lat_key("p50", p, size, *st)))
           << " | " << fmt_us(r.median(lat_key("p50", p, size, *mt))) << " | "
           << fmt_ratio(r.ratio(lat_key("p50", p, size, *mt), lat_key("p50", p, size, *st))) << " |\n";
    md << "\n";
  }

  if (!run.errors.empty()) {
    md << "## Failures\n\n";
    for (auto& [e, n] : run.errors) md << "- " << n << " case(s): " << e << "\n";
    md << "\n";
  }
  return md.str();
}

// Messages/s per size for plot.gp: one block per placement and process count
// (gnuplot's `index`), a header row naming the columns.
void write_plot(const Run& run, const std::string& data, const std::string& vars) {
  const Options& o = run.o;
  std::ostringstream d;
  std::vector<Transport> lines = run.queues;
  lines.insert(lines.end(), run.batched.begin(), run.batched.end());
  for (const auto& p : run.placements)
    for (int procs : o.procs) {
      d << "size";
      for (auto& t : lines) d << " \"" << t.title << "\"";
      d << "\n";
      for (size_t size : o.sizes) {
        d << size;
        for (auto& t : lines) {
          double v = run.results.median(tput_key(p, size, procs, t));
          d << " " << (std::isfinite(v) ? format("%.1f", v) : "NaN");
        }
        d << "\n";
      }
      d << "\n\n";
    }
  if (!data.empty()) write_text(data, d.str());
  if (vars.empty()) return;
  std::ostringstream v;
  v << "placements = \"";
  for (size_t i = 0; i < run.placements.size(); ++i) v << (i ? " " : "") << run.placements[i].id;
  v << "\"\nprocs = \"";
  for (size_t i = 0; i < o.procs.size(); ++i) v << (i ? " " : "") << o.procs[i];
  v << "\"\nncolumns = " << lines.size() + 1 << "\n";
  v << "linetypes = \"";
  for (size_t i = 0; i < lines.size(); ++i) v << (i ? " " : "") << line_type(lines[i].kind);
  v << "\"\n";
  for (size_t i = 0; i < run.placements.size(); ++i)
    v << "placement_title_" << i + 1 << " = \"" << run.placements[i].title << "\"\n";
  write_text(vars, v.str());
}

void write_raw(const Run& run, const std::string& path) {
  std::ostringstream out;
  out << "key,round,value\n";
  for (auto& [key, vs] : run.results.all())
    for (size_t i = 0; i < vs.size(); ++i) out << key << "," << i + 1 << "," << format("%.6g", vs[i]) << "\n";
  write_text(path, out.str());
}

std::string g_scratch_made;  // removed at exit if we made it
void remove_scratch() {
  std::error_code ignored;
  if (!g_scratch_made.empty()) std::filesystem::remove_all(g_scratch_made, ignored);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_options(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  // SIGUSR1 ends a worker's blocking call; SIGPIPE must not end anyone.
  struct sigaction sa{};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  cpu_set_t all;
  sched_getaffinity(0, sizeof all, &all);
  std::vector<std::string> skipped;
  Run run{o, make_placements(o, all, skipped), {}, {}, {}, Results(o.rounds), {}, {}, 0};
  for (auto& s : skipped) run.header_notes.push_back("placement skipped: " + s);

  for (auto& n : prepare_kernel_limits(o)) run.header_notes.push_back(n);

  if (o.scratch.empty()) {
    o.scratch = format("/dev/shm/mqfs-bench-%d", getpid());
    if (mkdir(o.scratch.c_str(), 0700) != 0) {
      o.scratch = format("/tmp/mqfs-bench-%d", getpid());
      if (mkdir(o.scratch.c_str(), 0700) != 0) {
        std::perror("mqfs_bench: scratch directory");
        return 1;
      }
    }
    g_scratch_made = o.scratch;
    std::atexit(remove_scratch);
  }

  // The transports, in the order of the report's columns.
  if (o.mqfs) run.queues.push_back({Kind::Mqfs, "mqfs", "mqfs", o.mqfs->dir, o.mqfs->daemon});
  run.queues.push_back({Kind::Posix, "posix", "POSIX mq", "", 0});
  run.queues.push_back({Kind::Sysv, "sysv", "SysV msg", "", 0});
  run.queues.push_back({Kind::Fifo, "fifo", "FIFO", o.scratch, 0});
  if (o.noop_st) run.queues.push_back({Kind::NoopSt, "noop-1t", "floor 1t", o.noop_st->dir, o.noop_st->daemon});
  if (o.noop_mt) run.queues.push_back({Kind::NoopMt, "noop-mt", "floor mt", o.noop_mt->dir, o.noop_mt->daemon});
  for (auto& t : run.queues)
    if (t.kind != Kind::Sysv && t.kind != Kind::Fifo) run.files.push_back(t);
  run.files.push_back({Kind::Tmpfs, "tmpfs", "tmpfs file", o.scratch, 0});
  if (o.mqfs)
    for (auto& f : o.framings) {
      if (f == "u32") run.batched.push_back({Kind::MqfsU32, "mqfs-u32", "mqfs u32 (batched)", o.mqfs->dir, o.mqfs->daemon});
      if (f == "line") run.batched.push_back({Kind::MqfsLine, "mqfs-line", "mqfs line (batched)", o.mqfs->dir, o.mqfs->daemon});
    }
  if (!o.mqfs) std::fprintf(stderr, "mqfs_bench: no --mqfs given; measuring the others only\n");

  // The daemons' affinity is restored at the end: a mount may outlive us.
  std::vector<std::pair<pid_t, cpu_set_t>> daemons;
  for (auto& t : run.queues)
    if (t.daemon > 0) {
      cpu_set_t set;
      if (sched_getaffinity(t.daemon, sizeof set, &set) == 0) daemons.push_back({t.daemon, set});
    }

  Board* board = make_board();
  size_t framed_procs = 0;
  for (int n : o.framed_procs) framed_procs += std::count(o.procs.begin(), o.procs.end(), n) > 0;
  const size_t per_placement =
      o.sizes.size() * ((o.procs.size() + 1) * run.queues.size() + framed_procs * run.batched.size());
  // Per placement and round: the cases' windows plus ~35 ms each of forking
  // and set-up, the C loops (timed window plus refills), the shell loops.
  const double est = static_cast<double>(o.rounds * run.placements.size()) *
                     (static_cast<double>(per_placement) * (static_cast<double>(o.warm_ns + o.window_ns) / 1e9 + 0.035) +
                      static_cast<double>(run.files.size() * 2) * 2.5 * (static_cast<double>(o.op_window_ns) / 1e9) +
                      (o.quick ? 1.0 : 3.0));
  std::fprintf(stderr, "mqfs_bench: %d rounds x %zu placements, about %.0f s\n", o.rounds, run.placements.size(), est);

  char started[64];
  time_t wall = time(nullptr);
  strftime(started, sizeof started, "%Y-%m-%d %H:%M:%S %Z", localtime(&wall));
  const std::string load_before = loadavg();
  const CpuTimes cpu_before = cpu_times();
  const int64_t t_begin = now_ns();

  // Runs one case under the watchdog; a transport that hung once is skipped,
  // and so is every other transport of the same daemon (mqfs and its batched
  // cases).
  Watchdog watchdog;
  std::set<std::string> hung;
  auto hung_key = [](const Transport& t) { return t.daemon > 0 ? format("daemon %d", t.daemon) : t.id; };
  auto guarded = [&](const Transport& t, int64_t expected, const std::string& what,
                     const std::function<Outcome()>& run_case) {
    Outcome out;
    if (hung.count(hung_key(t))) {
      out.error = t.id + " hung earlier: skipped";
    } else {
      watchdog.arm(t.daemon, expected + kCaseSlack);
      try {
        out = run_case();
      } catch (const std::exception& e) {
        out.error = e.what();
      }
      if (watchdog.disarm()) {
        hung.insert(hung_key(t));
        out = Outcome{};
        out.error = format("%s did not answer within %lld s: its daemon (pid %d) was killed", t.id.c_str(),
                           static_cast<long long>((expected + kCaseSlack) / 1000000000), t.daemon);
      }
    }
    report_error(run, what, out.error);
    return out;
  };
  const int64_t case_time = o.warm_ns + o.window_ns;
  const int64_t op_time = 4 * o.op_window_ns;

  for (int round = 0; round < o.rounds; ++round) {
    for (const auto& p : run.placements) {
      std::fprintf(stderr, "round %d/%d, %s (%.0f s)\n", round + 1, o.rounds, p.id.c_str(),
                   static_cast<double>(now_ns() - t_begin) / 1e9);
      for (auto& t : run.queues) pin_process(t.daemon, p.daemon);
      for (size_t size : o.sizes) {
        for (int procs : o.procs) {
          for (const auto& t : run.queues) {
            Outcome out = guarded(t, case_time, format("throughput %s %zu B %d+%d %s", t.id.c_str(), size, procs, procs, p.id.c_str()),
                                  [&] { return run_throughput(t, size, procs, p, o, *board); });
            run.results.put(tput_key(p, size, procs, t), round, out.value);
          }
          // Right after the POSIX queue of the same size and processes: the
          // ratio compares figures measured seconds apart.
          if (std::count(o.framed_procs.begin(), o.framed_procs.end(), procs) == 0) continue;
          for (const auto& t : run.batched) {
            Outcome out = guarded(t, case_time, format("batched %s %zu B %d+%d %s", t.id.c_str(), size, procs, procs, p.id.c_str()),
                                  [&] { return run_batched(t, size, procs, p, o, *board); });
            run.results.put(tput_key(p, size, procs, t), round, out.value);
            run.results.put(per_read_key(p, size, procs, t), round, out.value2);
          }
        }
        for (const auto& t : run.queues) {
          Outcome out = guarded(t, case_time, format("latency %s %zu B %s", t.id.c_str(), size, p.id.c_str()),
                                [&] { return run_latency(t, size, p, o, *board); });
          run.results.put(lat_key("p50", p, size, t), round, out.value);
          run.results.put(lat_key("p99", p, size, t), round, out.value2);
        }
      }
      for (const auto& op : kOps)
        for (const auto& t : run.files) {
          if (!op_applies(op.op, t)) continue;
          const bool shell = op.op == Op::ShellEcho || op.op == Op::ShellCat;
          Outcome out = guarded(t, shell ? kShellTimeout : op_time, format("%s %s %s", op.id, t.id.c_str(), p.id.c_str()),
                                [&] { return run_op(op, t, p, o, *board); });
          run.results.put(op_key(p, op, t), round, out.value);
        }
    }
  }

  if (o.noop_mt) run.noop_mt_threads = thread_count(o.noop_mt->daemon);
  for (auto& [pid, set] : daemons) pin_process(pid, set);

  const CpuTimes cpu_after = cpu_times();
  const double total = static_cast<double>(cpu_after.total - cpu_before.total);
  const double steal = total > 0 ? 100.0 * static_cast<double>(cpu_after.steal - cpu_before.steal) / total : 0;
  const double busy = total > 0 ? 100.0 * (1 - static_cast<double>(cpu_after.idle - cpu_before.idle) / total) : 0;
  const std::string md = render(run, started, load_before, loadavg(), steal, busy,
                                static_cast<double>(now_ns() - t_begin) / 1e9);
  std::fputs(md.c_str(), stdout);
  if (!o.markdown.empty() && !write_text(o.markdown, md)) std::perror(o.markdown.c_str());
  write_plot(run, o.plot_data, o.plot_vars);
  if (!o.raw.empty()) write_raw(run, o.raw);
  return run.errors.empty() ? 0 : 3;
}
