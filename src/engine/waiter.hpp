// Reads and writes that wait. A blocked request is not a blocked thread: it is
// a Waiter kept in its queue's list and answered later, exactly once.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/list.hpp"
#include "engine/message.hpp"
#include "engine/settings.hpp"

namespace mqfs::engine {

using Clock = std::chrono::steady_clock;  // monotonic: wall-clock changes move no deadline

class OpenFile;
class Queue;
class Timeouts;

class ReceiveWaiter;
class SendWaiter;

// Where the bytes of a read go. deliver() answers the reader and says whether
// the reader got them; when it did not (it was interrupted or is gone),
// nothing is taken from the queue.
class Receiver {
 public:
  virtual bool deliver(std::span<const iovec> data) = 0;

 protected:
  ~Receiver() = default;
};

// The answer to a write. accept() tells the writer its n bytes were sent and
// says whether the writer got the answer; only then is the message queued.
class Sender {
 public:
  virtual bool accept(std::size_t n) = 0;

 protected:
  ~Sender() = default;
};

// A read(2) as the queue sees it: Queue::receive answers it exactly once,
// by deliver() or fail(), or hands it to the waiter that park() returns,
// which answers it later. Implemented by the FUSE adapter.
class ReadRequest : public Receiver {
 public:
  virtual void fail(int error) = 0;
  // The read must wait: a waiter for `size` bytes that owns the request from
  // now on. The request itself is not answered again.
  virtual std::unique_ptr<ReceiveWaiter> park(OpenFile& file, pid_t pid, std::size_t size) = 0;

 protected:
  ~ReadRequest() = default;
};

// A write(2) as the queue sees it: Queue::send answers it exactly once, by
// accept() or fail(), or hands it to the waiter that park() returns.
class WriteRequest : public Sender {
 public:
  virtual void fail(int error) = 0;
  // The write must wait: a waiter that owns the request from now on.
  virtual std::unique_ptr<SendWaiter> park(OpenFile& file, pid_t pid) = 0;

 protected:
  ~WriteRequest() = default;
};

// Something with a deadline on the mount's one monotonic timer (Timeouts): a
// waiter's timeout, a queue's earliest lease.
class Timed {
 public:
  Timed() = default;
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 protected:
  ~Timed() = default;

 private:
  friend class Timeouts;
  // The deadline passed; it is off the timer already.
  virtual void expired(Clock::time_point now) = 0;

  std::optional<std::multimap<Clock::time_point, Timed*>::iterator> deadline_;
};

// A read or write that found the queue empty or full.
class Waiter : public ListNode<Waiter>, public Timed {
 public:
  Waiter(OpenFile& file, pid_t pid) : file_(&file), pid_(pid) {}
  // A waiter that outlives its open file (a detached send).
  explicit Waiter(pid_t pid) : file_(nullptr), pid_(pid) {}
  virtual ~Waiter() = default;

  OpenFile& file() const { return *file_; }
  pid_t pid() const { return pid_; }
  // The queue this waiter waits in, while it waits.
  Queue* queue() const { return queue_; }

  // Ends the wait without a result: ETIMEDOUT, EINTR or ENOTCONN.
  virtual void fail(int error) = 0;

 protected:
  // The wait is ended by a timeout, an interrupt or shutdown.
  virtual void cancelled(int error) { fail(error); }

 private:
  friend class Queue;
  void expired(Clock::time_point now) override;

  OpenFile* file_;
  pid_t pid_;
  Queue* queue_ = nullptr;
};

// A read waiting for a message.
class ReceiveWaiter : public Waiter, public Receiver {
 public:
  ReceiveWaiter(OpenFile& file, pid_t pid, std::size_t size) : Waiter(file, pid), size_(size) {}
  std::size_t size() const { return size_; }

 private:
  std::size_t size_;
};

// A write waiting for room, holding its message — or, for a framed write,
// the bytes it has not consumed yet.
class SendWaiter : public Waiter, public Sender {
 public:
  using Waiter::Waiter;

 protected:
  // A framed write that queued some of its messages reports them (a short
  // write, as a pipe does) instead of the error.
  void cancelled(int error) override;

 private:
  friend class Queue;
  MessagePtr message_;
  std::unique_ptr<HeldBytes> rest_;  // framed: the input not consumed yet
  Framing framing_ = Framing::none;  // framed: the framing the write began under
  std::size_t consumed_ = 0;        // framed: bytes of the write already consumed
  // A shared queue (SPEC section 10): the messages are with the server.
  uint64_t ticket_ = 0;
  std::size_t count_ = 0;  // one message: the byte count its answer reports
  // A framed write: its messages not queued yet, and where each ends in the
  // write's input; the unfinished message after them, which the file holds
  // once all are queued; a bad message after them (a short write reports it).
  struct Frames {
    std::vector<MessagePtr> messages;
    std::vector<std::size_t> ends;
    std::vector<std::byte> tail;
    std::size_t size = 0;      // the write's input
    bool clears_held = false;  // the first message ends bytes the file held
    int error = 0;
  };
  std::unique_ptr<Frames> frames_;
};

// A write reports the `used` bytes it consumed — all of them, or a short
// write as a pipe makes when it stopped part way — unless it stopped with
// `error` before consuming any.
template <class Write>
void accept_or_fail(Write& write, std::size_t used, int error) {
  if (used > 0 || error == 0)
    write.accept(used);
  else
    write.fail(error);
}

// The unfinished last line of a line-framed writer that closed its file while
// the queue was full: it waits for room like any write, with no one to answer.
class DetachedSend final : public SendWaiter {
 public:
  explicit DetachedSend(pid_t pid) : SendWaiter(pid) {}
  bool accept(std::size_t) override { return true; }
  void fail(int) override {}
};

// The mount's deadlines, soonest first: the loop arms one timer for next().
class Timeouts {
 public:
  // Sets (or moves) the deadline of `timed`.
  void add(Timed& timed, Clock::time_point deadline);
  void remove(Timed& timed);
  std::optional<Clock::time_point> next() const;
  // Tells each whose deadline is not after `now` (a waiter fails with ETIMEDOUT).
  void expire(Clock::time_point now);
  std::size_t size() const { return deadlines_.size(); }

 private:
  std::multimap<Clock::time_point, Timed*> deadlines_;
};

}  // namespace mqfs::engine
