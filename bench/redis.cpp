// redis_bench: the anchors the Redis store (SPEC section 10) is compared
// with, all against one loopback redis-server: 64-byte messages, 1 writer and
// 1 reader, each on its own connection, each command waiting for its reply.
// Three ways to queue:
//
//   direct     ZADD KEY SCORE MEMBER / BZPOPMIN KEY 0: the priority queue a
//              user would write with hiredis. SCORE: 32767 - priority, then
//              the writer's sequence; MEMBER: the sequence (16 hex) and the
//              64 bytes, so that equal messages stay distinct.
//   list       LPUSH KEY BYTES / BRPOP KEY 0: the simplest Redis queue.
//   functions  mqfs's server functions (src/store/redis_functions.lua)
//              without FUSE, on the queue mqfs:q:2 of prefix mqfs: the
//              writer FCALL mqfs_send, the reader FCALL mqfs_take (any type,
//              one message) and FCALL mqfs_ack of the message taken, after
//              FCALL mqfs_heartbeat (again every 3 s). A take that finds the
//              queue empty waits for a queued ('s') event of the queue on
//              mqfs:events, a send that finds it full for an acknowledged
//              ('a') one, each on a second connection subscribed beforehand:
//              how a mount learns of changes. A second functions reader
//              sends each mqfs_ack with the next mqfs_take, in one round
//              trip, as a mount can (its reader already has the message).
//   mounts     (with --mounts A,B) two mqfs mounts of the same Redis and
//              prefix: the writer process write(2)s to a queue on mount A,
//              the reader process read(2)s it on mount B (MQFS_READ_STREAM,
//              one message per read), both blocking. Unframed, one 64-byte
//              message per write; and with u32 framing, --frames frames per
//              write, 64 KiB reads counting the frames each returned.
//
// bench/redis.sh starts redis-server (and the mounts) and runs:
//
//   redis_bench --port PORT --functions FILE [--rounds N] [--window-ms MS]
//               [--warmup-ms MS] [--maxmsg 1000000,10] [--samples N]
//               [--pause-ms MS] [--mounts A,B] [--frames N] [--csv FILE]
//
// FILE is loaded with FUNCTION LOAD REPLACE; every case starts from FLUSHDB
// of database 0 (which keeps the functions) and, for functions, mqfs_names
// making the queue with maxmsg. The mounts keep their keys in another
// database, which FLUSHDB leaves alone: each of their cases makes a queue of
// its own on A (maxmsg, framing), waits until B shows it, and removes it
// after.
//
// Throughput: in each round every case runs once, forked as harness.hpp's
// Round does (released together, --warmup-ms uncounted, --window-ms
// counted); the figure is the messages/s the reader received, the median over
// the rounds. The functions and mounts cases run once per --maxmsg value.
//
// Wake-up latency: a reader thread waits on an empty queue (in BZPOPMIN or
// BRPOP; functions: for the event after an empty take); --pause-ms after it
// had the previous message, the writer thread sends one carrying its
// CLOCK_MONOTONIC time. The latency runs from just before that send to the
// reader holding the message (after the take, before the ack). p50 and p99
// of --samples messages. Through the mounts: the reader thread blocked in
// read(2) on B, the writer thread's write(2) on A.
//
// Markdown tables on stdout; every value into the CSV (key,round,value).
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <exception>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

#include "harness.hpp"
#include "mqfs.h"

namespace {

using namespace bench;

constexpr const char* kListKey = "bench:queue";  // direct's sorted set, list's list
constexpr const char* kPrefix = "mqfs";
constexpr const char* kQueue = "mqfs:q:2";  // the functions' queue: inode 2
constexpr const char* kEvents = "mqfs:events";
constexpr int kPriority = 0;
constexpr const char* kTypeKey = "0000000000000001";  // type 1
constexpr const char* kLeaseMs = "60000";
constexpr Ns kHeartbeatEvery = 3000 * kMs;
constexpr int kPollSliceMs = 10;  // how often a wait for an event looks whether to stop
constexpr auto kLatencyTimeout = std::chrono::seconds(10);

// ------------------------------------------------------------------ hiredis

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* context) const { redisFree(context); }
};
using Connection = std::unique_ptr<redisContext, ContextDeleter>;

Connection connect(int port) {
  Connection c(redisConnect("127.0.0.1", port));
  if (!c) throw std::runtime_error("connect to redis: out of memory");
  if (c->err) throw std::runtime_error(std::string("connect to redis: ") + c->errstr);
  return c;
}

// Queues one command in the connection's output buffer.
void append(redisContext* c, std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (std::string_view arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data()) != REDIS_OK)
    throw std::runtime_error(std::string("redis: ") + c->errstr);
}

// The reply to the oldest command sent (named `name`); an error reply throws.
Reply next_reply(redisContext* c, std::string_view name) {
  void* raw = nullptr;
  if (redisGetReply(c, &raw) != REDIS_OK) throw std::runtime_error(std::string("redis: ") + c->errstr);
  Reply reply(static_cast<redisReply*>(raw));
  if (reply->type == REDIS_REPLY_ERROR)
    throw std::runtime_error("redis: " + std::string(name) + ": " + std::string(reply->str, reply->len));
  return reply;
}

// Sends one command and waits for its reply; an error reply throws.
Reply call(redisContext* c, std::initializer_list<std::string_view> args) {
  append(c, args);
  return next_reply(c, *args.begin());
}

// Sends `first` and `second` in one write and returns the second's reply
// (the first's must not be an error): two calls in one round trip.
Reply call_both(redisContext* c, std::initializer_list<std::string_view> first,
                std::initializer_list<std::string_view> second) {
  append(c, first);
  append(c, second);
  next_reply(c, *first.begin());
  return next_reply(c, *second.begin());
}

std::string_view text(const redisReply* reply) {
  if (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_STATUS)
    throw std::runtime_error("redis: a reply of type " + std::to_string(reply->type) + " where text was expected");
  return {reply->str, reply->len};
}

// Element i of an array reply.
const redisReply* element(const redisReply* reply, size_t i) {
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements <= i)
    throw std::runtime_error("redis: a reply without element " + std::to_string(i));
  return reply->element[i];
}

// ------------------------------------------------------------------ messages

std::string hex16(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, value);
  return buf;
}

// A message: its stamp (a sequence, or a send time) in 20 digits, then
// filler up to 64 bytes.
std::string payload(uint64_t stamp) {
  char head[21];
  std::snprintf(head, sizeof head, "%020" PRIu64, stamp);
  std::string bytes(head);
  bytes.resize(kSize, 'm');
  return bytes;
}

uint64_t stamp_of(std::string_view bytes) {
  if (bytes.size() != kSize) throw std::runtime_error("a message of " + std::to_string(bytes.size()) + " bytes");
  return std::stoull(std::string(bytes.substr(0, 20)));
}

// ------------------------------------------------------------------ mqfs's events

using Stop = std::function<bool()>;

// One queue's events on mqfs:events, read on a connection of their own,
// subscribed before the first command: how many queued ('s') and
// acknowledged ('a') events have come. A wait that starts from a count read
// before a command cannot miss an event that command's outcome depends on:
// Redis publishes it after the command, so it is not read yet.
class QueueEvents {
 public:
  explicit QueueEvents(int port) : c_(connect(port)) {
    const Reply reply = call(c_.get(), {"SUBSCRIBE", kEvents});
    if (text(element(reply.get(), 0)) != "subscribe") throw std::runtime_error("SUBSCRIBE: unexpected reply");
  }

  uint64_t queued() const { return queued_; }
  uint64_t acknowledged() const { return acknowledged_; }

  // Takes in what has come, without waiting; called before each command, so
  // that events never pile up in Redis (a subscriber too far behind is
  // disconnected: client-output-buffer-limit pubsub).
  void drain() { read(0); }

  // Reads events until done() or stop(); false when stopped.
  bool wait(const std::function<bool()>& done, const Stop& stop) {
    while (!done()) {
      if (stop()) return false;
      read(kPollSliceMs);
    }
    return true;
  }

  // Ends a wait from another thread.
  void interrupt() { shutdown(c_->fd, SHUT_RDWR); }

 private:
  // Applies the events hiredis holds, then what arrives within timeout_ms.
  void read(int timeout_ms) {
    for (;;) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(c_.get(), &raw) != REDIS_OK)
        throw std::runtime_error(std::string("redis events: ") + c_->errstr);
      if (raw) {
        const Reply event(static_cast<redisReply*>(raw));
        apply(event.get());
        continue;
      }
      pollfd p{c_->fd, POLLIN, 0};
      const int n = poll(&p, 1, timeout_ms);
      if (n == 0 || (n < 0 && errno == EINTR)) return;
      if (n < 0) throw failure("poll");
      if (redisBufferRead(c_.get()) != REDIS_OK) throw std::runtime_error(std::string("redis events: ") + c_->errstr);
      timeout_ms = 0;  // something came: take the rest without waiting
    }
  }

  // A pushed ["message", channel, "KIND B ..."]: counts this queue's s and a.
  void apply(const redisReply* event) {
    if (text(element(event, 0)) != "message") return;
    const std::string_view body = text(element(event, 2));
    if (body.size() < 2 || !body.substr(2).starts_with(queue_word_)) return;
    if (body[0] == 's') ++queued_;
    if (body[0] == 'a') ++acknowledged_;
  }

  const std::string queue_word_ = std::string(kQueue) + " ";  // an event's B and its space
  Connection c_;
  uint64_t queued_ = 0, acknowledged_ = 0;
};

// ------------------------------------------------------------------ the ways to queue

// A writer's side: queues the message stamped `stamp`; false when stop()
// said so while it waited for room.
class Sender {
 public:
  virtual ~Sender() = default;
  virtual bool send(uint64_t stamp, const Stop& stop) = 0;
};

// A reader's side: waits for a message and calls held(stamp) as soon as it
// holds it, before acknowledging it; false when stop() said so while it
// waited (BZPOPMIN and BRPOP wait on regardless: a message ends them).
class Receiver {
 public:
  virtual ~Receiver() = default;
  virtual bool receive(const Stop& stop, const std::function<void(uint64_t stamp)>& held) = 0;
  // Ends a wait from another thread: the receiver fails.
  virtual void interrupt() = 0;
};

class DirectSender : public Sender {
 public:
  explicit DirectSender(int port) : c_(connect(port)) {}
  bool send(uint64_t stamp, const Stop&) override {
    ++sequence_;
    const std::string score = std::to_string((int64_t{32767 - kPriority} << 32) | (sequence_ & 0xffffffff));
    call(c_.get(), {"ZADD", kListKey, score, hex16(sequence_) + payload(stamp)});
    return true;
  }

 private:
  Connection c_;
  uint64_t sequence_ = 0;
};

class DirectReceiver : public Receiver {
 public:
  explicit DirectReceiver(int port) : c_(connect(port)) {}
  bool receive(const Stop&, const std::function<void(uint64_t)>& held) override {
    const Reply reply = call(c_.get(), {"BZPOPMIN", kListKey, "0"});  // [key, member, score]
    held(stamp_of(text(element(reply.get(), 1)).substr(16)));
    return true;
  }
  void interrupt() override { shutdown(c_->fd, SHUT_RDWR); }

 private:
  Connection c_;
};

class ListSender : public Sender {
 public:
  explicit ListSender(int port) : c_(connect(port)) {}
  bool send(uint64_t stamp, const Stop&) override {
    call(c_.get(), {"LPUSH", kListKey, payload(stamp)});
    return true;
  }

 private:
  Connection c_;
};

class ListReceiver : public Receiver {
 public:
  explicit ListReceiver(int port) : c_(connect(port)) {}
  bool receive(const Stop&, const std::function<void(uint64_t)>& held) override {
    const Reply reply = call(c_.get(), {"BRPOP", kListKey, "0"});  // [key, value]
    held(stamp_of(text(element(reply.get(), 1))));
    return true;
  }
  void interrupt() override { shutdown(c_->fd, SHUT_RDWR); }

 private:
  Connection c_;
};

class FunctionsSender : public Sender {
 public:
  explicit FunctionsSender(int port) : c_(connect(port)), events_(port) {}
  bool send(uint64_t stamp, const Stop& stop) override {
    const std::string priority = std::to_string(kPriority), enqueued_ns = hex16(stamp), bytes = payload(stamp);
    for (;;) {
      events_.drain();
      const uint64_t acknowledged = events_.acknowledged();
      const Reply reply =
          call(c_.get(), {"FCALL", "mqfs_send", "2", kQueue, kPrefix, "1", priority, kTypeKey, enqueued_ns, bytes});
      const std::string_view status = text(element(reply.get(), 0));
      if (status == "ok") return true;
      if (status != "full") throw std::runtime_error("mqfs_send: " + std::string(status));
      if (!events_.wait([&] { return events_.acknowledged() > acknowledged; }, stop)) return false;
    }
  }

 private:
  Connection c_;
  QueueEvents events_;
};

class FunctionsReceiver : public Receiver {
 public:
  // `ack_with_next_take`: a message's acknowledgement goes out with the next
  // take, in one round trip, as a mount can send it (the reader already has
  // the message); otherwise each waits for its reply.
  FunctionsReceiver(int port, bool ack_with_next_take)
      : c_(connect(port)),
        events_(port),
        mount_("bench-reader-" + std::to_string(getpid())),
        ack_with_next_take_(ack_with_next_take) {
    heartbeat();
  }

  bool receive(const Stop& stop, const std::function<void(uint64_t)>& held) override {
    for (;;) {
      if (clock_ns() >= next_heartbeat_) heartbeat();
      events_.drain();
      const uint64_t queued = events_.queued();
      const std::initializer_list<std::string_view> take{"FCALL", "mqfs_take", "2",  kQueue, kPrefix, mount_,
                                                         "any",   "",          "1", "0",    "0"};
      const Reply taken = unacknowledged_.empty()
                              ? call(c_.get(), take)
                              : call_both(c_.get(), {"FCALL", "mqfs_ack", "2", kQueue, kPrefix, mount_, unacknowledged_},
                                          take);
      unacknowledged_.clear();
      const std::string_view status = text(element(taken.get(), 0));  // ok, orderkey, value, deliveries
      if (status == "ok") {
        const std::string_view order_key = text(element(taken.get(), 1)), value = text(element(taken.get(), 2));
        held(stamp_of(value.substr(32)));  // after the type key and enqueued_ns
        if (ack_with_next_take_) {
          unacknowledged_ = order_key;
          return true;
        }
        const Reply acked = call(c_.get(), {"FCALL", "mqfs_ack", "2", kQueue, kPrefix, mount_, order_key});
        if (element(acked.get(), 0)->integer != 1) throw std::runtime_error("mqfs_ack: the message was not held");
        return true;
      }
      if (status != "empty") throw std::runtime_error("mqfs_take: " + std::string(status));
      if (!events_.wait([&] { return events_.queued() > queued; }, stop)) return false;
    }
  }
  void interrupt() override {
    shutdown(c_->fd, SHUT_RDWR);
    events_.interrupt();
  }

 private:
  void heartbeat() {
    call(c_.get(), {"FCALL", "mqfs_heartbeat", "2", "-", kPrefix, mount_, kLeaseMs});
    next_heartbeat_ = clock_ns() + kHeartbeatEvery;
  }

  Connection c_;
  QueueEvents events_;
  std::string mount_;
  bool ack_with_next_take_;
  std::string unacknowledged_;  // the order key of the message taken last, when its ack waits for the next take
  Ns next_heartbeat_ = 0;
};

// Through the mounts: the queue's file on mount A, one write(2) per message.
class MountSender : public Sender {
 public:
  explicit MountSender(const std::string& path) : fd_(open_queue(path, O_WRONLY)) {}
  ~MountSender() override { close(fd_); }
  MountSender(const MountSender&) = delete;
  MountSender& operator=(const MountSender&) = delete;

  bool send(uint64_t stamp, const Stop&) override {
    const std::string bytes = payload(stamp);
    if (write(fd_, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) throw failure("write on mount A");
    return true;
  }

 private:
  int fd_;
};

// A reader's descriptor returns message after message, each read a whole one.
void read_stream(int fd) {
  const int32_t mode = MQFS_READ_STREAM;
  if (ioctl(fd, MQFS_IOC_SET_READ_MODE, &mode) != 0) throw failure("MQFS_IOC_SET_READ_MODE");
}

// The same queue's file on mount B, read in stream mode, blocking.
class MountReceiver : public Receiver {
 public:
  explicit MountReceiver(const std::string& path) : fd_(open_queue(path, O_RDONLY)) { read_stream(fd_); }
  ~MountReceiver() override { close(fd_); }
  MountReceiver(const MountReceiver&) = delete;
  MountReceiver& operator=(const MountReceiver&) = delete;

  bool receive(const Stop&, const std::function<void(uint64_t)>& held) override {
    if (!reading_) {
      reader_ = pthread_self();
      reading_ = true;
    }
    char buf[2 * kSize];  // room for more than one: a longer message would show
    if (g_stopped) throw std::runtime_error("interrupted");  // the signal came between two reads
    const ssize_t n = read(fd_, buf, sizeof buf);
    if (n < 0) throw failure("read on mount B");
    held(stamp_of({buf, static_cast<size_t>(n)}));
    return true;
  }
  // SIGUSR1 (no SA_RESTART) ends the blocked read(2) with EINTR.
  void interrupt() override {
    if (reading_) pthread_kill(reader_, SIGUSR1);
  }

 private:
  int fd_;
  pthread_t reader_{};
  std::atomic<bool> reading_ = false;
};

enum class Way { direct, list, functions, functions_pipelined, mounts, mounts_u32 };

struct Case {
  std::string key;   // in the CSV
  std::string what;  // in the report
  Way way;
  long maxmsg;  // functions and mounts only
};

bool through_mounts(const Case& c) { return c.way == Way::mounts || c.way == Way::mounts_u32; }

// Where a case's messages go: Redis, and for the mounts' cases the queue's
// file on the writer's mount (A) and on the reader's (B).
struct Target {
  int port;
  std::string writes, reads;
};

std::unique_ptr<Sender> make_sender(const Case& c, const Target& at) {
  switch (c.way) {
    case Way::direct: return std::make_unique<DirectSender>(at.port);
    case Way::list: return std::make_unique<ListSender>(at.port);
    case Way::functions:
    case Way::functions_pipelined: return std::make_unique<FunctionsSender>(at.port);
    case Way::mounts: return std::make_unique<MountSender>(at.writes);
    case Way::mounts_u32: break;  // the throughput workers only
  }
  throw std::logic_error("no such way");
}

std::unique_ptr<Receiver> make_receiver(const Case& c, const Target& at) {
  switch (c.way) {
    case Way::direct: return std::make_unique<DirectReceiver>(at.port);
    case Way::list: return std::make_unique<ListReceiver>(at.port);
    case Way::functions: return std::make_unique<FunctionsReceiver>(at.port, false);
    case Way::functions_pipelined: return std::make_unique<FunctionsReceiver>(at.port, true);
    case Way::mounts: return std::make_unique<MountReceiver>(at.reads);
    case Way::mounts_u32: break;
  }
  throw std::logic_error("no such way");
}

// An empty database 0 for the case: FLUSHDB keeps the function library, and
// the mounts' keys in their own database (redis.sh: 1).
void reset(redisContext* control, const Case& c) {
  call(control, {"FLUSHDB"});
  if (c.way != Way::functions && c.way != Way::functions_pipelined) return;
  // The queue's name "q" in the root, inode 2, as a mount writes it (names at version 0 after FLUSHDB).
  const Reply reply = call(control, {"FCALL", "mqfs_names", "2", "-", kPrefix, "0", "put", "2", "q",
                                     std::to_string(c.maxmsg), "1:21:15:331881:01:01:q"});
  if (text(element(reply.get(), 0)) != "ok") throw std::runtime_error("mqfs_names: the queue was not made");
}

// ------------------------------------------------------------------ the mounts' queues

// Whether the queue at `path` is there with these settings.
bool shows(const std::string& path, long maxmsg, bool u32) {
  auto value = [&](const char* name) {
    char buf[64];
    const ssize_t n = getxattr(path.c_str(), (std::string("user.mq.") + name).c_str(), buf, sizeof buf);
    return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
  };
  return value("maxmsg") == std::to_string(maxmsg) && value("framing") == (u32 ? "u32" : "none");
}

// A new queue NAME for a mounts case, made on mount A with the case's maxmsg
// (and u32 framing); returned once mount B shows it so, 10 s at most.
Target mount_queue(int port, const std::vector<std::string>& mounts, const std::string& name, const Case& c) {
  const Target at{port, mounts[0] + "/" + name, mounts[1] + "/" + name};
  const bool u32 = c.way == Way::mounts_u32;
  close(open_queue(at.writes, O_CREAT | O_EXCL | O_RDWR));
  set_attr(at.writes, "maxmsg", std::to_string(c.maxmsg));
  if (u32) set_attr(at.writes, "framing", "u32");
  for (const Ns deadline = clock_ns() + 10000 * kMs; !shows(at.reads, c.maxmsg, u32);) {
    if (clock_ns() >= deadline) throw std::runtime_error(at.reads + ": not there with its settings within 10 s");
    usleep(1000);
  }
  return at;
}

// Removes the case's queue, with whatever is left in it, everywhere.
void remove_queue(const Target& at) {
  if (unlink(at.writes.c_str()) != 0) throw failure("unlink " + at.writes);
}

// ------------------------------------------------------------------ throughput

bool over(const Tally& t) { return g_stopped || clock_ns() >= t.end; }

// Runs a worker's loop; a failure once the window is over (the harness
// interrupts a late worker with SIGUSR1) does not spoil the round.
void until_over(const Tally& t, const std::function<void()>& loop) {
  try {
    loop();
  } catch (const std::exception&) {
    if (!over(t)) throw;
  }
}

Worker writer(const Case& c, const Target& at, const Tally& t) {
  return {[&t, c, at](auto ready, uint64_t& count) {
            const auto sender = make_sender(c, at);
            const Stop stop = [&t] { return over(t); };
            ready();
            until_over(t, [&] {
              uint64_t sequence = 0;
              while (sender->send(++sequence, stop) && in_window(t, count)) {
              }
              // One past the window wakes a reader blocked in BZPOPMIN or BRPOP.
              sender->send(++sequence, [] { return true; });
            });
          },
          false};
}

Worker reader(const Case& c, const Target& at, const Tally& t) {
  return {[&t, c, at](auto ready, uint64_t& count) {
            const auto receiver = make_receiver(c, at);
            const Stop stop = [&t] { return over(t); };
            ready();
            until_over(t, [&] {
              while (receiver->receive(stop, [](uint64_t) {}) && in_window(t, count)) {
              }
            });
          },
          true};
}

// u32 frames of 64 bytes, `frames` per blocking write(2) on mount A; counts
// the frames (sent/s is messages, as every case's).
Worker frames_writer(const std::string& path, const Tally& t, int frames) {
  return {[&t, path, frames](auto ready, uint64_t& count) {
            const int fd = open_queue(path, O_WRONLY);
            const std::string batch = u32_frames(kSize, static_cast<size_t>(frames));
            ready();
            while (write_all(fd, batch) && in_window(t, count, static_cast<uint64_t>(frames))) {
            }
          },
          false};
}

// The reads a reader made in the window, counted across the fork.
class ReadCount {
 public:
  ReadCount() {
    void* p = mmap(nullptr, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw failure("mmap");
    reads_ = static_cast<uint64_t*>(p);
  }
  ~ReadCount() { munmap(reads_, sizeof(uint64_t)); }
  ReadCount(const ReadCount&) = delete;
  ReadCount& operator=(const ReadCount&) = delete;

  uint64_t reads() const { return *reads_; }
  // The mounts' readers: stream mode; reads in the window counted.
  ReaderHooks hooks(const Tally& t) {
    *reads_ = 0;
    uint64_t* reads = reads_;
    return {read_stream, [&t, reads](int) {
              const Ns now = clock_ns();
              if (now >= t.warm && now < t.end) ++*reads;
            }};
  }

 private:
  uint64_t* reads_;
};

// A case's writer and reader.
std::vector<Worker> workers(const Case& c, const Target& at, const Tally& t, int frames, ReadCount& read_count) {
  switch (c.way) {
    case Way::mounts: return {file_writer(at.writes, t), file_reader(at.reads, t, read_count.hooks(t))};
    case Way::mounts_u32: return {frames_writer(at.writes, t, frames), batch_reader(at.reads, t, read_count.hooks(t))};
    default: return {writer(c, at, t), reader(c, at, t)};
  }
}

// ------------------------------------------------------------------ latency

// Nearest rank.
double percentile(std::vector<Ns> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return static_cast<double>(v[std::max<size_t>(rank, 1) - 1]);
}

// `samples` wake-up latencies (ns): see the top of this file.
std::vector<Ns> wake_ups(const Case& c, const Target& at, int samples, Ns pause) {
  const auto sender = make_sender(c, at);
  const auto receiver = make_receiver(c, at);
  std::vector<Ns> latencies;
  latencies.reserve(static_cast<size_t>(samples));
  std::mutex m;
  std::condition_variable changed;
  int received = 0;
  bool reader_done = false;
  std::exception_ptr reader_failure;
  const Stop never = [] { return false; };

  std::thread reading([&] {
    try {
      const auto held = [&](uint64_t stamp) { latencies.push_back(clock_ns() - static_cast<Ns>(stamp)); };
      for (int i = 0; i < samples && receiver->receive(never, held); ++i) {
        std::lock_guard lock(m);
        ++received;
        changed.notify_one();
      }
    } catch (const std::exception&) {
      reader_failure = std::current_exception();
    }
    std::lock_guard lock(m);
    reader_done = true;
    changed.notify_one();
  });

  try {
    for (int i = 0; i < samples; ++i) {
      {
        std::unique_lock lock(m);
        if (!changed.wait_for(lock, kLatencyTimeout, [&] { return received == i || reader_done; }))
          throw std::runtime_error(c.key + ": message " + std::to_string(i) + " not received within 10 s");
        if (reader_done) break;
      }
      std::this_thread::sleep_for(std::chrono::nanoseconds(pause));
      sender->send(static_cast<uint64_t>(clock_ns()), never);
    }
    std::unique_lock lock(m);
    if (!changed.wait_for(lock, kLatencyTimeout, [&] { return reader_done; }))
      throw std::runtime_error(c.key + ": the last message not received within 10 s");
  } catch (const std::exception&) {
    receiver->interrupt();
    reading.join();
    throw;
  }
  reading.join();
  if (reader_failure) std::rethrow_exception(reader_failure);
  return latencies;
}

// ------------------------------------------------------------------ the run

struct Options {
  int port = 0, rounds = 3, samples = 2000;
  std::string functions, csv;
  Ns warmup = 500 * kMs, window = 5000 * kMs, pause = 2 * kMs;
  std::vector<int> maxmsg{1000000, 10};
  std::vector<std::string> mounts;  // A and B; none: no mounts cases
  int frames = 64;                  // u32 frames per write on the mounts
};

std::vector<Case> cases(const Options& o) {
  std::vector<Case> all{{"direct", "direct: ZADD / BZPOPMIN", Way::direct, 0},
                        {"list", "list: LPUSH / BRPOP", Way::list, 0}};
  for (int maxmsg : o.maxmsg)
    all.push_back({"functions-maxmsg" + std::to_string(maxmsg),
                   "functions, maxmsg " + std::to_string(maxmsg) + ": mqfs_send / mqfs_take + mqfs_ack", Way::functions,
                   maxmsg});
  for (int maxmsg : o.maxmsg)
    all.push_back({"functions-ack-with-take-maxmsg" + std::to_string(maxmsg),
                   "functions, maxmsg " + std::to_string(maxmsg) + ": mqfs_send / mqfs_ack of the last + mqfs_take",
                   Way::functions_pipelined, maxmsg});
  if (o.mounts.empty()) return all;
  for (int maxmsg : o.maxmsg)
    all.push_back({"mounts-maxmsg" + std::to_string(maxmsg),
                   "mounts, maxmsg " + std::to_string(maxmsg) + ": write(2) on A / read(2) on B", Way::mounts, maxmsg});
  for (int maxmsg : o.maxmsg)
    all.push_back({"mounts-u32-maxmsg" + std::to_string(maxmsg),
                   "mounts, u32, maxmsg " + std::to_string(maxmsg) + ": " + std::to_string(o.frames) +
                       " frames per write(2) on A / 64 KiB read(2) on B",
                   Way::mounts_u32, maxmsg});
  return all;
}

const Case& find_case(const std::vector<Case>& all, const std::string& key) {
  for (const Case& c : all)
    if (c.key == key) return c;
  throw std::logic_error("no case " + key);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw failure("open " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void run(const Options& o) {
  const Connection control = connect(o.port);
  const Reply loaded = call(control.get(), {"FUNCTION", "LOAD", "REPLACE", read_file(o.functions)});
  if (text(loaded.get()) != kPrefix) throw std::runtime_error("FUNCTION LOAD: library " + std::string(text(loaded.get())));
  const std::vector<Case> all = cases(o);
  Series s;
  // A case's queue: in Redis, or a new one on the mounts.
  auto target = [&](const Case& c, const std::string& name) {
    return through_mounts(c) ? mount_queue(o.port, o.mounts, name, c) : Target{o.port, "", ""};
  };

  Round r(o.warmup, o.window);
  ReadCount read_count;
  for (int round = 0; round < o.rounds; ++round) {
    for (const Case& c : all) {
      reset(control.get(), c);
      const Target at = target(c, c.key + "-round" + std::to_string(round + 1));
      const double received = r.run(c.key, workers(c, at, r.tally(), o.frames, read_count));
      s["received/" + c.key].push_back(received);
      s["sent/" + c.key].push_back(std::isnan(received) ? NAN : static_cast<double>(r.tally().counted[0]) / r.window_s());
      if (!through_mounts(c)) continue;
      s["per-read/" + c.key].push_back(std::isnan(received) ? NAN
                                                             : static_cast<double>(r.tally().counted[1]) /
                                                                   static_cast<double>(read_count.reads()));
      remove_queue(at);
    }
    std::fprintf(stderr, "throughput: round %d of %d done\n", round + 1, o.rounds);
  }

  const std::string first = "-maxmsg" + std::to_string(o.maxmsg[0]);
  std::vector<Case> waking{find_case(all, "direct"), find_case(all, "list"), find_case(all, "functions" + first)};
  if (!o.mounts.empty()) waking.push_back(find_case(all, "mounts" + first));
  for (const Case& c : waking) {
    reset(control.get(), c);
    const Target at = target(c, "latency");
    const std::vector<Ns> latencies = wake_ups(c, at, o.samples, o.pause);
    if (through_mounts(c)) remove_queue(at);
    for (const auto& [name, p] : {std::pair{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"max", 1.0}})
      s["latency-" + std::string(name) + "-us/" + c.key].push_back(percentile(latencies, p) / 1e3);
    s["latency-samples/" + c.key].push_back(static_cast<double>(latencies.size()));
    std::fprintf(stderr, "latency: %s done\n", c.key.c_str());
  }
  call(control.get(), {"FLUSHDB"});
  write_csv(o.csv, s);

  auto med = [&](const std::string& key) { return median(s.at(key)); };
  std::printf("## Throughput: messages/s, 64 B, 1 writer + 1 reader\n\n");
  std::printf("Medians of %d rounds of %.0f ms (after %.0f ms uncounted); received/s is the figure, sent/s shows\n"
              "whether the writer outran the reader (its backlog grows). × direct: the ratio within each round, "
              "then the median.\n\n",
              o.rounds, r.window_s() * 1000, static_cast<double>(o.warmup) / 1e6);
  std::printf("| case | received/s | sent/s | × direct | every round (received/s) |\n|---|---:|---:|---:|---|\n");
  for (const Case& c : all) {
    std::string rounds;
    for (double v : s.at("received/" + c.key)) rounds += (rounds.empty() ? "" : ", ") + fmt(v);
    std::printf("| %s | %s | %s | %s | %s |\n", c.what.c_str(), fmt(med("received/" + c.key)).c_str(),
                fmt(med("sent/" + c.key)).c_str(),
                fmt(median_ratio(s, "received/" + c.key, "received/direct"), "%.2f").c_str(), rounds.c_str());
  }
  std::string per_read;
  for (const Case& c : all)
    if (c.way == Way::mounts_u32)
      per_read += (per_read.empty() ? "" : ", ") + fmt(med("per-read/" + c.key), "%.1f") + " at maxmsg " +
                  std::to_string(c.maxmsg);
  if (!per_read.empty())
    std::printf("\nmounts, u32: messages per read(2) on B (mean in the window, median of the rounds): %s.\n",
                per_read.c_str());
  std::printf("\n## Wake-up latency, µs\n\n");
  std::printf("%d messages each, one %.1f ms after the reader had the previous; from just before the send to the\n"
              "reader holding the message (functions: after mqfs_take, before mqfs_ack; mounts: from before the\n"
              "write(2) on A to the return of the read(2) blocked on B).\n\n",
              o.samples, static_cast<double>(o.pause) / 1e6);
  std::printf("| case | p50 | p99 | p90 | max |\n|---|---:|---:|---:|---:|\n");
  for (const Case& c : waking) {
    auto us = [&](const char* name) { return fmt(med("latency-" + std::string(name) + "-us/" + c.key), "%.1f"); };
    std::printf("| %s | %s | %s | %s | %s |\n", c.what.c_str(), us("p50").c_str(), us("p99").c_str(), us("p90").c_str(),
                us("max").c_str());
  }
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string word; std::getline(in, word, ',');) out.push_back(word);
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (i + 1 >= argc) throw std::runtime_error(k + " needs a value");
    const std::string v = argv[i + 1];
    if (k == "--port") o.port = std::stoi(v);
    else if (k == "--functions") o.functions = v;
    else if (k == "--csv") o.csv = v;
    else if (k == "--rounds") o.rounds = std::stoi(v);
    else if (k == "--window-ms") o.window = std::stoll(v) * kMs;
    else if (k == "--warmup-ms") o.warmup = std::stoll(v) * kMs;
    else if (k == "--maxmsg") o.maxmsg = parse_list(v);
    else if (k == "--samples") o.samples = std::stoi(v);
    else if (k == "--pause-ms") o.pause = static_cast<Ns>(std::stod(v) * 1e6);
    else if (k == "--mounts") o.mounts = split(v);
    else if (k == "--frames") o.frames = std::stoi(v);
    else throw std::runtime_error("unknown option " + k);
  }
  if (o.port <= 0 || o.functions.empty()) throw std::runtime_error("needs --port and --functions");
  if (o.rounds < 1 || o.samples < 1 || o.maxmsg.empty()) throw std::runtime_error("--rounds, --samples and --maxmsg: at least 1");
  for (int maxmsg : o.maxmsg)
    if (maxmsg < 1) throw std::runtime_error("--maxmsg: at least 1");
  if (!o.mounts.empty() && o.mounts.size() != 2) throw std::runtime_error("--mounts: two mount points, A,B");
  if (o.frames < 1) throw std::runtime_error("--frames: at least 1");
  return o;
}

constexpr const char* kUsage =
    "usage: redis_bench --port PORT --functions redis_functions.lua [--rounds N] [--window-ms MS]\n"
    "                   [--warmup-ms MS] [--maxmsg 1000000,10] [--samples N] [--pause-ms MS]\n"
    "                   [--mounts A,B] [--frames N] [--csv FILE]\n";

}  // namespace

int main(int argc, char** argv) {
  catch_stop_signal();
  if (argc < 2 || std::string(argv[1]) == "--help") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  try {
    run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redis_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
