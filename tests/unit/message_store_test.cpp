// Message and MessageStore: one FIFO per priority, highest priority first, indexed by type.
#include <gtest/gtest.h>

#include <random>
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
  MessagePtr make(std::string_view bytes, Priority priority = 0, Type type = 1) {
    MessagePtr message = Message::make(budget, bytes_of(bytes), priority, type);
    EXPECT_NE(message, nullptr);
    message->set_id(++last_id);  // as a store gives them: in send order
    return message;
  }
  void push(std::string_view bytes, Priority priority = 0, Type type = 1) {
    MessagePtr message = make(bytes, priority, type);
    store.reserve(*message);
    store.push_back(std::move(message));
  }

  // Pops every message `selection` takes, in the order a receive gets them.
  std::vector<std::string> pop_all(const Selection& selection = {}) {
    std::vector<std::string> got;
    while (MessagePtr m = store.pop_front(selection)) got.push_back(text(*m));
    return got;
  }
  // What a batch read with `selection` would carry, in order.
  std::vector<std::string> walk(const Selection& selection) {
    std::vector<std::string> got;
    store.for_each(selection, [&](const Message& m) {
      got.push_back(text(m));
      return true;
    });
    return got;
  }
  // What peeking with `selection` shows, in order.
  std::vector<std::string> peek_all(const Selection& selection) {
    std::vector<std::string> got;
    std::optional<MessageStore::Position> at;
    while (const Message* m = store.next_after(selection, at)) {
      got.push_back(text(*m));
      at = MessageStore::Position{m->type(), m->priority(), m->id()};
    }
    return got;
  }

  // Puts messages back in the order given, and checks the queue order.
  void put_back(std::vector<MessagePtr>& taken, const std::vector<std::size_t>& order) {
    for (std::size_t i : order) {
      store.reserve(*taken[i]);
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
  MessagePtr message = Message::make(budget, bytes_of(source), 7, 1);
  source[0] = 'J';  // the message owns a copy
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(text(*message), "hello");
  EXPECT_EQ(message->size(), 5u);
  EXPECT_EQ(message->priority(), 7);
}

TEST(Message, HoldsItsBytesInTheBudgetUntilFreed) {
  Budget budget(10, 100);
  MessagePtr message = Message::make(budget, bytes_of("12345"), 0, 1);
  EXPECT_EQ(budget.bytes(), 5u);
  message.reset();
  EXPECT_EQ(budget.bytes(), 0u);
}

// A framed message whose start was held from an earlier write.
TEST(Message, MadeOfAHeadAndATail) {
  Budget budget(10, 100);
  MessagePtr message = Message::make(budget, bytes_of("hel"), bytes_of("lo"), 2, 1);
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(text(*message), "hello");
  EXPECT_EQ(message->priority(), 2);
  EXPECT_EQ(budget.bytes(), 5u);
  EXPECT_EQ(Message::make(budget, bytes_of(std::string(50, 'x')), bytes_of(std::string(46, 'y')), 0, 1), nullptr);
  EXPECT_EQ(budget.bytes(), 5u);
}

TEST(Message, IsNotMadeWhenTheBudgetHasNoRoom) {
  Budget budget(10, 4);
  EXPECT_EQ(Message::make(budget, bytes_of("12345"), 0, 1), nullptr);
  EXPECT_EQ(budget.bytes(), 0u);
  EXPECT_NE(Message::make(budget, bytes_of("1234"), 0, 1), nullptr);  // exactly the cap fits
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
  store.reserve(*a);
  store.put_back(std::move(a));
  EXPECT_EQ(store.count(), 2u);
  EXPECT_EQ(store.bytes(), 2u);
  push("h2", 3);
  EXPECT_EQ(pop_all(), (Order{"h2", "a", "b"}));
}

TEST_F(MessageStoreTest, PutBackIntoAnEmptyPriorityKeepsLaterPushesBehindIt) {
  MessagePtr a = make("a", 4);
  store.reserve(*a);
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
  std::optional<MessageStore::Position> at;
  while (const Message* m = store.next_after({}, at)) {
    seen.push_back(text(*m));
    at = MessageStore::Position{m->type(), m->priority(), m->id()};
  }
  EXPECT_EQ(seen, (Order{"b", "a", "c"}));
  at = MessageStore::Position{1, 1, 1};  // after "a"
  store.pop_front();
  store.pop_front();  // "b" and "a" are gone
  ASSERT_NE(store.next_after({}, at), nullptr);
  EXPECT_EQ(text(*store.next_after({}, at)), "c");
  push("d", 3);  // ahead of the position: not seen from it
  EXPECT_EQ(text(*store.next_after({}, at)), "c");
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
    MessagePtr abc = Message::make(budget, bytes_of("abc"), 0, 1);
    store.reserve(*abc);
    store.push_back(std::move(abc));
    MessagePtr de = Message::make(budget, bytes_of("de"), 3, 1);
    store.reserve(*de);
    store.push_back(std::move(de));
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

// SPEC section 12: each selection sees its messages in priority order,
// oldest first; a negative one, the lowest type first.
class SelectionTest : public MessageStoreTest {
 protected:
  void SetUp() override {
    push("a3", 0, 3);
    push("b1", 5, 1);
    push("c2", 0, 2);
    push("d3", 9, 3);
    push("e1", 0, 1);
    push("f2", 5, 2);
  }
};

TEST_F(SelectionTest, AnyTypeIsTheQueueOrder) {
  EXPECT_EQ(walk({}), (Order{"d3", "b1", "f2", "a3", "c2", "e1"}));
  EXPECT_EQ(peek_all({}), walk({}));
  EXPECT_EQ(pop_all(), (Order{"d3", "b1", "f2", "a3", "c2", "e1"}));
}

TEST_F(SelectionTest, ExactTypeTakesOnlyItsMessages) {
  EXPECT_EQ(text(*store.front({.type = 2})), "f2");
  EXPECT_EQ(walk({.type = 2}), (Order{"f2", "c2"}));
  EXPECT_EQ(peek_all({.type = 2}), (Order{"f2", "c2"}));
  EXPECT_EQ(pop_all({.type = 2}), (Order{"f2", "c2"}));
  EXPECT_EQ(store.front({.type = 2}), nullptr);
  EXPECT_EQ(store.front({.type = 7}), nullptr);
  EXPECT_EQ(store.count(), 4u);
  EXPECT_EQ(pop_all(), (Order{"d3", "b1", "a3", "e1"}));
}

TEST_F(SelectionTest, ExceptTakesEveryOtherType) {
  EXPECT_EQ(walk({.type = 3, .except = true}), (Order{"b1", "f2", "c2", "e1"}));
  EXPECT_EQ(peek_all({.type = 3, .except = true}), walk({.type = 3, .except = true}));
  EXPECT_EQ(pop_all({.type = 3, .except = true}), (Order{"b1", "f2", "c2", "e1"}));
  EXPECT_EQ(pop_all(), (Order{"d3", "a3"}));
}

TEST_F(SelectionTest, NegativeTakesTheLowestTypeUpToItsBoundFirst) {
  EXPECT_EQ(walk({.type = -2}), (Order{"b1", "e1", "f2", "c2"}));
  EXPECT_EQ(peek_all({.type = -2}), walk({.type = -2}));
  EXPECT_EQ(pop_all({.type = -2}), (Order{"b1", "e1", "f2", "c2"}));
  EXPECT_EQ(store.front({.type = -2}), nullptr);
  EXPECT_EQ(text(*store.front({.type = INT64_MIN})), "d3");
}

TEST_F(SelectionTest, ReturnedMessagesAreSelectableAgain) {
  MessagePtr f2 = store.pop_front({.type = 2});
  MessagePtr d3 = store.pop_front();
  store.reserve(*f2);
  store.put_back(std::move(f2));
  store.reserve(*d3);
  store.put_back(std::move(d3));
  EXPECT_EQ(text(*store.front({.type = 2})), "f2");
  EXPECT_EQ(pop_all(), (Order{"d3", "b1", "f2", "a3", "c2", "e1"}));
}

// Emptied types are erased and come back when messages of them are queued.
TEST_F(SelectionTest, TypesComeAndGo) {
  EXPECT_EQ(pop_all({.type = 1}).size(), 2u);
  EXPECT_EQ(store.front({.type = -1}), nullptr);
  push("g1", 0, 1);
  EXPECT_EQ(text(*store.front({.type = -1})), "g1");
  EXPECT_EQ(text(*store.front({.type = 3, .except = true})), "f2");
}

// Against a model that scans: random sends, receives with random
// selections, and returns.
TEST_F(MessageStoreTest, SelectionsAgreeWithAScanningModel) {
  struct Entry {
    Type type;
    Priority priority;
    uint64_t id;
    std::string text;
  };
  std::vector<Entry> model;
  std::vector<MessagePtr> out;
  auto model_front = [&](const Selection& s) -> const Entry* {
    const Entry* best = nullptr;
    for (const Entry& e : model) {
      if (!s.takes(e.type)) continue;
      if (!best) {
        best = &e;
        continue;
      }
      if (s.type < 0 && e.type != best->type) {
        if (e.type < best->type) best = &e;
        continue;
      }
      if (e.priority > best->priority || (e.priority == best->priority && e.id < best->id)) best = &e;
    }
    return best;
  };
  std::mt19937 random(7);
  for (int step = 0; step < 20000; ++step) {
    const int what = static_cast<int>(random() % 10);
    if (what < 4) {
      const auto type = static_cast<Type>(1 + random() % 6);
      const auto priority = static_cast<Priority>(random() % 4);
      const std::string name = std::to_string(step);
      push(name, priority, type);
      model.push_back({type, priority, last_id, name});
    } else if (what < 9) {
      Selection s;
      const int kind = static_cast<int>(random() % 4);
      if (kind == 1) s.type = static_cast<Type>(1 + random() % 7);
      if (kind == 2) s = {.type = static_cast<Type>(1 + random() % 7), .except = true};
      if (kind == 3) s.type = -static_cast<Type>(1 + random() % 7);
      const Entry* expected = model_front(s);
      MessagePtr got = store.pop_front(s);
      ASSERT_EQ(got == nullptr, expected == nullptr) << "step " << step;
      if (!got) continue;
      ASSERT_EQ(text(*got), expected->text) << "step " << step;
      model.erase(model.begin() + (expected - model.data()));
      if (random() % 3 == 0) out.push_back(std::move(got));
    } else if (!out.empty()) {
      MessagePtr back = std::move(out.back());
      out.pop_back();
      model.push_back({back->type(), back->priority(), back->id(), text(*back)});
      store.reserve(*back);
      store.put_back(std::move(back));
    }
    ASSERT_EQ(store.count(), model.size());
  }
}

}  // namespace
}  // namespace mqfs::engine
