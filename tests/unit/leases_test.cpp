// Leases (SPEC section 11): explicit acknowledgement, returns, the retry
// delay, dead letters, peeking and the counters, on queues of a Namespace
// (which finds dead-letter queues by path).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "doubles.hpp"
#include "engine/namespace.hpp"

namespace mqfs::engine {
namespace {

using Order = std::vector<std::string>;
using std::chrono::milliseconds;

class LeasesTest : public ::testing::Test {
 protected:
  LeasesTest() {
    Node* made = nullptr;
    EXPECT_EQ(names.make(names.root(), "q", S_IFREG | 0644, Owner{}, made), 0);
    q = made->queue;
    EXPECT_EQ(names.make(names.root(), "dead", S_IFREG | 0644, Owner{}, made), 0);
    dead = made->queue;
  }
  ~LeasesTest() override {
    files.clear();
    q->cancel_all(ECANCELED);
  }

  // A reader in explicit acknowledgement mode (or auto), stream read mode.
  OpenFile& reader(bool explicit_ack = true, std::shared_ptr<Queue> of = nullptr) {
    OpenFile& file = *files.emplace_back(std::make_unique<OpenFile>(of ? of : q, true, false));
    file.set_read_mode(ReadMode::stream);
    if (explicit_ack) file.set_ack_mode(AckMode::explicit_ack);
    return file;
  }
  void close(OpenFile& file) {
    for (auto& f : files)
      if (f.get() == &file) f.reset();
  }
  void configure(void (*change)(Settings&)) {
    Settings s = q->settings();
    change(s);
    q->configure(s);
  }

  int send(std::string_view text, Priority priority = 0, std::shared_ptr<Queue> to = nullptr) {
    OpenFile writer(to ? to : q, false, true);
    writer.set_priority(priority);
    FakeSender sent;
    return send_now(to ? *to : *q, writer, bytes_of(text), kWriterPid, sent);
  }
  std::optional<std::string> read(OpenFile& file, std::size_t size = 1 << 16) {
    FakeReceiver to;
    const int status = receive_now(file.queue(), file, size, kReaderPid, to);
    if (status == 0) return std::nullopt;
    EXPECT_EQ(status, 1);
    return to.got;
  }
  uint64_t last_id(const OpenFile& file) { return file.last_delivery()->id; }
  // Sends `text` and leases it to `file` (which reads nothing before it): its id.
  uint64_t lease(OpenFile& file, std::string_view text) {
    send(text);
    EXPECT_EQ(read(file), text);
    return last_id(file);
  }
  // Reads everything a fresh auto reader can take now.
  Order drain(std::shared_ptr<Queue> of = nullptr) {
    OpenFile& file = reader(false, of);
    Order all;
    while (auto got = read(file)) all.push_back(*got);
    close(file);
    return all;
  }
  // Every lease and delay due by `after` from now ends.
  void time_passes(milliseconds after) { timeouts.expire(Clock::now() + after); }

  static Settings roomy() {
    Settings s;
    s.maxmsg = 200000;
    return s;
  }

  Budget budget{Limits{.max_nodes = 100, .max_bytes = 64 << 20}};
  Timeouts timeouts;
  Namespace names{budget, timeouts, roomy(), 0755, Owner{}};
  std::shared_ptr<Queue> q;
  std::shared_ptr<Queue> dead;
  std::vector<std::unique_ptr<OpenFile>> files;
};

TEST_F(LeasesTest, AnExplicitReadLeasesTheMessageUntilItIsAcknowledged) {
  send("a");
  OpenFile& r = reader();
  EXPECT_EQ(read(r), "a");
  EXPECT_EQ((std::pair{q->curmsgs(), q->inflight()}), (std::pair{uint64_t{0}, uint64_t{1}}));
  EXPECT_EQ(drain(), Order{});  // invisible to other readers
  EXPECT_EQ(q->received(), 0u);
  EXPECT_EQ(q->ack(r, last_id(r)), 0);
  EXPECT_EQ((std::pair{q->inflight(), q->received()}), (std::pair{uint64_t{0}, uint64_t{1}}));
  EXPECT_EQ(q->ack(r, last_id(r)), -ENOENT);  // once
  EXPECT_EQ(q->ack(r, 0), 0);                  // holds none, none ran out
}

TEST_F(LeasesTest, AutoModeTakesAtTheReadAsBefore) {
  send("a");
  OpenFile& r = reader(false);
  EXPECT_EQ(read(r), "a");
  EXPECT_EQ((std::pair{q->inflight(), q->received()}), (std::pair{uint64_t{0}, uint64_t{1}}));
  EXPECT_EQ(q->ack(r, last_id(r)), -ENOENT);
  EXPECT_EQ(r.last_delivery()->deliveries, 1u);
}

TEST_F(LeasesTest, AnIdHeldByAnotherDescriptorIsEnoent) {
  send("a");
  OpenFile& r = reader();
  OpenFile& other = reader();
  read(r);
  EXPECT_EQ(q->ack(other, last_id(r)), -ENOENT);
  EXPECT_EQ(q->nack(other, last_id(r), Clock::now()), -ENOENT);
  EXPECT_EQ(q->inflight(), 1u);
}

TEST_F(LeasesTest, ReturnedMessagesGoBackAheadOfYoungerOnesWhateverTheOrder) {
  for (const char* m : {"a", "b", "c", "d"}) send(m);
  OpenFile& r = reader();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    read(r);
    ids.push_back(last_id(r));
  }
  send("high", 5);
  EXPECT_EQ(q->nack(r, ids[1], Clock::now()), 0);  // "b"
  EXPECT_EQ(q->nack(r, ids[0], Clock::now()), 0);  // "a"
  EXPECT_EQ(q->nack(r, 0, Clock::now()), 0);       // "c"
  send("e");
  EXPECT_EQ(drain(), (Order{"high", "a", "b", "c", "d", "e"}));
}

TEST_F(LeasesTest, ClosingReturnsEveryMessageTheFileHolds) {
  send("a");
  send("b");
  OpenFile& r = reader();
  read(r);
  read(r);
  EXPECT_EQ(q->inflight(), 2u);
  close(r);
  EXPECT_EQ(q->inflight(), 0u);
  OpenFile& again = reader();
  EXPECT_EQ(read(again), "a");
  EXPECT_EQ(again.last_delivery()->deliveries, 2u);
}

TEST_F(LeasesTest, ALeaseThatRunsOutReturnsItsMessageAndALateAckIsEtimedout) {
  configure([](Settings& s) { s.lease_ms = 100; });
  OpenFile& r = reader();
  const uint64_t id = lease(r, "a");
  time_passes(milliseconds(50));
  EXPECT_EQ(q->inflight(), 1u);
  time_passes(milliseconds(150));
  EXPECT_EQ((std::pair{q->curmsgs(), q->inflight()}), (std::pair{uint64_t{1}, uint64_t{0}}));
  EXPECT_EQ(q->ack(r, id), -ETIMEDOUT);
  EXPECT_EQ(q->ack(r, id), -ENOENT);  // told once
  read(r);
  time_passes(milliseconds(150));
  EXPECT_EQ(q->ack(r, 0), -ETIMEDOUT);  // held none, and one ran out
  EXPECT_EQ(q->ack(r, 0), 0);
}

TEST_F(LeasesTest, ANackDropsTheUnreadRestOfItsMessage) {
  send("abcdef");
  OpenFile& r = reader();
  r.set_read_mode(ReadMode::message);
  EXPECT_EQ(read(r, 2), "ab");
  EXPECT_EQ(q->nack(r, last_id(r), Clock::now()), 0);
  EXPECT_FALSE(r.holds_rest());
  OpenFile& other = reader();
  EXPECT_EQ(read(other), "abcdef");
}

TEST_F(LeasesTest, AMessageReadAgainAfterItsLeaseRanOutCanBeAcknowledged) {
  configure([](Settings& s) { s.lease_ms = 50; });
  send("a");
  OpenFile& r = reader();
  read(r);
  time_passes(milliseconds(100));
  EXPECT_EQ(read(r), "a");  // the same message, leased again
  EXPECT_EQ(q->ack(r, last_id(r)), 0);
  EXPECT_EQ(q->ack(r, last_id(r)), -ENOENT);
  EXPECT_EQ(q->received(), 1u);
}

TEST_F(LeasesTest, AHolderRemembersItsLastLapsedLeasesOnly) {
  configure([](Settings& s) { s.lease_ms = 1; });
  for (uint32_t i = 0; i < Holder::kMaxLapsed + 10; ++i) send("m");
  OpenFile& r = reader();
  std::vector<uint64_t> ids;
  for (uint32_t i = 0; i < Holder::kMaxLapsed + 10; ++i) {
    read(r);
    ids.push_back(last_id(r));
  }
  time_passes(milliseconds(10));
  EXPECT_EQ(r.leases().held(), 0u);
  EXPECT_EQ(q->nack(r, ids.front(), Clock::now()), -ENOENT);
  EXPECT_EQ(q->nack(r, ids.back(), Clock::now()), -ETIMEDOUT);
}

TEST_F(LeasesTest, TheRetryDelayKeepsAReturnedMessageInvisibleAndInFlight) {
  configure([](Settings& s) { s.retry_delay_ms = 200; });
  send("a");
  OpenFile& r = reader();
  read(r);
  EXPECT_EQ(q->nack(r, 0, Clock::now()), 0);
  EXPECT_EQ((std::pair{q->curmsgs(), q->inflight()}), (std::pair{uint64_t{0}, uint64_t{1}}));
  EXPECT_EQ(read(r), std::nullopt);
  time_passes(milliseconds(300));
  EXPECT_EQ((std::pair{q->curmsgs(), q->inflight()}), (std::pair{uint64_t{1}, uint64_t{0}}));
  EXPECT_EQ(read(r), "a");
}

TEST_F(LeasesTest, LeasedMessagesHoldTheirPlaceUnderMaxmsg) {
  configure([](Settings& s) { s.maxmsg = 1; });
  send("a");
  OpenFile& r = reader();
  read(r);
  EXPECT_FALSE(q->writable());
  EXPECT_EQ(send("b"), -EAGAIN);
  q->ack(r, 0);
  EXPECT_EQ(send("b"), 0);
}

TEST_F(LeasesTest, AfterItsLastDeliveryAMessageMovesToTheDeadLetterQueue) {
  configure([](Settings& s) {
    s.max_deliveries = 2;
    s.dead_letter = "dead";
  });
  send("poison", 7);
  send("fine");
  OpenFile& r = reader();
  EXPECT_EQ(read(r), "poison");
  q->nack(r, last_id(r), Clock::now());
  EXPECT_EQ(read(r), "poison");
  EXPECT_EQ(r.last_delivery()->deliveries, 2u);
  const uint64_t old_id = last_id(r);
  q->nack(r, old_id, Clock::now());
  EXPECT_EQ(q->dead_lettered(), 1u);
  EXPECT_EQ((std::pair{q->curmsgs(), q->inflight()}), (std::pair{uint64_t{1}, uint64_t{0}}));
  OpenFile& d = reader(false, dead);
  EXPECT_EQ(read(d), "poison");
  EXPECT_EQ(d.last_delivery()->priority, 7);
  EXPECT_EQ(d.last_delivery()->deliveries, 1u);  // counted afresh there
  EXPECT_EQ(dead->sent(), 1u);
}

TEST_F(LeasesTest, AFullDeadLetterQueueTakesTheMessageAnyway) {
  Settings full = dead->settings();
  full.maxmsg = 1;
  dead->configure(full);
  send("x", 0, dead);
  configure([](Settings& s) {
    s.max_deliveries = 1;
    s.dead_letter = "/dead";
  });
  send("poison");
  OpenFile& r = reader();
  read(r);
  close(r);
  EXPECT_EQ(dead->curmsgs(), 2u);
  EXPECT_EQ(drain(dead), (Order{"x", "poison"}));
}

TEST_F(LeasesTest, WithoutADeadLetterQueueTheMessageIsReturnedAndNeverDropped) {
  for (const char* path : {"", "missing", "q"}) {  // none, no such queue, the queue itself
    configure([](Settings& s) { s.max_deliveries = 1; });
    Settings s = q->settings();
    s.dead_letter = path;
    q->configure(s);
    send("m");
    OpenFile& r = reader();
    read(r);
    close(r);
    EXPECT_EQ(q->dead_lettered(), 0u) << path;
    EXPECT_EQ(drain(), Order{"m"}) << path;
  }
}

TEST_F(LeasesTest, PeekingReturnsTheQueueInOrderAndTakesNothing) {
  send("low", 1);
  send("high", 9);
  send("low2", 1);
  OpenFile& p = reader(false);
  p.set_read_mode(ReadMode::peek);
  EXPECT_EQ(read(p), "high");
  EXPECT_EQ(p.last_delivery()->priority, 9);
  EXPECT_EQ(p.last_delivery()->deliveries, 0u);
  EXPECT_EQ(read(p, 2), "lo");  // a short buffer: the rest next
  EXPECT_EQ(read(p), "w");
  EXPECT_EQ(read(p), "low2");
  EXPECT_EQ(read(p), "");  // end of file
  EXPECT_EQ((std::pair{q->curmsgs(), q->received()}), (std::pair{uint64_t{3}, uint64_t{0}}));
  send("later", 1);
  EXPECT_EQ(read(p), "later");
  EXPECT_TRUE(q->readable(p));
}

TEST_F(LeasesTest, OldestMsIsTheAgeOfTheOldestQueuedMessage) {
  EXPECT_EQ(q->oldest_ms(), 0);
  send("a");
  EXPECT_GE(q->oldest_ms(), 0);
  EXPECT_LT(q->oldest_ms(), 10000);
}

// 100,000 messages in flight at once all come back in one pass of the timer,
// in order.
TEST_F(LeasesTest, AHundredThousandLeasesRunOutTogether) {
  configure([](Settings& s) { s.lease_ms = 50; });
  constexpr int kCount = 100000;
  for (int i = 0; i < kCount; ++i) send(std::to_string(i));
  OpenFile& r = reader();
  OpenFile& other = reader();
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(read(i % 2 ? r : other, 8));
  EXPECT_EQ(q->inflight(), uint64_t{kCount});
  time_passes(milliseconds(100));
  EXPECT_EQ((std::pair{q->curmsgs(), q->inflight()}), (std::pair{uint64_t{kCount}, uint64_t{0}}));
  const Order all = drain();
  ASSERT_EQ(all.size(), std::size_t{kCount});
  for (int i = 0; i < kCount; i += 9973) EXPECT_EQ(all[i], std::to_string(i));
}

// Found by engine_fuzz (tests/fuzz/README.md, Findings).
// A framed write hands its message straight to a parked reader in explicit
// mode: the lease must be on the mount's timer, or it never runs out.
TEST_F(LeasesTest, AFramedWriteToAParkedReaderPutsItsLeaseOnTheTimer) {
  configure([](Settings& s) {
    s.framing = Framing::line;
    s.lease_ms = 100;
  });
  OpenFile& r = reader();
  FakeReceiver parked;
  q->receive(r, 1 << 16, kReaderPid, kT0, parked);  // blocking: it waits
  ASSERT_TRUE(parked.parked);
  EXPECT_EQ(send("a\n"), 0);
  EXPECT_EQ(parked.got, "a\n");
  EXPECT_EQ(timeouts.size(), 1u);
  time_passes(milliseconds(200));
  EXPECT_EQ((std::pair{q->curmsgs(), q->inflight()}), (std::pair{uint64_t{1}, uint64_t{0}}));
}

// A NACK drops the unread rest of the message it returns, and no other: not
// the rest of one this descriptor read before it chose explicit mode (taken
// for good), nor of one it peeked.
TEST_F(LeasesTest, ANackKeepsTheRestOfAMessageTakenForGood) {
  send("abcdef");
  OpenFile& r = reader(false);
  EXPECT_EQ(read(r, 2), "ab");
  r.set_ack_mode(AckMode::explicit_ack);
  EXPECT_EQ(q->nack(r, 0, Clock::now()), 0);  // it holds nothing
  EXPECT_EQ(read(r), "cdef");
}

}  // namespace
}  // namespace mqfs::engine
