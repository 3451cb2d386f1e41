#include "engine/list.hpp"

#include <gtest/gtest.h>

namespace {
struct Item : mqfs::engine::ListNode<Item> { int value; explicit Item(int v) : value(v) {} };
}

TEST(List, KeepsOrderAndUnlinksOnDestruction) {
  mqfs::engine::List<Item> list;
  Item a(1), b(2);
  {
    Item c(3);
    list.push_back(a);
    list.push_back(c);
    list.push_back(b);
    EXPECT_EQ(list.size(), 3u);
  }
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list.pop_front()->value, 1);
  EXPECT_EQ(list.pop_front()->value, 2);
  EXPECT_TRUE(list.empty());
}
