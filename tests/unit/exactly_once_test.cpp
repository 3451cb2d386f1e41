// Nothing lost, nothing twice, in order (SPEC sections 2 to 4): a long,
// seeded mix of writers, readers, replies that fail, interrupts, timeouts,
// maxmsg changes and purges, checked against the contract at every reply the
// queue gives.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <list>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "doubles.hpp"
#include "engine/queue.hpp"

namespace mqfs::engine {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kRecvTimeoutMs = 40;
constexpr int64_t kSendTimeoutMs = 60;

// What the contract says the queue holds. The doubles below report every
// reply to it, and it checks each one as it happens.
class Model {
 public:
  struct Parked {
    const Waiter* waiter;
    bool reader;
    Clock::time_point deadline;
    std::size_t bytes;  // a write's message
  };

  // A writer got the answer that its message was sent: it is queued now.
  void accepted(const std::string& text, Priority priority) {
    EXPECT_TRUE(queued_.emplace(text, Queued{priority, next_order_++}).second) << text << " sent twice";
    priority_of_[text] = priority;
    bytes_ += text.size();
    ++sent_;
  }

  // A reader got `text`: it must have been queued, and be the message of the
  // highest priority and, within it, the oldest.
  void delivered(const std::string& text) {
    auto it = queued_.find(text);
    if (it == queued_.end()) return ADD_FAILURE() << text << " received but not queued (twice, or never sent)";
    for (const auto& [other, q] : queued_) {
      const bool ahead = q.priority > it->second.priority ||
                         (q.priority == it->second.priority && q.order < it->second.order);
      EXPECT_FALSE(ahead) << "received " << text << " before " << other;
    }
    bytes_ -= text.size();
    queued_.erase(it);
    received_.push_back(text);
  }

  void purged() {
    queued_.clear();
    bytes_ = 0;
  }

  void parked(const Waiter* waiter, bool reader, Clock::time_point deadline, std::size_t bytes) {
    parked_.push_back({waiter, reader, deadline, bytes});
  }

  // A parked read or write is served: it must be the oldest of its kind, and
  // a write only when there is room for its message.
  void served(const Waiter* waiter, bool reader) {
    if (!reader) {
      EXPECT_LT(queue->curmsgs(), static_cast<uint64_t>(queue->settings().maxmsg)) << "served with no room";
    }
    for (auto it = parked_.begin(); it != parked_.end(); ++it) {
      if (it->reader != reader) continue;
      EXPECT_EQ(it->waiter, waiter) << (reader ? "readers" : "writers") << " served out of arrival order";
      break;
    }
    forget(waiter);
  }

  // A parked read or write ended with `error`: a timeout only once its time
  // passed, an interrupt only when one was sent.
  void failed(const Waiter* waiter, int error) {
    const Parked* p = find(waiter);
    if (!p) return ADD_FAILURE() << "a waiter was answered twice";
    if (error == ETIMEDOUT) {
      EXPECT_GE(now, p->deadline) << "timed out early";
    } else if (error == EINTR) {
      EXPECT_EQ(waiter, interrupting) << "failed with EINTR without an interrupt";
    }
    forget(waiter);
  }

  std::size_t waiting(bool reader) const {
    std::size_t n = 0;
    for (const Parked& p : parked_) n += p.reader == reader;
    return n;
  }
  uint64_t parked_bytes() const {
    uint64_t n = 0;
    for (const Parked& p : parked_) n += p.bytes;
    return n;
  }
  const std::list<Parked>& parked() const { return parked_; }

  std::size_t curmsgs() const { return queued_.size(); }
  uint64_t curbytes() const { return bytes_; }
  uint64_t sent() const { return sent_; }
  const std::vector<std::string>& received() const { return received_; }
  Priority priority_of(const std::string& text) const { return priority_of_.at(text); }

  const Queue* queue = nullptr;
  Clock::time_point now = kT0;
  const Waiter* interrupting = nullptr;

 private:
  struct Queued {
    Priority priority;
    uint64_t order;  // when it was queued
  };

  const Parked* find(const Waiter* waiter) const {
    for (const Parked& p : parked_)
      if (p.waiter == waiter) return &p;
    return nullptr;
  }
  void forget(const Waiter* waiter) {
    const std::size_t before = parked_.size();
    parked_.remove_if([&](const Parked& p) { return p.waiter == waiter; });
    EXPECT_EQ(parked_.size() + 1, before) << "a waiter was answered twice or never parked";
  }

  std::map<std::string, Queued> queued_;
  std::map<std::string, Priority> priority_of_;
  std::list<Parked> parked_;
  std::vector<std::string> received_;
  uint64_t next_order_ = 0;
  uint64_t bytes_ = 0;
  uint64_t sent_ = 0;
};

class ModelReceiveWaiter final : public ReceiveWaiter {
 public:
  ModelReceiveWaiter(OpenFile& file, Model& model, bool refuse)
      : ReceiveWaiter(file, kReaderPid, 1 << 16), model_(&model), refuse_(refuse) {}
  bool deliver(std::span<const iovec> data) override {
    model_->served(this, true);
    if (refuse_) return false;
    model_->delivered(text_of(data));
    return true;
  }
  void fail(int error) override { model_->failed(this, error); }

 private:
  Model* model_;
  bool refuse_;
};

class ModelSendWaiter final : public SendWaiter {
 public:
  ModelSendWaiter(OpenFile& file, Model& model, std::string text, bool refuse)
      : SendWaiter(file, kWriterPid), model_(&model), text_(std::move(text)), priority_(file.priority()),
        refuse_(refuse) {}
  bool accept(std::size_t n) override {
    EXPECT_EQ(n, text_.size());
    model_->served(this, false);
    if (refuse_) return false;
    model_->accepted(text_, priority_);
    return true;
  }
  void fail(int error) override { model_->failed(this, error); }

 private:
  Model* model_;
  std::string text_;
  Priority priority_;
  bool refuse_;
};

// A read answered at once, or parked as a ModelReceiveWaiter.
class ModelReceiver final : public ReadRequest {
 public:
  ModelReceiver(Model& model, bool refuse, bool refuse_later = false)
      : model_(&model), refuse_(refuse), refuse_later_(refuse_later) {}
  bool deliver(std::span<const iovec> data) override {
    ++answers;
    if (refuse_) return false;
    model_->delivered(text_of(data));
    return true;
  }
  void fail(int e) override {
    ++answers;
    error = e;
  }
  std::unique_ptr<ReceiveWaiter> park(OpenFile& file, pid_t, std::size_t) override {
    ++parked;
    auto waiter = std::make_unique<ModelReceiveWaiter>(file, *model_, refuse_later_);
    model_->parked(waiter.get(), true, model_->now + std::chrono::milliseconds(kRecvTimeoutMs), 0);
    return waiter;
  }
  int answers = 0;
  int parked = 0;
  int error = 0;

 private:
  Model* model_;
  bool refuse_;
  bool refuse_later_;
};

// A write answered at once, or parked as a ModelSendWaiter.
class ModelSender final : public WriteRequest {
 public:
  ModelSender(Model& model, std::string text, Priority priority, bool refuse, bool refuse_later)
      : model_(&model), text_(std::move(text)), priority_(priority), refuse_(refuse), refuse_later_(refuse_later) {}
  bool accept(std::size_t n) override {
    ++answers;
    EXPECT_EQ(n, text_.size());
    if (refuse_) return false;
    model_->accepted(text_, priority_);
    return true;
  }
  void fail(int e) override {
    ++answers;
    error = e;
  }
  std::unique_ptr<SendWaiter> park(OpenFile& file, pid_t) override {
    ++parked;
    auto waiter = std::make_unique<ModelSendWaiter>(file, *model_, text_, refuse_later_);
    model_->parked(waiter.get(), false, model_->now + std::chrono::milliseconds(kSendTimeoutMs), text_.size());
    return waiter;
  }
  int answers = 0;
  int parked = 0;
  int error = 0;

 private:
  Model* model_;
  std::string text_;
  Priority priority_;
  bool refuse_;
  bool refuse_later_;
};

// Three writers and three `stream` readers on one queue with timeouts.
class World {
 public:
  World() {
    Settings s;
    s.maxmsg = 2;
    s.recv_timeout_ms = kRecvTimeoutMs;
    s.send_timeout_ms = kSendTimeoutMs;
    queue = std::make_shared<Queue>(budget, timeouts, s);
    model.queue = queue.get();
    for (int i = 0; i < 3; ++i) {
      writers.push_back(std::make_unique<OpenFile>(queue, false, true));
      readers.push_back(std::make_unique<OpenFile>(queue, true, false));
      readers.back()->set_read_mode(ReadMode::stream);
    }
  }
  ~World() { queue->cancel_all(ECANCELED); }

  Model model;
  Budget budget{10, 1 << 20};
  Timeouts timeouts;
  std::shared_ptr<Queue> queue;
  std::vector<std::unique_ptr<OpenFile>> writers;
  std::vector<std::unique_ptr<OpenFile>> readers;
};

// mt19937's output is fixed by the standard (the distributions are not), so
// the same seed is the same run everywhere.
class Mix {
 public:
  explicit Mix(uint32_t seed) : random_(seed) {}

  void step(World& w) {
    const uint32_t r = next(100);
    if (r < 35) write(w);
    else if (r < 70) read(w);
    else if (r < 80) pass_time(w);
    else if (r < 88) interrupt(w);
    else if (r < 97) resize(w);
    else purge(w);
    check(w);
  }

 private:
  uint32_t next(uint32_t n) { return random_() % n; }

  void write(World& w) {
    const uint32_t writer = next(3);
    OpenFile& file = *w.writers[writer];
    file.set_priority(static_cast<Priority>(next(4)));
    const std::string text = "w" + std::to_string(writer) + "-" + std::to_string(written_[writer]++);
    const bool must_wait = w.model.curmsgs() >= static_cast<uint64_t>(w.queue->settings().maxmsg) ||
                           w.model.waiting(false) > 0;  // full, or behind writers already waiting
    file.set_nonblocking(next(2) == 0);
    ModelSender to(w.model, text, file.priority(), next(10) == 0, next(8) == 0);
    w.queue->send(file, bytes_of(text), kWriterPid, w.model.now, to);
    EXPECT_EQ(to.answers + to.parked, 1) << "answered now or parked, once";
    if (to.error) {
      EXPECT_EQ(to.error, EAGAIN);
      EXPECT_TRUE(file.nonblocking());
    }
    EXPECT_EQ(to.answers == 0 || to.error != 0, must_wait) << "a write waits exactly when the queue is full";
  }

  void read(World& w) {
    OpenFile& file = *w.readers[next(3)];
    const bool was_empty = w.model.curmsgs() == 0;
    file.set_nonblocking(next(2) == 0);
    ModelReceiver to(w.model, next(10) == 0, next(6) == 0);
    w.queue->receive(file, 1 << 16, kReaderPid, w.model.now, to);
    EXPECT_EQ(to.answers + to.parked, 1) << "answered now or parked, once";
    if (!was_empty) {
      EXPECT_EQ(to.answers, 1) << "a read would wait while a message is queued";
      EXPECT_EQ(to.error, 0);
      return;
    }
    if (to.answers == 1) {
      EXPECT_EQ(to.error, EAGAIN) << "a read finished on an empty queue";
      EXPECT_TRUE(file.nonblocking());
    }
  }

  void pass_time(World& w) {
    w.model.now += std::chrono::milliseconds(next(25));
    w.timeouts.expire(w.model.now);
    for (const Model::Parked& p : w.model.parked()) EXPECT_GT(p.deadline, w.model.now) << "outlived its timeout";
  }

  void interrupt(World& w) {
    const auto& parked = w.model.parked();
    if (parked.empty()) return;
    auto it = parked.begin();
    std::advance(it, next(static_cast<uint32_t>(parked.size())));
    Waiter* waiter = const_cast<Waiter*>(it->waiter);
    w.model.interrupting = waiter;
    w.queue->cancel(*waiter, EINTR);
    w.model.interrupting = nullptr;
  }

  void resize(World& w) {
    Settings s = w.queue->settings();
    s.maxmsg = 1 + next(4);
    w.queue->configure(s);
  }

  void purge(World& w) {
    w.model.purged();  // purge then lets parked writers in, which the model sees as sends
    w.queue->purge();
  }

  void check(World& w) {
    const Queue& q = *w.queue;
    ASSERT_EQ(q.curmsgs(), w.model.curmsgs());
    ASSERT_EQ(q.curbytes(), w.model.curbytes());
    ASSERT_EQ(q.sent(), w.model.sent());
    ASSERT_EQ(q.received(), w.model.received().size());
    ASSERT_EQ(q.receivers_waiting(), w.model.waiting(true));
    ASSERT_EQ(q.senders_waiting(), w.model.waiting(false));
    ASSERT_EQ(w.timeouts.size(), w.model.parked().size());  // both timeouts are set
    ASSERT_EQ(w.budget.bytes(), w.model.curbytes() + w.model.parked_bytes());
    // Nobody waits for what is there.
    ASSERT_FALSE(q.receivers_waiting() > 0 && q.curmsgs() > 0);
    ASSERT_FALSE(q.senders_waiting() > 0 && q.curmsgs() < static_cast<uint64_t>(q.settings().maxmsg));
    ASSERT_EQ(q.writable(), q.senders_waiting() == 0 && q.curmsgs() < static_cast<uint64_t>(q.settings().maxmsg));
    for (const auto& reader : w.readers) ASSERT_EQ(q.readable(*reader), q.curmsgs() > 0);
  }

  std::mt19937 random_;
  uint32_t written_[3] = {};
};

class ExactlyOnce : public ::testing::TestWithParam<uint32_t> {};

TEST_P(ExactlyOnce, EveryMessageIsReceivedOnceInOrderOrStillQueued) {
  World w;
  Mix mix(GetParam());
  for (int i = 0; i < 4000 && !HasFatalFailure(); ++i) mix.step(w);
  ASSERT_FALSE(HasFatalFailure());

  // Answer the parked requests, then take what is left.
  w.queue->cancel_all(ECANCELED);
  EXPECT_TRUE(w.model.parked().empty());
  while (true) {
    ModelReceiver to(w.model, false);
    w.readers[0]->set_nonblocking(true);
    w.queue->receive(*w.readers[0], 1 << 16, kReaderPid, w.model.now, to);
    if (to.error) break;
  }
  EXPECT_EQ(w.model.curmsgs(), 0u);
  EXPECT_EQ(w.budget.bytes(), 0u);
  EXPECT_GT(w.model.received().size(), 100u) << "the run exercised too little";

  // Messages of one priority from one writer come in the order written.
  std::map<std::pair<char, Priority>, int> last;
  for (const std::string& text : w.model.received()) {
    const auto key = std::make_pair(text[1], w.model.priority_of(text));
    const int n = std::stoi(text.substr(3));
    auto [it, first] = last.emplace(key, n);
    if (!first) {
      EXPECT_GT(n, it->second) << text << " came after a later message of its writer and priority";
      it->second = n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ExactlyOnce, ::testing::Values(1u, 2u, 3u, 42u, 20240601u));

}  // namespace
}  // namespace mqfs::engine
