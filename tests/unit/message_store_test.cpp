// Message and MessageStore: one FIFO per priority, highest priority first.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "doubles.hpp"
#include "engine/message.hpp"

namespace mqfs::engine {
namespace {

std::string text(const Message& message) {
  return std::string(reinterpret_cast<const char*>(message.bytes().data()), message.size());
}

class MessageStoreTest : public ::testing::Test {
 protected:
  MessagePtr make(std::string_view bytes, Priority priority = 0) {
    MessagePtr message = Message::make(budget, bytes_of(bytes), priority);
    EXPECT_NE(message, nullptr);
    message->set_id(++last_id);  // as a store gives them: in send order
    return message;
  }
  void push(std::string_view bytes, Priority priority = 0) {
    store.reserve(priority);
    store.push_back(make(bytes, priority));
  }

  // Pops every message, in the order a receive gets them.
  std::vector<std::string> pop_all() {
    std::vector<std::string> got;
    while (MessagePtr m = store.pop_front()) got.push_back(text(*m));
    return got;
  }

  // Puts messages back in the order given, and checks the queue order.
  void put_back(std::vector<MessagePtr>& taken, const std::vector<std::size_t>& order) {
    for (std::size_t i : order) {
      store.reserve(taken[i]->priority());
      store.put_back(std::move(taken[i]));
    }
  }

  Budget budget{10, 1 << 20};
  MessageStore store{budget};
  uint64_t last_id = 0;
};

using Order = std::vector<std::string>;

TEST(Message, CopiesTheBytesAndKeepsThePriority) {
  Budget budget(10, 100);
  std::string source = "hello";
  MessagePtr message = Message::make(budget, bytes_of(source), 7);
  source[0] = 'J';  // the message owns a copy
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(text(*message), "hello");
  EXPECT_EQ(message->size(), 5u);
  EXPECT_EQ(message->priority(), 7);
}

TEST(Message, HoldsItsBytesInTheBudgetUntilFreed) {
  Budget budget(10, 100);
  MessagePtr message = Message::make(budget, bytes_of("12345"), 0);
  EXPECT_EQ(budget.bytes(), 5u);
  message.reset();
  EXPECT_EQ(budget.bytes(), 0u);
}

// A framed message whose start was held from an earlier write.
TEST(Message, MadeOfAHeadAndATail) {
  Budget budget(10, 100);
  MessagePtr message = Message::make(budget, bytes_of("hel"), bytes_of("lo"), 2);
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(text(*message), "hello");
  EXPECT_EQ(message->priority(), 2);
  EXPECT_EQ(budget.bytes(), 5u);
  EXPECT_EQ(Message::make(budget, bytes_of(std::string(50, 'x')), bytes_of(std::string(46, 'y')), 0), nullptr);
  EXPECT_EQ(budget.bytes(), 5u);
}

TEST(Message, IsNotMadeWhenTheBudgetHasNoRoom) {
  Budget budget(10, 4);
  EXPECT_EQ(Message::make(budget, bytes_of("12345"), 0), nullptr);
  EXPECT_EQ(budget.bytes(), 0u);
  EXPECT_NE(Message::make(budget, bytes_of("1234"), 0), nullptr);  // exactly the cap fits
}

TEST_F(MessageStoreTest, StartsEmpty) {
  EXPECT_TRUE(store.empty());
  EXPECT_EQ(store.count(), 0u);
  EXPECT_EQ(store.bytes(), 0u);
  EXPECT_EQ(store.front(), nullptr);
  EXPECT_EQ(store.pop_front(), nullptr);
}

TEST_F(MessageStoreTest, OnePriorityIsFifo) {
  push("a");
  push("b");
  push("c");
  EXPECT_EQ(pop_all(), (Order{"a", "b", "c"}));
}

TEST_F(MessageStoreTest, HighestPriorityFirstAndFifoWithinEachPriority) {
  push("low1", 1);
  push("high1", 5);
  push("low2", 1);
  push("high2", 5);
  push("zero", 0);
  push("top", kMaxPriority);
  push("low3", 1);
  EXPECT_EQ(pop_all(), (Order{"top", "high1", "high2", "low1", "low2", "low3", "zero"}));
}

TEST_F(MessageStoreTest, FrontIsWhatPopTakes) {
  push("a", 1);
  push("b", 2);
  ASSERT_NE(store.front(), nullptr);
  EXPECT_EQ(text(*store.front()), "b");
  EXPECT_EQ(store.count(), 2u);  // front() takes nothing
  EXPECT_EQ(text(*store.pop_front()), "b");
  EXPECT_EQ(text(*store.front()), "a");
}

TEST_F(MessageStoreTest, CountsMessagesAndBytes) {
  push("abc", 1);
  push("de", 2);
  EXPECT_EQ(store.count(), 2u);
  EXPECT_EQ(store.bytes(), 5u);
  store.pop_front();
  EXPECT_EQ(store.count(), 1u);
  EXPECT_EQ(store.bytes(), 3u);
}

// An emptied priority is erased and its map node reused for the next new
// priority; the reused node must take its new priority's place in the order.
TEST_F(MessageStoreTest, PrioritiesComeAndGo) {
  push("x", 7);
  pop_all();
  push("a", 2);
  push("b", 9);
  push("c", 2);
  push("d", 5);
  EXPECT_EQ(text(*store.pop_front()), "b");
  push("e", 9);  // 9 was emptied and comes back
  push("f", 1);
  EXPECT_EQ(pop_all(), (Order{"e", "d", "a", "c", "f"}));
  EXPECT_TRUE(store.empty());
}

// put_back returns a message to where it was taken: ahead of the younger
// messages of its own priority, not ahead of higher priorities.
TEST_F(MessageStoreTest, PutBackReturnsAMessageAheadOfYoungerOnesOfItsPriority) {
  push("a", 1);
  push("b", 1);
  push("h", 3);
  MessagePtr h = store.pop_front();
  MessagePtr a = store.pop_front();
  store.reserve(a->priority());
  store.put_back(std::move(a));
  EXPECT_EQ(store.count(), 2u);
  EXPECT_EQ(store.bytes(), 2u);
  push("h2", 3);
  EXPECT_EQ(pop_all(), (Order{"h2", "a", "b"}));
}

TEST_F(MessageStoreTest, PutBackIntoAnEmptyPriorityKeepsLaterPushesBehindIt) {
  MessagePtr a = make("a", 4);
  store.reserve(4);
  store.put_back(std::move(a));
  push("b", 4);
  push("c", 4);
  EXPECT_EQ(pop_all(), (Order{"a", "b", "c"}));
}

// Messages taken together come back in id order whatever the order they
// are returned in: in order (leases running out), reversed, or mixed.
TEST_F(MessageStoreTest, PutBackKeepsIdOrderWhateverTheOrderOfReturn) {
  for (const std::vector<std::size_t>& order :
       {std::vector<std::size_t>{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {1, 3, 0, 2}}) {
    for (const char* m : {"a", "b", "c", "d", "e", "f"}) push(m, 2);
    std::vector<MessagePtr> taken;
    for (int i = 0; i < 4; ++i) taken.push_back(store.pop_front());
    put_back(taken, order);
    EXPECT_EQ(pop_all(), (Order{"a", "b", "c", "d", "e", "f"}));
  }
}

// Peeking walks the queue in order from a position that outlives the
// messages around it.
TEST_F(MessageStoreTest, NextAfterWalksTheQueueInOrder) {
  push("a", 1);
  push("b", 5);
  push("c", 1);
  Order seen;
  std::optional<std::pair<Priority, uint64_t>> at;
  while (const Message* m = store.next_after(at)) {
    seen.push_back(text(*m));
    at.emplace(m->priority(), m->id());
  }
  EXPECT_EQ(seen, (Order{"b", "a", "c"}));
  at.emplace(Priority{1}, uint64_t{1});  // after "a"
  store.pop_front();
  store.pop_front();  // "b" and "a" are gone
  ASSERT_NE(store.next_after(at), nullptr);
  EXPECT_EQ(text(*store.next_after(at)), "c");
  push("d", 3);  // ahead of the position: not seen from it
  EXPECT_EQ(text(*store.next_after(at)), "c");
}

TEST_F(MessageStoreTest, ForEachVisitsFrontToBackUntilToldToStop) {
  push("a", 1);
  push("b", 2);
  push("c", 1);
  Order all;
  store.for_each([&](const Message& m) {
    all.push_back(text(m));
    return true;
  });
  EXPECT_EQ(all, (Order{"b", "a", "c"}));

  Order some;
  store.for_each([&](const Message& m) {
    some.push_back(text(m));
    return some.size() < 2;
  });
  EXPECT_EQ(some, (Order{"b", "a"}));
  EXPECT_EQ(store.count(), 3u);
}

TEST_F(MessageStoreTest, ClearFreesEveryMessage) {
  push("abc", 1);
  push("de", 2);
  EXPECT_EQ(budget.bytes(), 5u);
  store.clear();
  EXPECT_TRUE(store.empty());
  EXPECT_EQ(store.bytes(), 0u);
  EXPECT_EQ(budget.bytes(), 0u);
  push("f", 1);  // still usable after clear
  EXPECT_EQ(pop_all(), (Order{"f"}));
}

TEST(MessageStore, DestructionGivesTheBytesBack) {
  Budget budget(10, 100);
  {
    MessageStore store(budget);
    store.reserve(0);
    store.push_back(Message::make(budget, bytes_of("abc"), 0));
    store.reserve(3);
    store.push_back(Message::make(budget, bytes_of("de"), 3));
    EXPECT_EQ(budget.bytes(), 5u);
  }
  EXPECT_EQ(budget.bytes(), 0u);
}

TEST_F(MessageStoreTest, PoppedMessageHoldsItsBytesUntilFreed) {
  push("abcd");
  MessagePtr m = store.pop_front();
  EXPECT_EQ(store.bytes(), 0u);
  EXPECT_EQ(budget.bytes(), 4u);  // taken from the queue, not yet freed
  m.reset();
  EXPECT_EQ(budget.bytes(), 0u);
}

}  // namespace
}  // namespace mqfs::engine
