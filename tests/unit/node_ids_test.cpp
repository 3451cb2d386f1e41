// NodeIds: the kernel's references to nodes. A queue's node id is reused only
// while idle, so no two path walks that open a queue share a kernel inode.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <memory>
#include <set>

#include "engine/namespace.hpp"
#include "engine/node_ids.hpp"

namespace mqfs::engine {
namespace {

class NodeIdsTest : public ::testing::Test {
 protected:
  explicit NodeIdsTest(std::size_t max_ids = 1000) : ids(names.root(), max_ids) {}

  Node* make(std::string_view name, mode_t mode) {
    Node* made = nullptr;
    EXPECT_EQ(names.make(names.root(), name, mode, Owner{}, made), 0);
    return made;
  }

  Budget budget{100, 1 << 20};
  Timeouts timeouts;
  Namespace names{budget, timeouts, Settings{}, 0755, Owner{}};
  NodeIds ids;
};

TEST_F(NodeIdsTest, ADirectoryIsKnownByItsInodeNumber) {
  Node* d = make("d", S_IFDIR | 0755);
  EXPECT_EQ(ids.remember(*d), d->ino);
  EXPECT_EQ(ids.remember(*d), d->ino);
  EXPECT_EQ(ids.find(d->ino), d);
  ids.forget(d->ino, 1);
  EXPECT_EQ(ids.find(d->ino), d);
  ids.forget(d->ino, 1);
  EXPECT_EQ(ids.find(d->ino), nullptr);
}

// Two walks that both looked the queue up before either opened it get node
// ids of their own: neither can wait behind the other's inode lock.
TEST_F(NodeIdsTest, ConcurrentLookupsOfAQueueGetNodeIdsOfTheirOwn) {
  Node* q = make("q", S_IFREG | 0644);
  const uint64_t first = ids.remember(*q);
  const uint64_t second = ids.remember(*q);
  EXPECT_GE(first, NodeIds::kFirstQueueId);
  EXPECT_NE(first, second);
  EXPECT_EQ(ids.find(first), q);
  EXPECT_EQ(ids.find(second), q);
}

TEST_F(NodeIdsTest, AQueueOpenOnItsLatestNodeIdGivesTheNextLookupANewOne) {
  Node* q = make("q", S_IFREG | 0644);
  const uint64_t writer = ids.remember(*q);
  ids.opened(writer);
  const uint64_t other = ids.remember(*q);
  EXPECT_NE(other, writer);
  ids.opened(other);
  std::set<uint64_t> seen{writer, other};
  for (int i = 0; i < 10; ++i) {
    const uint64_t id = ids.remember(*q);
    ids.opened(id);
    EXPECT_TRUE(seen.insert(id).second) << "node id " << id << " handed out twice while open";
  }
}

// A loop of `cat q`: lookup, open, release, again. One node id serves it.
TEST_F(NodeIdsTest, AnIdleNodeIdIsReused) {
  Node* q = make("q", S_IFREG | 0644);
  const uint64_t id = ids.remember(*q);
  for (int i = 0; i < 5; ++i) {
    ids.opened(id);
    ids.released(id);
    EXPECT_EQ(ids.remember(*q), id);
  }
  EXPECT_EQ(ids.size(), 2u);  // the root and q's one
}

TEST_F(NodeIdsTest, AForgottenNodeIdIsNeverHandedOutAgain) {
  Node* q = make("q", S_IFREG | 0644);
  const uint64_t id = ids.remember(*q);
  ids.opened(id);
  ids.released(id);
  ids.forget(id, 1);
  EXPECT_EQ(ids.find(id), nullptr);
  EXPECT_GT(ids.remember(*q), id);
}

TEST_F(NodeIdsTest, ARemovedQueueLivesUntilItsLastNodeIdIsForgotten) {
  Node* q = make("q", S_IFREG | 0644);
  std::weak_ptr<Node> alive = q->shared_from_this();
  const uint64_t a = ids.remember(*q);
  const uint64_t b = ids.remember(*q);
  ASSERT_EQ(names.unlink(names.root(), "q"), 0);
  ids.forget(a, 1);
  EXPECT_FALSE(alive.expired());
  EXPECT_EQ(ids.find(b), q);
  ids.forget(b, 1);
  EXPECT_TRUE(alive.expired());
}

// A burst of walks that all look the queue up before any opens it: the first
// kMaxContended get node ids of their own, the rest share the latest.
TEST_F(NodeIdsTest, PastManyContendedLookupsTheyShareTheLatest) {
  Node* q = make("q", S_IFREG | 0644);
  std::set<uint64_t> seen{ids.remember(*q)};
  for (uint64_t i = 0; i < NodeIds::kMaxContended; ++i) seen.insert(ids.remember(*q));
  EXPECT_EQ(seen.size(), NodeIds::kMaxContended + 1);
  const uint64_t latest = *seen.rbegin();
  EXPECT_EQ(ids.remember(*q), latest);
  // An open ends the burst: new node ids again.
  ids.opened(*seen.begin());
  EXPECT_FALSE(seen.contains(ids.remember(*q)));
}

// The kernel forgets at once a node id that a walk's second lookup replaced.
TEST_F(NodeIdsTest, ForgettingTheLatestNodeIdLeavesTheOthers) {
  Node* q = make("q", S_IFREG | 0644);
  const uint64_t open = ids.remember(*q);
  ids.opened(open);
  const uint64_t replaced = ids.remember(*q);
  ids.forget(replaced, 1);
  const uint64_t next = ids.remember(*q);
  EXPECT_NE(next, open);
  EXPECT_NE(next, replaced);
  EXPECT_EQ(ids.find(open), q);
}

TEST_F(NodeIdsTest, TheRootIsNeverForgotten) {
  ids.forget(kRootIno, 100);
  EXPECT_EQ(ids.find(kRootIno), &names.root());
}

class FewNodeIdsTest : public NodeIdsTest {
 protected:
  FewNodeIdsTest() : NodeIdsTest(3) {}
};

// Past the cap a queue's lookups share its latest node id: memory stays
// bounded, at the price of a shared inode.
TEST_F(FewNodeIdsTest, PastTheCapLookupsShareTheLatestNodeId) {
  Node* q = make("q", S_IFREG | 0644);
  const uint64_t a = ids.remember(*q);
  const uint64_t b = ids.remember(*q);
  ASSERT_NE(a, b);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids.remember(*q), b);
  EXPECT_EQ(ids.size(), 3u);
}

}  // namespace
}  // namespace mqfs::engine
