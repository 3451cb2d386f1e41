// File framing (SPEC section 14): what one open file writes up to its close
// or fsync is one message.
#include "doubles.hpp"

namespace mqfs::engine {
namespace {

using Order = std::vector<std::string>;
using namespace std::chrono_literals;

Settings whole_file(int64_t maxmsg = 10, int64_t msgsize = 100) {
  Settings s;
  s.framing = Framing::file;
  s.maxmsg = maxmsg;
  s.msgsize = msgsize;
  return s;
}

using Ending = Queue::Ending;

// A close(2) (or fsync(2)) of `file`, as the adapter makes it.
Outcome& end_message(Rig& rig, OpenFile& file, Ending ending = Ending::close, bool nonblocking = false,
                     Clock::time_point now = kT0) {
  Outcome& outcome = rig.outcomes.emplace_back();
  FakeWrite request(outcome);
  with_nonblocking(file, nonblocking, [&] { rig.queue->end_message(file, kWriterPid, now, ending, request); });
  return outcome;
}

bool done(const Outcome& outcome) { return outcome.answers == 1 && outcome.accepted == 0u && outcome.error == 0; }

TEST(FileFraming, WritesUpToTheCloseAreOneMessage) {
  Rig rig(whole_file());
  ASSERT_EQ(rig.send("one "), 0);
  ASSERT_EQ(rig.send("two "), 0);
  ASSERT_EQ(rig.send("three"), 0);
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_TRUE(rig.writer.writing_message());
  EXPECT_EQ(rig.budget.bytes(), 16u);  // the held bytes are the mount's
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_FALSE(rig.writer.writing_message());
  EXPECT_EQ(rig.queue->sent(), 1u);
  EXPECT_EQ(rig.drain(), (Order{"one two three"}));
}

TEST(FileFraming, EachOpenFileWritesItsOwnMessage) {
  Rig rig(whole_file());
  OpenFile& other = rig.open(false, true);
  ASSERT_EQ(rig.send("a1"), 0);
  ASSERT_EQ(rig.send(other, "b1"), 0);
  ASSERT_EQ(rig.send("a2"), 0);
  EXPECT_TRUE(done(end_message(rig, other)));
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_EQ(rig.drain(), (Order{"b1", "a1a2"}));
}

TEST(FileFraming, ACloseWithNothingWrittenSendsNothing) {
  Rig rig(whole_file());
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  ASSERT_EQ(rig.send("x"), 0);
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_TRUE(done(end_message(rig, rig.writer)));  // a second close of a copy
  EXPECT_EQ(rig.drain(), (Order{"x"}));
}

// Past msgsize the message is dropped, never sent in part; the rest of it is
// refused too, until a close ends it.
TEST(FileFraming, MessagePastMsgsizeIsDroppedWhole) {
  Rig rig(whole_file(10, 8));
  ASSERT_EQ(rig.send("12345"), 0);
  EXPECT_EQ(rig.send("6789"), -EMSGSIZE);
  EXPECT_EQ(rig.budget.bytes(), 0u);
  EXPECT_EQ(rig.send("x"), -EMSGSIZE);
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  ASSERT_EQ(rig.send("fresh"), 0);
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_EQ(rig.drain(), (Order{"fresh"}));
}

TEST(FileFraming, HeldBytesPastTheBudgetFailWithEnospc) {
  Rig rig(whole_file(10, 1000), 10);
  ASSERT_EQ(rig.send("123456"), 0);
  EXPECT_EQ(rig.send("789012"), -ENOSPC);
  EXPECT_EQ(rig.budget.bytes(), 0u);
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
}

// A writer that did not get the answer to its write did not write.
TEST(FileFraming, RefusedWriteIsNotPartOfTheMessage) {
  Rig rig(whole_file());
  ASSERT_EQ(rig.send("kept"), 0);
  FakeSender gone;
  gone.refuse = true;
  send_now(*rig.queue, rig.writer, bytes_of("lost"), kWriterPid, gone);
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_EQ(rig.drain(), (Order{"kept"}));
}

// A writer killed by a signal sends nothing.
TEST(FileFraming, DiscardDropsTheMessage) {
  Rig rig(whole_file());
  ASSERT_EQ(rig.send("half"), 0);
  EXPECT_TRUE(done(end_message(rig, rig.writer, Ending::killed)));
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.budget.bytes(), 0u);
}

// The last close (release) after a FLUSH that sent nothing drops what is held.
TEST(FileFraming, ReleaseDropsWhatIsHeld) {
  Rig rig(whole_file());
  ASSERT_EQ(rig.send("held"), 0);
  EXPECT_EQ(rig.queue->flush(rig.writer, kWriterPid, kT0), 0);
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.budget.bytes(), 0u);
}

TEST(FileFraming, WritesNeverWaitForRoom) {
  Rig rig(whole_file(1));
  ASSERT_EQ(rig.send("a"), 0);
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  ASSERT_EQ(rig.send("b"), 0);  // the queue is full; the message is not sent yet
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
}

// A full queue makes the close wait; the message is queued exactly when the
// close is answered 0.
TEST(FileFraming, CloseOfAFullQueueWaitsForRoom) {
  Rig rig(whole_file(1));
  ASSERT_EQ(rig.send("a"), 0);
  ASSERT_TRUE(done(end_message(rig, rig.writer)));
  OpenFile& second = rig.open(false, true);
  ASSERT_EQ(rig.send(second, "b"), 0);
  Outcome& close = end_message(rig, second);
  EXPECT_TRUE(close.parked);
  EXPECT_TRUE(close.waiting());
  EXPECT_EQ(rig.queue->senders_waiting(), 1u);
  EXPECT_EQ(rig.receive(), "a");
  EXPECT_EQ(close.answers, 1);
  EXPECT_EQ(close.error, 0);
  EXPECT_EQ(rig.drain(), (Order{"b"}));
}

TEST(FileFraming, InterruptedCloseQueuesNothing) {
  Rig rig(whole_file(1));
  ASSERT_EQ(rig.send("a"), 0);
  ASSERT_TRUE(done(end_message(rig, rig.writer)));
  ASSERT_EQ(rig.send("b"), 0);
  Outcome& close = end_message(rig, rig.writer);
  ASSERT_TRUE(close.parked);
  rig.queue->cancel(*close.waiter, EINTR);
  EXPECT_EQ(close.answers, 1);
  EXPECT_EQ(close.error, EINTR);
  EXPECT_EQ(rig.drain(), (Order{"a"}));
  EXPECT_EQ(rig.budget.bytes(), 0u);
}

TEST(FileFraming, CloseTimesOutAfterSendTimeout) {
  Settings s = whole_file(1);
  s.send_timeout_ms = 50;
  Rig rig(s);
  ASSERT_EQ(rig.send("a"), 0);
  ASSERT_TRUE(done(end_message(rig, rig.writer)));
  ASSERT_EQ(rig.send("b"), 0);
  Outcome& close = end_message(rig, rig.writer);
  rig.timeouts.expire(kT0 + 50ms);
  EXPECT_EQ(close.error, ETIMEDOUT);
  EXPECT_EQ(rig.drain(), (Order{"a"}));
}

// O_NONBLOCK: EAGAIN, and the message stays with the open file for its next
// close (another descriptor of it).
TEST(FileFraming, NonblockingCloseOfAFullQueueFailsWithEagain) {
  Rig rig(whole_file(1));
  ASSERT_EQ(rig.send("a"), 0);
  ASSERT_TRUE(done(end_message(rig, rig.writer)));
  ASSERT_EQ(rig.send("b"), 0);
  Outcome& close = end_message(rig, rig.writer, Ending::close, true);
  EXPECT_EQ(close.answers, 1);
  EXPECT_EQ(close.error, EAGAIN);
  EXPECT_FALSE(close.parked);
  EXPECT_TRUE(rig.writer.writing_message());
  EXPECT_EQ(rig.receive(), "a");
  EXPECT_TRUE(done(end_message(rig, rig.writer, Ending::close, true)));
  EXPECT_EQ(rig.drain(), (Order{"b"}));
}

TEST(FileFraming, FsyncEndsAMessageButNotAHeldLine) {
  Rig rig(whole_file());
  ASSERT_EQ(rig.send("a"), 0);
  EXPECT_TRUE(done(end_message(rig, rig.writer, Ending::fsync)));
  EXPECT_EQ(rig.queue->curmsgs(), 1u);

  Settings line = whole_file();
  line.framing = Framing::line;
  rig.queue->configure(line);
  ASSERT_EQ(rig.send("unfinished"), 0);
  EXPECT_TRUE(done(end_message(rig, rig.writer, Ending::fsync)));
  EXPECT_EQ(rig.queue->curmsgs(), 1u);  // a line waits for its newline or its close
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_EQ(rig.queue->curmsgs(), 2u);
}

// Reads are one message each, as without framing.
TEST(FileFraming, ReadsTakeOneMessageEach) {
  Rig rig(whole_file());
  ASSERT_EQ(rig.send("first"), 0);
  ASSERT_TRUE(done(end_message(rig, rig.writer)));
  ASSERT_EQ(rig.send("second"), 0);
  ASSERT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_EQ(rig.receive(3), "fir");
  EXPECT_EQ(rig.receive(), "st");
  EXPECT_EQ(rig.receive(), "second");
}

// A message held when the queue's framing changes ends as at close before
// the first write under the new framing; a held line joins a whole-file message.
TEST(FileFraming, FramingChangesEndOrJoinTheMessageUnderWay) {
  Rig rig(whole_file());
  ASSERT_EQ(rig.send("whole"), 0);
  Settings line = whole_file();
  line.framing = Framing::line;
  rig.queue->configure(line);
  ASSERT_EQ(rig.send("x\n"), 0);
  EXPECT_EQ(rig.queue->curmsgs(), 2u);
  EXPECT_EQ(rig.receive(rig.open(true, false)), "whole");
  EXPECT_EQ(rig.receive(rig.open(true, false)), "x\n");

  ASSERT_EQ(rig.send("start of a line "), 0);
  rig.queue->configure(whole_file());
  ASSERT_EQ(rig.send("and the rest"), 0);
  EXPECT_TRUE(done(end_message(rig, rig.writer)));
  EXPECT_EQ(rig.drain(), (Order{"start of a line and the rest"}));
}

}  // namespace
}  // namespace mqfs::engine
