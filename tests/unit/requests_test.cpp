// Queue::send and Queue::receive answer every request exactly once — now,
// or through the waiter it was handed to — whatever the file's flags, the
// framing, or an allocation that fails on the way.
#include <cstdlib>
#include <new>

#include "doubles.hpp"

// The test binary's allocator can be told to fail: the n-th allocation from
// now (1: the next one) throws std::bad_alloc.
namespace {
long allocations_until_failure = 0;
}  // namespace

void* operator new(std::size_t size) {
  if (allocations_until_failure > 0 && --allocations_until_failure == 0) throw std::bad_alloc();
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
// GCC takes the free() in a replaced operator delete for a mismatch.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace mqfs::engine {
namespace {

using Order = std::vector<std::string>;

Settings with(int64_t maxmsg, Framing framing = Framing::none) {
  Settings s;
  s.maxmsg = maxmsg;
  s.framing = framing;
  return s;
}

// Runs `call` with the n-th allocation failing; true when it threw.
template <class Call>
bool failing_allocation(long n, Call call) {
  allocations_until_failure = n;
  bool threw = false;
  try {
    call();
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  allocations_until_failure = 0;
  return threw;
}

// The first message of a priority needs a node for that priority's level.
// Each allocation of such a write fails in turn: the exception comes before
// the writer is answered, so the adapter's guard answers it (ENOMEM), once,
// and nothing is queued; or the write succeeds. Never is a writer told its
// message was sent and the message lost.
TEST(AllocationFailure, WriteOfANewPriorityIsAnsweredOnceAndQueuedExactlyWhenAccepted) {
  int throws = 0;
  for (long n = 1; n <= 16; ++n) {
    Rig rig;
    ASSERT_EQ(rig.send("low"), 0);
    rig.writer.set_priority(7);  // new to the queue; no spare level node
    FakeSender to;
    const bool threw = failing_allocation(n, [&] { rig.queue->send(rig.writer, bytes_of("high"), kWriterPid, kT0, to); });
    if (threw) {
      ++throws;
      EXPECT_EQ(to.answers, 0) << "allocation " << n << " failed after the writer was answered";
      to.fail(ENOMEM);  // what the guard does for a request its Reply still owns
    }
    EXPECT_EQ(to.answers, 1);
    const bool sent = to.accepted.has_value();
    EXPECT_EQ(rig.queue->curmsgs(), sent ? 2u : 1u) << "allocation " << n;
    EXPECT_EQ(rig.budget.bytes(), rig.queue->curbytes()) << "allocation " << n;
    EXPECT_EQ(rig.drain(), sent ? (Order{"high", "low"}) : (Order{"low"}));
    if (!threw) break;
  }
  EXPECT_GE(throws, 2) << "both the message and the level's node were made to fail";
}

// A parked writer whose priority is new gets its level's node before it is
// answered: when that fails, the reader that made room keeps its message, the
// writer keeps waiting, and the next room lets it in.
TEST(AllocationFailure, ParkedWriterOfANewPriorityStaysParkedWhenItsLevelCannotBeMade) {
  Rig rig(with(2));
  ASSERT_EQ(rig.send("a"), 0);
  ASSERT_EQ(rig.send("b"), 0);
  OpenFile& urgent = rig.open(false, true);
  urgent.set_priority(9);
  Outcome& parked = rig.park_writer(urgent, "c");
  FakeReceiver to;
  EXPECT_TRUE(failing_allocation(1, [&] { rig.queue->receive(rig.reader, 100, kReaderPid, kT0, to); }));
  EXPECT_EQ(to.answers, 1);
  EXPECT_EQ(to.got, "a");
  EXPECT_TRUE(parked.waiting());
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
  EXPECT_EQ(rig.drain(), (Order{"b", "c"}));
  EXPECT_EQ(parked.answers, 1);
  EXPECT_EQ(parked.accepted, 1u);
}

// A pop that empties a priority keeps its node as the spare: the next new
// priority needs no allocation at all.
TEST(AllocationFailure, EmptiedLevelIsTheSpareForTheNextPriority) {
  Rig rig;
  ASSERT_EQ(rig.send("x"), 0);
  ASSERT_EQ(rig.receive(), "x");
  rig.writer.set_priority(3);
  FakeSender to;
  const std::string text(200, 'm');  // the message is the first allocation; the level would be the second
  EXPECT_FALSE(failing_allocation(2, [&] { rig.queue->send(rig.writer, bytes_of(text), kWriterPid, kT0, to); }));
  EXPECT_EQ(to.accepted, 200u);
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
}

// --- the write entry point ---

TEST(SendRequest, FullQueueParksABlockingWriteAndFailsANonblockingOne) {
  Rig rig(with(1));
  ASSERT_EQ(rig.send("a"), 0);

  FakeSender nonblocking;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("b"), kWriterPid, nonblocking), -EAGAIN);
  EXPECT_FALSE(nonblocking.parked);
  EXPECT_EQ(rig.budget.bytes(), 1u);  // it holds nothing

  Outcome blocking;
  FakeWrite write(blocking);
  rig.queue->send(rig.writer, bytes_of("c"), kWriterPid, kT0, write);
  EXPECT_TRUE(blocking.parked);
  EXPECT_EQ(blocking.answers, 0);
  EXPECT_EQ(rig.queue->senders_waiting(), 1u);
  EXPECT_EQ(rig.drain(), (Order{"a", "c"}));
  EXPECT_EQ(blocking.answers, 1);
  EXPECT_EQ(blocking.accepted, 1u);
}

// A blocking write to a full queue that can never succeed does not wait:
// EMSGSIZE before EAGAIN, as mq_send; ENOSPC when the mount cannot hold its
// message while it waits.
TEST(SendRequest, RefusalsAreAnsweredAtOnceAndNeverWait) {
  Settings s = with(1);
  s.msgsize = 4;
  Rig rig(s, 6);
  ASSERT_EQ(rig.send("1234"), 0);  // full
  Outcome too_long, no_room;
  FakeWrite w1(too_long), w2(no_room);
  rig.queue->send(rig.writer, bytes_of("12345"), kWriterPid, kT0, w1);
  EXPECT_EQ(too_long.answers, 1);
  EXPECT_EQ(too_long.error, EMSGSIZE);
  EXPECT_FALSE(too_long.parked);
  rig.queue->send(rig.writer, bytes_of("5678"), kWriterPid, kT0, w2);
  EXPECT_EQ(no_room.answers, 1);
  EXPECT_EQ(no_room.error, ENOSPC);
  EXPECT_FALSE(no_room.parked);
  EXPECT_EQ(rig.queue->senders_waiting(), 0u);
  EXPECT_EQ(rig.budget.bytes(), 4u);
}

// A framed write on a queue that fills part way is a pipe's write: O_NONBLOCK
// reports the bytes of the messages queued (a short write); a blocking one
// waits with the rest and reports all of it.
TEST(SendRequest, FramedWriteThatFillsTheQueueIsShortOrWaits) {
  Rig rig(with(2, Framing::line));
  FakeSender nonblocking;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("a\nb\nc\n"), kWriterPid, nonblocking), 4);
  EXPECT_EQ(nonblocking.answers, 1);
  EXPECT_EQ(rig.queue->curmsgs(), 2u);

  FakeSender refused;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("d\n"), kWriterPid, refused), -EAGAIN);

  Outcome blocking;
  FakeWrite write(blocking);
  ASSERT_EQ(rig.receive(), "a\nb\n");  // the stream reader takes both
  ASSERT_EQ(rig.send("c\nd\n"), 0);
  rig.queue->send(rig.writer, bytes_of("e\nf\ng\n"), kWriterPid, kT0, write);
  EXPECT_TRUE(blocking.parked);
  EXPECT_EQ(blocking.answers, 0);
  EXPECT_EQ(rig.drain(), (Order{"c\nd\n", "e\nf\n", "g\n"}));
  EXPECT_EQ(blocking.answers, 1);
  EXPECT_EQ(blocking.accepted, 6u);
}

// A line longer than msgsize after some lines were queued: a short write,
// answered once; alone, EMSGSIZE.
TEST(SendRequest, FramedWriteReportsTheLinesBeforeARefusedOne) {
  Settings s = with(10, Framing::line);
  s.msgsize = 4;
  Rig rig(s);
  FakeSender to;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("ab\ntoo long\n"), kWriterPid, to), 3);
  FakeSender alone;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("too long\n"), kWriterPid, alone), -EMSGSIZE);
  EXPECT_EQ(rig.drain(), (Order{"ab\n"}));
}

// --- the read entry point ---

TEST(ReceiveRequest, EmptyQueueParksABlockingReadAndFailsANonblockingOne) {
  Rig rig;
  FakeReceiver nonblocking;
  EXPECT_EQ(receive_now(*rig.queue, rig.reader, 10, kReaderPid, nonblocking), 0);
  EXPECT_EQ(nonblocking.error, EAGAIN);
  EXPECT_FALSE(nonblocking.parked);
  EXPECT_EQ(rig.queue->receivers_waiting(), 0u);

  Outcome blocking;
  FakeRead read(blocking);
  rig.queue->receive(rig.reader, 10, kReaderPid, kT0, read);
  EXPECT_TRUE(blocking.parked);
  EXPECT_EQ(blocking.answers, 0);
  ASSERT_EQ(rig.send("m"), 0);
  EXPECT_EQ(blocking.answers, 1);
  EXPECT_EQ(blocking.got, "m");
}

TEST(ReceiveRequest, FrameLargerThanTheBufferFailsWithEmsgsizeAndTakesNothing) {
  Rig rig(with(10, Framing::u32));
  ASSERT_EQ(rig.send(std::string("\x05\0\0\0hello", 9)), 0);
  Outcome outcome;
  FakeRead read(outcome);
  rig.queue->receive(rig.reader, 8, kReaderPid, kT0, read);
  EXPECT_EQ(outcome.answers, 1);
  EXPECT_EQ(outcome.error, EMSGSIZE);
  EXPECT_FALSE(outcome.parked);
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
}

}  // namespace
}  // namespace mqfs::engine
