// Namespace: the tree of directories and queues; unlink, rmdir and rename as
// rename(2) and mq_unlink describe them; nodes freed when the kernel forgets
// (NodeIds), and counted against the cap only while named or open.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "doubles.hpp"
#include "engine/namespace.hpp"
#include "engine/node_ids.hpp"

namespace mqfs::engine {
namespace {

constexpr Owner kRootOwner{0, 0};
constexpr Owner kUser{1000, 1001};

class NamespaceTest : public ::testing::Test {
 protected:
  explicit NamespaceTest(uint64_t max_nodes = 100) : budget(max_nodes, 1 << 20) {}

  Node* make(Node& dir, std::string_view name, mode_t mode) {
    Node* made = nullptr;
    EXPECT_EQ(names.make(dir, name, mode, kUser, made), 0) << name;
    return made;
  }
  Node* queue(Node& dir, std::string_view name) { return make(dir, name, S_IFREG | 0644); }
  Node* queue(std::string_view name) { return queue(names.root(), name); }
  Node* dir(Node& parent, std::string_view name) { return make(parent, name, S_IFDIR | 0755); }
  Node* dir(std::string_view name) { return dir(names.root(), name); }

  int make_status(Node& dir, std::string_view name, mode_t mode) {
    Node* made = nullptr;
    return names.make(dir, name, mode, kUser, made);
  }
  Node* at(std::string_view name) { return names.lookup(names.root(), name); }

  Budget budget;
  Timeouts timeouts;
  Settings defaults = [] {
    Settings s;
    s.maxmsg = 3;
    return s;
  }();
  Namespace names{budget, timeouts, defaults, 0755, kRootOwner};
  NodeIds ids{names.root(), 1000};
};

class SmallNamespaceTest : public NamespaceTest {
 protected:
  SmallNamespaceTest() : NamespaceTest(2) {}
};

int send(Queue& queue, OpenFile& file, std::string_view text) {
  FakeSender to;
  return send_now(queue, file, bytes_of(text), kWriterPid, to);
}

std::optional<std::string> receive(Queue& queue, OpenFile& file) {
  FakeReceiver to;
  if (receive_now(queue, file, 1 << 16, kReaderPid, to) != 1) return std::nullopt;
  return to.got;
}

// --- the root and make ---

TEST_F(NamespaceTest, RootIsADirectoryTheKernelNeverForgets) {
  Node& root = names.root();
  EXPECT_EQ(root.ino, kRootIno);
  EXPECT_TRUE(root.is_directory());
  EXPECT_TRUE(S_ISDIR(root.mode));
  EXPECT_EQ(root.mode & 07777, 0755u);
  EXPECT_FALSE(root.removed());
  EXPECT_EQ(root.nlink(), 2u);
  EXPECT_EQ(names.find(kRootIno), &root);
  EXPECT_EQ(ids.find(kRootIno), &root);
  ids.forget(kRootIno, 5);
  EXPECT_EQ(ids.find(kRootIno), &root);
  EXPECT_EQ(budget.nodes(), 0u);  // the root is not counted against the cap
}

TEST_F(NamespaceTest, MakeQueueWithOwnerModeAndTheDefaults) {
  Node* q = queue("jobs");
  ASSERT_NE(q, nullptr);
  EXPECT_FALSE(q->is_directory());
  EXPECT_EQ(q->mode, S_IFREG | 0644u);
  EXPECT_EQ(q->owner.uid, kUser.uid);
  EXPECT_EQ(q->owner.gid, kUser.gid);
  EXPECT_EQ(q->name, "jobs");
  EXPECT_EQ(q->parent, &names.root());
  ASSERT_NE(q->queue, nullptr);
  EXPECT_EQ(q->queue->settings().maxmsg, 3);
  EXPECT_EQ(q->nlink(), 1u);
  EXPECT_EQ(at("jobs"), q);
  EXPECT_EQ(names.find(q->ino), q);
  EXPECT_EQ(budget.nodes(), 1u);
}

TEST_F(NamespaceTest, MakeDirectoryAndQueuesInIt) {
  Node* images = dir("images");
  ASSERT_NE(images, nullptr);
  EXPECT_TRUE(images->is_directory());
  EXPECT_EQ(images->queue, nullptr);
  EXPECT_TRUE(S_ISDIR(images->mode));
  EXPECT_EQ(names.root().nlink(), 3u);  // "." , ".." of images
  Node* input = dir(*images, "input");
  Node* q = queue(*input, "q");
  EXPECT_EQ(names.lookup(*input, "q"), q);
  EXPECT_EQ(names.lookup(names.root(), "q"), nullptr);
  EXPECT_EQ(images->nlink(), 3u);
  EXPECT_EQ(input->nlink(), 2u);  // queues are no subdirectories
}

TEST_F(NamespaceTest, InodeNumbersAreDistinct) {
  Node* a = queue("a");
  Node* b = dir("b");
  Node* c = queue(*b, "c");
  EXPECT_NE(a->ino, b->ino);
  EXPECT_NE(b->ino, c->ino);
  EXPECT_NE(a->ino, c->ino);
  EXPECT_NE(a->ino, kRootIno);
  EXPECT_EQ(names.size(), 4u);
}

TEST_F(NamespaceTest, MakeRefusesAnExistingName) {
  queue("q");
  dir("d");
  EXPECT_EQ(make_status(names.root(), "q", S_IFREG | 0644), -EEXIST);
  EXPECT_EQ(make_status(names.root(), "q", S_IFDIR | 0755), -EEXIST);
  EXPECT_EQ(make_status(names.root(), "d", S_IFREG | 0644), -EEXIST);
  EXPECT_EQ(budget.nodes(), 2u);
}

TEST_F(NamespaceTest, MakeRefusesNamesLongerThan255) {
  EXPECT_EQ(make_status(names.root(), std::string(kNameMax + 1, 'x'), S_IFREG | 0644), -ENAMETOOLONG);
  EXPECT_NE(queue(std::string(kNameMax, 'x')), nullptr);
}

TEST_F(NamespaceTest, MakeInAQueueIsEnotdir) {
  Node* q = queue("q");
  EXPECT_EQ(make_status(*q, "x", S_IFREG | 0644), -ENOTDIR);
}

// --- the node cap ---

TEST_F(SmallNamespaceTest, CreatingOneMoreThanTheCapIsEnospc) {
  queue("a");
  dir("b");
  EXPECT_EQ(make_status(names.root(), "c", S_IFREG | 0644), -ENOSPC);
  EXPECT_EQ(make_status(names.root(), "c", S_IFDIR | 0755), -ENOSPC);
  EXPECT_EQ(at("c"), nullptr);
  EXPECT_EQ(names.size(), 3u);
  ASSERT_EQ(names.unlink(names.root(), "a"), 0);
  EXPECT_NE(queue("c"), nullptr);
}

// A removed queue stops counting at once when no file has it open, even while
// the kernel still refers to it: `rm q` at the cap makes room for a new queue.
TEST_F(SmallNamespaceTest, RemovedQueueStopsCountingAtUnlink) {
  Node* a = queue("a");
  queue("b");
  const uint64_t id = ids.remember(*a);
  ASSERT_EQ(names.unlink(names.root(), "a"), 0);
  EXPECT_EQ(budget.nodes(), 1u);
  EXPECT_EQ(make_status(names.root(), "c", S_IFREG | 0644), 0);
  EXPECT_EQ(ids.find(id), a);  // the kernel's reference still reaches it
  ids.forget(id, 1);
  EXPECT_EQ(budget.nodes(), 2u);
}

// A removed queue still open counts until its last open file closes.
TEST_F(SmallNamespaceTest, RemovedQueueCountsWhileOpen) {
  Node* a = queue("a");
  queue("b");
  auto first = std::make_unique<OpenFile>(a->queue, true, true);
  auto second = std::make_unique<OpenFile>(a->queue, true, false);
  ASSERT_EQ(names.unlink(names.root(), "a"), 0);
  EXPECT_EQ(budget.nodes(), 2u);
  EXPECT_EQ(make_status(names.root(), "c", S_IFREG | 0644), -ENOSPC);
  first.reset();
  EXPECT_EQ(budget.nodes(), 2u);
  second.reset();
  EXPECT_EQ(budget.nodes(), 1u);
  EXPECT_EQ(make_status(names.root(), "c", S_IFREG | 0644), 0);
}

// A removed directory stops counting at once.
TEST_F(SmallNamespaceTest, RemovedDirectoryStopsCountingAtRmdir) {
  Node* d = dir("d");
  queue("b");
  const uint64_t id = ids.remember(*d);
  ASSERT_EQ(names.rmdir(names.root(), "d"), 0);
  EXPECT_EQ(budget.nodes(), 1u);
  EXPECT_EQ(ids.find(id), d);
  ids.forget(id, 1);
}

TEST(NamespaceBudget, DestroyingTheNamespaceGivesNodesAndBytesBack) {
  Budget budget(10, 100);
  Timeouts timeouts;
  {
    Namespace names(budget, timeouts, Settings{}, 0755, kRootOwner);
    Node* made = nullptr;
    ASSERT_EQ(names.make(names.root(), "q", S_IFREG | 0644, kUser, made), 0);
    OpenFile file(made->queue, true, true);
    ASSERT_EQ(send(*made->queue, file, "abc"), 0);
    ASSERT_EQ(names.make(names.root(), "d", S_IFDIR | 0755, kUser, made), 0);
    EXPECT_EQ(budget.nodes(), 2u);
  }
  EXPECT_EQ(budget.nodes(), 0u);
  EXPECT_EQ(budget.bytes(), 0u);
}

// --- unlink and forget ---

TEST_F(NamespaceTest, UnlinkRemovesTheNameAtOnce) {
  Node* q = queue("q");
  const uint64_t ino = q->ino;
  EXPECT_EQ(names.unlink(names.root(), "q"), 0);
  EXPECT_EQ(at("q"), nullptr);
  EXPECT_EQ(names.find(ino), nullptr);  // the kernel held no reference: freed now
  EXPECT_EQ(budget.nodes(), 0u);
}

TEST_F(NamespaceTest, UnlinkErrors) {
  dir("d");
  EXPECT_EQ(names.unlink(names.root(), "missing"), -ENOENT);
  EXPECT_EQ(names.unlink(names.root(), "d"), -EISDIR);
  EXPECT_NE(at("d"), nullptr);
}

TEST_F(NamespaceTest, RemovedNodeIsFreedOnlyWhenLookupsReachZero) {
  Node* q = queue("q");
  const uint64_t ino = q->ino;
  std::weak_ptr<Node> alive = q->shared_from_this();
  const uint64_t id = ids.remember(*q);
  ids.opened(id);
  ids.released(id);
  ASSERT_EQ(ids.remember(*q), id);  // idle again: the same node id
  ids.opened(id);
  ids.released(id);
  ASSERT_EQ(ids.remember(*q), id);
  ASSERT_EQ(names.unlink(names.root(), "q"), 0);
  EXPECT_EQ(at("q"), nullptr);
  EXPECT_EQ(names.find(ino), nullptr);
  ASSERT_EQ(ids.find(id), q);
  EXPECT_TRUE(q->removed());
  EXPECT_EQ(q->parent, nullptr);
  EXPECT_EQ(q->nlink(), 0u);
  ids.forget(id, 2);
  EXPECT_EQ(ids.find(id), q);
  ids.forget(id, 1);
  EXPECT_EQ(ids.find(id), nullptr);
  EXPECT_TRUE(alive.expired());
  EXPECT_EQ(budget.nodes(), 0u);
}

TEST_F(NamespaceTest, ForgetMoreThanRememberedStopsAtZero) {
  Node* q = queue("q");
  const uint64_t id = ids.remember(*q);
  ASSERT_EQ(names.unlink(names.root(), "q"), 0);
  ids.forget(id, 10);
  EXPECT_EQ(ids.find(id), nullptr);
  ids.forget(id, 1);  // an unknown id changes nothing
}

// A name the kernel forgot stays: forget ends references, not names.
TEST_F(NamespaceTest, ForgettingANamedNodeKeepsIt) {
  Node* q = queue("q");
  ids.forget(ids.remember(*q), 1);
  EXPECT_EQ(names.find(q->ino), q);
  EXPECT_EQ(at("q"), q);
}

// `rm q` while processes have it open: they keep using it (mq_unlink).
TEST_F(NamespaceTest, QueueStaysUsableThroughAnOpenFileAfterItsNameIsGone) {
  Node* q = queue("q");
  const uint64_t id = ids.remember(*q);
  OpenFile writer(q->queue, false, true);
  OpenFile reader(q->queue, true, false);
  reader.set_read_mode(ReadMode::stream);
  std::weak_ptr<Queue> alive = q->queue;
  ASSERT_EQ(send(writer.queue(), writer, "before"), 0);
  ASSERT_EQ(names.unlink(names.root(), "q"), 0);
  ids.forget(id, 1);  // the node is gone now
  ASSERT_FALSE(alive.expired());
  EXPECT_EQ(send(writer.queue(), writer, "after"), 0);
  EXPECT_EQ(receive(reader.queue(), reader), "before");
  EXPECT_EQ(receive(reader.queue(), reader), "after");
  EXPECT_EQ(send(writer.queue(), writer, "left"), 0);
  EXPECT_EQ(budget.bytes(), 4u);
  // A new queue of the same name is another queue.
  Node* again = queue("q");
  EXPECT_NE(again->queue.get(), &writer.queue());
  EXPECT_EQ(again->queue->curmsgs(), 0u);
}

// The messages of a removed queue are freed when the last open file closes.
TEST_F(NamespaceTest, RemovedQueueIsFreedWithItsLastOpenFile) {
  Node* q = queue("q");
  auto file = std::make_unique<OpenFile>(q->queue, true, true);
  std::weak_ptr<Queue> alive = q->queue;
  ASSERT_EQ(send(file->queue(), *file, "abc"), 0);
  ASSERT_EQ(names.unlink(names.root(), "q"), 0);
  EXPECT_FALSE(alive.expired());
  EXPECT_EQ(budget.bytes(), 3u);
  file.reset();
  EXPECT_TRUE(alive.expired());
  EXPECT_EQ(budget.bytes(), 0u);
}

// --- rmdir ---

TEST_F(NamespaceTest, RmdirRemovesAnEmptyDirectory) {
  Node* d = dir("d");
  const uint64_t ino = d->ino;
  ASSERT_EQ(names.root().nlink(), 3u);
  EXPECT_EQ(names.rmdir(names.root(), "d"), 0);
  EXPECT_EQ(at("d"), nullptr);
  EXPECT_EQ(names.find(ino), nullptr);
  EXPECT_EQ(names.root().nlink(), 2u);
  EXPECT_EQ(budget.nodes(), 0u);
}

TEST_F(NamespaceTest, RmdirErrors) {
  queue("q");
  Node* d = dir("d");
  queue(*d, "inner");
  EXPECT_EQ(names.rmdir(names.root(), "missing"), -ENOENT);
  EXPECT_EQ(names.rmdir(names.root(), "q"), -ENOTDIR);
  EXPECT_EQ(names.rmdir(names.root(), "d"), -ENOTEMPTY);
  EXPECT_EQ(at("d"), d);
  ASSERT_EQ(names.unlink(*d, "inner"), 0);
  EXPECT_EQ(names.rmdir(names.root(), "d"), 0);
}

TEST_F(NamespaceTest, DirectoryWithAnEmptySubdirectoryIsNotEmpty) {
  Node* d = dir("d");
  dir(*d, "sub");
  EXPECT_EQ(names.rmdir(names.root(), "d"), -ENOTEMPTY);
}

// As for a removed queue, and as rmdir(2) leaves a directory still in use.
TEST_F(NamespaceTest, RemovedDirectoryStaysUntilForgottenWithNoLinks) {
  Node* d = dir("d");
  const uint64_t id = ids.remember(*d);
  EXPECT_EQ(id, d->ino);  // a directory's node id is its inode number
  ASSERT_EQ(names.rmdir(names.root(), "d"), 0);
  EXPECT_EQ(ids.find(id), d);
  EXPECT_TRUE(d->removed());
  EXPECT_EQ(d->nlink(), 0u) << "a removed directory has no links, as a removed queue has none";
  ids.forget(id, 1);
  EXPECT_EQ(ids.find(id), nullptr);
  EXPECT_EQ(budget.nodes(), 0u);
}

// --- rename ---

TEST_F(NamespaceTest, RenameMovesAQueueWithItsMessages) {
  Node* q = queue("a");
  Node* d = dir("d");
  OpenFile file(q->queue, true, true);
  ASSERT_EQ(send(*q->queue, file, "m"), 0);
  ASSERT_EQ(names.rename(names.root(), "a", *d, "b", 0), 0);
  EXPECT_EQ(at("a"), nullptr);
  EXPECT_EQ(names.lookup(*d, "b"), q);
  EXPECT_EQ(q->name, "b");
  EXPECT_EQ(q->parent, d);
  EXPECT_EQ(q->queue.get(), &file.queue());
  EXPECT_EQ(q->queue->curmsgs(), 1u);
}

TEST_F(NamespaceTest, RenameOverAQueueReplacesIt) {
  Node* a = queue("a");
  Node* b = queue("b");
  const uint64_t b_ino = b->ino;
  std::weak_ptr<Queue> b_queue = b->queue;
  ASSERT_EQ(names.rename(names.root(), "a", names.root(), "b", 0), 0);
  EXPECT_EQ(at("a"), nullptr);
  EXPECT_EQ(at("b"), a);
  EXPECT_EQ(names.find(b_ino), nullptr);
  EXPECT_TRUE(b_queue.expired());
  EXPECT_EQ(budget.nodes(), 1u);
}

// The replaced queue is removed, not destroyed, while it is in use.
TEST_F(NamespaceTest, ReplacedQueueInUseLivesOn) {
  queue("a");
  Node* b = queue("b");
  const uint64_t id = ids.remember(*b);
  OpenFile file(b->queue, true, true);
  ASSERT_EQ(send(*b->queue, file, "old"), 0);
  ASSERT_EQ(names.rename(names.root(), "a", names.root(), "b", 0), 0);
  EXPECT_EQ(ids.find(id), b);
  EXPECT_TRUE(b->removed());
  EXPECT_EQ(file.queue().curmsgs(), 1u);
  EXPECT_EQ(at("b")->queue->curmsgs(), 0u);
}

TEST_F(NamespaceTest, RenameNoreplaceRefusesAnExistingTarget) {
  Node* a = queue("a");
  Node* b = queue("b");
  EXPECT_EQ(names.rename(names.root(), "a", names.root(), "b", RENAME_NOREPLACE), -EEXIST);
  EXPECT_EQ(at("a"), a);
  EXPECT_EQ(at("b"), b);
  EXPECT_EQ(names.rename(names.root(), "a", names.root(), "c", RENAME_NOREPLACE), 0);
  EXPECT_EQ(at("c"), a);
}

TEST_F(NamespaceTest, RenameExchangeSwapsTwoNames) {
  Node* q = queue("q");
  Node* d = dir("d");
  Node* inner = queue(*d, "inner");
  ASSERT_EQ(names.rename(names.root(), "q", *d, "inner", RENAME_EXCHANGE), 0);
  EXPECT_EQ(names.lookup(*d, "inner"), q);
  EXPECT_EQ(at("q"), inner);
  EXPECT_EQ(q->parent, d);
  EXPECT_EQ(inner->parent, &names.root());
  EXPECT_EQ(inner->name, "q");
  EXPECT_EQ(budget.nodes(), 3u);
}

TEST_F(NamespaceTest, RenameExchangeOfAQueueAndADirectory) {
  Node* q = queue("q");
  Node* d = dir("d");
  ASSERT_EQ(names.rename(names.root(), "q", names.root(), "d", RENAME_EXCHANGE), 0);
  EXPECT_EQ(at("q"), d);
  EXPECT_EQ(at("d"), q);
  EXPECT_EQ(d->name, "q");
}

TEST_F(NamespaceTest, RenameExchangeNeedsATarget) {
  Node* q = queue("q");
  EXPECT_EQ(names.rename(names.root(), "q", names.root(), "none", RENAME_EXCHANGE), -ENOENT);
  EXPECT_EQ(at("q"), q);
}

TEST_F(NamespaceTest, RenameFlagsMustMakeSense) {
  queue("a");
  queue("b");
  EXPECT_EQ(names.rename(names.root(), "a", names.root(), "b", RENAME_NOREPLACE | RENAME_EXCHANGE), -EINVAL);
  EXPECT_EQ(names.rename(names.root(), "a", names.root(), "c", RENAME_WHITEOUT), -EINVAL);
  EXPECT_NE(at("a"), nullptr);
}

TEST_F(NamespaceTest, RenameOfAMissingNameIsEnoent) {
  EXPECT_EQ(names.rename(names.root(), "none", names.root(), "x", 0), -ENOENT);
}

TEST_F(NamespaceTest, RenameIntoAQueueIsEnotdir) {
  Node* q = queue("q");
  queue("a");
  EXPECT_EQ(names.rename(names.root(), "a", *q, "x", 0), -ENOTDIR);
}

TEST_F(NamespaceTest, RenameToALongNameIsEnametoolong) {
  queue("a");
  EXPECT_EQ(names.rename(names.root(), "a", names.root(), std::string(kNameMax + 1, 'x'), 0), -ENAMETOOLONG);
  EXPECT_NE(at("a"), nullptr);
}

TEST_F(NamespaceTest, RenameToItselfChangesNothing) {
  Node* q = queue("q");
  EXPECT_EQ(names.rename(names.root(), "q", names.root(), "q", 0), 0);
  EXPECT_EQ(at("q"), q);
  EXPECT_FALSE(q->removed());
}

TEST_F(NamespaceTest, DirectoryIntoItsOwnSubtreeIsEinval) {
  Node* a = dir("a");
  Node* b = dir(*a, "b");
  EXPECT_EQ(names.rename(names.root(), "a", *b, "a", 0), -EINVAL);
  EXPECT_EQ(names.rename(names.root(), "a", *a, "self", 0), -EINVAL);
  EXPECT_EQ(names.rename(names.root(), "a", *b, "x", RENAME_EXCHANGE), -EINVAL);
  EXPECT_EQ(at("a"), a);
  EXPECT_EQ(a->parent, &names.root());
}

TEST_F(NamespaceTest, ExchangeWithADirectoryAboveTheSourceIsEinval) {
  Node* a = dir("a");
  Node* b = dir(*a, "b");
  queue(*b, "q");
  EXPECT_EQ(names.rename(*b, "q", names.root(), "a", RENAME_EXCHANGE), -EINVAL);
  EXPECT_EQ(names.lookup(*b, "q")->parent, b);
}

// Moving a directory beside or below a sibling is no cycle.
TEST_F(NamespaceTest, DirectoryIntoASiblingsSubtreeIsFine) {
  Node* a = dir("a");
  Node* b = dir("b");
  Node* c = dir(*b, "c");
  queue(*a, "q");
  ASSERT_EQ(names.rename(names.root(), "a", *c, "a", 0), 0);
  EXPECT_EQ(a->parent, c);
  EXPECT_NE(names.lookup(*a, "q"), nullptr);
  EXPECT_EQ(names.root().nlink(), 3u);
  EXPECT_EQ(c->nlink(), 3u);
}

TEST_F(NamespaceTest, DirectoryOverAQueueIsEnotdir) {
  Node* d = dir("d");
  Node* q = queue("q");
  EXPECT_EQ(names.rename(names.root(), "d", names.root(), "q", 0), -ENOTDIR);
  EXPECT_EQ(at("d"), d);
  EXPECT_EQ(at("q"), q);
}

TEST_F(NamespaceTest, QueueOverADirectoryIsEisdir) {
  Node* d = dir("d");
  Node* q = queue("q");
  EXPECT_EQ(names.rename(names.root(), "q", names.root(), "d", 0), -EISDIR);
  EXPECT_EQ(at("d"), d);
  EXPECT_EQ(at("q"), q);
}

TEST_F(NamespaceTest, DirectoryOverANonEmptyDirectoryIsEnotempty) {
  Node* a = dir("a");
  Node* b = dir("b");
  queue(*b, "q");
  EXPECT_EQ(names.rename(names.root(), "a", names.root(), "b", 0), -ENOTEMPTY);
  EXPECT_EQ(at("a"), a);
  EXPECT_EQ(at("b"), b);
}

TEST_F(NamespaceTest, DirectoryOverAnEmptyDirectoryReplacesIt) {
  Node* a = dir("a");
  Node* b = dir("b");
  const uint64_t b_ino = b->ino;
  queue(*a, "q");
  ASSERT_EQ(names.rename(names.root(), "a", names.root(), "b", 0), 0);
  EXPECT_EQ(at("b"), a);
  EXPECT_EQ(at("a"), nullptr);
  EXPECT_EQ(names.find(b_ino), nullptr);
  EXPECT_EQ(names.root().nlink(), 3u);
  EXPECT_EQ(budget.nodes(), 2u);
}

// --- times ---

bool is_epoch(const timespec& t) { return t.tv_sec == 0 && t.tv_nsec == 0; }

// A directory's mtime and ctime change when a name in it is made or removed.
// Times are set to the epoch first, so the tests read no clock.
TEST_F(NamespaceTest, MakeAndUnlinkTouchTheDirectory) {
  Node* d = dir("d");
  d->times() = Times{};
  queue(*d, "q");
  EXPECT_FALSE(is_epoch(d->times().mtime));
  EXPECT_FALSE(is_epoch(d->times().ctime));

  d->times() = Times{};
  ASSERT_EQ(names.unlink(*d, "q"), 0);
  EXPECT_FALSE(is_epoch(d->times().mtime));
  EXPECT_FALSE(is_epoch(d->times().ctime));
}

// rename(2): the mtime and ctime of both directories, and the moved node's
// ctime, are updated.
TEST_F(NamespaceTest, RenameTouchesBothDirectoriesAndTheNode) {
  Node* from = dir("from");
  Node* to = dir("to");
  Node* q = queue(*from, "q");
  from->times() = Times{};
  to->times() = Times{};
  q->times() = Times{};
  ASSERT_EQ(names.rename(*from, "q", *to, "q", 0), 0);
  EXPECT_FALSE(is_epoch(from->times().mtime));
  EXPECT_FALSE(is_epoch(from->times().ctime));
  EXPECT_FALSE(is_epoch(q->times().ctime));
  EXPECT_TRUE(is_epoch(q->times().mtime));  // no message was queued
  EXPECT_FALSE(is_epoch(to->times().mtime)) << "the directory that gained a name was not touched";
  EXPECT_FALSE(is_epoch(to->times().ctime)) << "the directory that gained a name was not touched";
}


// SPEC section 10: the names another mount's store holds replace this
// mount's copy, whoever changed them.
namespace reconciling {

store::Contents::Node node(uint64_t ino, uint64_t parent, std::string name, mode_t mode, int64_t maxmsg = 0) {
  store::Contents::Node n;
  n.node = store::NodeState{.ino = ino, .parent = parent, .name = std::move(name), .mode = mode, .uid = 7, .gid = 8};
  if (S_ISREG(mode)) {
    n.queue.emplace();
    n.queue->settings.maxmsg = maxmsg;
  }
  return n;
}

// The names as "path:inode" in path order, directories with a trailing /.
std::vector<std::string> listing(Namespace& names) {
  std::vector<std::string> out;
  std::function<void(const Node&, const std::string&)> walk = [&](const Node& dir, const std::string& path) {
    for (const auto& [name, child] : dir.children) {
      EXPECT_EQ(child->parent, &dir) << name;
      EXPECT_EQ(child->name, name);
      EXPECT_EQ(names.find(child->ino), child) << name;
      const std::string here = path + name + (child->is_directory() ? "/" : "");
      out.push_back(here + ":" + std::to_string(child->ino));
      if (child->is_directory()) walk(*child, here);
    }
  };
  walk(names.root(), "");
  return out;
}

}  // namespace reconciling

TEST_F(NamespaceTest, ReconcileMakesTheNamesThoseGivenWhateverTheirOrder) {
  using namespace reconciling;
  const std::vector<store::Contents::Node> given{node(8194, 2, "q2", S_IFREG | 0644, 4), node(3, 2, "q", S_IFREG | 0600, 5),
                                                 node(2, 1, "jobs", S_IFDIR | 0755)};
  names.reconcile(given);
  EXPECT_EQ(listing(names), (std::vector<std::string>{"jobs/:2", "jobs/q:3", "jobs/q2:8194"}));
  EXPECT_EQ(names.find(3)->mode, S_IFREG | 0600);
  EXPECT_EQ(names.find(3)->owner.uid, 7u);
  EXPECT_EQ(names.find(3)->queue->settings().maxmsg, 5);
  names.reconcile(given);  // the same again: nothing changes
  EXPECT_EQ(listing(names), (std::vector<std::string>{"jobs/:2", "jobs/q:3", "jobs/q2:8194"}));

  store::Contents contents;
  contents.nodes = given;
  Namespace restored{budget, timeouts, defaults, 0755, kRootOwner};
  ASSERT_EQ(restored.restore(contents), 0);
  EXPECT_EQ(listing(restored), (std::vector<std::string>{"jobs/:2", "jobs/q:3", "jobs/q2:8194"}));
  restored.reconcile(given);
  EXPECT_EQ(listing(restored), (std::vector<std::string>{"jobs/:2", "jobs/q:3", "jobs/q2:8194"}));
}

TEST_F(NamespaceTest, ReconcileMovesRemovesAndChangesNodes) {
  using namespace reconciling;
  Node* jobs = dir("jobs");
  Node* q = queue(*jobs, "q");
  Node* r = queue("r");
  auto q_queue = q->queue;  // an open file's hold on it
  auto r_queue = r->queue;
  names.reconcile({node(jobs->ino, 1, "work", S_IFDIR | 0700), node(q->ino, 1, "q", S_IFREG | 0644, 9),
                   node(50, jobs->ino, "new", S_IFREG | 0644, 2)});
  EXPECT_EQ(listing(names), (std::vector<std::string>{"q:" + std::to_string(q->ino), "work/:" + std::to_string(jobs->ino),
                                                      "work/new:50"}));
  EXPECT_EQ(jobs->mode, S_IFDIR | 0700);
  EXPECT_EQ(q_queue->settings().maxmsg, 9);
  EXPECT_FALSE(q_queue->removed());
  EXPECT_TRUE(r_queue->removed()) << "a queue removed elsewhere fails its open files with EIDRM";
  EXPECT_EQ(names.size(), 4u);  // the root, work, q, new
}

}  // namespace
}  // namespace mqfs::engine
