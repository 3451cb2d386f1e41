// Reads and writes that wait: hand-off, arrival order, refusal, timeouts and
// cancel. A waiter is answered exactly once and freed by the queue after.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "doubles.hpp"
#include "engine/queue.hpp"
#include "engine/waiter.hpp"

namespace mqfs::engine {
namespace {

using namespace std::chrono_literals;
using Order = std::vector<std::string>;

Settings with_maxmsg(int64_t maxmsg) {
  Settings s;
  s.maxmsg = maxmsg;
  return s;
}

Settings with_timeouts(int64_t recv_ms, int64_t send_ms) {
  Settings s;
  s.maxmsg = 1;
  s.recv_timeout_ms = recv_ms;
  s.send_timeout_ms = send_ms;
  return s;
}

// --- blocked readers ---

TEST(ReceiveWaiter, GetsTheNextMessageSent) {
  Rig rig;
  Outcome& read = rig.park_reader(rig.reader, 100, 31);
  EXPECT_EQ(rig.queue->receivers_waiting(), 1u);
  EXPECT_TRUE(read.waiting());
  ASSERT_EQ(rig.send("hello", 41), 0);
  EXPECT_EQ(read.answers, 1);
  EXPECT_EQ(read.got, "hello");
  EXPECT_TRUE(read.destroyed);
  EXPECT_EQ(rig.queue->receivers_waiting(), 0u);
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.queue->sent(), 1u);
  EXPECT_EQ(rig.queue->received(), 1u);
  EXPECT_EQ(rig.queue->lspid(), 41);
  EXPECT_EQ(rig.queue->lrpid(), 31);
}

TEST(ReceiveWaiter, BlockedReadersAreServedInArrivalOrder) {
  Rig rig;
  OpenFile& f1 = rig.open(true, false);
  OpenFile& f2 = rig.open(true, false);
  OpenFile& f3 = rig.open(true, false);
  Outcome& r1 = rig.park_reader(f1);
  Outcome& r2 = rig.park_reader(f2);
  Outcome& r3 = rig.park_reader(f3);
  ASSERT_EQ(rig.send("one"), 0);
  EXPECT_EQ(r1.got, "one");
  EXPECT_TRUE(r2.waiting());
  EXPECT_TRUE(r3.waiting());
  ASSERT_EQ(rig.send("two"), 0);
  ASSERT_EQ(rig.send("three"), 0);
  EXPECT_EQ(r2.got, "two");
  EXPECT_EQ(r3.got, "three");
  EXPECT_EQ(rig.queue->receivers_waiting(), 0u);
}

// A reader interrupted before its reply reached it took nothing: the message
// goes to the next blocked reader.
TEST(ReceiveWaiter, RefusedHandOffGoesToTheNextReader) {
  Rig rig;
  OpenFile& f1 = rig.open(true, false);
  OpenFile& f2 = rig.open(true, false);
  Outcome& gone = rig.park_reader(f1);
  gone.refuse = true;
  Outcome& next = rig.park_reader(f2);
  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_EQ(gone.answers, 1);
  EXPECT_TRUE(gone.destroyed);
  EXPECT_FALSE(f1.at_end());  // its one message was not delivered
  EXPECT_EQ(next.got, "m");
  EXPECT_EQ(rig.queue->received(), 1u);
  EXPECT_EQ(rig.queue->lrpid(), kReaderPid);
}

TEST(ReceiveWaiter, RefusedHandOffWithNoOtherReaderLeavesTheMessageQueued) {
  Rig rig;
  Outcome& gone = rig.park_reader();
  gone.refuse = true;
  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_EQ(gone.answers, 1);
  EXPECT_EQ(rig.queue->receivers_waiting(), 0u);
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
  EXPECT_EQ(rig.queue->received(), 0u);
  EXPECT_EQ(rig.receive(), "m");
}

TEST(ReceiveWaiter, SmallBlockedReadLeavesTheRestWithItsFile) {
  Rig rig;
  Outcome& read = rig.park_reader(rig.reader, 2);
  ASSERT_EQ(rig.send("abcde"), 0);
  EXPECT_EQ(read.got, "ab");
  EXPECT_TRUE(rig.reader.holds_rest());
  EXPECT_EQ(rig.receive(100), "cde");
}

TEST(ReceiveWaiter, BlockedMessageModeReadEndsItsFile) {
  Rig rig;
  OpenFile& cat = rig.open(true, false);
  Outcome& read = rig.park_reader(cat);
  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_EQ(read.got, "m");
  EXPECT_TRUE(cat.at_end());
}

// --- blocked writers ---

TEST(SendWaiter, BlockedWriterGetsInWhenAMessageIsTaken) {
  Rig rig(with_maxmsg(1));
  ASSERT_EQ(rig.send("a"), 0);
  Outcome& write = rig.park_writer("b", 42);
  EXPECT_TRUE(write.waiting());
  EXPECT_EQ(rig.queue->senders_waiting(), 1u);
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
  EXPECT_EQ(rig.queue->sent(), 1u);
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_EQ(write.answers, 1);
  EXPECT_EQ(write.accepted, 1u);
  EXPECT_TRUE(write.destroyed);
  EXPECT_EQ(rig.queue->senders_waiting(), 0u);
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
  EXPECT_EQ(rig.queue->sent(), 2u);
  EXPECT_EQ(rig.queue->lspid(), 42);
  EXPECT_EQ(rig.receive(), "b");
}

TEST(SendWaiter, ParkedWriterMakesTheQueueUnwritable) {
  Rig rig(with_maxmsg(1));
  ASSERT_EQ(rig.send("a"), 0);
  rig.park_writer("b");
  EXPECT_FALSE(rig.queue->writable());
  EXPECT_EQ(rig.send("c"), -EAGAIN);
}

TEST(SendWaiter, BlockedWritersAreServedInArrivalOrder) {
  Rig rig(with_maxmsg(1));
  ASSERT_EQ(rig.send("x"), 0);
  Outcome& a = rig.park_writer("a");
  Outcome& b = rig.park_writer("b");
  Outcome& c = rig.park_writer("c");
  ASSERT_EQ(rig.receive(), "x");
  EXPECT_EQ(a.answers, 1);
  EXPECT_TRUE(b.waiting());
  EXPECT_TRUE(c.waiting());
  EXPECT_EQ(rig.drain(), (Order{"a", "b", "c"}));
  EXPECT_EQ(b.answers, 1);
  EXPECT_EQ(c.answers, 1);
}

// A parked writer's message keeps the priority of its file.
TEST(SendWaiter, ParkedMessageKeepsItsPriority) {
  Rig rig(with_maxmsg(2));
  ASSERT_EQ(rig.send("low-1"), 0);
  ASSERT_EQ(rig.send("low-2"), 0);
  OpenFile& urgent = rig.open(false, true);
  urgent.set_priority(7);
  rig.park_writer(urgent, "urgent");
  ASSERT_EQ(rig.receive(), "low-1");
  EXPECT_EQ(rig.drain(), (Order{"urgent", "low-2"}));
}

// A writer gone before its answer sent nothing; the slot goes to the next one.
TEST(SendWaiter, RefusedWriterQueuesNothingAndTheNextGetsIn) {
  Rig rig(with_maxmsg(1));
  ASSERT_EQ(rig.send("x"), 0);
  Outcome& gone = rig.park_writer("lost");
  gone.refuse = true;
  Outcome& next = rig.park_writer("kept");
  ASSERT_EQ(rig.receive(), "x");
  EXPECT_EQ(gone.answers, 1);
  EXPECT_TRUE(gone.destroyed);
  EXPECT_EQ(next.answers, 1);
  EXPECT_EQ(rig.queue->sent(), 2u);
  EXPECT_EQ(rig.drain(), (Order{"kept"}));
  EXPECT_EQ(rig.budget.bytes(), 0u);
}

TEST(SendWaiter, RaisingMaxmsgLetsParkedWritersInUpToTheNewRoom) {
  Rig rig(with_maxmsg(1));
  ASSERT_EQ(rig.send("x"), 0);
  Outcome& a = rig.park_writer("a");
  Outcome& b = rig.park_writer("b");
  Outcome& c = rig.park_writer("c");
  Settings s = rig.queue->settings();
  s.maxmsg = 3;
  rig.queue->configure(s);
  EXPECT_EQ(a.answers, 1);
  EXPECT_EQ(b.answers, 1);
  EXPECT_TRUE(c.waiting());
  EXPECT_EQ(rig.queue->curmsgs(), 3u);
  EXPECT_EQ(rig.queue->senders_waiting(), 1u);
  EXPECT_EQ(rig.drain(), (Order{"x", "a", "b", "c"}));
}

TEST(SendWaiter, LoweredMaxmsgKeepsWritersParkedUntilTheQueueDrainsBelowIt) {
  Rig rig(with_maxmsg(3));
  for (const char* m : {"a", "b", "c"}) ASSERT_EQ(rig.send(m), 0);
  Outcome& w = rig.park_writer("w");
  Settings s = rig.queue->settings();
  s.maxmsg = 1;
  rig.queue->configure(s);
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_TRUE(w.waiting());
  ASSERT_EQ(rig.receive(), "b");
  EXPECT_TRUE(w.waiting());
  ASSERT_EQ(rig.receive(), "c");
  EXPECT_EQ(w.answers, 1);
  EXPECT_EQ(rig.drain(), (Order{"w"}));
}

// Lowering msgsize affects only later writes: a parked write came earlier.
TEST(SendWaiter, LoweredMsgsizeDoesNotRefuseAParkedWrite) {
  Rig rig(with_maxmsg(1));
  ASSERT_EQ(rig.send("a"), 0);
  Outcome& w = rig.park_writer("12345678");
  Settings s = rig.queue->settings();
  s.msgsize = 4;
  rig.queue->configure(s);
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_EQ(w.answers, 1);
  EXPECT_EQ(w.accepted, 8u);
  EXPECT_EQ(rig.drain(), (Order{"12345678"}));
}

TEST(SendWaiter, PurgeLetsParkedWritersIn) {
  Rig rig(with_maxmsg(2));
  ASSERT_EQ(rig.send("a"), 0);
  ASSERT_EQ(rig.send("b"), 0);
  Outcome& c = rig.park_writer("c");
  Outcome& d = rig.park_writer("d");
  Outcome& e = rig.park_writer("e");
  rig.queue->purge();
  EXPECT_EQ(c.answers, 1);
  EXPECT_EQ(d.answers, 1);
  EXPECT_TRUE(e.waiting());
  EXPECT_EQ(rig.drain(), (Order{"c", "d", "e"}));
}

// --- watch ---

TEST(SendWaiter, EnteringNotifiesWatchers) {
  Rig rig(with_maxmsg(1));
  ASSERT_EQ(rig.send("a"), 0);
  rig.park_writer("b");
  int notified = 0;
  rig.queue->watch(rig.reader, std::make_unique<CountingWatch>(notified));
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_EQ(notified, 1);
}

// --- timeouts, on a fake monotonic clock ---

TEST(Timeouts, BlockedReadFailsWithEtimedoutWhenItsTimePasses) {
  Rig rig(with_timeouts(100, 0));
  Outcome& read = rig.park_reader(rig.reader, 100, kReaderPid, kT0);
  EXPECT_EQ(rig.timeouts.size(), 1u);
  EXPECT_EQ(rig.timeouts.next(), kT0 + 100ms);
  rig.timeouts.expire(kT0 + 100ms - 1ns);
  EXPECT_TRUE(read.waiting());
  rig.timeouts.expire(kT0 + 100ms);  // a deadline not after now has passed
  EXPECT_EQ(read.answers, 1);
  EXPECT_EQ(read.error, ETIMEDOUT);
  EXPECT_EQ(read.got, std::nullopt);
  EXPECT_TRUE(read.destroyed);
  EXPECT_EQ(rig.queue->receivers_waiting(), 0u);
  EXPECT_EQ(rig.timeouts.size(), 0u);
  EXPECT_EQ(rig.timeouts.next(), std::nullopt);
  // Nothing was taken for it: a later message waits in the queue.
  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
}

TEST(Timeouts, BlockedWriteFailsWithEtimedoutAndQueuesNothing) {
  Rig rig(with_timeouts(0, 50));
  ASSERT_EQ(rig.send("a"), 0);
  Outcome& write = rig.park_writer("late", kWriterPid, kT0);
  EXPECT_EQ(rig.budget.bytes(), 5u);  // "a" and the parked "late"
  EXPECT_EQ(rig.timeouts.next(), kT0 + 50ms);
  rig.timeouts.expire(kT0 + 50ms);
  EXPECT_EQ(write.answers, 1);
  EXPECT_EQ(write.error, ETIMEDOUT);
  EXPECT_EQ(write.accepted, std::nullopt);
  EXPECT_EQ(rig.queue->senders_waiting(), 0u);
  EXPECT_EQ(rig.budget.bytes(), 1u);
  EXPECT_EQ(rig.drain(), (Order{"a"}));
  EXPECT_EQ(rig.queue->sent(), 1u);
}

TEST(Timeouts, ZeroMeansWaitForEver) {
  Rig empty(with_timeouts(0, 0));
  Outcome& read = empty.park_reader();
  Rig full(with_timeouts(0, 0));
  ASSERT_EQ(full.send("a"), 0);
  Outcome& write = full.park_writer("b");
  EXPECT_EQ(empty.timeouts.size(), 0u);
  EXPECT_EQ(full.timeouts.size(), 0u);
  EXPECT_EQ(empty.timeouts.next(), std::nullopt);
  empty.timeouts.expire(kT0 + std::chrono::hours(24 * 365));
  full.timeouts.expire(kT0 + std::chrono::hours(24 * 365));
  EXPECT_TRUE(read.waiting());
  EXPECT_TRUE(write.waiting());
}

TEST(Timeouts, DeadlineCountsFromWhenTheRequestParked) {
  Rig rig(with_timeouts(100, 0));
  OpenFile& early_file = rig.open(true, false);
  OpenFile& late_file = rig.open(true, false);
  Outcome& early = rig.park_reader(early_file, 10, kReaderPid, kT0);
  Outcome& late = rig.park_reader(late_file, 10, kReaderPid, kT0 + 30ms);
  EXPECT_EQ(rig.timeouts.next(), kT0 + 100ms);
  rig.timeouts.expire(kT0 + 110ms);
  EXPECT_EQ(early.error, ETIMEDOUT);
  EXPECT_TRUE(late.waiting());
  EXPECT_EQ(rig.timeouts.next(), kT0 + 130ms);
  rig.timeouts.expire(kT0 + 130ms);
  EXPECT_EQ(late.error, ETIMEDOUT);
}

TEST(Timeouts, ServedWaiterLeavesTheTimeouts) {
  Rig rig(with_timeouts(100, 0));
  Outcome& read = rig.park_reader();
  ASSERT_EQ(rig.timeouts.size(), 1u);
  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_EQ(read.got, "m");
  EXPECT_EQ(rig.timeouts.size(), 0u);
  rig.timeouts.expire(kT0 + 1h);
  EXPECT_EQ(read.answers, 1);  // not answered a second time
}

TEST(Timeouts, ServedWriterLeavesTheTimeouts) {
  Rig rig(with_timeouts(0, 100));
  ASSERT_EQ(rig.send("a"), 0);
  Outcome& write = rig.park_writer("b");
  ASSERT_EQ(rig.timeouts.size(), 1u);
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_EQ(write.answers, 1);
  EXPECT_EQ(rig.timeouts.size(), 0u);
  rig.timeouts.expire(kT0 + 1h);
  EXPECT_EQ(write.answers, 1);
  EXPECT_EQ(rig.drain(), (Order{"b"}));
}

// Timeouts serve every queue of the mount.
TEST(Timeouts, OneTimeoutsListServesSeveralQueues) {
  Budget budget(10, 1000);
  Timeouts timeouts;
  Outcome o1, o2;  // outlive the waiters
  auto q1 = std::make_shared<Queue>(budget, timeouts, with_timeouts(10, 0));
  auto q2 = std::make_shared<Queue>(budget, timeouts, with_timeouts(20, 0));
  OpenFile f1(q1, true, false);
  OpenFile f2(q2, true, false);
  FakeRead r1(o1), r2(o2);
  q1->receive(f1, 10, kReaderPid, kT0, r1);
  q2->receive(f2, 10, kReaderPid, kT0, r2);
  EXPECT_EQ(timeouts.size(), 2u);
  timeouts.expire(kT0 + 15ms);
  EXPECT_EQ(o1.error, ETIMEDOUT);
  EXPECT_TRUE(o2.waiting());
  EXPECT_EQ(q2->receivers_waiting(), 1u);
  timeouts.expire(kT0 + 20ms);
  EXPECT_EQ(o2.error, ETIMEDOUT);
  EXPECT_EQ(q1->receivers_waiting(), 0u);
  EXPECT_EQ(q2->receivers_waiting(), 0u);
}

// --- cancel ---

TEST(Cancel, InterruptedWaitFailsWithItsErrorAndLeavesTheOthers) {
  Rig rig(with_timeouts(100, 0));
  OpenFile& f1 = rig.open(true, false);
  OpenFile& f2 = rig.open(true, false);
  Outcome& o1 = rig.park_reader(f1, 10);
  Outcome& o2 = rig.park_reader(f2, 10);
  Waiter* interrupted = o1.waiter;
  EXPECT_EQ(interrupted->queue(), rig.queue.get());

  rig.queue->cancel(*interrupted, EINTR);
  EXPECT_EQ(o1.answers, 1);
  EXPECT_EQ(o1.error, EINTR);
  EXPECT_TRUE(o1.destroyed);
  EXPECT_EQ(rig.queue->receivers_waiting(), 1u);
  EXPECT_EQ(rig.timeouts.size(), 1u);  // its deadline went with it

  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_EQ(o2.got, "m");
  EXPECT_EQ(o1.answers, 1);
}

TEST(Cancel, InterruptedWriteQueuesNothingAndGivesItsBytesBack) {
  Rig rig(with_maxmsg(1));
  ASSERT_EQ(rig.send("a"), 0);
  Outcome& o = rig.park_writer("bcd");
  Waiter* interrupted = o.waiter;
  EXPECT_EQ(rig.budget.bytes(), 4u);
  rig.queue->cancel(*interrupted, EINTR);
  EXPECT_EQ(o.answers, 1);
  EXPECT_EQ(o.error, EINTR);
  EXPECT_EQ(o.accepted, std::nullopt);
  EXPECT_EQ(rig.budget.bytes(), 1u);
  EXPECT_EQ(rig.queue->senders_waiting(), 0u);
  EXPECT_EQ(rig.drain(), (Order{"a"}));
  EXPECT_EQ(rig.queue->sent(), 1u);
}

// An interrupt can race with the answer: a waiter of another queue (or none)
// is not touched.
TEST(Cancel, WaiterOfAnotherQueueIsLeftAlone) {
  Rig rig;
  Rig other;
  Outcome& o = rig.park_reader(rig.reader, 10);
  Waiter* waiter = o.waiter;
  other.queue->cancel(*waiter, EINTR);
  EXPECT_TRUE(o.waiting());
  EXPECT_EQ(rig.queue->receivers_waiting(), 1u);
  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_EQ(o.got, "m");
}

// The daemon going away answers every parked request.
TEST(Cancel, CancelAllAnswersEveryWaiter) {
  Rig rig(with_timeouts(100, 100));
  OpenFile& other = rig.open(true, false);
  Outcome& r1 = rig.park_reader();
  Outcome& r2 = rig.park_reader(other);
  rig.queue->cancel_all(ENOTCONN);
  EXPECT_EQ(r1.answers, 1);
  EXPECT_EQ(r1.error, ENOTCONN);
  EXPECT_EQ(r2.answers, 1);
  EXPECT_EQ(r2.error, ENOTCONN);
  EXPECT_EQ(rig.queue->receivers_waiting(), 0u);
  EXPECT_EQ(rig.timeouts.size(), 0u);

  ASSERT_EQ(rig.send("a"), 0);
  Outcome& w1 = rig.park_writer("b");
  Outcome& w2 = rig.park_writer("c");
  rig.queue->cancel_all(ENOTCONN);
  EXPECT_EQ(w1.answers, 1);
  EXPECT_EQ(w1.error, ENOTCONN);
  EXPECT_EQ(w2.answers, 1);
  EXPECT_EQ(w2.error, ENOTCONN);
  EXPECT_EQ(rig.queue->senders_waiting(), 0u);
  EXPECT_EQ(rig.timeouts.size(), 0u);
  EXPECT_EQ(rig.budget.bytes(), 1u);
  EXPECT_EQ(rig.drain(), (Order{"a"}));
}

}  // namespace
}  // namespace mqfs::engine
