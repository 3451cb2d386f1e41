// ReadCursor: the unread rest of a delivered message, and end of file in
// message read mode (SPEC section 3).
#include <gtest/gtest.h>

#include <string>

#include "doubles.hpp"
#include "engine/read_cursor.hpp"

namespace mqfs::engine {
namespace {

class ReadCursorTest : public ::testing::Test {
 protected:
  MessagePtr make(std::string_view text) {
    MessagePtr message = Message::make(budget, bytes_of(text), 0, 1);
    EXPECT_NE(message, nullptr);
    return message;
  }
  // The next part of the rest for a reader of `size` bytes, as it got it.
  std::string read(std::size_t size) {
    FakeReceiver to;
    cursor.read_rest(size, to);
    EXPECT_EQ(to.answers, 1);
    return to.got.value_or("");
  }

  Budget budget{10, 1 << 20};
  ReadCursor cursor;
};

TEST_F(ReadCursorTest, StartsWithNothingDeliveredAndNoRest) {
  EXPECT_FALSE(cursor.holds_rest());
  EXPECT_FALSE(cursor.at_end(ReadMode::message));
  EXPECT_FALSE(cursor.at_end(ReadMode::stream));
}

// bash's `read` builtin reads a message a byte at a time.
TEST_F(ReadCursorTest, KeepsTheRestOfAMessageForTheNextReads) {
  cursor.keep_rest(make("hello"), 2);
  ASSERT_TRUE(cursor.holds_rest());
  EXPECT_EQ(read(1), "l");
  EXPECT_EQ(read(1), "l");
  EXPECT_TRUE(cursor.holds_rest());
  EXPECT_EQ(read(100), "o");  // never more than the rest
  EXPECT_FALSE(cursor.holds_rest());
  EXPECT_EQ(budget.bytes(), 0u);  // the message is freed once read
}

TEST_F(ReadCursorTest, KeepsNothingOfAMessageReadWhole) {
  cursor.keep_rest(make("whole"), 5);
  EXPECT_FALSE(cursor.holds_rest());
  EXPECT_EQ(budget.bytes(), 0u);
}

// A reader interrupted before its read completed did not read the part.
TEST_F(ReadCursorTest, APartTheReaderDidNotGetStaysUnread) {
  cursor.keep_rest(make("abcdef"), 2);
  FakeReceiver interrupted;
  interrupted.refuse = true;
  cursor.read_rest(2, interrupted);
  EXPECT_EQ(interrupted.answers, 1);
  EXPECT_EQ(read(2), "cd");
  EXPECT_EQ(read(2), "ef");
  EXPECT_FALSE(cursor.holds_rest());
}

// `cat q` prints one message, then reads end of file.
TEST_F(ReadCursorTest, MessageModeIsAtEndOnceItsMessageIsDeliveredAndRead) {
  cursor.delivered();
  cursor.keep_rest(make("abc"), 1);
  EXPECT_FALSE(cursor.at_end(ReadMode::message));  // not while the rest is unread
  EXPECT_EQ(read(10), "bc");
  EXPECT_TRUE(cursor.at_end(ReadMode::message));
  EXPECT_FALSE(cursor.at_end(ReadMode::stream));  // a stream goes on
}

// A part still unread when the file is closed is dropped: it was delivered.
TEST_F(ReadCursorTest, DroppingTheCursorFreesTheRest) {
  {
    ReadCursor closing;
    closing.keep_rest(make("unread"), 1);
    EXPECT_EQ(budget.bytes(), 6u);
  }
  EXPECT_EQ(budget.bytes(), 0u);
}

}  // namespace
}  // namespace mqfs::engine
