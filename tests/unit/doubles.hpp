// Test doubles for the engine's requests, waiters and Watch, and a rig
// holding one queue in a mount, as the FUSE adapter would use them.
#pragma once

#include <sys/uio.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "engine/budget.hpp"
#include "engine/open_file.hpp"
#include "engine/queue.hpp"
#include "engine/settings.hpp"
#include "engine/waiter.hpp"

namespace mqfs::engine {

inline constexpr pid_t kWriterPid = 100;
inline constexpr pid_t kReaderPid = 200;

// A fixed "now" for the monotonic clock: deadlines are computed from it and
// expired by hand, so no test depends on the time it takes.
inline const Clock::time_point kT0 = Clock::time_point{} + std::chrono::hours(1);

inline std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

inline std::string text_of(std::span<const iovec> data) {
  std::string text;
  for (const iovec& part : data) text.append(static_cast<const char*>(part.iov_base), part.iov_len);
  return text;
}

// What became of a read or write request: answered at once, or parked and
// answered later by its waiter, which the queue frees once it has answered.
// A request is answered exactly once.
struct Outcome {
  bool refuse = false;  // plays a caller interrupted or killed before the reply reached it: the reply fails
  int answers = 0;
  std::optional<std::string> got;         // a read's bytes
  std::optional<std::size_t> accepted;    // a write's byte count
  int error = 0;                          // fail(error)
  bool parked = false;                    // handed to a waiter
  Waiter* waiter = nullptr;               // that waiter, while it waits
  bool destroyed = false;                 // its waiter is gone

  bool waiting() const { return answers == 0 && !destroyed; }

  // The answers, as a request or its waiter gives them.
  bool record_delivery(std::span<const iovec> data) {
    ++answers;
    if (refuse) return false;
    got = text_of(data);
    return true;
  }
  bool record_accept(std::size_t n) {
    ++answers;
    accepted = n;
    return !refuse;
  }
  void record_failure(int e) {
    ++answers;
    error = e;
  }
};

class FakeReceiveWaiter final : public ReceiveWaiter {
 public:
  FakeReceiveWaiter(OpenFile& file, pid_t pid, std::size_t size, Outcome& outcome)
      : ReceiveWaiter(file, pid, size), outcome_(&outcome) {}
  ~FakeReceiveWaiter() override { outcome_->destroyed = true; }

  bool deliver(std::span<const iovec> data) override { return outcome_->record_delivery(data); }
  void fail(int error) override { outcome_->record_failure(error); }

 private:
  Outcome* outcome_;
};

class FakeSendWaiter final : public SendWaiter {
 public:
  FakeSendWaiter(OpenFile& file, pid_t pid, Outcome& outcome) : SendWaiter(file, pid), outcome_(&outcome) {}
  ~FakeSendWaiter() override { outcome_->destroyed = true; }

  bool accept(std::size_t n) override { return outcome_->record_accept(n); }
  void fail(int error) override { outcome_->record_failure(error); }

 private:
  Outcome* outcome_;
};

// A read(2) recording into `outcome`, as the FUSE adapter's would answer it.
class FakeRead : public ReadRequest {
 public:
  explicit FakeRead(Outcome& outcome) : outcome_(&outcome) {}
  bool deliver(std::span<const iovec> data) override { return outcome_->record_delivery(data); }
  void fail(int error) override { outcome_->record_failure(error); }
  std::unique_ptr<ReceiveWaiter> park(OpenFile& file, pid_t pid, std::size_t size) override {
    outcome_->parked = true;
    auto waiter = std::make_unique<FakeReceiveWaiter>(file, pid, size, *outcome_);
    outcome_->waiter = waiter.get();
    return waiter;
  }

 private:
  Outcome* outcome_;
};

// A write(2) recording into `outcome`.
class FakeWrite : public WriteRequest {
 public:
  explicit FakeWrite(Outcome& outcome) : outcome_(&outcome) {}
  bool accept(std::size_t n) override { return outcome_->record_accept(n); }
  void fail(int error) override { outcome_->record_failure(error); }
  std::unique_ptr<SendWaiter> park(OpenFile& file, pid_t pid) override {
    outcome_->parked = true;
    auto waiter = std::make_unique<FakeSendWaiter>(file, pid, *outcome_);
    outcome_->waiter = waiter.get();
    return waiter;
  }

 private:
  Outcome* outcome_;
};

// A request with its own outcome, for one that is answered while it is in scope.
class FakeReceiver final : public Outcome, public FakeRead {
 public:
  FakeReceiver() : FakeRead(static_cast<Outcome&>(*this)) {}
};
class FakeSender final : public Outcome, public FakeWrite {
 public:
  FakeSender() : FakeWrite(static_cast<Outcome&>(*this)) {}
};

// Runs `call` with `file` set to O_NONBLOCK (or not) and puts the flag back.
template <class Call>
void with_nonblocking(OpenFile& file, bool nonblocking, Call call) {
  const bool was = file.nonblocking();
  file.set_nonblocking(nonblocking);
  call();
  file.set_nonblocking(was);
}

// A write that does not wait (O_NONBLOCK): 0 once all of it was accepted,
// the byte count of a short write, or -errno.
inline int send_now(Queue& queue, OpenFile& file, std::span<const std::byte> bytes, pid_t pid, FakeSender& to) {
  with_nonblocking(file, true, [&] { queue.send(file, bytes, pid, kT0, to); });
  EXPECT_EQ(to.answers, 1) << "a write is answered exactly once";
  if (to.error) return -to.error;
  return to.accepted == bytes.size() ? 0 : static_cast<int>(*to.accepted);
}

// A read that does not wait (O_NONBLOCK): 1 once it was answered with bytes,
// 0 when it would wait, or -errno.
inline int receive_now(Queue& queue, OpenFile& file, std::size_t size, pid_t pid, FakeReceiver& to) {
  with_nonblocking(file, true, [&] { queue.receive(file, size, pid, kT0, to); });
  EXPECT_EQ(to.answers, 1) << "a read is answered exactly once";
  if (to.error == EAGAIN) return 0;
  return to.error ? -to.error : 1;
}

class CountingWatch final : public Watch {
 public:
  explicit CountingWatch(int& count) : count_(&count) {}
  void notify() override { ++*count_; }

 private:
  int* count_;
};

// One queue of a mount with the given limits, with a writer and a `stream`
// reader open (a `cat` that keeps consuming). Answers every parked request
// on the way out, as the daemon does at shutdown.
struct Rig {
  explicit Rig(const Settings& settings = {}, uint64_t max_bytes = 1 << 20, uint64_t max_nodes = 100)
      : Rig(settings, Limits{.max_nodes = max_nodes, .max_bytes = max_bytes}) {}
  Rig(const Settings& settings, const Limits& limits)
      : budget(limits),
        queue(std::make_shared<Queue>(budget, timeouts, settings)),
        writer(open(false, true)),
        reader(open(true, false)) {
    reader.set_read_mode(ReadMode::stream);
  }
  ~Rig() { queue->cancel_all(ECANCELED); }

  OpenFile& open(bool reads = true, bool writes = true) {
    return *files.emplace_back(std::make_unique<OpenFile>(queue, reads, writes));
  }
  // Closes `file`: drops the unread rest of a message it holds.
  void close(OpenFile& file) {
    for (auto& f : files)
      if (f.get() == &file) f.reset();
  }

  // A write that would not wait: 0, or -EMSGSIZE, -ENOSPC, -EAGAIN with nothing queued.
  int send(std::string_view text, pid_t pid = kWriterPid) { return send(writer, text, pid); }
  int send(OpenFile& file, std::string_view text, pid_t pid = kWriterPid) {
    FakeSender to;
    return send_now(*queue, file, bytes_of(text), pid, to);
  }

  // A read that would not wait: the bytes it got, or nothing if it would block.
  std::optional<std::string> receive(std::size_t size = 1 << 16) { return receive(reader, size); }
  std::optional<std::string> receive(OpenFile& file, std::size_t size = 1 << 16, pid_t pid = kReaderPid) {
    FakeReceiver to;
    const int status = receive_now(*queue, file, size, pid, to);
    if (status == 0) return std::nullopt;
    EXPECT_EQ(status, 1);
    return to.got;
  }

  // A read that found the queue empty, parked at `now`.
  Outcome& park_reader(OpenFile& file, std::size_t size = 1 << 16, pid_t pid = kReaderPid,
                       Clock::time_point now = kT0) {
    Outcome& outcome = outcomes.emplace_back();
    FakeRead read(outcome);
    with_nonblocking(file, false, [&] { queue->receive(file, size, pid, now, read); });
    EXPECT_TRUE(outcome.parked && outcome.waiting()) << "the read did not wait";
    return outcome;
  }
  Outcome& park_reader() { return park_reader(reader); }

  // A write that found the queue full, parked at `now` with its message.
  Outcome& park_writer(std::string_view text, pid_t pid = kWriterPid, Clock::time_point now = kT0) {
    return park_writer(writer, text, pid, now);
  }
  Outcome& park_writer(OpenFile& file, std::string_view text, pid_t pid = kWriterPid, Clock::time_point now = kT0) {
    Outcome& outcome = outcomes.emplace_back();
    FakeWrite write(outcome);
    with_nonblocking(file, false, [&] { queue->send(file, bytes_of(text), pid, now, write); });
    EXPECT_TRUE(outcome.parked && outcome.waiting()) << "the write did not wait";
    return outcome;
  }

  // Every message queued now, in the order reads get them.
  std::vector<std::string> drain() {
    std::vector<std::string> got;
    while (auto message = receive()) got.push_back(*message);
    return got;
  }

  // Declared in the order they must be built; destroyed the other way round.
  Budget budget;
  Timeouts timeouts;
  std::deque<Outcome> outcomes;  // outlive the queue, which answers waiters until its last moment
  std::shared_ptr<Queue> queue;
  std::deque<std::unique_ptr<OpenFile>> files;
  OpenFile& writer;
  OpenFile& reader;
};

}  // namespace mqfs::engine
