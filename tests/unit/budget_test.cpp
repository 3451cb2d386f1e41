// The mount's global limits: message bytes held anywhere (queued, parked in a
// blocked write, the unread rest held by an open file) and the node cap.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "doubles.hpp"
#include "engine/budget.hpp"

namespace mqfs::engine {
namespace {

using Order = std::vector<std::string>;

TEST(Budget, BytesUpToTheCapAndNoMore) {
  Budget budget(1, 10);
  EXPECT_TRUE(budget.reserve_bytes(4));
  EXPECT_TRUE(budget.reserve_bytes(6));  // exactly the cap
  EXPECT_EQ(budget.bytes(), 10u);
  EXPECT_FALSE(budget.reserve_bytes(1));
  EXPECT_EQ(budget.bytes(), 10u);  // a refusal reserves nothing
  budget.release_bytes(3);
  EXPECT_FALSE(budget.reserve_bytes(4));
  EXPECT_TRUE(budget.reserve_bytes(3));
  EXPECT_EQ(budget.max_bytes(), 10u);
}

TEST(Budget, HugeRequestDoesNotWrapAround) {
  Budget budget(1, 10);
  ASSERT_TRUE(budget.reserve_bytes(5));
  EXPECT_FALSE(budget.reserve_bytes(UINT64_MAX));
  EXPECT_EQ(budget.bytes(), 5u);
}

TEST(Budget, NodesUpToTheCap) {
  Budget budget(2, 10);
  EXPECT_TRUE(budget.reserve_node());
  EXPECT_TRUE(budget.reserve_node());
  EXPECT_FALSE(budget.reserve_node());
  EXPECT_EQ(budget.nodes(), 2u);
  budget.release_node();
  EXPECT_TRUE(budget.reserve_node());
  EXPECT_EQ(budget.max_nodes(), 2u);
}

// A write that would pass the mount's byte cap fails with ENOSPC and queues
// nothing.
TEST(QueueBudget, SendPastTheCapFailsWithEnospc) {
  Rig rig({}, 10);
  ASSERT_EQ(rig.send("123456"), 0);
  FakeSender to;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("12345"), kWriterPid, to), -ENOSPC);
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
  EXPECT_EQ(rig.queue->sent(), 1u);
  EXPECT_EQ(rig.budget.bytes(), 6u);
  EXPECT_EQ(rig.send("1234"), 0);  // reaching the cap exactly is allowed
  EXPECT_EQ(rig.budget.bytes(), 10u);
}

TEST(QueueBudget, CapIsSharedByAllQueues) {
  Budget budget(10, 10);
  Timeouts timeouts;
  auto q1 = std::make_shared<Queue>(budget, timeouts, Settings{});
  auto q2 = std::make_shared<Queue>(budget, timeouts, Settings{});
  OpenFile f1(q1, true, true);
  OpenFile f2(q2, true, true);
  FakeSender to1, to2, to3;
  ASSERT_EQ(send_now(*q1, f1, bytes_of("12345678"), kWriterPid, to1), 0);
  EXPECT_EQ(send_now(*q2, f2, bytes_of("123"), kWriterPid, to2), -ENOSPC);
  EXPECT_EQ(send_now(*q2, f2, bytes_of("12"), kWriterPid, to3), 0);
}

TEST(QueueBudget, ReceivedMessagesGiveTheirBytesBack) {
  Rig rig({}, 10);
  ASSERT_EQ(rig.send("1234567890"), 0);
  EXPECT_EQ(rig.send("x"), -ENOSPC);
  ASSERT_EQ(rig.receive(), "1234567890");
  EXPECT_EQ(rig.budget.bytes(), 0u);
  EXPECT_EQ(rig.send("x"), 0);
}

// The unread rest of a message is still held by the daemon.
TEST(QueueBudget, RestHeldByAnOpenFileCountsUntilReadOrClosed) {
  Rig rig({}, 10);
  OpenFile& file = rig.open(true, false);
  ASSERT_EQ(rig.send("12345678"), 0);
  ASSERT_EQ(rig.receive(file, 2), "12");
  EXPECT_EQ(rig.queue->curbytes(), 0u);
  EXPECT_EQ(rig.budget.bytes(), 8u);
  EXPECT_EQ(rig.send("123"), -ENOSPC);
  ASSERT_EQ(rig.receive(file, 5), "34567");
  EXPECT_EQ(rig.budget.bytes(), 8u);
  ASSERT_EQ(rig.receive(file, 5), "8");
  EXPECT_EQ(rig.budget.bytes(), 0u);

  OpenFile& dropped = rig.open(true, false);
  ASSERT_EQ(rig.send("abcdefgh"), 0);
  ASSERT_EQ(rig.receive(dropped, 1), "a");
  rig.close(dropped);
  EXPECT_EQ(rig.budget.bytes(), 0u);
}

TEST(QueueBudget, ParkedWriterHoldsItsMessageBytes) {
  Settings s;
  s.maxmsg = 1;
  Rig rig(s, 10);
  ASSERT_EQ(rig.send("12345"), 0);
  Outcome& parked = rig.park_writer("abcd");
  EXPECT_EQ(rig.budget.bytes(), 9u);
  EXPECT_EQ(rig.queue->curbytes(), 5u);  // not queued yet
  ASSERT_EQ(rig.receive(), "12345");
  EXPECT_EQ(parked.answers, 1);
  EXPECT_EQ(rig.budget.bytes(), 4u);
  EXPECT_EQ(rig.queue->curbytes(), 4u);
}

// A blocked write that cannot hold its message fails at once with ENOSPC and
// keeps nothing: it never waits.
TEST(QueueBudget, ParkingAWriteThatPassesTheCapFailsWithEnospc) {
  Settings s;
  s.maxmsg = 1;
  Rig rig(s, 10);
  ASSERT_EQ(rig.send("12345"), 0);
  Outcome outcome;
  FakeWrite write(outcome);
  rig.queue->send(rig.writer, bytes_of("123456"), kWriterPid, kT0, write);
  EXPECT_EQ(outcome.answers, 1);
  EXPECT_EQ(outcome.error, ENOSPC);
  EXPECT_FALSE(outcome.parked);
  EXPECT_EQ(rig.queue->senders_waiting(), 0u);
  EXPECT_EQ(rig.budget.bytes(), 5u);
  ASSERT_EQ(rig.receive(), "12345");
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
}

TEST(QueueBudget, RefusedWritesGiveTheirBytesBack) {
  Settings s;
  s.maxmsg = 1;
  Rig rig(s, 10);
  FakeSender gone;
  gone.refuse = true;
  ASSERT_EQ(send_now(*rig.queue, rig.writer, bytes_of("1234567890"), kWriterPid, gone), 0);
  EXPECT_EQ(rig.budget.bytes(), 0u);

  ASSERT_EQ(rig.send("1"), 0);
  Outcome& parked = rig.park_writer("123456789");
  parked.refuse = true;
  ASSERT_EQ(rig.receive(), "1");
  EXPECT_EQ(parked.answers, 1);
  EXPECT_EQ(rig.budget.bytes(), 0u);
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
}

TEST(QueueBudget, PurgeGivesTheBytesBack) {
  Rig rig({}, 10);
  ASSERT_EQ(rig.send("12345"), 0);
  ASSERT_EQ(rig.send("67890"), 0);
  rig.queue->purge();
  EXPECT_EQ(rig.budget.bytes(), 0u);
  EXPECT_EQ(rig.send("1234567890"), 0);
}

TEST(QueueBudget, FreedQueueGivesTheBytesBack) {
  Budget budget(10, 100);
  Timeouts timeouts;
  {
    auto queue = std::make_shared<Queue>(budget, timeouts, Settings{});
    OpenFile file(queue, true, true);
    FakeSender to1, to2;
    ASSERT_EQ(send_now(*queue, file, bytes_of("abc"), kWriterPid, to1), 0);
    ASSERT_EQ(send_now(*queue, file, bytes_of("de"), kWriterPid, to2), 0);
    EXPECT_EQ(budget.bytes(), 5u);
  }
  EXPECT_EQ(budget.bytes(), 0u);
}

// Bytes held outside messages (the unfinished message of a framed write) are
// charged as messages are.
TEST(HeldBytes, AreChargedForTheMemoryTheyHoldUntilCleared) {
  Budget budget(1, 10);
  {
    HeldBytes held(budget);
    EXPECT_TRUE(held.empty());
    ASSERT_TRUE(held.append(bytes_of("abcd")));
    EXPECT_EQ(budget.bytes(), 4u);
    ASSERT_TRUE(held.append(bytes_of("ef")));
    EXPECT_EQ(budget.bytes(), 8u);  // grown by doubling: the capacity is charged
    EXPECT_FALSE(held.append(bytes_of("12345")));  // would pass the cap
    EXPECT_EQ(budget.bytes(), 8u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(held.bytes().data()), held.bytes().size()), "abcdef");
    ASSERT_TRUE(held.append(bytes_of("gh")));  // fits the capacity charged
    EXPECT_EQ(budget.bytes(), 8u);
    held.drop_front(2);
    EXPECT_EQ(budget.bytes(), 8u);  // the memory is still held
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(held.bytes().data()), held.bytes().size()), "cdefgh");
    held.drop_front(100);  // no more than it holds
    EXPECT_TRUE(held.empty());
    held.clear();
    EXPECT_EQ(budget.bytes(), 0u);
    ASSERT_TRUE(held.append(bytes_of("xyz")));
    held.clear();
    EXPECT_EQ(budget.bytes(), 0u);
  }
  {
    HeldBytes held(budget);
    ASSERT_TRUE(held.append(bytes_of("123456")));
    ASSERT_TRUE(held.append(bytes_of("7890")));  // doubling would pass the cap: grown to fit
    EXPECT_EQ(budget.bytes(), 10u);
    ASSERT_TRUE(held.append(bytes_of("")));
  }
  EXPECT_EQ(budget.bytes(), 0u);  // given back when destroyed
}

// Each message is charged its bytes plus its bookkeeping, so that max_bytes
// bounds memory also for tiny messages; curbytes counts the bytes alone.
TEST(QueueBudget, MessagesAreChargedTheirOverheadAsWell) {
  Settings settings;
  settings.maxmsg = 100;
  Rig rig(settings, Limits{.max_bytes = 2 * (kMessageOverhead + 5), .message_overhead = kMessageOverhead});
  ASSERT_EQ(rig.send("12345"), 0);
  ASSERT_EQ(rig.send("12345"), 0);
  EXPECT_EQ(rig.budget.bytes(), 2 * (kMessageOverhead + 5));
  EXPECT_EQ(rig.send("1"), -ENOSPC);
  EXPECT_EQ(rig.queue->curbytes(), 10u);
  EXPECT_EQ(rig.drain(), (Order{"12345", "12345"}));
  EXPECT_EQ(rig.budget.bytes(), 0u);
}

TEST(QueueBudget, OpenFilesAreCountedUntilClosed) {
  Rig rig({}, Limits{.max_open_files = 3});
  EXPECT_EQ(rig.budget.open_files(), 2u);  // the rig's writer and reader
  EXPECT_TRUE(rig.budget.may_open_file());
  OpenFile& third = rig.open();
  EXPECT_FALSE(rig.budget.may_open_file());
  rig.close(third);
  EXPECT_EQ(rig.budget.open_files(), 2u);
  EXPECT_TRUE(rig.budget.may_open_file());
}

// Past max_waiters a read or write that must wait is answered EAGAIN at
// once, holding nothing; a place frees when a waiter is answered.
TEST(QueueBudget, WaitersUpToTheCap) {
  Settings settings;
  settings.maxmsg = 1;
  Rig rig(settings, Limits{.max_waiters = 1});
  Outcome& first = rig.park_reader();
  EXPECT_EQ(rig.budget.waiters(), 1u);
  Outcome refused;
  FakeRead read(refused);
  rig.queue->receive(rig.reader, 10, kReaderPid, kT0, read);
  EXPECT_EQ(refused.answers, 1);
  EXPECT_EQ(refused.error, EAGAIN);
  EXPECT_TRUE(refused.destroyed);

  ASSERT_EQ(rig.send("a"), 0);  // served to the first reader
  EXPECT_EQ(first.got, "a");
  EXPECT_EQ(rig.budget.waiters(), 0u);

  ASSERT_EQ(rig.send("b"), 0);  // the queue is full
  Outcome& writer = rig.park_writer("c");
  EXPECT_EQ(rig.budget.waiters(), 1u);
  const uint64_t held = rig.budget.bytes();
  Outcome refused_writer;
  FakeWrite write(refused_writer);
  rig.queue->send(rig.writer, bytes_of("d"), kWriterPid, kT0, write);
  EXPECT_EQ(refused_writer.answers, 1);
  EXPECT_EQ(refused_writer.error, EAGAIN);
  EXPECT_EQ(rig.budget.bytes(), held);  // its copy of the message is gone
  EXPECT_EQ(rig.drain(), (Order{"b", "c"}));
  EXPECT_EQ(writer.accepted, 1u);
  EXPECT_EQ(rig.budget.waiters(), 0u);
}

// close(2) of a line-framed writer whose last line finds the queue full and
// no place to wait reports it; nothing is queued and nothing stays held.
TEST(QueueBudget, FlushReportsWhenTheCapsLeaveNoRoom) {
  Settings settings;
  settings.maxmsg = 1;
  settings.framing = Framing::line;
  Rig rig(settings, Limits{.max_bytes = 100, .max_waiters = 0});
  ASSERT_EQ(rig.send("full\n"), 0);
  ASSERT_EQ(rig.send("unfinished"), 0);
  EXPECT_EQ(rig.queue->flush(rig.writer, kWriterPid, kT0), -EAGAIN);
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
  EXPECT_EQ(rig.budget.bytes(), 5u);

  ASSERT_EQ(rig.send(std::string(94, 'x')), 0);  // held: 5 + 94 charged
  EXPECT_EQ(rig.receive(), "full\n");
  EXPECT_EQ(rig.queue->flush(rig.writer, kWriterPid, kT0), -ENOSPC);  // a copy of 94 would pass 100
  EXPECT_EQ(rig.budget.bytes(), 0u);
}

}  // namespace
}  // namespace mqfs::engine
