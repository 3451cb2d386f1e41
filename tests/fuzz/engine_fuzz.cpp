// engine_fuzz: drives the queue engine (Namespace, Queue, OpenFile, the
// MessageStore inside the queue, Budget, Timeouts) with a random sequence of
// operations, the way the FUSE adapter does, and compares it with a simple
// model after every step and at every reply the engine gives.
//
// Operations, decoded from the input: make and unlink queues; open files
// (access mode, read mode, priority, O_NONBLOCK) and close them (which sends an
// unfinished line); writes of random sizes, unframed or line / u32 framed,
// well-formed or not; reads with random buffer sizes; blocking reads and
// writes that park waiters; replies that fail (the caller was interrupted);
// interrupts; the clock passing and timeouts expiring; attribute changes
// (maxmsg, msgsize, framing, read mode, priority, timeouts) mid-way; per-file
// priority and read mode; purges (truncate); polls. SPEC section 11:
// explicit acknowledgement and peek read mode per file; ACK and NACK of a
// held id, of an unknown one, of one whose lease ran out, of 0 (all); leases
// that run out (lease_ms), returns after retry_delay_ms, dead letters after
// max_deliveries to the other queue (or to a missing one, or to itself).
// SPEC section 12: message types, from the queue's user.mq.type or the
// writing file's own (MQFS_IOC_SET_TYPE, and back to the queue's); per-file
// selections (Queue::select, as MQFS_IOC_SET_SELECT): any, a type, any but a
// type, the lowest type up to a bound (INT64_MIN: any, lowest first), changed
// also while the file's reads are parked. SPEC section 13: a queue turned
// into a topic and back (Namespace::configure, as setfattr user.mq.kind),
// user.mq.overflow block / drop, user.mq.subscribe lists naming the other
// queue, both, itself or a missing one; files opened for reading on a topic
// (each reads its own subscription, OpenFile::source()).
//
// Invariants:
//  - every reply carries exactly what the model predicts: the highest
//    priority first and FIFO within a priority, one message or as many whole
//    lines / frames as fit, the rest of a message a short read left; a read
//    waits only when nothing is there; a refused reply takes nothing;
//  - every payload carries a unique id: no id is received twice, and at the
//    end every message still queued is drained and matches the model;
//  - curmsgs, curbytes, sent, received, waiting readers and writers,
//    timeouts, readable, writable and each file's rest equal the model's;
//  - no write longer than msgsize is accepted; a refused write queues nothing;
//  - parked requests are served in arrival order, nobody waits for what is
//    there, a timeout fires only after its deadline;
//  - a poll watch is notified whenever its file became more ready;
//  - the budget (bytes, waiters, open files, queues) matches what is held and
//    is zero once everything is freed;
//  - leases: a read in explicit mode leases what it delivers (invisible to
//    other readers, counted in inflight and against maxmsg); ACK takes it for
//    good (received counts it then), NACK, close and a lease running out
//    return it ahead of the younger messages of its priority, after the retry
//    delay; a late ACK is ETIMEDOUT, an unknown id ENOENT; after
//    max_deliveries it moves to the end of the dead-letter queue (new id,
//    deliveries 0, even past maxmsg) and dead_lettered counts it; peeking
//    returns the queue in order, one message a read, and takes nothing;
//    GET_DELIVERY (id, priority, deliveries) is the last message read or
//    peeked; inflight, dead_lettered and the mount's timer (its next
//    deadline) match;
//  - types: every message keeps the type it was written with (a parked
//    unframed write its type at the write, a framed one the type in force as
//    each message is queued, a held line the type at its close) through
//    leases, returns and dead letters; a read takes the first message of its
//    selection's order (highest priority then oldest; a negative selection
//    the lowest type first), a batch read only selected messages in that
//    order, a peek the next selected one after the last peeked; readable()
//    follows the selection; a parked reader is served only with a message
//    it selects, and is the first parked reader that selects any queued
//    message (one that selects none holds back no one), and none waits while
//    a message it selects is queued; GET_DELIVERY tells the type;
//  - topics: kind=topic is refused with EBUSY while the queue holds
//    messages (queued or in flight) and EINVAL with a subscribe list; a
//    publish gives each subscriber with room a copy (bytes, priority, type;
//    an id of the subscriber's own) and keeps nothing; the subscribers are
//    the files that opened the topic for reading while it was one (not a
//    message-mode one at end of file) and the named queues subscribing to
//    its name; a full one holds back the publisher (block: writable and
//    parked writes follow every subscriber's room) or misses the message
//    (drop); dropped (the topic's: no subscriber, or a file that missed it;
//    a subscribing queue's own) and subscribers match; a file's
//    subscription takes the topic's settings while it is one, and keeps its
//    messages when the topic turns back into a queue; a publish's bytes are
//    charged to the budget once while any copy lives (queued, leased, a
//    dead letter, the rest a file holds), each copy its bookkeeping.
//
// Topics are not made under a byte cap (max_bytes): a publish's copies that
// do not fit are not modelled.
//
// Time: the engine takes lease deadlines (and the retry delay of a close)
// from Clock::now(). This target defines clock_gettime(), so that while a
// harness runs CLOCK_MONOTONIC is the model's clock plus one nanosecond per
// call: every deadline is known exactly and no two are equal. Passing time
// fires the mount's timer one deadline at a time, in order, as the daemon's
// timer thread would.
//
// Framing may change at any time, also while files hold unfinished lines or
// frames and while framed writes wait: held bytes keep the framing they were
// written under (a file's next write under another framing first ends them as
// close does), and a parked write the framing it began with.
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/budget.hpp"
#include "engine/framing.hpp"
#include "engine/message.hpp"
#include "engine/namespace.hpp"
#include "engine/node_ids.hpp"
#include "engine/open_file.hpp"
#include "engine/queue.hpp"
#include "engine/settings.hpp"
#include "engine/waiter.hpp"
#include "check.hpp"

namespace mqfs::engine {
namespace {

// The monotonic clock while a harness runs: `at` (whole milliseconds) plus
// one nanosecond per reading since the harness began.
struct FakeClock {
  bool active = false;
  Clock::time_point at;
  uint64_t readings = 0;
};
thread_local FakeClock fake_clock;

}  // namespace
}  // namespace mqfs::engine

// Replaces libc's (and the sanitizers' weak interceptor): steady_clock::now()
// in libstdc++ calls it.
extern "C" int clock_gettime(clockid_t id, timespec* ts) noexcept {
  auto& fake = mqfs::engine::fake_clock;
  if (!fake.active || id != CLOCK_MONOTONIC) return static_cast<int>(syscall(SYS_clock_gettime, id, ts));
  const int64_t ns = (fake.at + std::chrono::nanoseconds(++fake.readings)).time_since_epoch().count();
  ts->tv_sec = ns / 1'000'000'000;
  ts->tv_nsec = ns % 1'000'000'000;
  return 0;
}

namespace mqfs::engine {
namespace {

using fuzz::bytes_of;
using fuzz::frame_header;
using fuzz::frame_length;

constexpr pid_t kPid = 100;
constexpr std::size_t kOverhead = kMessageOverhead;
constexpr std::size_t kMaxMsg = static_cast<std::size_t>(kMaxMsgsize);
constexpr const char* kAlphabet = "abcdefghijklmnopqrstuvwxyz";
// MQFS_FUZZ_TRACE=1 prints each operation (to follow what an input does).
const bool kTrace = std::getenv("MQFS_FUZZ_TRACE") != nullptr;

std::string text_of(std::span<const iovec> data) {
  std::string text;
  for (const iovec& part : data) text.append(static_cast<const char*>(part.iov_base), part.iov_len);
  return text;
}

// --- The model ------------------------------------------------------------

// The next message in `pending` followed by `input`, as the SPEC defines
// framing; written apart from engine/framing.cpp on purpose.
struct Parsed {
  enum Kind { message, incomplete, too_long, empty } kind;
  std::string text;
  std::size_t used = 0;  // bytes of input up to the end of the message
};

Parsed parse(Framing framing, const std::string& pending, const std::string& input, std::size_t msgsize) {
  if (framing == Framing::line) {  // the line ends at the first newline of the input
    const std::size_t newline = input.find('\n');
    if (newline == std::string::npos)
      return {.kind = pending.size() + input.size() > msgsize ? Parsed::too_long : Parsed::incomplete};
    if (pending.size() + newline + 1 > msgsize) return {.kind = Parsed::too_long};
    return {.kind = Parsed::message, .text = pending + input.substr(0, newline + 1), .used = newline + 1};
  }
  // u32: the header may be split between pending and input.
  const std::size_t available = pending.size() + input.size();
  if (available < kFrameHeader) return {.kind = Parsed::incomplete};
  const uint32_t length = frame_length(pending + input.substr(0, kFrameHeader));
  if (length == 0) return {.kind = Parsed::empty};
  if (length > msgsize) return {.kind = Parsed::too_long};
  if (available < kFrameHeader + length) return {.kind = Parsed::incomplete};
  if (pending.size() > kFrameHeader + length) return {.kind = Parsed::too_long};  // never held whole
  const std::size_t used = kFrameHeader + length - pending.size();
  const std::string head = pending.size() > kFrameHeader ? pending.substr(kFrameHeader) : "";
  return {.kind = Parsed::message,
          .text = head + input.substr(used - (length - head.size()), length - head.size()),
          .used = used};
}

struct Slot;

// SPEC section 13: the bytes of one publish, which its subscribers' copies
// share; charged to the budget once (as a message), while a copy lives.
struct Body {
  std::size_t size;
};

// A queued, leased or delayed message: its bytes and what GET_DELIVERY tells.
struct Msg {
  std::string text;
  std::shared_ptr<Body> body;  // a subscriber's copy: the publish's bytes
  uint64_t copy = 0;           // ... and which copy (each is received once)
  uint64_t id = 0;  // the engine's: per queue, in the order messages were recorded
  Priority priority = 0;
  Type type = 1;
  uint32_t deliveries = 0;
  std::size_t size() const { return text.size(); }
};

// SPEC section 12, written apart from the engine's Selection::takes on
// purpose: whether a reader selecting `selection` takes a message of `type`.
bool qualifies(const Selection& selection, Type type) {
  if (selection.type == 0) return true;
  if (selection.type < 0) return selection.type == INT64_MIN || type <= -selection.type;
  return selection.except ? type != selection.type : type == selection.type;
}

// Whether `a` comes before `b` in the order a reader selecting `selection`
// takes them: the lowest type first for a negative selection, then the
// highest priority, then the oldest (ids grow with age within a queue).
bool earlier(const Selection& selection, Type a_type, Priority a_priority, uint64_t a_id, const Msg& b) {
  if (selection.type < 0 && a_type != b.type) return a_type < b.type;
  if (a_priority != b.priority) return a_priority > b.priority;
  return a_id < b.id;
}

// An open file and what the model knows of it.
struct File {
  Slot* slot = nullptr;
  std::unique_ptr<OpenFile> engine;
  bool reads = true;
  bool writes = true;
  std::optional<Priority> priority;
  std::optional<ReadMode> read_mode;
  std::optional<Type> type;  // SPEC section 12: MQFS_IOC_SET_TYPE
  Selection selection;       // MQFS_IOC_SET_SELECT
  bool delivered = false;    // a message was delivered (message mode: then end of file)
  std::string rest;          // the unread part of a delivered message
  std::size_t rest_of = 0;   // the size of that message, still charged to the budget
  std::shared_ptr<Body> rest_body;  // ... or, for a subscriber's copy, the bytes it shares
  uint64_t rest_id = 0;      // that message's id (a peek's rest: 0)
  bool rest_leased = false;  // a copy of the rest of a message leased
  std::string pending;       // framed writes: the start of an unfinished message
  Framing pending_framing = Framing::none;  // the framing `pending` was written under
  int parked = 0;            // its reads and writes waiting in the queue
  bool watching = false;     // a poll watch is registered
  bool notified = false;
  bool was_readable = false;  // readiness when the watch was registered
  bool was_writable = false;
  // SPEC section 11.
  bool explicit_ack = false;
  struct Held {
    uint64_t id;
    bool lapsed;  // its lease ran out: remembered for a late ACK
  };
  std::vector<Held> leases;  // in the order they were made
  struct Peeked {  // the place of the last message peeked
    Type type;
    Priority priority;
    uint64_t id;
  };
  std::optional<Peeked> peeked;
  struct Last {
    uint64_t id;
    Priority priority;
    uint32_t deliveries;
    Type type;
  };
  std::optional<Last> last;  // GET_DELIVERY
  // SPEC section 13: opened for reading on a topic, its own subscription,
  // which its reads take from (OpenFile::source()).
  std::unique_ptr<Slot> sub;
};

struct ParkedRead {
  const Waiter* waiter;
  File* file;
  std::optional<Clock::time_point> deadline;
};

// A parked write: one message (an unframed write, or a detached send when
// `waiter` is null), or the bytes of a framed write not consumed yet, split
// by the framing the write began under.
struct ParkedWrite {
  const Waiter* waiter;
  File* file;
  bool framed;
  Framing framing;
  std::string bytes;
  Priority priority;
  Type type;             // unframed: the message's
  std::size_t consumed;  // framed: bytes of the write already consumed
  std::optional<Clock::time_point> deadline;
};

// A framed write or a flushed line under way in a direct call.
struct Direct {
  File* file;
  Framing framing;   // a framed write's
  std::string rest;  // input not consumed yet
  std::size_t consumed = 0;
  bool flush = false;  // the message is `rest`, sent as it is
  Priority priority = 0;
  Type type = 1;
};

// One queue: a name in the namespace and what it should hold.
struct Slot {
  std::string name;
  Node* node = nullptr;  // while the kernel holds a reference to it
  uint64_t id = 0;       // that reference's node id
  bool named = false;
  Queue* queue = nullptr;  // while it exists
  std::weak_ptr<Queue> alive;
  Settings settings;
  std::map<Priority, std::deque<Msg>, std::greater<Priority>> queued;
  uint64_t count = 0, bytes = 0, sent = 0, received = 0;
  uint64_t last_id = 0, dead_lettered = 0;
  struct Lease {
    Msg message;
    File* holder;
  };
  // By deadline; equal deadlines in the order they were made, as the engine's lists.
  std::multimap<Clock::time_point, Lease> leased;
  std::multimap<Clock::time_point, Msg> delayed;  // returned, waiting for the retry delay
  uint64_t inflight() const { return leased.size() + delayed.size(); }
  std::list<ParkedRead> readers;   // arrival order
  std::list<ParkedWrite> writers;  // arrival order
  Direct* direct = nullptr;
  // SPEC section 13.
  uint64_t dropped = 0;
  bool is_topic() const { return settings.kind == QueueKind::topic; }
  bool subscription = false;  // a file's own subscription to a topic
  bool subscribed = false;    // ... which its topic still feeds
};

// What a read should do.
struct Read {
  enum Kind { wait, eof, data, too_small, no_space } kind;
  std::string bytes;
  std::size_t taken = 0;   // whole messages taken from the queue (0: from the file's rest)
  std::string rest;        // what the file holds afterwards
  std::size_t rest_of = 0;
  std::shared_ptr<Body> rest_body;
  const Msg* peeked = nullptr;  // peek mode: the message read
};

// How a framed write ended: waiting for room (`full`), a byte count, or an error.
struct Seen {
  bool full = false;
  std::size_t n = 0;
  int error = 0;
  bool maybe_full = false;  // an answer: a full queue or a refused message, which look the same
};

class Harness;

// --- The doubles: replies now, and parked requests ------------------------

// A read or write made now. It is answered at once, or parked: then its
// waiter answers it, through the request while the harness has not taken
// the waiter on (a waiter the queue could not keep is answered at once).
class DirectRead final : public ReadRequest {
 public:
  DirectRead(Harness& h, File& f, std::size_t size, bool refuse, bool refuse_later)
      : h_(&h), f_(&f), size_(size), refuse_(refuse), refuse_later_(refuse_later) {}
  bool deliver(std::span<const iovec> data) override;
  void fail(int e) override {
    ++answers;
    error = e;
  }
  std::unique_ptr<ReceiveWaiter> park(OpenFile& file, pid_t pid, std::size_t size) override;
  int answers = 0;
  int error = 0;
  const Waiter* parked = nullptr;

 private:
  Harness* h_;
  File* f_;
  std::size_t size_;
  bool refuse_;
  bool refuse_later_;
};

class DirectWrite final : public WriteRequest {
 public:
  // `message`: an unframed write, queued once the writer got the answer.
  DirectWrite(Harness& h, File& f, const std::string* message, Priority priority, Type type, bool refuse,
              bool refuse_later)
      : h_(&h),
        f_(&f),
        message_(message),
        priority_(priority),
        type_(type),
        refuse_(refuse),
        refuse_later_(refuse_later) {}
  bool accept(std::size_t n) override;
  void fail(int e) override {
    ++answers;
    error = e;
  }
  std::unique_ptr<SendWaiter> park(OpenFile& file, pid_t pid) override;
  int answers = 0;
  std::size_t accepted = 0;
  int error = 0;
  const Waiter* parked = nullptr;

  bool waiting() const { return parked && answers == 0; }

 private:
  Harness* h_;
  File* f_;
  const std::string* message_;
  Priority priority_;
  Type type_;
  bool refuse_;
  bool refuse_later_;
};

class ReadWaiter final : public ReceiveWaiter {
 public:
  ReadWaiter(Harness& h, File& f, std::size_t size, bool refuse, DirectRead& request)
      : ReceiveWaiter(*f.engine, kPid, size), h_(&h), f_(&f), refuse_(refuse), request_(&request) {}
  bool deliver(std::span<const iovec> data) override;
  void fail(int error) override;
  void taken_on() { request_ = nullptr; }

 private:
  Harness* h_;
  File* f_;
  bool refuse_;
  DirectRead* request_;  // until the harness takes it on
};

class WriteWaiter final : public SendWaiter {
 public:
  WriteWaiter(Harness& h, File& f, bool refuse, DirectWrite& request)
      : SendWaiter(*f.engine, kPid), h_(&h), f_(&f), refuse_(refuse), request_(&request) {}
  bool accept(std::size_t n) override;
  void fail(int error) override;
  void taken_on() { request_ = nullptr; }

 private:
  Harness* h_;
  File* f_;
  bool refuse_;
  DirectWrite* request_;
};

class FlagWatch final : public Watch {
 public:
  explicit FlagWatch(bool& flag) : flag_(&flag) {}
  void notify() override { *flag_ = true; }

 private:
  bool* flag_;
};

// --- The harness ----------------------------------------------------------

class Harness {
 public:
  explicit Harness(FuzzedDataProvider& in)
      : in_(in),
        limits_(pick_limits()),
        budget_(limits_),
        names_(budget_, timeouts_, pick_settings(), 0755, Owner{}) {
    slots_[0].name = "a";
    slots_[1].name = "b";
    fake_clock = FakeClock{.active = true, .at = now_};
    CHECK(Clock::now() == now_ + std::chrono::nanoseconds(1));  // the engine will read this clock
    readings_ = 1;
  }
  ~Harness() { fake_clock.active = false; }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void run() {
    make(slots_[0]);
    while (in_.remaining_bytes() > 0) {
      step();
      check();
    }
    finish();
  }

  // Called by the doubles.
  bool delivered(File& f, std::size_t size, std::span<const iovec> data, bool refuse, const Waiter* waiter);
  void read_failed(File& f, std::size_t size, const Waiter* waiter, int error);
  bool accepted_now(File& f, const std::string* message, Priority priority, Type type, bool refuse, std::size_t n);
  bool write_accepted(File& f, const Waiter* waiter, std::size_t n, bool refuse);
  void write_failed(File& f, const Waiter* waiter, int error);

 private:
  // -- input

  Limits pick_limits() {
    Limits l;
    l.message_overhead = kOverhead;
    l.max_nodes = in_.ConsumeIntegralInRange<uint64_t>(1, 3);
    if (in_.ConsumeBool()) l.max_bytes = in_.ConsumeIntegralInRange<uint64_t>(0, 4000);
    if (in_.ConsumeBool()) l.max_waiters = in_.ConsumeIntegralInRange<uint64_t>(0, 4);
    return l;
  }

  // `first` or `second` a quarter of the time each, else a value in [lo, hi].
  int64_t pick_value(int64_t first, int64_t second, int64_t lo, int64_t hi) {
    switch (in_.ConsumeIntegralInRange(0, 3)) {
      case 0: return first;
      case 1: return second;
      default: return in_.ConsumeIntegralInRange<int64_t>(lo, hi);
    }
  }
  int64_t pick_maxmsg() { return pick_value(10, kMaxMaxmsg, 1, 4); }
  int64_t pick_msgsize() { return pick_value(8192, kMaxMsgsize, 1, 40); }
  int64_t pick_timeout() { return in_.ConsumeBool() ? 0 : in_.ConsumeIntegralInRange<int64_t>(1, 50); }
  Priority pick_priority() { return in_.ConsumeBool() ? kMaxPriority : in_.ConsumeIntegralInRange<Priority>(0, 3); }

  Settings pick_settings() {
    Settings s;
    s.maxmsg = pick_maxmsg();
    s.msgsize = pick_msgsize();
    s.priority = in_.ConsumeIntegralInRange(0, 3);
    s.read_mode = in_.ConsumeBool() ? ReadMode::stream : ReadMode::message;
    s.framing = static_cast<Framing>(in_.ConsumeIntegralInRange(0, 2));
    s.recv_timeout_ms = pick_timeout();
    s.send_timeout_ms = pick_timeout();
    return s;
  }

  // SPEC section 12: a few small types, and the largest ones.
  Type pick_type() {
    const int pick = in_.ConsumeIntegralInRange(0, 4);
    return pick < 3 ? pick + 1 : pick == 3 ? kMaxType : kMaxType - 1;
  }
  // Any, a type, any but a type, the lowest type up to a bound (INT64_MIN: any type, lowest first).
  Selection pick_selection() {
    switch (in_.ConsumeIntegralInRange(0, 4)) {
      case 0: return {};
      case 1: return {.type = pick_type()};
      case 2: return {.type = pick_type(), .except = true};
      case 3: return {.type = -pick_type()};
      default: return {.type = INT64_MIN};
    }
  }

  // lease_ms and retry_delay_ms: short (the next passes of time reach them), the default, the largest.
  int64_t pick_lease_ms() { return pick_value(30000, kMaxTimeoutMs, 1, 60); }
  int64_t pick_retry_delay_ms() { return pick_value(0, kMaxTimeoutMs, 1, 60); }

  std::size_t pick_write_size(std::size_t msgsize) {
    switch (in_.ConsumeIntegralInRange(0, 3)) {
      case 0: return in_.ConsumeIntegralInRange<std::size_t>(1, 8);
      case 1:  // around msgsize; rarely a megabyte
        if (msgsize <= 4096 || in_.ConsumeIntegralInRange(0, 15) == 0)
          return in_.ConsumeIntegralInRange<std::size_t>(std::max<std::size_t>(msgsize, 2) - 1, msgsize + 1);
        [[fallthrough]];
      default: return in_.ConsumeIntegralInRange<std::size_t>(1, std::min<std::size_t>(msgsize + 1, 200));
    }
  }

  std::size_t pick_read_size(const File& f) {
    const Slot& s = src(f);
    switch (in_.ConsumeIntegralInRange(0, 4)) {
      case 0: return in_.ConsumeIntegralInRange<std::size_t>(1, 8);
      case 1: return in_.ConsumeIntegralInRange<std::size_t>(1, 300);
      case 2: return kMaxMsg + in_.ConsumeIntegralInRange<std::size_t>(0, 2);
      case 3: {  // the first messages just fit, or just do not
        std::size_t size = 0;
        int n = in_.ConsumeIntegralInRange(1, 4);
        for (const Msg* m : in_order(s, f.selection))
          if (n-- > 0) size += m->size() + (s.settings.framing == Framing::u32 ? kFrameHeader : 0);
        return std::max<std::size_t>(1, size + in_.ConsumeIntegralInRange(0, 2) - 1);
      }
      default: return 1 << 16;
    }
  }

  // A payload of `size` bytes that starts with a unique "#id:" when it fits.
  std::string payload(std::size_t size) {
    const std::string tag = "#" + std::to_string(next_id_++) + ":";
    std::string text = size >= tag.size() ? tag : "";
    text.reserve(size);
    while (text.size() < size) {  // the alphabet, from the position's letter
      const std::size_t at = text.size() % 26;
      text.append(kAlphabet + at, std::min(26 - at, size - text.size()));
    }
    return text;
  }

  // Whether `message` is one payload (with its newline), and its id. Checks
  // the letters after the id, up to 64 of them.
  static std::optional<uint64_t> payload_id(const std::string& message) {
    if (message.empty() || message[0] != '#') return std::nullopt;
    const std::size_t colon = message.find(':');
    if (colon == std::string::npos || colon == 1) return std::nullopt;
    uint64_t id = 0;
    for (std::size_t i = 1; i < colon; ++i) {
      if (message[i] < '0' || message[i] > '9') return std::nullopt;
      id = id * 10 + static_cast<uint64_t>(message[i] - '0');
    }
    const std::size_t end = std::min(message.size() - (message.back() == '\n'), colon + 65);
    for (std::size_t i = colon + 1; i < end; ++i)
      if (message[i] != kAlphabet[i % 26]) return std::nullopt;
    return id;
  }

  // The bytes of one write, shaped for the queue's framing.
  std::string write_input(const Slot& s) {
    const auto msgsize = static_cast<std::size_t>(s.settings.msgsize);
    if (s.settings.framing == Framing::none) return payload(pick_write_size(msgsize));
    if (in_.ConsumeIntegralInRange(0, 4) == 0) {  // raw bytes, maybe after a short frame's header
      std::string raw = in_.ConsumeBytesAsString(in_.ConsumeIntegralInRange<std::size_t>(1, 24));
      std::replace(raw.begin(), raw.end(), '#', '$');  // '#' only starts an id
      if (in_.ConsumeBool()) raw = frame_header(in_.ConsumeIntegralInRange(0, 8)) + raw;
      return raw.empty() ? "x" : raw;
    }
    std::string input;
    for (int pieces = in_.ConsumeIntegralInRange(1, 4); pieces > 0; --pieces) {
      const std::size_t size = pick_write_size(msgsize);
      if (s.settings.framing == Framing::line) {
        input += payload(size - 1) + "\n";
      } else {
        const int bad = in_.ConsumeIntegralInRange(0, 15);  // an empty frame, a too long one
        input += frame_header(bad == 0 ? 0 : bad == 1 ? msgsize + 1 : size) + payload(size);
      }
    }
    if (in_.ConsumeBool()) {  // an unfinished last message; no cut id
      input.resize(in_.ConsumeIntegralInRange<std::size_t>(1, input.size()));
      const std::size_t hash = input.rfind('#');
      if (hash != std::string::npos && input.find(':', hash) == std::string::npos) input[hash] = '$';
    }
    return input;
  }

  Slot& pick_slot() { return slots_[in_.ConsumeIntegralInRange(0, 1)]; }
  File* pick_file() {
    if (files_.empty()) return nullptr;
    return files_[in_.ConsumeIntegralInRange<std::size_t>(0, files_.size() - 1)].get();
  }

  // -- the model's view

  // Where `f`'s reads take from: its queue, or its subscription to a topic.
  static Slot& src(const File& f) { return f.sub ? *f.sub : *f.slot; }

  // SPEC section 13: where a publish to `t` goes now: the subscriptions of
  // the files reading it (not a message-mode one at end of file), and the
  // named queues (not topics) whose user.mq.subscribe names it.
  std::vector<Slot*> subscribers(const Slot& t) const {
    std::vector<Slot*> found;
    if (!t.is_topic()) return found;
    for (const auto& f : files_)
      if (f->slot == &t && f->sub && f->sub->subscribed && !at_end(*f)) found.push_back(f->sub.get());
    // A file closing returns its leases before it leaves: a publish then
    // (its room made by a dead letter) still reaches it.
    if (closing_ && closing_->slot == &t && closing_->sub && closing_->sub->subscribed && !at_end(*closing_) &&
        t.queue->subscribers() == found.size() + 1)
      found.push_back(closing_->sub.get());
    if (t.named)
      for (const Slot& q : slots_)
        if (&q != &t && q.named && q.queue && !q.is_topic() &&
            std::find(q.settings.subscribe.begin(), q.settings.subscribe.end(), t.name) != q.settings.subscribe.end())
          found.push_back(const_cast<Slot*>(&q));
    return found;
  }
  static Settings subscription_settings(Settings settings) {
    settings.kind = QueueKind::queue;
    settings.subscribe.clear();
    return settings;
  }

  Priority priority_of(const File& f) const {
    return f.priority ? *f.priority : static_cast<Priority>(f.slot->settings.priority);
  }
  Type type_of(const File& f) const { return f.type ? *f.type : f.slot->settings.type; }
  ReadMode mode_of(const File& f) const { return f.read_mode ? *f.read_mode : f.slot->settings.read_mode; }
  bool at_end(const File& f) const { return f.delivered && f.rest.empty() && mode_of(f) == ReadMode::message; }
  // Leased and delayed messages keep their place under maxmsg. A topic has
  // room when each subscriber has (overflow=drop: always).
  bool has_room(const Slot& s) const {
    if (s.is_topic()) {
      if (s.settings.overflow == Overflow::drop) return true;
      for (const Slot* q : subscribers(s))
        if (!has_room(*q)) return false;
      return true;
    }
    return s.count + s.inflight() < static_cast<uint64_t>(s.settings.maxmsg);
  }
  bool writable(const Slot& s) const { return s.writers.empty() && has_room(s); }
  bool readable(const File& f) const {
    return !f.rest.empty() || at_end(f) || mode_of(f) == ReadMode::peek || front(src(f), f.selection);
  }
  uint64_t available() const { return limits_.max_bytes - budget_.bytes(); }
  bool fits(uint64_t n) const { return n <= available(); }
  bool waiter_room() const { return budget_.waiters() < limits_.max_waiters; }
  std::optional<Clock::time_point> deadline(int64_t timeout_ms) const {
    if (timeout_ms <= 0) return std::nullopt;
    return now_ + std::chrono::milliseconds(timeout_ms);
  }

  // A message the engine recorded (gave an id) and queued, or published.
  void enqueue(Slot& s, std::string message, Priority priority, Type type) {
    Msg m{.text = std::move(message), .priority = priority, .type = type};
    if (s.is_topic()) return publish(s, std::move(m));
    m.id = ++s.last_id;
    push(s, std::move(m));
    ++s.sent;
  }
  // A message recorded, then withdrawn (its writer did not get the answer):
  // its ids are spent.
  void withdrawn(Slot& s) {
    if (!s.is_topic()) {
      ++s.last_id;
      return;
    }
    for (Slot* q : subscribers(s))
      if (has_room(*q)) ++q->last_id;
  }

  // A publish: a copy (sharing the bytes) to each subscriber with room; a
  // full one misses it (overflow=drop), counted in its dropped (a file's: in
  // the topic's), as is a publish nobody subscribes to.
  void publish(Slot& t, Msg m) {
    std::vector<Slot*> takers, missed;
    for (Slot* q : subscribers(t)) (has_room(*q) ? takers : missed).push_back(q);
    if (kTrace) std::fprintf(stderr, "  publish to %zu, %zu miss it\n", takers.size(), missed.size());
    if (takers.empty() && missed.empty()) ++t.dropped;
    for (Slot* q : missed) ++(q->subscription ? t.dropped : q->dropped);
    if (!takers.empty()) m.body = std::make_shared<Body>(Body{m.size()});
    for (Slot* q : takers) {
      Msg copy = m;
      copy.id = ++q->last_id;
      copy.copy = ++copies_;
      push(*q, std::move(copy));
      ++q->sent;
    }
    ++t.sent;
  }
  void push(Slot& s, Msg m) {
    s.bytes += m.size();
    ++s.count;
    s.queued[m.priority].push_back(std::move(m));
  }
  // A returned message goes ahead of the younger ones of its priority.
  void put_back(Slot& s, Msg m) {
    s.bytes += m.size();
    ++s.count;
    auto& fifo = s.queued[m.priority];
    auto at = std::find_if(fifo.begin(), fifo.end(), [&](const Msg& q) { return q.id > m.id; });
    fifo.insert(at, std::move(m));
  }

  // The queued messages `selection` takes, in the order it takes them.
  static std::vector<const Msg*> in_order(const Slot& s, const Selection& selection) {
    std::vector<const Msg*> order;
    for (const auto& [priority, fifo] : s.queued)
      for (const Msg& m : fifo)
        if (qualifies(selection, m.type)) order.push_back(&m);
    std::sort(order.begin(), order.end(),
              [&](const Msg* a, const Msg* b) { return earlier(selection, a->type, a->priority, a->id, *b); });
    return order;
  }
  // The message a read selecting `selection` takes next, or null.
  static const Msg* front(const Slot& s, const Selection& selection) {
    const auto order = in_order(s, selection);
    return order.empty() ? nullptr : order.front();
  }

  // Takes front(s, selection) out of the queue.
  Msg pop(Slot& s, const Selection& selection) {
    const Msg* first = front(s, selection);
    CHECK(first);
    auto level = s.queued.find(first->priority);
    auto at = std::find_if(level->second.begin(), level->second.end(), [&](const Msg& m) { return &m == first; });
    Msg message = std::move(*at);
    level->second.erase(at);
    if (level->second.empty()) s.queued.erase(level);
    --s.count;
    s.bytes -= message.size();
    return message;
  }

  // What a read of `size` bytes on `f` gets now (Queue::read_now).
  // `delivering`: asked while the engine delivers, which it does after
  // charging the budget for the copy of a rest it keeps.
  Read expect_read(const File& f, std::size_t size, bool delivering = false) const {
    const Slot& s = src(f);
    if (!f.rest.empty()) {
      const std::size_t n = std::min(size, f.rest.size());
      return {.kind = Read::data,
              .bytes = f.rest.substr(0, n),
              .rest = f.rest.substr(n),
              .rest_of = f.rest_of,
              .rest_body = f.rest_body};
    }
    if (mode_of(f) == ReadMode::peek) return expect_peek(f, size, delivering);
    if (at_end(f) || size == 0) return {.kind = Read::eof};
    const std::vector<const Msg*> order = in_order(s, f.selection);
    if (order.empty()) return {.kind = Read::wait};
    const bool u32 = s.settings.framing == Framing::u32;
    if (u32 || (s.settings.framing == Framing::line && mode_of(f) == ReadMode::stream)) {
      // Whole messages, as many as fit; a request larger than msgsize's limit is never filled.
      const std::size_t limit = size > kMaxMsg ? size - 1 : size;
      const std::size_t most = mode_of(f) == ReadMode::message ? 1 : SIZE_MAX;
      Read batch{.kind = Read::data};
      for (const Msg* m : order) {  // only the messages the file selects, in its order
        const std::string header = u32 ? frame_header(m->size()) : "";
        if (batch.taken == most || batch.bytes.size() + header.size() + m->size() > limit) break;
        batch.bytes += header + m->text;
        ++batch.taken;
      }
      if (batch.taken > 0) return batch;
      if (u32) return {.kind = Read::too_small};
    }
    const Msg& first = *order.front();
    const std::string& front = first.text;
    const std::size_t n = std::min(size, front.size());
    // A message leased stays whole in the queue: the file keeps a copy of its rest.
    if (f.explicit_ack && n < front.size() && !delivering && !fits(front.size() - n + kOverhead))
      return {.kind = Read::no_space};
    return {.kind = Read::data,
            .bytes = front.substr(0, n),
            .taken = 1,
            .rest = front.substr(n),
            // auto: the file keeps the message itself (a subscriber's copy: with the bytes it shares)
            .rest_of = f.explicit_ack ? front.size() - n : first.body ? 0 : front.size(),
            .rest_body = f.explicit_ack ? nullptr : first.body};
  }

  // The next queued message after the one `f` peeked last, in the order of
  // its selection (of the messages it selects).
  const Msg* next_peeked(const File& f) const {
    for (const Msg* m : in_order(src(f), f.selection))
      if (!f.peeked || earlier(f.selection, f.peeked->type, f.peeked->priority, f.peeked->id, *m)) return m;
    return nullptr;
  }

  // Peek read mode: one message a read, a copy of its rest kept by the file.
  Read expect_peek(const File& f, std::size_t size, bool delivering) const {
    const Msg* m = next_peeked(f);
    if (!m || size == 0) return {.kind = Read::eof};
    if (src(f).settings.framing == Framing::u32) {
      if (kFrameHeader + m->size() > size) return {.kind = Read::too_small};
      return {.kind = Read::data, .bytes = frame_header(m->size()) + m->text, .peeked = m};
    }
    const std::size_t n = std::min(size, m->size());
    if (n < m->size() && !delivering && !fits(m->size() - n + kOverhead)) return {.kind = Read::no_space};
    return {.kind = Read::data,
            .bytes = m->text.substr(0, n),
            .rest = m->text.substr(n),
            .rest_of = m->size() - n,
            .peeked = m};
  }

  static void set_last(File& f, const Msg& m) { f.last = File::Last{m.id, m.priority, m.deliveries, m.type}; }

  // The clock the engine reads next (Clock::now()), and one reading more.
  Clock::time_point reading() { return fake_clock.at + std::chrono::nanoseconds(++readings_); }
  Clock::time_point clock_now() {
    const Clock::time_point now = Clock::now();
    CHECK(now == reading());
    return now;
  }

  void apply(File& f, const Read& r) {
    if (r.kind != Read::data) return;
    Slot& s = src(f);
    if (r.peeked) {
      f.peeked = File::Peeked{r.peeked->type, r.peeked->priority, r.peeked->id};
      set_last(f, *r.peeked);
    }
    for (std::size_t i = 0; i < r.taken; ++i) {
      Msg message = pop(s, f.selection);
      ++message.deliveries;
      set_last(f, message);
      if (f.explicit_ack) {  // leased until lease_ms from now
        f.leases.push_back({message.id, false});
        s.leased.emplace(reading() + std::chrono::milliseconds(s.settings.lease_ms),
                         Slot::Lease{std::move(message), &f});
      } else {
        taken_for_good(s, message);
      }
    }
    if (r.taken > 0) {
      f.delivered = true;
      f.rest_id = f.last->id;
      f.rest_leased = f.explicit_ack;
    } else if (r.peeked) {
      f.rest_id = 0;
      f.rest_leased = false;
    }
    f.rest = r.rest;
    f.rest_of = r.rest.empty() ? 0 : r.rest_of;
    f.rest_body = r.rest.empty() ? nullptr : r.rest_body;
  }

  // Received: read in auto mode, or acknowledged.
  void taken_for_good(Slot& s, const Msg& message) {
    ++s.received;
    if (auto id = payload_id(message.text)) CHECK(received_ids_.emplace(*id, message.copy).second);  // never twice
  }

  // -- leases

  Slot::Lease take_lease(Slot& s, const File& f, uint64_t id) {
    auto it = std::find_if(s.leased.begin(), s.leased.end(),
                           [&](const auto& l) { return l.second.holder == &f && l.second.message.id == id; });
    CHECK(it != s.leased.end());
    Slot::Lease lease = std::move(it->second);
    s.leased.erase(it);
    return lease;
  }

  // The queue a message returned to `s` after its last delivery moves to.
  Slot* dead_letter_queue(Slot& s) {
    if (s.settings.max_deliveries <= 0) return nullptr;
    std::string_view path = s.settings.dead_letter;
    while (!path.empty() && path.front() == '/') path.remove_prefix(1);
    for (Slot& to : slots_)
      if (to.named && to.name == path) return &to == &s || to.is_topic() ? nullptr : &to;
    return nullptr;
  }

  // A message whose lease ended without an ACK (NACK, close, ran out at
  // `now`): to the dead-letter queue, else back after the retry delay.
  void give_back(Slot& s, Msg m, Clock::time_point now) {
    if (static_cast<int64_t>(m.deliveries) >= s.settings.max_deliveries)
      if (Slot* to = dead_letter_queue(s)) {
        dead_letters_.push_back({&s, to, std::move(m)});  // taken in when the engine moves it
        return;
      }
    if (s.settings.retry_delay_ms > 0)
      s.delayed.emplace(now + std::chrono::milliseconds(s.settings.retry_delay_ms), std::move(m));
    else
      put_back(s, std::move(m));
  }

  // The dead letters the engine moved so far (the source's dead_lettered
  // counts them before the target queues them), at the end of their queue.
  // `gone`: a file's subscription that closed, whose dead letters all moved.
  void take_dead_letters(const Slot* gone = nullptr) {
    while (!dead_letters_.empty()) {
      DeadLetter& d = dead_letters_.front();
      if (d.from != gone && d.from->queue->dead_lettered() == d.from->dead_lettered) return;
      ++d.from->dead_lettered;
      Msg m = std::move(d.message);
      m.id = ++d.to->last_id;
      m.deliveries = 0;
      push(*d.to, std::move(m));
      ++d.to->sent;
      dead_letters_.pop_front();
    }
  }

  // The file's messages go back, as at its last close (`now`: when).
  void return_all(File& f, Clock::time_point now) {
    Slot& s = src(f);
    for (const File::Held& h : f.leases)
      if (!h.lapsed) give_back(s, take_lease(s, f, h.id).message, now);
    f.leases.clear();
  }

  // The mount's timer fires for `s` at `at`: returned messages whose delay
  // ended go back, then leases that ran out lapse and return (as the engine:
  // a delay first when it ends at the same time).
  void expire_leases(Slot& s, Clock::time_point at) {
    for (;;) {
      const bool delay = !s.delayed.empty() && s.delayed.begin()->first <= at;
      const bool lease = !s.leased.empty() && s.leased.begin()->first <= at;
      if (!delay && !lease) return;
      if (delay && (!lease || s.delayed.begin()->first <= s.leased.begin()->first)) {
        put_back(s, std::move(s.delayed.begin()->second));
        s.delayed.erase(s.delayed.begin());
        continue;
      }
      Slot::Lease ran_out = std::move(s.leased.begin()->second);
      s.leased.erase(s.leased.begin());
      File& f = *ran_out.holder;
      auto held = std::find_if(f.leases.begin(), f.leases.end(),
                               [&](const File::Held& h) { return !h.lapsed && h.id == ran_out.message.id; });
      CHECK(held != f.leases.end());
      held->lapsed = true;
      if (std::count_if(f.leases.begin(), f.leases.end(), [](const File::Held& h) { return h.lapsed; }) >
          Holder::kMaxLapsed)
        f.leases.erase(std::find_if(f.leases.begin(), f.leases.end(), [](const File::Held& h) { return h.lapsed; }));
      give_back(s, std::move(ran_out.message), at);
    }
  }

  // The earliest deadline on the mount's timer: a waiter's, a lease's, a delay's.
  // Every queue that exists: the named ones (or held open), then the
  // files' subscriptions to topics.
  std::vector<Slot*> all_queues() const {
    std::vector<Slot*> all;
    for (const Slot& s : slots_)
      if (s.queue) all.push_back(const_cast<Slot*>(&s));
    for (const auto& f : files_)
      if (f->sub) all.push_back(f->sub.get());
    return all;
  }

  std::optional<Clock::time_point> next_deadline() const {
    std::optional<Clock::time_point> next;
    auto consider = [&](const std::optional<Clock::time_point>& t) {
      if (t && (!next || *t < *next)) next = t;
    };
    for (const Slot* q : all_queues()) {
      const Slot& s = *q;
      for (const ParkedRead& p : s.readers) consider(p.deadline);
      for (const ParkedWrite& p : s.writers) consider(p.deadline);
      if (!s.leased.empty()) consider(s.leased.begin()->first);
      if (!s.delayed.empty()) consider(s.delayed.begin()->first);
    }
    return next;
  }

  // Takes into the model the messages the engine queued since it last looked
  // (Queue::sent), from the write under way: the direct call, else the parked
  // writer at the head of the line. Unframed writes are taken at accept().
  // A topic's publishes first: they fill its subscribers.
  void sync(Slot& s) {
    for (Slot& t : slots_)
      if (&t != &s && t.queue && t.is_topic()) sync_one(t);
    sync_one(s);
  }
  void sync_one(Slot& s) {
    take_dead_letters();
    while (s.queue && s.queue->sent() > s.sent) {
      if (kTrace)
        std::fprintf(stderr, "  sync %s%s: direct %d (flush %d), writers %zu\n", s.name.c_str(),
                     s.subscription ? " (subscription)" : "", s.direct != nullptr, s.direct && s.direct->flush,
                     s.writers.size());
      CHECK(has_room(s));  // queued only when there was room
      if (s.direct && s.direct->flush) {
        enqueue(s, s.direct->rest, s.direct->priority, s.direct->type);
        s.direct->rest.clear();
        s.direct->flush = false;
        continue;
      }
      if (s.direct) {
        enqueue(s, next_frame(s, *s.direct->file, s.direct->framing, s.direct->rest, s.direct->consumed),
                priority_of(*s.direct->file), type_of(*s.direct->file));
        continue;
      }
      CHECK(!s.writers.empty());
      ParkedWrite& head = s.writers.front();
      if (!head.framed) {  // a detached send: the line a closed file left
        CHECK(head.waiter == nullptr);
        enqueue(s, head.bytes, head.priority, head.type);
        s.writers.pop_front();
        continue;
      }
      enqueue(s, next_frame(s, *head.file, head.framing, head.bytes, head.consumed), priority_of(*head.file),
              type_of(*head.file));
    }
  }

  // Bytes `f` holds under another framing than a write's `framing` end before
  // the write goes on, as at close: an unfinished u32 frame is dropped; an
  // unfinished line becomes the next message, when there is room (true).
  static bool held_line_first(File& f, Framing framing) {
    if (f.pending.empty() || f.pending_framing == framing) return false;
    if (f.pending_framing == Framing::line) return true;
    f.pending.clear();
    return false;
  }

  // The next message of a framed write under `framing`, which the engine queued.
  std::string next_frame(Slot& s, File& f, Framing framing, std::string& rest, std::size_t& consumed) {
    if (held_line_first(f, framing)) return std::exchange(f.pending, std::string());
    Parsed next = parse(framing, f.pending, rest, static_cast<std::size_t>(s.settings.msgsize));
    if (kTrace)
      std::fprintf(stderr, "  frame %d of %zu bytes (pending %zu): %d, sent %llu/%llu\n", static_cast<int>(framing),
                   rest.size(), f.pending.size(), static_cast<int>(next.kind),
                   static_cast<unsigned long long>(s.queue->sent()), static_cast<unsigned long long>(s.sent));
    CHECK(next.kind == Parsed::message);
    f.pending.clear();
    rest.erase(0, next.used);
    consumed += next.used;
    return std::move(next.text);
  }

  // A framed write stopped after `consumed` bytes became messages: checks how
  // it ended against what the model sees next, and keeps the unfinished
  // message. True when it stopped for want of room.
  bool framed_end(Slot& s, File& f, Framing framing, const std::string& rest, std::size_t consumed,
                  const Seen& seen) {
    auto short_write = [&](int error) {  // the bytes consumed, or the error when none
      CHECK(!seen.full);
      if (consumed == 0)
        CHECK(seen.error == error);
      else
        CHECK(seen.error == 0 && seen.n == consumed);
      return false;
    };
    // Waiting for room; an answer's byte count or error is checked by the caller.
    auto stopped_full = [&] {
      CHECK(seen.maybe_full || (seen.full && seen.n == consumed));
      return true;
    };
    if (held_line_first(f, framing)) {  // not queued: no room for it
      if (!has_room(s)) return stopped_full();
      CHECK(!fits(f.pending.size() + kOverhead));
      return short_write(ENOSPC);
    }
    const Parsed next = parse(framing, f.pending, rest, static_cast<std::size_t>(s.settings.msgsize));
    switch (next.kind) {
      case Parsed::message:
        if (!has_room(s)) return stopped_full();
        CHECK(!fits(next.text.size() + kOverhead));  // no room in the budget
        return short_write(ENOSPC);
      case Parsed::incomplete:
        if (!seen.full && seen.error == 0 && seen.n == consumed + rest.size()) {
          f.pending += rest;
          f.pending_framing = framing;
          return false;
        }
        CHECK(!fits(rest.size()));
        return short_write(ENOSPC);
      case Parsed::too_long:
        f.pending.clear();
        return short_write(EMSGSIZE);
      case Parsed::empty:
        f.pending.clear();
        return short_write(EINVAL);
    }
  }

  // The error a callback of `waiter` may carry because it is being cancelled, or 0.
  int cancelling(const Waiter* waiter, const std::optional<Clock::time_point>& deadline) const {
    if (cancel_all_error_) return cancel_all_error_;
    if (waiter == interrupting_) return EINTR;
    if (expiring_ && deadline && *deadline <= now_) return ETIMEDOUT;
    return 0;
  }

  std::list<ParkedWrite>::iterator find_writer(Slot& s, const Waiter* waiter) {
    auto it =
        std::find_if(s.writers.begin(), s.writers.end(), [&](const ParkedWrite& p) { return p.waiter == waiter; });
    CHECK(it != s.writers.end());  // answered once, and only when parked
    return it;
  }
  // Parked readers are served in arrival order, each by its own selection: a
  // reader served now is the first whose selection takes a queued message
  // (one that takes none holds back no one behind it).
  static bool first_served(const Slot& s, std::list<ParkedRead>::iterator it) {
    if (!front(s, it->file->selection)) return false;
    for (auto p = s.readers.begin(); p != it; ++p)
      if (front(s, p->file->selection)) return false;
    return true;
  }

  std::list<ParkedRead>::iterator find_reader(Slot& s, const Waiter* waiter) {
    auto it = std::find_if(s.readers.begin(), s.readers.end(), [&](const ParkedRead& p) { return p.waiter == waiter; });
    CHECK(it != s.readers.end());
    return it;
  }

  // -- operations

  void step() {
    const int op = in_.ConsumeIntegralInRange(0, 21);
    if (kTrace) std::fprintf(stderr, "step %d\n", op);
    switch (op) {
      case 0: case 1: case 2: case 3: return write();
      case 4: case 5: case 6: case 7: return read();
      case 8: return open(pick_slot());
      case 9: if (File* f = pick_file(); f && f->parked == 0) close(*f); return;
      case 10: return configure(pick_slot());
      case 11: case 20: case 21: return set_file_options();
      case 12: return pass_time();
      case 13: return interrupt();
      case 14: return in_.ConsumeBool() ? purge(pick_slot()) : poll();
      case 15: {
        Slot& s = pick_slot();
        return s.named ? unlink(s) : make(s);
      }
      case 16: case 19: return acknowledge();
      case 17: return configure(pick_slot());
      default: return set_ack_or_peek();
    }
  }

  void make(Slot& s) {
    if (s.node) return;  // still held under its old name
    const uint64_t nodes = (slots_[0].node != nullptr) + (slots_[1].node != nullptr);
    Node* made = nullptr;
    const int status = names_.make(names_.root(), s.name, S_IFREG | 0644, Owner{}, made);
    CHECK(status == (nodes < limits_.max_nodes ? 0 : -ENOSPC));
    if (status < 0) return;
    const std::string name = s.name;
    s = Slot{};
    s.name = name;
    s.node = made;
    s.id = ids_.remember(*made);  // the kernel's reference, as for a create
    s.named = true;
    s.queue = made->queue.get();
    s.alive = made->queue;
    s.settings = names_.defaults();
  }

  void unlink(Slot& s) {
    s.named = false;  // first: the topics it subscribed to may serve their writers within the unlink
    CHECK(names_.unlink(names_.root(), s.name) == 0);
    if (!has_files(s)) forget(s);
  }

  bool has_files(const Slot& s) const {
    return std::any_of(files_.begin(), files_.end(), [&](const auto& f) { return f->slot == &s; });
  }

  // The kernel drops its last reference: the queue ends with it, freeing its
  // messages and detached sends.
  void forget(Slot& s) {
    ids_.forget(s.id, 1);
    CHECK(s.alive.expired());
    const std::string name = s.name;
    s = Slot{};
    s.name = name;
  }

  void open(Slot& s) {
    if (!s.named || files_.size() >= 6) return;
    auto f = std::make_unique<File>();
    f->slot = &s;
    const int access = in_.ConsumeIntegralInRange(0, 2);  // O_RDONLY, O_WRONLY, O_RDWR
    f->reads = access != 1;
    f->writes = access != 0;
    opened(*f);
    if (in_.ConsumeBool()) f->engine->set_read_mode(f->read_mode = ReadMode::stream);
    files_.push_back(std::move(f));
  }

  // release(): sends an unfinished line, then frees the file and its rest.
  // The messages it holds go back (the engine reads the clock when it held
  // any lease, run out or not).
  // The engine's open file; one reading a topic subscribes to it from now on.
  void opened(File& f) {
    Slot& s = *f.slot;
    f.engine = std::make_unique<OpenFile>(s.node->queue, f.reads, f.writes);
    if (f.reads && s.is_topic()) {
      f.sub = std::make_unique<Slot>();
      f.sub->settings = subscription_settings(s.settings);
      f.sub->queue = &f.engine->source();
      f.sub->subscription = f.sub->subscribed = true;
      CHECK(f.sub->queue != s.queue);
    }
  }

  // A subscriber's subscription goes with it: what it holds is dropped, and
  // a publisher it held back may go on.
  void close(File& f) {
    if (kTrace) std::fprintf(stderr, "  close\n");
    flush(f);
    Slot& s = *f.slot;
    if (!f.leases.empty()) return_all(f, reading());
    auto it = std::find_if(files_.begin(), files_.end(), [&](const auto& p) { return p.get() == &f; });
    std::unique_ptr<File> closing = std::move(*it);
    files_.erase(it);
    closing_ = closing.get();
    closing->engine.reset();
    closing_ = nullptr;
    take_dead_letters(closing->sub.get());
    sync(s);  // a line it left, which its subscription held back, may have gone on
    closing.reset();
    if (!s.named && !has_files(s)) forget(s);
  }

  void flush(File& f) {
    Slot& s = *f.slot;
    int expected = 0;
    bool parks = false;
    Direct direct{&f, f.pending_framing, f.pending, 0, true, priority_of(f), type_of(f)};
    if (f.pending_framing == Framing::line && !f.pending.empty()) {  // whatever the queue's framing is now
      if (!fits(f.pending.size() + kOverhead))
        expected = -ENOSPC;
      else if (!writable(s))
        parks = true, expected = waiter_room() ? 0 : -EAGAIN;
    } else {
      direct.flush = false;  // an unfinished u32 frame is no message
    }
    f.pending.clear();
    s.direct = &direct;
    const int status = s.queue->flush(*f.engine, kPid, now_);
    sync(s);
    s.direct = nullptr;
    CHECK(status == expected);
    if (parks && status == 0) {
      CHECK(direct.flush);  // not queued yet
      s.writers.push_back({nullptr, nullptr, false, Framing::none, direct.rest, direct.priority, direct.type, 0,
                           deadline(s.settings.send_timeout_ms)});
    } else {
      CHECK(!direct.flush || status < 0);  // queued, or dropped
    }
  }

  void write() {
    File* f = pick_file();
    if (!f || !f->writes) return;
    Slot& s = *f->slot;
    const bool nonblocking = in_.ConsumeBool();
    const bool refuse = in_.ConsumeIntegralInRange(0, 7) == 0;
    const bool refuse_later = in_.ConsumeIntegralInRange(0, 7) == 0;
    const std::string input = write_input(s);
    if (s.settings.framing == Framing::none)
      write_message(*f, input, nonblocking, refuse, refuse_later);
    else
      write_framed(*f, input, nonblocking, refuse, refuse_later);
  }

  void write_message(File& f, const std::string& input, bool nonblocking, bool refuse, bool refuse_later) {
    Slot& s = *f.slot;
    const Priority priority = priority_of(f);
    const Type type = type_of(f);
    int expected = 0;
    bool parks = false;
    if (input.size() > static_cast<std::size_t>(s.settings.msgsize))
      expected = EMSGSIZE;
    else if (!writable(s) && nonblocking)
      expected = EAGAIN;
    else if (!fits(input.size() + kOverhead))
      expected = ENOSPC;
    else if (!writable(s))  // a blocking write waits with its message
      parks = waiter_room(), expected = parks ? 0 : EAGAIN;
    f.engine->set_nonblocking(nonblocking);
    DirectWrite to(*this, f, &input, priority, type, refuse, refuse_later);
    s.queue->send(*f.engine, bytes_of(input), kPid, now_, to);
    CHECK(to.waiting() == parks);
    if (parks) return take_on(s, f, to, {to.parked, &f, false, Framing::none, input, priority, type, 0,
                                         deadline(s.settings.send_timeout_ms)});
    CHECK(to.answers == 1 && to.error == expected);
    if (expected == 0) CHECK(to.accepted == input.size());
  }

  void write_framed(File& f, const std::string& input, bool nonblocking, bool refuse, bool refuse_later) {
    Slot& s = *f.slot;
    const bool behind = !s.writers.empty();  // behind the writers already waiting
    Direct direct{&f, s.settings.framing, input};
    f.engine->set_nonblocking(nonblocking);
    DirectWrite to(*this, f, nullptr, 0, 1, refuse, refuse_later);
    s.direct = &direct;
    s.queue->send(*f.engine, bytes_of(input), kPid, now_, to);
    sync(s);
    s.direct = nullptr;
    CHECK(to.answers == (to.waiting() ? 0 : 1));
    bool full = true;
    if (behind) {
      CHECK(direct.consumed == 0);
    } else {
      // An answer does not tell a write stopped by a full queue from one
      // stopped by a refused message: both report what they consumed.
      Seen seen{to.waiting(), to.waiting() ? direct.consumed : to.accepted, to.error, !to.waiting()};
      full = framed_end(s, f, direct.framing, direct.rest, direct.consumed, seen);
    }
    if (!full) return;
    // Stopped for room: O_NONBLOCK reports what was consumed; a blocking
    // write waits with the rest, when the mount can keep it.
    CHECK(direct.rest == input.substr(direct.consumed));
    if (to.waiting()) {
      CHECK(!nonblocking);
      return take_on(s, f, to, {to.parked, &f, true, direct.framing, direct.rest, 0, 1, direct.consumed,
                                deadline(s.settings.send_timeout_ms)});
    }
    const int why = nonblocking ? EAGAIN : !fits(direct.rest.size()) ? ENOSPC : EAGAIN;
    CHECK(nonblocking || !fits(direct.rest.size()) || !waiter_room());
    if (direct.consumed > 0)
      CHECK(to.error == 0 && to.accepted == direct.consumed);
    else
      CHECK(to.error == why);
  }

  void take_on(Slot& s, File& f, DirectWrite& to, ParkedWrite parked) {
    static_cast<WriteWaiter*>(const_cast<Waiter*>(to.parked))->taken_on();
    s.writers.push_back(std::move(parked));
    ++f.parked;
  }

  void read() {
    File* f = pick_file();
    if (!f || !f->reads) return;
    Slot& s = src(*f);
    const std::size_t size = pick_read_size(*f);
    const bool nonblocking = in_.ConsumeBool();
    const bool refuse = in_.ConsumeIntegralInRange(0, 7) == 0;
    const bool refuse_later = in_.ConsumeIntegralInRange(0, 7) == 0;
    const Read::Kind kind = expect_read(*f, size).kind;
    const bool parks = kind == Read::wait && !nonblocking && waiter_room();
    f->engine->set_nonblocking(nonblocking);
    DirectRead to(*this, *f, size, refuse, refuse_later);
    s.queue->receive(*f->engine, size, kPid, now_, to);
    CHECK(to.answers == (parks ? 0 : 1));
    if (!parks) {
      CHECK(to.error == error_of(kind));
      return;
    }
    CHECK(to.parked);
    static_cast<ReadWaiter*>(const_cast<Waiter*>(to.parked))->taken_on();
    s.readers.push_back({to.parked, f, deadline(s.settings.recv_timeout_ms)});
    ++f->parked;
  }

  // A read that does not wait: 1 (answered with bytes), 0 (would wait) or -EMSGSIZE.
  int read_now(File& f, std::size_t size, bool refuse) {
    const Read::Kind kind = expect_read(f, size).kind;
    f.engine->set_nonblocking(true);
    DirectRead to(*this, f, size, refuse, false);
    src(f).queue->receive(*f.engine, size, kPid, now_, to);
    CHECK(to.answers == 1 && !to.parked);
    CHECK(to.error == error_of(kind));
    return to.error == EAGAIN ? 0 : to.error ? -to.error : 1;
  }

  static int error_of(Read::Kind kind) {
    switch (kind) {
      case Read::wait: return EAGAIN;
      case Read::too_small: return EMSGSIZE;
      case Read::no_space: return ENOSPC;
      default: return 0;
    }
  }

  void configure(Slot& s) {
    if (!s.queue) return;
    Settings next = s.settings;
    static constexpr const char* kDeadLetters[] = {"", "a", "/a", "b", "/b", "c"};  // c: no such queue
    static const std::vector<std::string> kSubscribe[] = {{}, {"a"}, {"b"}, {"a", "b"}, {"c"}};
    switch (in_.ConsumeIntegralInRange(0, 14)) {
      case 0: next.maxmsg = pick_maxmsg(); break;
      case 1: next.msgsize = pick_msgsize(); break;
      case 2: next.priority = pick_priority(); break;
      case 3: next.read_mode = in_.ConsumeBool() ? ReadMode::stream : ReadMode::message; break;
      case 4: next.recv_timeout_ms = pick_timeout(); break;
      case 5: next.send_timeout_ms = pick_timeout(); break;
      case 6: next.framing = static_cast<Framing>(in_.ConsumeIntegralInRange(0, 2)); break;
      case 7: next.lease_ms = pick_lease_ms(); break;
      case 8: next.retry_delay_ms = pick_retry_delay_ms(); break;
      case 9: next.max_deliveries = in_.ConsumeIntegralInRange(0, 3); break;
      case 10: next.dead_letter = kDeadLetters[in_.ConsumeIntegralInRange(0, 5)]; break;
      case 11: next.type = pick_type(); break;
      case 12:  // SPEC section 13; not under a byte cap (a publish's copies may not fit: not modelled)
        if (limits_.max_bytes == UINT64_MAX)
          next.kind = s.is_topic() ? QueueKind::queue : QueueKind::topic;
        break;
      case 13: next.overflow = in_.ConsumeBool() ? Overflow::drop : Overflow::block; break;
      default: next.subscribe = kSubscribe[in_.ConsumeIntegralInRange(0, 4)]; break;
    }
    // Known engine bugs (README, Findings): a lasting subscription that ends
    // does not wake its topic; a topic that turns back into a queue serves
    // its waiting writers part way through.
    // As setfattr: a topic subscribes to nothing; a queue holding messages
    // (queued or in flight) does not become a topic.
    int expected = 0;
    if (next.kind == QueueKind::topic && !next.subscribe.empty())
      expected = -EINVAL;
    else if (next.kind == QueueKind::topic && !s.is_topic() && s.count + s.inflight() > 0)
      expected = -EBUSY;
    if (expected == 0) {  // before: the queue serves waiters with them at once
      const bool unsubscribe = s.is_topic() && next.kind != QueueKind::topic;
      s.settings = next;
      for (const auto& f : files_)
        if (f->slot == &s && f->sub && f->sub->subscribed) {
          if (unsubscribe)
            f->sub->subscribed = false;  // it keeps what it has, and its settings
          else
            f->sub->settings = subscription_settings(next);
        }
    }
    if (kTrace)
      std::fprintf(stderr, "  configure %s: maxmsg %lld, kind %d, overflow %d, subscribe %zu: expect %d\n", s.name.c_str(),
                   static_cast<long long>(next.maxmsg), static_cast<int>(next.kind), static_cast<int>(next.overflow),
                   next.subscribe.size(), expected);
    CHECK(names_.configure(*s.node, next) == expected);
  }

  // The per-file ioctls, and O_NONBLOCK as a read or write would set it.
  void set_file_options() {
    File* f = pick_file();
    if (!f) return;
    switch (in_.ConsumeIntegralInRange(0, 4)) {
      case 0:
        f->priority = in_.ConsumeBool() ? std::nullopt : std::optional(pick_priority());
        f->engine->set_priority(f->priority);
        break;
      case 1: {
        const auto mode =
            in_.ConsumeBool() ? std::nullopt : std::optional(in_.ConsumeBool() ? ReadMode::stream : ReadMode::message);
        f->read_mode = mode;
        f->engine->source().set_read_mode(*f->engine, mode);  // as MQFS_IOC_SET_READ_MODE
        f->was_readable = readable(*f);  // the caller knows: it polls again
        break;
      }
      case 2:
        f->engine->set_nonblocking(in_.ConsumeBool());
        break;
      case 3:  // MQFS_IOC_SET_TYPE (-1: back to the queue's)
        f->type = in_.ConsumeBool() ? std::nullopt : std::optional(pick_type());
        f->engine->set_type(f->type);
        break;
      default:  // MQFS_IOC_SET_SELECT: parked reads of the file take what it selects now
        f->selection = pick_selection();
        if (kTrace)
          std::fprintf(stderr, "  select %lld%s\n", static_cast<long long>(f->selection.type),
                       f->selection.except ? " except" : "");
        f->engine->source().select(*f->engine, f->selection);
        break;
    }
  }

  void purge(Slot& s) {
    if (!s.queue) return;
    s.queued.clear();  // before: the room lets parked writers in at once
    s.count = s.bytes = 0;
    s.queue->purge();
  }

  void poll() {
    File* f = pick_file();
    if (!f) return;
    f->watching = true;
    f->notified = false;
    f->was_readable = readable(*f);
    f->was_writable = writable(*f->slot);
    src(*f).queue->watch(*f->engine, std::make_unique<FlagWatch>(f->notified));
  }

  void pass_time() { pass_time_to(now_ + std::chrono::milliseconds(in_.ConsumeIntegralInRange(0, 60))); }

  // The timer fires at each deadline up to `to`, in order.
  void pass_time_to(Clock::time_point to) {
    for (auto next = next_deadline(); next && *next <= to; next = next_deadline()) {
      // A waiter's deadline is in whole milliseconds, a lease's or a delay's a little after one.
      now_ = Clock::time_point(std::chrono::floor<std::chrono::milliseconds>(next->time_since_epoch()));
      fake_clock.at = now_;
      for (Slot* s : all_queues()) expire_leases(*s, *next);
      expire(*next);
    }
    now_ = fake_clock.at = to;
    expire(now_);
  }

  void expire(Clock::time_point at) {
    expiring_ = true;
    timeouts_.expire(at);
    expiring_ = false;
    take_dead_letters();
    for (Slot* q : all_queues()) {
      Slot& s = *q;
      std::erase_if(s.writers, [&](const ParkedWrite& p) { return !p.waiter && p.deadline && *p.deadline <= now_; });
      for (const ParkedWrite& p : s.writers) CHECK(!p.deadline || *p.deadline > now_);
      for (const ParkedRead& p : s.readers) CHECK(!p.deadline || *p.deadline > now_);
    }
  }

  // -- SPEC section 11 operations

  // MQFS_IOC_ACK or MQFS_IOC_NACK of an id the file holds, had, another
  // holds, any other, or 0 (all).
  void acknowledge() {
    File* f = pick_file();
    if (!f) return;
    Slot& s = src(*f);
    const bool nack = in_.ConsumeBool();
    const uint64_t id = pick_ack_id(*f);
    const Clock::time_point now = nack ? clock_now() : Clock::time_point{};  // as the adapter passes it
    int expected = 0;
    auto end = [&](Msg m) {
      if (nack)
        give_back(s, std::move(m), now);
      else
        taken_for_good(s, m);
    };
    if (id == 0) {
      const bool lapsed = std::any_of(f->leases.begin(), f->leases.end(), [](const File::Held& h) { return h.lapsed; });
      const bool held = std::any_of(f->leases.begin(), f->leases.end(), [](const File::Held& h) { return !h.lapsed; });
      if (!held && lapsed) expected = -ETIMEDOUT;
      for (const File::Held& h : f->leases)
        if (!h.lapsed) end(take_lease(s, *f, h.id).message);
      f->leases.clear();
    } else {
      // The message held under that id, read again maybe after leases of it
      // ran out, which go with it; else those leases: told once.
      bool lapsed = false, held = false;
      for (auto it = f->leases.begin(); it != f->leases.end() && !held;) {
        if (it->id != id) {
          ++it;
        } else if (it->lapsed) {
          lapsed = true;
          it = f->leases.erase(it);
        } else {
          held = true;
          f->leases.erase(it);
          end(take_lease(s, *f, id).message);
        }
      }
      expected = held ? 0 : lapsed ? -ETIMEDOUT : -ENOENT;
    }
    // The unread rest of a leased message read in part goes with a NACK of it.
    if (nack && f->explicit_ack && f->rest_leased && (id == 0 || f->rest_id == id)) {
      f->rest.clear();
      f->rest_of = 0;
      f->rest_body = nullptr;
    }
    const int status = nack ? s.queue->nack(*f->engine, id, now) : s.queue->ack(*f->engine, id);
    if (kTrace) std::fprintf(stderr, "  %s %llu: %d\n", nack ? "nack" : "ack", static_cast<unsigned long long>(id), status);
    CHECK(status == expected);
    sync(s);
  }

  uint64_t pick_ack_id(const File& f) {
    const Slot& s = src(f);
    switch (in_.ConsumeIntegralInRange(0, 3)) {
      case 0: return 0;
      case 1:
        if (!f.leases.empty()) return f.leases[in_.ConsumeIntegralInRange<std::size_t>(0, f.leases.size() - 1)].id;
        [[fallthrough]];
      case 2:  // maybe another file's
        if (!s.leased.empty()) {
          auto it = s.leased.begin();
          std::advance(it, in_.ConsumeIntegralInRange<std::size_t>(0, s.leased.size() - 1));
          return it->second.message.id;
        }
        [[fallthrough]];
      default: return in_.ConsumeIntegralInRange<uint64_t>(1, s.last_id + 2);
    }
  }

  // MQFS_IOC_SET_ACK, and MQFS_IOC_SET_READ_MODE with peek (or back to the queue's mode).
  void set_ack_or_peek() {
    File* f = pick_file();
    if (!f) return;
    switch (in_.ConsumeIntegralInRange(0, 2)) {
      case 0:
        f->explicit_ack = in_.ConsumeBool();
        f->engine->set_ack_mode(f->explicit_ack ? AckMode::explicit_ack : AckMode::automatic);
        return;
      case 1: f->read_mode = ReadMode::peek; break;
      default:
        f->read_mode = std::nullopt;
        break;
    }
    f->engine->source().set_read_mode(*f->engine, f->read_mode);
    f->was_readable = readable(*f);  // the caller knows: it polls again
  }

  void interrupt() {
    std::vector<std::pair<Slot*, const Waiter*>> parked;
    for (Slot* q : all_queues()) {
      Slot& s = *q;
      for (const ParkedRead& p : s.readers) parked.emplace_back(&s, p.waiter);
      for (const ParkedWrite& p : s.writers)
        if (p.waiter) parked.emplace_back(&s, p.waiter);
    }
    if (parked.empty()) return;
    auto [s, waiter] = parked[in_.ConsumeIntegralInRange<std::size_t>(0, parked.size() - 1)];
    interrupt(*s, waiter);
  }

  void interrupt(Slot& s, const Waiter* waiter) {
    if (kTrace) std::fprintf(stderr, "  interrupt\n");
    interrupting_ = waiter;
    s.queue->cancel(const_cast<Waiter&>(*waiter), EINTR);
    interrupting_ = nullptr;
    for (const ParkedRead& p : s.readers) CHECK(p.waiter != waiter);
    for (const ParkedWrite& p : s.writers) CHECK(p.waiter != waiter);
  }

  // -- checks

  void check() {
    uint64_t held = 0, waiters = 0, timed = 0, nodes = 0;
    bool exact = true;  // framed bytes are charged by capacity: then only a lower bound
    take_dead_letters();
    for (const Slot& s : slots_) nodes += s.node != nullptr;
    std::unordered_set<const Body*> bodies;  // a publish's bytes are charged once
    auto charge = [&](const Msg& m) -> uint64_t {
      if (!m.body) return m.size() + kOverhead;
      bodies.insert(m.body.get());
      return kOverhead;
    };
    for (Slot* queue : all_queues()) {
      Slot& s = *queue;
      CHECK(s.subscription || !s.alive.expired());
      sync(s);
      const Queue& q = *s.queue;
      CHECK(q.curmsgs() == s.count);
      CHECK(q.curbytes() == s.bytes);
      CHECK(q.sent() == s.sent);
      CHECK(q.received() == s.received);
      CHECK(q.receivers_waiting() == s.readers.size());
      CHECK(q.senders_waiting() == s.writers.size());
      for (const ParkedRead& p : s.readers) CHECK(!front(s, p.file->selection));  // nobody waits for what is there
      CHECK(s.writers.empty() || !has_room(s));
      CHECK(q.writable() == writable(s));
      CHECK(q.settings().maxmsg == s.settings.maxmsg && q.settings().framing == s.settings.framing);
      CHECK(q.inflight() == s.inflight());
      CHECK(q.dead_lettered() == s.dead_lettered);
      CHECK(q.dropped() == s.dropped);
      CHECK(q.subscribers() == subscribers(s).size());
      CHECK(q.is_topic() == s.is_topic());
      for (const auto& [priority, fifo] : s.queued)
        for (const Msg& m : fifo) held += charge(m);
      for (const auto& [deadline, lease] : s.leased) held += charge(lease.message);
      for (const auto& [deadline, m] : s.delayed) held += charge(m);
      timed += s.inflight() > 0;  // the queue's entry on the timer
      for (const ParkedWrite& p : s.writers) {
        if (p.framed) {
          held += p.bytes.size();
          exact = false;
        } else {
          held += p.bytes.size() + kOverhead;
        }
        timed += p.deadline.has_value();
      }
      for (const ParkedRead& p : s.readers) timed += p.deadline.has_value();
      waiters += s.readers.size() + s.writers.size();
    }
    CHECK(dead_letters_.empty());
    for (const auto& f : files_) {
      CHECK(f->engine->holds_rest() == !f->rest.empty());
      CHECK(f->engine->leases().held() ==
            static_cast<std::size_t>(std::count_if(f->leases.begin(), f->leases.end(),
                                                   [](const File::Held& h) { return !h.lapsed; })));
      CHECK(f->engine->leases().empty() == f->leases.empty());
      const auto& last = f->engine->last_delivery();  // GET_DELIVERY
      CHECK(last.has_value() == f->last.has_value());
      if (last)
        CHECK(last->id == f->last->id && last->priority == f->last->priority &&
              last->deliveries == f->last->deliveries && last->type == f->last->type);
      CHECK(f->engine->at_end() == at_end(*f));
      CHECK(src(*f).queue->readable(*f->engine) == readable(*f));
      CHECK(f->engine->priority() == priority_of(*f));
      if (!f->rest.empty()) held += f->rest_of + kOverhead;
      if (!f->rest.empty() && f->rest_body) bodies.insert(f->rest_body.get());
      if (!f->pending.empty()) {
        held += f->pending.size();
        exact = false;
      }
      if (f->watching && f->notified) f->watching = false;
      if (f->watching) {  // more ready, and not told
        CHECK(!readable(*f) || f->was_readable);
        CHECK(!writable(*f->slot) || f->was_writable);
      }
    }
    for (const Body* body : bodies) held += body->size + kOverhead;
    CHECK(exact ? budget_.bytes() == held : budget_.bytes() >= held);
    CHECK(budget_.bytes() <= limits_.max_bytes);
    CHECK(budget_.waiters() == waiters);
    CHECK(timeouts_.size() == timed);
    CHECK(timeouts_.next() == next_deadline());
    CHECK(fake_clock.readings == readings_);
    CHECK(budget_.open_files() == files_.size());
    CHECK(budget_.nodes() == nodes);
  }

  // Ends every wait (interrupts, or a shutdown's cancel_all), closes every
  // file, drains every queue (every message still queued, in the model's
  // order), removes the queues; then nothing may be left charged to the budget.
  void finish() {
    for (Slot* q : all_queues()) {
      Slot& s = *q;
      if (s.queue && next_id_ % 2) {  // as at shutdown, when detached sends are dropped
        cancel_all_error_ = ENOTCONN;
        s.queue->cancel_all(ENOTCONN);
        cancel_all_error_ = 0;
        std::erase_if(s.writers, [](const ParkedWrite& p) { return !p.waiter; });
        CHECK(s.readers.empty() && s.writers.empty());
      }
      while (s.queue && !s.readers.empty()) interrupt(s, s.readers.front().waiter);
      while (s.queue && std::any_of(s.writers.begin(), s.writers.end(), [](const ParkedWrite& p) { return p.waiter; }))
        interrupt(
            s, std::find_if(s.writers.begin(), s.writers.end(), [](const ParkedWrite& p) { return p.waiter; })->waiter);
    }
    check();
    while (!files_.empty()) close(*files_.back());
    check();
    for (auto next = next_deadline(); next; next = next_deadline()) {  // returned messages wait out their delay
      pass_time_to(std::max(now_, Clock::time_point(std::chrono::ceil<std::chrono::milliseconds>(next->time_since_epoch()))));
      check();
    }
    // A line left by a closed file may wait for a full subscriber: topics
    // drop for full subscribers from now on.
    for (Slot& s : slots_)
      if (s.queue && s.is_topic() && s.settings.overflow == Overflow::block) {
        s.settings.overflow = Overflow::drop;
        CHECK(names_.configure(*s.node, s.settings) == 0);
        check();
      }
    for (Slot& s : slots_) {
      if (!s.queue) continue;
      auto f = std::make_unique<File>();
      f->slot = &s;
      f->writes = false;
      opened(*f);
      f->engine->set_read_mode(f->read_mode = ReadMode::stream);
      files_.push_back(std::move(f));
      while (read_now(*files_.back(), 2 * kMaxMsg, false) == 1) check();
      check();
      CHECK(s.count == 0 && s.writers.empty() && s.inflight() == 0);
      close(*files_.back());
      unlink(s);
    }
    check();
    CHECK(budget_.bytes() == 0);
    CHECK(budget_.waiters() == 0);
    CHECK(budget_.open_files() == 0);
    CHECK(budget_.nodes() == 0);
    CHECK(timeouts_.size() == 0);
  }

  FuzzedDataProvider& in_;
  Limits limits_;
  Budget budget_;
  Timeouts timeouts_;
  Namespace names_;
  NodeIds ids_{names_.root(), 64};
  Slot slots_[2];
  std::vector<std::unique_ptr<File>> files_;
  Clock::time_point now_ = Clock::time_point{} + std::chrono::hours(1);
  uint64_t next_id_ = 0;
  std::set<std::pair<uint64_t, uint64_t>> received_ids_;  // payload ids, and which copy of a publish
  uint64_t copies_ = 0;
  const Waiter* interrupting_ = nullptr;
  const File* closing_ = nullptr;  // a file being closed (no longer in files_)
  bool expiring_ = false;
  int cancel_all_error_ = 0;
  uint64_t readings_ = 0;  // of the clock, by the engine and the harness: fake_clock.readings
  struct DeadLetter {
    Slot* from;
    Slot* to;
    Msg message;
  };
  std::deque<DeadLetter> dead_letters_;  // returned to `from`, moved by the engine one by one
};

// --- The callbacks --------------------------------------------------------

// A reply with data: it must be what the model reads now.
bool Harness::delivered(File& f, std::size_t size, std::span<const iovec> data, bool refuse, const Waiter* waiter) {
  Slot& s = src(f);
  sync(s);
  if (waiter) {  // a parked reader is served: the oldest
    auto it = find_reader(s, waiter);
    CHECK(first_served(s, it));
    s.readers.erase(it);
    --f.parked;
  }
  const Read r = expect_read(f, size, true);
  if (kTrace)
    std::fprintf(stderr, "  %s%s (%d): \"%s\"\n", waiter ? "parked " : "", f.explicit_ack ? "leased" : "read", r.kind,
                 r.bytes.c_str());
  CHECK(r.kind == Read::eof || r.kind == Read::data);
  CHECK(text_of(data) == r.bytes);
  if (!refuse) apply(f, r);
  return !refuse;
}

void Harness::read_failed(File& f, std::size_t size, const Waiter* waiter, int error) {
  Slot& s = src(f);
  sync(s);
  auto it = find_reader(s, waiter);
  if (const int cancel = cancelling(waiter, it->deadline)) {
    CHECK(error == cancel);
  } else {  // served, but its buffer is too small for the next frame, or no room for a rest
    CHECK(first_served(s, it));
    const Read::Kind kind = expect_read(f, size).kind;
    CHECK((kind == Read::too_small || kind == Read::no_space) && error == error_of(kind));
  }
  s.readers.erase(it);
  --f.parked;
}

// The answer to a write made now: an unframed message is queued right after.
bool Harness::accepted_now(File& f, const std::string* message, Priority priority, Type type, bool refuse,
                           std::size_t n) {
  if (message) {
    CHECK(n == message->size());
    if (!refuse)
      enqueue(*f.slot, *message, priority, type);
    else
      withdrawn(*f.slot);
  }
  return !refuse;
}

bool Harness::write_accepted(File& f, const Waiter* waiter, std::size_t n, bool refuse) {
  Slot& s = *f.slot;
  sync(s);
  auto it = find_writer(s, waiter);
  if (cancelling(waiter, it->deadline)) {  // a framed write reports what it consumed
    CHECK(it->framed && it->consumed > 0 && n == it->consumed);
  } else {  // served: the oldest; one message only when there is room for it
    CHECK(it == s.writers.begin());
    if (!it->framed) {
      CHECK(has_room(s));
      CHECK(n == it->bytes.size());
      if (!refuse)
        enqueue(s, it->bytes, it->priority, it->type);
      else
        withdrawn(s);
    } else {
      framed_end(s, f, it->framing, it->bytes, it->consumed, Seen{false, n, 0});
    }
  }
  s.writers.erase(it);
  --f.parked;
  return !refuse;
}

void Harness::write_failed(File& f, const Waiter* waiter, int error) {
  Slot& s = *f.slot;
  sync(s);
  auto it = find_writer(s, waiter);
  if (const int cancel = cancelling(waiter, it->deadline)) {
    CHECK(error == cancel && it->consumed == 0);
  } else {  // a framed write whose next message was refused
    CHECK(it == s.writers.begin() && it->framed);
    framed_end(s, f, it->framing, it->bytes, it->consumed, Seen{false, 0, error});
  }
  s.writers.erase(it);
  --f.parked;
}

bool DirectRead::deliver(std::span<const iovec> data) {
  ++answers;
  return h_->delivered(*f_, size_, data, refuse_, nullptr);
}

std::unique_ptr<ReceiveWaiter> DirectRead::park(OpenFile&, pid_t, std::size_t size) {
  CHECK(size == size_ && !parked);
  auto waiter = std::make_unique<ReadWaiter>(*h_, *f_, size, refuse_later_, *this);
  parked = waiter.get();
  return waiter;
}

std::unique_ptr<SendWaiter> DirectWrite::park(OpenFile&, pid_t) {
  CHECK(!parked);
  auto waiter = std::make_unique<WriteWaiter>(*h_, *f_, refuse_later_, *this);
  parked = waiter.get();
  return waiter;
}

bool DirectWrite::accept(std::size_t n) {
  ++answers;
  accepted = n;
  return h_->accepted_now(*f_, message_, priority_, type_, refuse_, n);
}

bool ReadWaiter::deliver(std::span<const iovec> data) {
  CHECK(!request_);  // a waiter the queue could not keep is only ever failed
  return h_->delivered(*f_, size(), data, refuse_, this);
}
void ReadWaiter::fail(int error) {
  if (request_) return request_->fail(error);
  h_->read_failed(*f_, size(), this, error);
}
bool WriteWaiter::accept(std::size_t n) {
  if (request_) return request_->accept(n);
  return h_->write_accepted(*f_, this, n, refuse_);
}
void WriteWaiter::fail(int error) {
  if (request_) return request_->fail(error);
  h_->write_failed(*f_, this, error);
}

}  // namespace
}  // namespace mqfs::engine

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  mqfs::engine::Harness(in).run();
  return 0;
}
