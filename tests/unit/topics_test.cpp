// Topics (SPEC section 13): publishing to descriptors' subscriptions and to
// lasting subscriber queues, overflow, the byte budget of a shared body,
// and selection by type among waiting readers (SPEC section 12).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <vector>

#include "doubles.hpp"
#include "engine/namespace.hpp"

namespace mqfs::engine {
namespace {

using Order = std::vector<std::string>;

class TopicsTest : public ::testing::Test {
 protected:
  TopicsTest() {
    t = make("t");
    q = make("q");
    Settings s = t->settings();
    s.kind = QueueKind::topic;
    EXPECT_EQ(names.configure(node("t"), s), 0);
  }
  ~TopicsTest() override {
    files.clear();
    for (auto* queue : {t.get(), q.get()}) queue->cancel_all(ECANCELED);
  }

  std::shared_ptr<Queue> make(const char* name) {
    Node* made = nullptr;
    EXPECT_EQ(names.make(names.root(), name, S_IFREG | 0644, Owner{}, made), 0);
    return made->queue;
  }
  Node& node(const char* name) { return *names.lookup(names.root(), name); }
  int set(const char* name, void (*change)(Settings&)) {
    Settings s = node(name).queue->settings();
    change(s);
    return names.configure(node(name), s);
  }

  OpenFile& open(std::shared_ptr<Queue> queue, bool reads, ReadMode mode = ReadMode::stream) {
    OpenFile& file = *files.emplace_back(std::make_unique<OpenFile>(std::move(queue), reads, !reads));
    file.set_read_mode(mode);
    return file;
  }
  void close(OpenFile& file) {
    for (auto& f : files)
      if (f.get() == &file) f.reset();
  }
  // A non-blocking publish: 0 or -errno.
  int publish(std::string_view text, Priority priority = 0, Type type = 1) {
    OpenFile writer(t, false, true);
    writer.set_priority(priority);
    writer.set_type(type);
    FakeSender sent;
    return send_now(*t, writer, bytes_of(text), kWriterPid, sent);
  }
  // A blocking publish that waits (a full subscriber, overflow=block): its
  // answer comes to `answer` later. False when it did not wait.
  bool publish_blocked(std::string_view text, FakeSender& answer) {
    OpenFile& writer = open(t, false);
    t->send(writer, bytes_of(text), kWriterPid, kT0, answer);
    return answer.waiting();
  }
  std::optional<std::string> read(OpenFile& file) {
    FakeReceiver to;
    const int status = receive_now(file.source(), file, 1 << 16, kReaderPid, to);
    if (status == 0) return std::nullopt;
    EXPECT_EQ(status, 1);
    return to.got;
  }
  Order drain(OpenFile& file) {
    Order all;
    while (auto got = read(file)) all.push_back(*got);
    return all;
  }
  Order drain(std::shared_ptr<Queue> queue) {
    OpenFile& file = open(std::move(queue), true);
    Order all = drain(file);
    close(file);
    return all;
  }

  Budget budget{Limits{.max_nodes = 100, .max_bytes = 1 << 20, .message_overhead = kMessageOverhead}};
  Timeouts timeouts;
  Namespace names{budget, timeouts, Settings{}, 0755, Owner{}};
  std::shared_ptr<Queue> t;
  std::shared_ptr<Queue> q;
  std::vector<std::unique_ptr<OpenFile>> files;
};

TEST_F(TopicsTest, WithNoSubscriberAPublishIsDroppedAndCounted) {
  EXPECT_EQ(publish("lost"), 0);
  EXPECT_EQ(t->dropped(), 1u);
  EXPECT_EQ(t->sent(), 1u);
  EXPECT_EQ(t->curmsgs(), 0u);
  EXPECT_EQ(t->subscribers(), 0u);
}

TEST_F(TopicsTest, EveryReadingDescriptorGetsWhatIsPublishedAfterItsOpen) {
  OpenFile& a = open(t, true);
  EXPECT_EQ(publish("one"), 0);
  OpenFile& b = open(t, true);
  open(t, false);  // a writer subscribes to nothing
  EXPECT_EQ(t->subscribers(), 2u);
  EXPECT_EQ(publish("low", 1), 0);
  EXPECT_EQ(publish("high", 9), 0);
  EXPECT_EQ(drain(a), (Order{"high", "low", "one"}));  // priority order
  EXPECT_EQ(drain(b), (Order{"high", "low"}));
  EXPECT_EQ(t->dropped(), 0u);
  close(a);
  EXPECT_EQ(t->subscribers(), 1u);
}

TEST_F(TopicsTest, AMessageModeSubscriberThatHadItsMessageIsNoLongerOne) {
  OpenFile& once = open(t, true, ReadMode::message);
  EXPECT_EQ(publish("first"), 0);
  EXPECT_EQ(read(once), "first");
  EXPECT_EQ(t->subscribers(), 0u);
  EXPECT_EQ(publish("second"), 0);
  EXPECT_EQ(t->dropped(), 1u);
  EXPECT_EQ(read(once), "");  // end of file
}

TEST_F(TopicsTest, ALastingSubscriberKeepsCopiesWithTheirPriorityAndType) {
  EXPECT_EQ(set("q", [](Settings& s) { s.subscribe = {"t"}; }), 0);
  EXPECT_EQ(t->subscribers(), 1u);
  EXPECT_EQ(publish("a", 3, 7), 0);
  EXPECT_EQ(q->curmsgs(), 1u);
  EXPECT_EQ(q->sent(), 1u);
  OpenFile& r = open(q, true);
  EXPECT_EQ(read(r), "a");
  EXPECT_EQ(r.last_delivery()->priority, 3);
  EXPECT_EQ(r.last_delivery()->type, 7);
  EXPECT_EQ(set("q", [](Settings& s) { s.subscribe = {}; }), 0);
  EXPECT_EQ(publish("b"), 0);
  EXPECT_EQ(q->curmsgs(), 0u);
}

// Subscriptions name paths: a topic renamed away loses them, one made at
// the path gets them.
TEST_F(TopicsTest, ASubscriptionNamesAPathNotATopic) {
  EXPECT_EQ(set("q", [](Settings& s) { s.subscribe = {"later"}; }), 0);
  auto later = make("later");
  Settings s = later->settings();
  s.kind = QueueKind::topic;
  EXPECT_EQ(names.configure(node("later"), s), 0);
  EXPECT_EQ(later->subscribers(), 1u);
  EXPECT_EQ(names.rename(names.root(), "later", names.root(), "moved", 0), 0);
  EXPECT_EQ(later->subscribers(), 0u);
}

TEST_F(TopicsTest, KindAndSubscribeRefuseWhatCannotBe) {
  EXPECT_EQ(set("t", [](Settings& s) { s.subscribe = {"q"}; }), -EINVAL);  // a topic subscribes to nothing
  OpenFile& w = open(q, false);
  FakeSender sent;
  EXPECT_EQ(send_now(*q, w, bytes_of("x"), kWriterPid, sent), 0);
  EXPECT_EQ(set("q", [](Settings& s) { s.kind = QueueKind::topic; }), -EBUSY);
  EXPECT_EQ(q->settings().kind, QueueKind::queue);
}

TEST_F(TopicsTest, OverflowBlockHoldsThePublisherUntilEverySubscriberHasRoom) {
  EXPECT_EQ(set("t", [](Settings& s) { s.maxmsg = 1; }), 0);
  OpenFile& slow = open(t, true);
  OpenFile& fast = open(t, true);
  EXPECT_EQ(publish("1"), 0);
  EXPECT_EQ(read(fast), "1");
  EXPECT_EQ(publish("2"), -EAGAIN);  // `slow` is full
  EXPECT_FALSE(t->writable());

  FakeSender blocked;
  ASSERT_TRUE(publish_blocked("2", blocked));
  EXPECT_EQ(read(slow), "1");  // room: the publish goes on
  EXPECT_EQ(blocked.accepted, 1u);
  EXPECT_EQ(read(slow), "2");
  EXPECT_EQ(read(fast), "2");
}

TEST_F(TopicsTest, ASubscriberThatLeavesLetsTheBlockedPublisherGoOn) {
  EXPECT_EQ(set("t", [](Settings& s) { s.maxmsg = 1; }), 0);
  OpenFile& full = open(t, true);
  EXPECT_EQ(publish("1"), 0);
  FakeSender blocked;
  ASSERT_TRUE(publish_blocked("2", blocked));
  close(full);
  EXPECT_EQ(blocked.accepted, 1u);
  EXPECT_EQ(t->dropped(), 1u);  // no one left to take it
}

// A writer held back by a full lasting subscriber goes on when that queue
// stops subscribing, or is removed.
TEST_F(TopicsTest, ALastingSubscriberThatLeavesLetsTheBlockedPublisherGoOn) {
  for (bool remove : {false, true}) {
    EXPECT_EQ(set("q", [](Settings& s) {
                s.subscribe = {"t"};
                s.maxmsg = 1;
              }),
              0);
    EXPECT_EQ(publish("1"), 0);
    FakeSender blocked;
    ASSERT_TRUE(publish_blocked("2", blocked));
    if (remove) {
      EXPECT_EQ(names.unlink(names.root(), "q"), 0);
    } else {
      EXPECT_EQ(set("q", [](Settings& s) { s.subscribe = {}; }), 0);
      EXPECT_EQ(drain(q), Order{"1"});
    }
    EXPECT_EQ(blocked.accepted, 1u) << (remove ? "rm" : "subscribe \"\"");
    EXPECT_TRUE(t->writable());
  }
}

// A message-mode subscriber that leased its one message is at its end: no
// longer a subscriber, so it holds back no writer.
TEST_F(TopicsTest, ASubscriberAtItsEndUnderLeaseLetsTheBlockedPublisherGoOn) {
  EXPECT_EQ(set("t", [](Settings& s) { s.maxmsg = 1; }), 0);
  OpenFile& r = open(t, true, ReadMode::message);
  r.set_ack_mode(AckMode::explicit_ack);
  EXPECT_EQ(publish("1"), 0);
  FakeSender blocked;
  ASSERT_TRUE(publish_blocked("2", blocked));
  EXPECT_EQ(read(r), "1");
  EXPECT_EQ(blocked.accepted, 1u);
}

TEST_F(TopicsTest, SwitchingASubscriberThatHadItsMessageToMessageModeEndsIt) {
  EXPECT_EQ(set("t", [](Settings& s) { s.maxmsg = 1; }), 0);
  OpenFile& r = open(t, true, ReadMode::stream);
  EXPECT_EQ(publish("1"), 0);
  EXPECT_EQ(read(r), "1");
  EXPECT_EQ(publish("2"), 0);
  FakeSender blocked;
  ASSERT_TRUE(publish_blocked("3", blocked));
  r.source().set_read_mode(r, ReadMode::message);
  EXPECT_EQ(blocked.accepted, 1u);
}

// A topic turned back into a queue while a writer waits: the write goes to
// the queue, not to some of the subscribers that are leaving.
TEST_F(TopicsTest, BackToAQueueABlockedPublishIsQueued) {
  EXPECT_EQ(set("t", [](Settings& s) { s.maxmsg = 1; }), 0);
  OpenFile& r1 = open(t, true);
  OpenFile& r2 = open(t, true);
  EXPECT_EQ(publish("1"), 0);
  FakeSender blocked;
  ASSERT_TRUE(publish_blocked("2", blocked));
  EXPECT_EQ(set("t", [](Settings& s) { s.kind = QueueKind::queue; }), 0);
  EXPECT_EQ(blocked.accepted, 1u);
  EXPECT_EQ(t->curmsgs(), 1u);
  EXPECT_EQ(t->dropped(), 0u);
  EXPECT_EQ(drain(r1), Order{"1"});
  EXPECT_EQ(drain(r2), Order{"1"});
}

TEST_F(TopicsTest, OverflowDropMissesTheMessageForAFullSubscriberOnly) {
  EXPECT_EQ(set("t", [](Settings& s) { s.overflow = Overflow::drop; }), 0);
  EXPECT_EQ(set("q", [](Settings& s) {
              s.subscribe = {"t"};
              s.maxmsg = 1;
            }),
            0);
  OpenFile& r = open(t, true);
  EXPECT_EQ(publish("1"), 0);
  EXPECT_EQ(publish("2"), 0);  // q is full
  EXPECT_EQ(q->dropped(), 1u);
  EXPECT_EQ(t->dropped(), 0u);
  EXPECT_EQ(drain(r), (Order{"1", "2"}));
  EXPECT_EQ(drain(q), (Order{"1"}));
}

// One body for every subscriber: the budget counts its bytes once, and
// each copy's bookkeeping.
TEST_F(TopicsTest, ThePublishedBytesAreChargedOnce) {
  for (int i = 0; i < 10; ++i) open(t, true);
  const uint64_t before = budget.bytes();
  EXPECT_EQ(publish(std::string(1000, 'x')), 0);
  EXPECT_EQ(budget.bytes() - before, 1000 + kMessageOverhead + 10 * kMessageOverhead);
  for (auto& f : files) EXPECT_EQ(drain(*f), Order{std::string(1000, 'x')});
  EXPECT_EQ(budget.bytes(), before);
}

TEST_F(TopicsTest, AWriterThatMissedItsAnswerPublishesNothing) {
  OpenFile& r = open(t, true);
  OpenFile writer(t, false, true);
  FakeSender refused;
  refused.refuse = true;
  with_nonblocking(writer, true, [&] { t->send(writer, bytes_of("x"), kWriterPid, kT0, refused); });
  EXPECT_EQ(refused.answers, 1);
  EXPECT_EQ(drain(r), Order{});
  EXPECT_EQ(t->sent(), 0u);
  EXPECT_EQ(budget.bytes(), 0u);
}

TEST_F(TopicsTest, ANackReturnsTheMessageToTheSameSubscriber) {
  OpenFile& r = open(t, true);
  OpenFile& other = open(t, true);
  r.set_ack_mode(AckMode::explicit_ack);
  EXPECT_EQ(publish("x"), 0);
  EXPECT_EQ(read(r), "x");
  EXPECT_EQ(r.source().nack(r, 0, Clock::now()), 0);
  EXPECT_EQ(read(r), "x");
  EXPECT_EQ(r.last_delivery()->deliveries, 2u);
  EXPECT_EQ(r.source().ack(r, 0), 0);
  EXPECT_EQ(drain(other), Order{"x"});
}

TEST_F(TopicsTest, BackToAQueueItsSubscribersGetNothingMore) {
  OpenFile& r = open(t, true);
  EXPECT_EQ(set("t", [](Settings& s) { s.kind = QueueKind::queue; }), 0);
  EXPECT_EQ(publish("kept"), 0);
  EXPECT_EQ(drain(r), Order{});
  EXPECT_EQ(t->curmsgs(), 1u);
}

// A topic's reading descriptor polls its subscription, and its POLLOUT is
// the topic's: a topic made a queue again changes it, and tells it.
TEST_F(TopicsTest, BackToAQueueItsReadingDescriptorsPollersAreNotified) {
  OpenFile& r = open(t, true);
  int notified = 0;
  r.source().watch(r, std::make_unique<CountingWatch>(notified));
  EXPECT_EQ(set("t", [](Settings& s) { s.kind = QueueKind::queue; }), 0);
  EXPECT_EQ(notified, 1);
}

// SPEC section 12: each waiting reader is served by its selection, in
// arrival order; one that takes nothing queued holds back no one.
TEST(Selection, AWaitingReaderOfOneTypeHoldsBackNoReaderOfAnother) {
  Settings s;
  s.maxmsg = 10;
  Rig rig(s);
  OpenFile& fives = rig.open(true, false);
  OpenFile& threes = rig.open(true, false);
  fives.set_selection({.type = 5});
  threes.set_selection({.type = 3});
  FakeReceiver five, three;
  rig.queue->receive(fives, 100, kReaderPid, kT0, five);
  rig.queue->receive(threes, 100, kReaderPid, kT0, three);
  ASSERT_TRUE(five.waiting() && three.waiting());
  rig.writer.set_type(3);
  FakeSender sent;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("3"), kWriterPid, sent), 0);
  EXPECT_EQ(three.got, "3");
  EXPECT_TRUE(five.waiting());
  rig.writer.set_type(5);
  FakeSender sent5;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("5"), kWriterPid, sent5), 0);
  EXPECT_EQ(five.got, "5");
}

TEST(Selection, ChangingTheSelectionServesAWaitingRead) {
  Rig rig;
  OpenFile& r = rig.open(true, false);
  r.set_selection({.type = 5});
  FakeSender sent;
  EXPECT_EQ(send_now(*rig.queue, rig.writer, bytes_of("one"), kWriterPid, sent), 0);
  FakeReceiver got;
  rig.queue->receive(r, 100, kReaderPid, kT0, got);
  ASSERT_TRUE(got.waiting());
  EXPECT_FALSE(rig.queue->readable(r));
  rig.queue->select(r, {.type = 1});
  EXPECT_EQ(got.got, "one");
}

}  // namespace
}  // namespace mqfs::engine
