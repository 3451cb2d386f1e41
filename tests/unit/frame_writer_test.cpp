// FrameWriter: the bytes of a message an open file has begun and not
// finished, and what ending them makes of them (SPEC sections 7 and 14).
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "doubles.hpp"
#include "engine/frame_writer.hpp"

namespace mqfs::engine {
namespace {

std::string text(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TEST(FrameWriter, HoldsTheStartOfAMessageUnderItsFraming) {
  Budget budget(10, 1 << 20);
  FrameWriter frames(budget);
  EXPECT_TRUE(frames.empty());
  ASSERT_TRUE(frames.hold(bytes_of("unfin"), Framing::line));
  ASSERT_TRUE(frames.hold(bytes_of("ished"), Framing::line));
  EXPECT_EQ(text(frames.bytes()), "unfinished");
  EXPECT_EQ(frames.framing(), Framing::line);
  EXPECT_FALSE(frames.writing_message());  // a held line is not a whole-file message
  frames.clear();
  EXPECT_TRUE(frames.empty());
  EXPECT_EQ(budget.bytes(), 0u);
}

TEST(FrameWriter, HoldsNothingWhenTheBudgetHasNoRoom) {
  Budget budget(10, 4);
  FrameWriter frames(budget);
  EXPECT_FALSE(frames.hold(bytes_of("12345"), Framing::u32));
  EXPECT_TRUE(frames.empty());
  EXPECT_EQ(budget.bytes(), 0u);
}

TEST(FrameWriter, HeldBytesAreTheMounts) {
  Budget budget(10, 1 << 20);
  {
    FrameWriter frames(budget);
    ASSERT_TRUE(frames.hold(bytes_of("abc"), Framing::line));
    EXPECT_EQ(budget.bytes(), 3u);
  }
  EXPECT_EQ(budget.bytes(), 0u);
}

// At the last close an unfinished line is sent as it is; an unfinished u32
// frame is no message; whole-file bytes were sent by the FLUSH before. Bytes
// left behind by a change of the queue's framing end as at a close.
TEST(FrameWriter, EndingHeldBytesSendsWhatIsAMessage) {
  Budget budget(10, 1 << 20);
  FrameWriter line(budget), u32(budget), file(budget);
  ASSERT_TRUE(line.hold(bytes_of("no newline"), Framing::line));
  ASSERT_TRUE(u32.hold(bytes_of(std::string_view("\x05\0\0", 3)), Framing::u32));
  ASSERT_EQ(file.append_to_message(bytes_of("whole"), 100), 0);
  EXPECT_TRUE(line.sent_at_release());
  EXPECT_FALSE(u32.sent_at_release());
  EXPECT_FALSE(file.sent_at_release());
  EXPECT_TRUE(line.sent_when_framing_changed());
  EXPECT_FALSE(u32.sent_when_framing_changed());
  EXPECT_TRUE(file.sent_when_framing_changed());
}

TEST(FrameWriter, WritesOfAWholeFileMessageJoinIt) {
  Budget budget(10, 1 << 20);
  FrameWriter frames(budget);
  EXPECT_FALSE(frames.writing_message());
  ASSERT_EQ(frames.append_to_message(bytes_of("one "), 100), 0);
  ASSERT_EQ(frames.append_to_message(bytes_of("two"), 100), 0);
  EXPECT_TRUE(frames.writing_message());
  EXPECT_EQ(frames.framing(), Framing::file);
  EXPECT_EQ(text(frames.bytes()), "one two");
}

// Past msgsize the message is dropped, never sent in part, and later writes
// fail the same way until a close or fsync ends it.
TEST(FrameWriter, AMessagePastMsgsizeIsDroppedAndRefusesLaterWrites) {
  Budget budget(10, 1 << 20);
  FrameWriter frames(budget);
  ASSERT_EQ(frames.append_to_message(bytes_of("12345"), 8), 0);
  EXPECT_EQ(frames.append_to_message(bytes_of("6789"), 8), EMSGSIZE);
  EXPECT_TRUE(frames.empty());
  EXPECT_FALSE(frames.writing_message());
  EXPECT_EQ(budget.bytes(), 0u);
  EXPECT_EQ(frames.append_to_message(bytes_of("x"), 8), EMSGSIZE);
  frames.end_refusal();
  EXPECT_EQ(frames.append_to_message(bytes_of("x"), 8), 0);
  EXPECT_EQ(text(frames.bytes()), "x");
}

TEST(FrameWriter, AMessagePastTheBudgetIsDroppedAndRefusesLaterWrites) {
  Budget budget(10, 6);
  FrameWriter frames(budget);
  ASSERT_EQ(frames.append_to_message(bytes_of("1234"), 100), 0);
  EXPECT_EQ(frames.append_to_message(bytes_of("567"), 100), ENOSPC);
  EXPECT_TRUE(frames.empty());
  EXPECT_EQ(frames.append_to_message(bytes_of("5"), 100), ENOSPC);
  frames.end_refusal();
  EXPECT_EQ(frames.append_to_message(bytes_of("5"), 100), 0);
}

// A writer that did not get the answer did not write those bytes.
TEST(FrameWriter, TakesBackAWriteItsWriterDidNotGetTheAnswerTo) {
  Budget budget(10, 1 << 20);
  FrameWriter frames(budget);
  ASSERT_EQ(frames.append_to_message(bytes_of("kept"), 100), 0);
  ASSERT_EQ(frames.append_to_message(bytes_of("lost"), 100), 0);
  frames.take_back(4);
  EXPECT_EQ(text(frames.bytes()), "kept");
}

TEST(FrameWriter, ACloseTakesTheHeldBytesAsOneMessage) {
  Budget budget(10, 1 << 20);
  FrameWriter frames(budget);
  ASSERT_EQ(frames.append_to_message(bytes_of("whole "), 100), 0);
  ASSERT_EQ(frames.append_to_message(bytes_of("file"), 100), 0);
  MessagePtr message = frames.take_message(7, 1);
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(text(message->bytes()), "whole file");
  EXPECT_EQ(message->priority(), 7);
  EXPECT_TRUE(frames.empty());
  EXPECT_FALSE(frames.writing_message());
  EXPECT_EQ(budget.bytes(), 10u);  // the message's bytes only
}

// The held bytes are charged already: when the budget cannot hold them
// twice, they give way to the message.
TEST(FrameWriter, HeldBytesGiveWayToTheirMessage) {
  Budget budget(10, 10);
  FrameWriter frames(budget);
  ASSERT_EQ(frames.append_to_message(bytes_of("sixsix"), 100), 0);
  MessagePtr message = frames.take_message(0, 1);
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(text(message->bytes()), "sixsix");
  EXPECT_EQ(budget.bytes(), 6u);
}

// A message costs its bytes and its overhead; held bytes, their bytes only.
TEST(FrameWriter, AMessageTheBudgetCannotHoldIsDropped) {
  Budget budget(Limits{.max_bytes = 10, .message_overhead = 2});
  FrameWriter frames(budget);
  ASSERT_EQ(frames.append_to_message(bytes_of("sixsix"), 100), 0);
  ASSERT_TRUE(budget.reserve_bytes(3));  // room for the held bytes, not for their message
  EXPECT_EQ(frames.take_message(0, 1), nullptr);
  EXPECT_TRUE(frames.empty());
  EXPECT_EQ(budget.bytes(), 3u);
}

}  // namespace
}  // namespace mqfs::engine
