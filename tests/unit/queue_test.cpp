// Queue: sending and receiving that need no waiting, limits, counters,
// readiness, configure, purge and watch.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "doubles.hpp"
#include "engine/queue.hpp"

namespace mqfs::engine {
namespace {

using Order = std::vector<std::string>;

Settings with_limits(int64_t maxmsg, int64_t msgsize) {
  Settings s;
  s.maxmsg = maxmsg;
  s.msgsize = msgsize;
  return s;
}

TEST(Queue, SendQueuesOneMessageAndAnswersTheWriterWithItsSize) {
  Rig rig;
  FakeSender to;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("hello"), kWriterPid, to), 0);
  EXPECT_EQ(to.answers, 1);
  EXPECT_EQ(to.accepted, 5u);
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
  EXPECT_EQ(rig.queue->curbytes(), 5u);
  EXPECT_EQ(rig.receive(), "hello");
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.queue->curbytes(), 0u);
}

TEST(Queue, NonblockingReceiveOnAnEmptyQueueFailsWithEagain) {
  Rig rig;
  FakeReceiver to;
  EXPECT_EQ(receive_now(*rig.queue, rig.reader, 100, kReaderPid, to), 0);
  EXPECT_EQ(to.answers, 1);
  EXPECT_EQ(to.error, EAGAIN);
  EXPECT_FALSE(to.parked);
}

TEST(Queue, ReadNeverReturnsBytesOfTwoMessages) {
  Rig rig;
  ASSERT_EQ(rig.send("ab"), 0);
  ASSERT_EQ(rig.send("cd"), 0);
  EXPECT_EQ(rig.receive(1000), "ab");
  EXPECT_EQ(rig.receive(1000), "cd");
}

TEST(Queue, BufferAsLargeAsTheMessageGetsAllOfIt) {
  Rig rig;
  ASSERT_EQ(rig.send("12345"), 0);
  EXPECT_EQ(rig.receive(5), "12345");
  EXPECT_FALSE(rig.reader.holds_rest());
}

TEST(Queue, MessagesOfOnePriorityAreReceivedInTheOrderWritten) {
  Rig rig;
  for (const char* m : {"1", "2", "3", "4"}) ASSERT_EQ(rig.send(m), 0);
  EXPECT_EQ(rig.drain(), (Order{"1", "2", "3", "4"}));
}

TEST(Queue, HighestPriorityFirstFifoWithinAPriority) {
  Rig rig;
  OpenFile& urgent = rig.open(false, true);
  urgent.set_priority(9);
  OpenFile& middle = rig.open(false, true);
  middle.set_priority(4);
  ASSERT_EQ(rig.send("p0-a"), 0);
  ASSERT_EQ(rig.send(middle, "p4-a"), 0);
  ASSERT_EQ(rig.send(urgent, "p9-a"), 0);
  ASSERT_EQ(rig.send("p0-b"), 0);
  ASSERT_EQ(rig.send(urgent, "p9-b"), 0);
  ASSERT_EQ(rig.send(middle, "p4-b"), 0);
  EXPECT_EQ(rig.drain(), (Order{"p9-a", "p9-b", "p4-a", "p4-b", "p0-a", "p0-b"}));
}

// A message's priority is fixed when it is sent: the file's own, else the
// queue's user.mq.priority at that time.
TEST(Queue, PriorityComesFromTheFileElseFromTheQueueWhenSent) {
  Rig rig;
  ASSERT_EQ(rig.send("queue-0"), 0);
  Settings s = rig.queue->settings();
  s.priority = 5;
  rig.queue->configure(s);
  ASSERT_EQ(rig.send("queue-5"), 0);
  OpenFile& own = rig.open(false, true);
  own.set_priority(2);
  ASSERT_EQ(rig.send(own, "file-2"), 0);
  s.priority = 0;
  rig.queue->configure(s);  // changes nothing already queued
  ASSERT_EQ(rig.send("queue-0-again"), 0);
  EXPECT_EQ(rig.drain(), (Order{"queue-5", "file-2", "queue-0", "queue-0-again"}));
}

TEST(Queue, MessageLargerThanMsgsizeIsRefusedWithEmsgsize) {
  Rig rig(with_limits(10, 4));
  FakeSender to;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("12345"), kWriterPid, to), -EMSGSIZE);
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.queue->sent(), 0u);
  EXPECT_EQ(rig.budget.bytes(), 0u);
  EXPECT_EQ(rig.send("1234"), 0);  // exactly msgsize fits
}

TEST(Queue, FullQueueRefusesWithEagain) {
  Rig rig(with_limits(2, 100));
  ASSERT_EQ(rig.send("a"), 0);
  ASSERT_EQ(rig.send("b"), 0);
  FakeSender to;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("c"), kWriterPid, to), -EAGAIN);
  EXPECT_EQ(rig.queue->curmsgs(), 2u);
  EXPECT_EQ(rig.budget.bytes(), 2u);  // the refused message holds nothing
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_EQ(rig.send("c"), 0);
  EXPECT_EQ(rig.drain(), (Order{"b", "c"}));
}

// As mq_send: a message that can never fit is EMSGSIZE even when the queue is full.
TEST(Queue, EmsgsizeBeforeEagain) {
  Rig rig(with_limits(1, 2));
  ASSERT_EQ(rig.send("a"), 0);
  EXPECT_EQ(rig.send("abc"), -EMSGSIZE);
}

// A writer that is gone by the time it is answered sent nothing.
TEST(Queue, RefusedSendQueuesNothing) {
  Rig rig;
  FakeSender to;
  to.refuse = true;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("lost"), kWriterPid, to), 0);
  EXPECT_EQ(to.answers, 1);
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.queue->sent(), 0u);
  EXPECT_EQ(rig.queue->lspid(), 0);
  EXPECT_EQ(rig.budget.bytes(), 0u);
}

// A reader interrupted or killed before its read completed took nothing: the
// message stays at its original place.
TEST(Queue, RefusedReceiveLeavesTheMessageAtItsPlace) {
  Rig rig;
  ASSERT_EQ(rig.send("first"), 0);
  ASSERT_EQ(rig.send("second"), 0);
  FakeReceiver gone;
  gone.refuse = true;
  EXPECT_EQ(receive_now(*rig.queue, rig.reader, 100, kReaderPid, gone), 1);
  EXPECT_EQ(gone.answers, 1);
  EXPECT_EQ(rig.queue->curmsgs(), 2u);
  EXPECT_EQ(rig.queue->received(), 0u);
  EXPECT_EQ(rig.queue->lrpid(), 0);
  EXPECT_FALSE(rig.reader.holds_rest());
  EXPECT_EQ(rig.drain(), (Order{"first", "second"}));
}

// A refused read of a message-mode file did not deliver its one message.
TEST(Queue, RefusedReceiveDoesNotEndAMessageModeFile) {
  Rig rig;
  OpenFile& cat = rig.open(true, false);
  ASSERT_EQ(rig.send("m"), 0);
  FakeReceiver gone;
  gone.refuse = true;
  receive_now(*rig.queue, cat, 100, kReaderPid, gone);
  EXPECT_FALSE(cat.at_end());
  EXPECT_EQ(rig.receive(cat), "m");
  EXPECT_TRUE(cat.at_end());
}

TEST(Queue, CountsSentAndReceivedAndRemembersTheLastPids) {
  Rig rig;
  EXPECT_EQ(rig.queue->sent(), 0u);
  EXPECT_EQ(rig.queue->received(), 0u);
  ASSERT_EQ(rig.send("a", 11), 0);
  ASSERT_EQ(rig.send("b", 12), 0);
  EXPECT_EQ(rig.queue->sent(), 2u);
  EXPECT_EQ(rig.queue->lspid(), 12);
  EXPECT_EQ(rig.queue->lrpid(), 0);
  ASSERT_EQ(rig.receive(rig.reader, 100, 21), "a");
  EXPECT_EQ(rig.queue->received(), 1u);
  EXPECT_EQ(rig.queue->lrpid(), 21);
  EXPECT_EQ(rig.queue->lspid(), 12);
}

// A message counts as received when it leaves the queue, with its first part.
TEST(Queue, PartialReadCountsTheMessageAsReceivedOnce) {
  Rig rig;
  ASSERT_EQ(rig.send("abcdef"), 0);
  ASSERT_EQ(rig.receive(2), "ab");
  EXPECT_EQ(rig.queue->received(), 1u);
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.queue->curbytes(), 0u);
  ASSERT_EQ(rig.receive(2), "cd");
  ASSERT_EQ(rig.receive(2), "ef");
  EXPECT_EQ(rig.queue->received(), 1u);
}

TEST(Queue, ZeroByteReadTakesNothing) {
  Rig rig;
  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_EQ(rig.receive(0), "");
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
  EXPECT_EQ(rig.queue->received(), 0u);
}

TEST(Queue, ReadableWhenAMessageIsQueued) {
  Rig rig;
  EXPECT_FALSE(rig.queue->readable(rig.reader));
  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_TRUE(rig.queue->readable(rig.reader));
  ASSERT_EQ(rig.receive(), "m");
  EXPECT_FALSE(rig.queue->readable(rig.reader));
}

TEST(Queue, ReadableWhileTheFileHoldsTheRestOfAMessage) {
  Rig rig;
  ASSERT_EQ(rig.send("abc"), 0);
  ASSERT_EQ(rig.receive(1), "a");
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_TRUE(rig.queue->readable(rig.reader));
  OpenFile& other = rig.open(true, false);
  EXPECT_FALSE(rig.queue->readable(other));  // the rest belongs to the reader's file only
  ASSERT_EQ(rig.receive(10), "bc");
  EXPECT_FALSE(rig.queue->readable(rig.reader));
}

TEST(Queue, ReadableAtEndOfAMessageModeFile) {
  Rig rig;
  OpenFile& cat = rig.open(true, false);
  ASSERT_EQ(rig.send("m"), 0);
  ASSERT_EQ(rig.receive(cat), "m");
  EXPECT_TRUE(rig.queue->readable(cat));  // a read returns 0 at once
  EXPECT_FALSE(rig.queue->readable(rig.reader));
}

TEST(Queue, WritableWhileBelowMaxmsg) {
  Rig rig(with_limits(2, 100));
  EXPECT_TRUE(rig.queue->writable());
  ASSERT_EQ(rig.send("a"), 0);
  EXPECT_TRUE(rig.queue->writable());
  ASSERT_EQ(rig.send("b"), 0);
  EXPECT_FALSE(rig.queue->writable());
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_TRUE(rig.queue->writable());
}

TEST(Queue, LoweringMsgsizeAffectsOnlyLaterWrites) {
  Rig rig(with_limits(10, 10));
  ASSERT_EQ(rig.send("0123456789"), 0);
  Settings s = rig.queue->settings();
  s.msgsize = 3;
  rig.queue->configure(s);
  EXPECT_EQ(rig.send("0123"), -EMSGSIZE);
  EXPECT_EQ(rig.send("012"), 0);
  EXPECT_EQ(rig.drain(), (Order{"0123456789", "012"}));
}

TEST(Queue, LoweringMaxmsgBelowCurmsgsKeepsTheMessagesAndRefusesWrites) {
  Rig rig(with_limits(5, 100));
  for (const char* m : {"a", "b", "c", "d"}) ASSERT_EQ(rig.send(m), 0);
  Settings s = rig.queue->settings();
  s.maxmsg = 2;
  rig.queue->configure(s);
  EXPECT_EQ(rig.queue->curmsgs(), 4u);
  EXPECT_FALSE(rig.queue->writable());
  EXPECT_EQ(rig.send("x"), -EAGAIN);
  ASSERT_EQ(rig.receive(), "a");
  ASSERT_EQ(rig.receive(), "b");
  EXPECT_EQ(rig.send("x"), -EAGAIN);  // 2 queued: still not below maxmsg
  ASSERT_EQ(rig.receive(), "c");
  EXPECT_TRUE(rig.queue->writable());
  EXPECT_EQ(rig.send("x"), 0);
  EXPECT_EQ(rig.drain(), (Order{"d", "x"}));
}

TEST(Queue, PurgeDropsEveryMessageButKeepsTheCounters) {
  Rig rig;
  ASSERT_EQ(rig.send("a"), 0);
  ASSERT_EQ(rig.send("bc"), 0);
  ASSERT_EQ(rig.receive(), "a");
  ASSERT_EQ(rig.send("d"), 0);
  rig.queue->purge();
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.queue->curbytes(), 0u);
  EXPECT_EQ(rig.budget.bytes(), 0u);
  EXPECT_EQ(rig.queue->sent(), 3u);      // since the queue was created
  EXPECT_EQ(rig.queue->received(), 1u);  // purged messages were not received
  EXPECT_EQ(rig.receive(), std::nullopt);
}

// Purge drops what is queued, not what an open file was already given.
TEST(Queue, PurgeKeepsTheRestHeldByAnOpenFile) {
  Rig rig;
  ASSERT_EQ(rig.send("abcd"), 0);
  ASSERT_EQ(rig.receive(1), "a");
  rig.queue->purge();
  EXPECT_EQ(rig.receive(10), "bcd");
}

TEST(Queue, ConfigureTakesEffectAtOnce) {
  Rig rig;
  Settings s;
  s.maxmsg = 3;
  s.msgsize = 7;
  s.priority = 12;
  s.read_mode = ReadMode::stream;
  s.recv_timeout_ms = 5;
  s.send_timeout_ms = 6;
  s.framing = Framing::line;
  rig.queue->configure(s);
  EXPECT_EQ(rig.queue->settings().maxmsg, 3);
  EXPECT_EQ(rig.queue->settings().msgsize, 7);
  EXPECT_EQ(rig.queue->settings().priority, 12);
  EXPECT_EQ(rig.queue->settings().read_mode, ReadMode::stream);
  EXPECT_EQ(rig.queue->settings().recv_timeout_ms, 5);
  EXPECT_EQ(rig.queue->settings().send_timeout_ms, 6);
  EXPECT_EQ(rig.queue->settings().framing, Framing::line);
  EXPECT_EQ(rig.writer.priority(), 12);
}

TEST(Queue, WatchIsNotifiedOnceAtTheNextChange) {
  Rig rig;
  int notified = 0;
  rig.queue->watch(rig.reader, std::make_unique<CountingWatch>(notified));
  EXPECT_EQ(notified, 0);
  ASSERT_EQ(rig.send("a"), 0);
  EXPECT_EQ(notified, 1);
  ASSERT_EQ(rig.send("b"), 0);
  EXPECT_EQ(notified, 1);  // once: the next poll arms it again
  rig.queue->watch(rig.reader, std::make_unique<CountingWatch>(notified));
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_EQ(notified, 2);
}

TEST(Queue, EveryWatchingFileIsNotified) {
  Rig rig;
  int reader_notified = 0;
  int writer_notified = 0;
  rig.queue->watch(rig.reader, std::make_unique<CountingWatch>(reader_notified));
  rig.queue->watch(rig.writer, std::make_unique<CountingWatch>(writer_notified));
  ASSERT_EQ(rig.send("a"), 0);
  EXPECT_EQ(reader_notified, 1);
  EXPECT_EQ(writer_notified, 1);
}

// The changes of readiness that poll waits for: a message comes (readable),
// a message goes (writable), room or messages change by configure or purge.
TEST(Queue, WatchIsNotifiedByReceiveConfigureAndPurge) {
  Rig rig(with_limits(1, 100));
  ASSERT_EQ(rig.send("a"), 0);
  int notified = 0;

  rig.queue->watch(rig.writer, std::make_unique<CountingWatch>(notified));
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_EQ(notified, 1);

  ASSERT_EQ(rig.send("b"), 0);
  rig.queue->watch(rig.writer, std::make_unique<CountingWatch>(notified));
  Settings s = rig.queue->settings();
  s.maxmsg = 2;
  rig.queue->configure(s);
  EXPECT_EQ(notified, 2);

  rig.queue->watch(rig.writer, std::make_unique<CountingWatch>(notified));
  rig.queue->purge();
  EXPECT_EQ(notified, 3);
}

TEST(Queue, ClosedFileIsNoLongerWatched) {
  Rig rig;
  int notified = 0;
  OpenFile& poller = rig.open(true, false);
  rig.queue->watch(poller, std::make_unique<CountingWatch>(notified));
  rig.close(poller);
  ASSERT_EQ(rig.send("a"), 0);
  EXPECT_EQ(notified, 0);
}

bool operator==(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

// `ls -l`: mtime is the last enqueue, atime the last dequeue, ctime the last
// attribute change. Times are set to the epoch first, so the test reads no clock.
TEST(Queue, TimesFollowEnqueueDequeueAndAttributeChanges) {
  Rig rig(with_limits(1, 100));
  Times& t = rig.queue->times();
  const timespec epoch{};
  t = Times{};
  ASSERT_EQ(rig.send("a"), 0);
  EXPECT_FALSE(t.mtime == epoch);
  EXPECT_TRUE(t.atime == epoch);
  EXPECT_TRUE(t.ctime == epoch);

  t = Times{};
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_FALSE(t.atime == epoch);
  EXPECT_TRUE(t.mtime == epoch);
  EXPECT_TRUE(t.ctime == epoch);

  t = Times{};
  rig.queue->configure(rig.queue->settings());
  EXPECT_FALSE(t.ctime == epoch);
  EXPECT_TRUE(t.mtime == epoch);
  EXPECT_TRUE(t.atime == epoch);
}

TEST(Queue, RefusedRepliesLeaveTheTimesAlone) {
  Rig rig;
  Times& t = rig.queue->times();
  const timespec epoch{};
  t = Times{};
  FakeSender gone_writer;
  gone_writer.refuse = true;
  ASSERT_EQ(send_now(*rig.queue, rig.writer, bytes_of("m"), kWriterPid, gone_writer), 0);
  EXPECT_TRUE(t.mtime == epoch);
  ASSERT_EQ(rig.send("m"), 0);
  t = Times{};
  FakeReceiver gone_reader;
  gone_reader.refuse = true;
  receive_now(*rig.queue, rig.reader, 10, kReaderPid, gone_reader);
  EXPECT_TRUE(t.atime == epoch);
}

// A parked write that gets in is an enqueue.
TEST(Queue, ParkedWriterEnteringSetsMtime) {
  Rig rig(with_limits(1, 100));
  ASSERT_EQ(rig.send("a"), 0);
  rig.park_writer("b");
  Times& t = rig.queue->times();
  t = Times{};
  ASSERT_EQ(rig.receive(), "a");
  EXPECT_FALSE(t.mtime == timespec{});
}

// A queue lives while an open file refers to it; its messages are freed with it.
TEST(Queue, LastOpenFileFreesTheQueueAndItsMessages) {
  Budget budget(10, 100);
  Timeouts timeouts;
  auto queue = std::make_shared<Queue>(budget, timeouts, Settings{});
  std::weak_ptr<Queue> alive = queue;
  auto file = std::make_unique<OpenFile>(queue, true, true);
  queue.reset();
  FakeSender to;
  ASSERT_EQ(send_now(file->queue(), *file, bytes_of("abc"), kWriterPid, to), 0);
  EXPECT_EQ(budget.bytes(), 3u);
  EXPECT_FALSE(alive.expired());
  file.reset();
  EXPECT_TRUE(alive.expired());
  EXPECT_EQ(budget.bytes(), 0u);
}

// Bytes a file holds from a framed write belong to the framing they were
// written under; when the queue's framing changes they end as at close.
Settings framed(Framing framing, int64_t maxmsg = 10) {
  Settings s;
  s.framing = framing;
  s.maxmsg = maxmsg;
  return s;
}

TEST(Queue, HeldLineEndsAsAMessageBeforeTheFirstWriteUnderNewFraming) {
  Rig rig(framed(Framing::line));
  const std::string looks_like_a_frame("\x01\0\0\0xyz", 7);  // a u32 header of length 1, then more
  ASSERT_EQ(rig.send(looks_like_a_frame), 0);
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  rig.queue->configure(framed(Framing::u32));
  ASSERT_EQ(rig.send("\x02"), 0);  // the start of a frame's header
  EXPECT_EQ(rig.drain(), Order{std::string("\x07\0\0\0", 4) + looks_like_a_frame});  // reads carry u32 headers now
  ASSERT_EQ(rig.send(std::string("\0\0\0ok", 5)), 0);
  EXPECT_EQ(rig.drain(), Order{std::string("\x02\0\0\0ok", 6)});
}

TEST(Queue, HeldFrameIsDroppedWhenTheQueueTurnsToLines) {
  Rig rig(framed(Framing::u32));
  ASSERT_EQ(rig.send(std::string("\x05\0\0\0ab", 6)), 0);
  rig.queue->configure(framed(Framing::line));
  ASSERT_EQ(rig.send("c\n"), 0);
  EXPECT_EQ(rig.drain(), Order{"c\n"});
}

TEST(Queue, HeldLineIsSentAtCloseAfterFramingBecameNone) {
  Rig rig(framed(Framing::line));
  ASSERT_EQ(rig.send("tail"), 0);
  rig.queue->configure(framed(Framing::none));
  ASSERT_EQ(rig.send("whole"), 0);
  EXPECT_EQ(rig.queue->flush(rig.writer, kWriterPid, kT0), 0);
  EXPECT_EQ(rig.drain(), (Order{"whole", "tail"}));
}

TEST(Queue, HeldLineNeedsRoomLikeAnyMessage) {
  Rig rig(framed(Framing::line, 1));
  ASSERT_EQ(rig.send("full\n"), 0);
  ASSERT_EQ(rig.send("held"), 0);
  rig.queue->configure(framed(Framing::u32, 1));
  const std::string frame("\x01\0\0\0z", 5);
  EXPECT_EQ(rig.send(frame), -EAGAIN);  // no room for the held line: nothing changes
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
  EXPECT_EQ(rig.receive(), std::string("\x05\0\0\0full\n", 9));
  EXPECT_EQ(rig.send(frame), -EAGAIN);  // the held line went in; the frame waits for room
  EXPECT_EQ(rig.receive(), std::string("\x04\0\0\0held", 8));
  ASSERT_EQ(rig.send(frame), 0);
  EXPECT_EQ(rig.drain(), Order{frame});
}

TEST(Queue, ParkedFramedWriteKeepsTheFramingItBeganUnder) {
  Rig rig(framed(Framing::line, 1));
  ASSERT_EQ(rig.send("a\n"), 0);
  Outcome& parked = rig.park_writer("b\nc\n");
  rig.queue->configure(framed(Framing::none, 10));
  EXPECT_EQ(rig.drain(), (Order{"a\n", "b\n", "c\n"}));
  EXPECT_EQ(parked.accepted, 4u);
}

}  // namespace
}  // namespace mqfs::engine
