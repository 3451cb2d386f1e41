// OpenFile: read mode (message or stream), priority override, and the rest of
// a partially read message.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "doubles.hpp"
#include "engine/open_file.hpp"

namespace mqfs::engine {
namespace {

Settings in_mode(ReadMode mode) {
  Settings s;
  s.read_mode = mode;
  return s;
}

TEST(OpenFile, RemembersItsAccessMode) {
  Rig rig;
  OpenFile& ro = rig.open(true, false);
  OpenFile& wo = rig.open(false, true);
  EXPECT_TRUE(ro.reads());
  EXPECT_FALSE(ro.writes());
  EXPECT_FALSE(wo.reads());
  EXPECT_TRUE(wo.writes());
  EXPECT_EQ(&ro.queue(), rig.queue.get());
}

TEST(OpenFile, ReadModeFollowsTheQueueUnlessSetOnTheFile) {
  Rig rig(in_mode(ReadMode::stream));
  OpenFile& file = rig.open();
  EXPECT_EQ(file.read_mode(), ReadMode::stream);
  Settings s = rig.queue->settings();
  s.read_mode = ReadMode::message;
  rig.queue->configure(s);
  EXPECT_EQ(file.read_mode(), ReadMode::message);
  file.set_read_mode(ReadMode::stream);
  EXPECT_EQ(file.read_mode(), ReadMode::stream);
  file.set_read_mode(std::nullopt);
  EXPECT_EQ(file.read_mode(), ReadMode::message);
}

TEST(OpenFile, PriorityFollowsTheQueueUnlessSetOnTheFile) {
  Settings s;
  s.priority = 3;
  Rig rig(s);
  OpenFile& file = rig.open();
  EXPECT_EQ(file.priority(), 3);
  file.set_priority(kMaxPriority);
  EXPECT_EQ(file.priority(), kMaxPriority);
  file.set_priority(0);  // 0 set on the file overrides the queue's 3
  EXPECT_EQ(file.priority(), 0);
  file.set_priority(std::nullopt);
  EXPECT_EQ(file.priority(), 3);
}

// `cat q` prints one message and exits.
TEST(OpenFile, MessageModeDeliversOneMessageThenEndOfFile) {
  Rig rig;  // the queue's default read mode is message
  ASSERT_EQ(rig.send("first"), 0);
  ASSERT_EQ(rig.send("second"), 0);
  OpenFile& cat = rig.open(true, false);
  EXPECT_EQ(cat.read_mode(), ReadMode::message);
  EXPECT_FALSE(cat.at_end());
  EXPECT_EQ(rig.receive(cat), "first");
  EXPECT_TRUE(cat.at_end());
  EXPECT_EQ(rig.receive(cat), "");  // end of file, not a wait
  EXPECT_EQ(rig.receive(cat), "");
  EXPECT_EQ(rig.queue->curmsgs(), 1u);  // the second message is left for others
  EXPECT_EQ(rig.queue->received(), 1u);
  OpenFile& next = rig.open(true, false);
  EXPECT_EQ(rig.receive(next), "second");
}

TEST(OpenFile, MessageModeEndOfFileDoesNotWaitOnAnEmptyQueue) {
  Rig rig;
  OpenFile& cat = rig.open(true, false);
  ASSERT_EQ(rig.send("only"), 0);
  ASSERT_EQ(rig.receive(cat), "only");
  EXPECT_EQ(rig.receive(cat), "");
}

TEST(OpenFile, MessageModeBeforeTheFirstMessageWaits) {
  Rig rig;
  OpenFile& cat = rig.open(true, false);
  EXPECT_EQ(rig.receive(cat), std::nullopt);
  EXPECT_FALSE(cat.at_end());
}

// `cat q` in stream mode is a consumer that runs until interrupted.
TEST(OpenFile, StreamModeDeliversMessageAfterMessage) {
  Rig rig(in_mode(ReadMode::stream));
  OpenFile& cat = rig.open(true, false);
  for (const char* m : {"a", "b", "c"}) ASSERT_EQ(rig.send(m), 0);
  EXPECT_EQ(rig.receive(cat), "a");
  EXPECT_FALSE(cat.at_end());
  EXPECT_EQ(rig.receive(cat), "b");
  EXPECT_EQ(rig.receive(cat), "c");
  EXPECT_EQ(rig.receive(cat), std::nullopt);  // empty: waits, never end of file
  EXPECT_FALSE(cat.at_end());
}

TEST(OpenFile, FileSwitchedToStreamAfterItsMessageReadsOn) {
  Rig rig;
  OpenFile& file = rig.open(true, false);
  ASSERT_EQ(rig.send("a"), 0);
  ASSERT_EQ(rig.send("b"), 0);
  ASSERT_EQ(rig.receive(file), "a");
  ASSERT_TRUE(file.at_end());
  file.set_read_mode(ReadMode::stream);
  EXPECT_FALSE(file.at_end());
  EXPECT_EQ(rig.receive(file), "b");
  file.set_read_mode(ReadMode::message);
  EXPECT_TRUE(file.at_end());
}

// Byte-at-a-time readers (bash's `read` builtin) get the whole message.
TEST(OpenFile, SmallBufferGetsTheFirstPartAndTheRestStaysWithTheFile) {
  Rig rig;
  OpenFile& file = rig.open(true, false);
  ASSERT_EQ(rig.send("hey"), 0);
  ASSERT_EQ(rig.send("next"), 0);
  EXPECT_EQ(rig.receive(file, 1), "h");
  EXPECT_TRUE(file.holds_rest());
  EXPECT_FALSE(file.at_end());  // not while the rest is unread
  EXPECT_EQ(rig.receive(file, 1), "e");
  EXPECT_EQ(rig.receive(file, 1), "y");
  EXPECT_FALSE(file.holds_rest());
  EXPECT_TRUE(file.at_end());
  EXPECT_EQ(rig.receive(file, 1), "");
  EXPECT_EQ(rig.queue->curmsgs(), 1u);
}

TEST(OpenFile, RestIsReadBeforeTheNextMessageAndNeverJoinedToIt) {
  Rig rig;
  ASSERT_EQ(rig.send("abcdef"), 0);
  ASSERT_EQ(rig.send("ghi"), 0);
  EXPECT_EQ(rig.receive(rig.reader, 4), "abcd");
  EXPECT_EQ(rig.receive(rig.reader, 100), "ef");
  EXPECT_EQ(rig.receive(rig.reader, 100), "ghi");
}

// The rest is the file's: another reader of the queue gets the next message.
TEST(OpenFile, RestBelongsToItsFileOnly) {
  Rig rig;
  ASSERT_EQ(rig.send("abcdef"), 0);
  ASSERT_EQ(rig.send("ghi"), 0);
  OpenFile& other = rig.open(true, false);
  other.set_read_mode(ReadMode::stream);
  EXPECT_EQ(rig.receive(rig.reader, 2), "ab");
  EXPECT_EQ(rig.receive(other, 100), "ghi");
  EXPECT_EQ(rig.receive(other, 100), std::nullopt);
  EXPECT_EQ(rig.receive(rig.reader, 100), "cdef");
}

// The rest is read even when the queue is empty.
TEST(OpenFile, RestIsReadWithoutWaiting) {
  Rig rig;
  ASSERT_EQ(rig.send("abc"), 0);
  ASSERT_EQ(rig.receive(rig.reader, 1), "a");
  ASSERT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.receive(rig.reader, 100), "bc");
}

TEST(OpenFile, RefusedReadOfTheRestKeepsIt) {
  Rig rig;
  ASSERT_EQ(rig.send("abcd"), 0);
  ASSERT_EQ(rig.receive(rig.reader, 1), "a");
  FakeReceiver gone;
  gone.refuse = true;
  EXPECT_EQ(receive_now(*rig.queue, rig.reader, 2, kReaderPid, gone), 1);
  EXPECT_EQ(rig.receive(rig.reader, 100), "bcd");
}

// A part still unread when the file is closed is dropped: the message was
// delivered, so it does not come back to the queue.
TEST(OpenFile, ClosingDropsTheRest) {
  Rig rig;
  OpenFile& file = rig.open(true, false);
  ASSERT_EQ(rig.send("abcd"), 0);
  ASSERT_EQ(rig.receive(file, 1), "a");
  rig.close(file);
  EXPECT_EQ(rig.queue->curmsgs(), 0u);
  EXPECT_EQ(rig.receive(), std::nullopt);
  EXPECT_EQ(rig.budget.bytes(), 0u);
}

TEST(OpenFile, ZeroByteReadLeavesTheRestAlone) {
  Rig rig;
  ASSERT_EQ(rig.send("abc"), 0);
  ASSERT_EQ(rig.receive(rig.reader, 1), "a");
  EXPECT_EQ(rig.receive(rig.reader, 0), "");
  EXPECT_EQ(rig.receive(rig.reader, 100), "bc");
}

}  // namespace
}  // namespace mqfs::engine
