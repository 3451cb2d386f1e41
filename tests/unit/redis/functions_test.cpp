// The Redis store's server functions (store/redis_functions.lua) through
// their calls (store/redis_calls.hpp), against a real redis-server: the
// global priority order, maxmsg over every mount's messages, take, ack and
// give back, leases of dead mounts, selections, dead letters, and the events
// the mounts follow.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <map>
#include <string>
#include <vector>

#include "engine/settings.hpp"
#include "redis_server.hpp"

namespace mqfs::store::redis::testing {
namespace {

using namespace std::string_literals;
using engine::Budget;
using engine::Message;
using engine::MessagePtr;
using engine::Selection;

constexpr uint64_t kQueue = 2;

// The change that removes node `ino`.
NameChange removal(uint64_t ino) {
  NameChange change;
  change.node.ino = ino;
  change.remove = true;
  return change;
}
constexpr uint64_t kDeadLetters = 3;

class RedisFunctionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MQFS_REQUIRE_REDIS_SERVER();
    server = std::make_unique<RedisServer>();
    ASSERT_TRUE(server->started()) << "redis-server did not start";
    c = server->connect();
    ASSERT_TRUE(c);
    Command load;
    load.add("FUNCTION");
    load.add("LOAD");
    load.add("REPLACE");
    load.add(functions());
    ReplyPtr loaded = run(c.get(), load);
    ASSERT_TRUE(loaded);
    ASSERT_NE(loaded->type, REDIS_REPLY_ERROR) << loaded->str;
    heartbeat("A", 60000);
    heartbeat("B", 60000);
    ASSERT_EQ(make_queue(kQueue, "q", 10), Status::ok);
  }

  // Names: a queue `name` in the root made, its maxmsg set, or removed, at
  // the names' version (as a mount that checked the change against it).
  Status change_names(const NameChange& change, const Keys& k) {
    const NamesChanged changed = parse_names_changed(run(c.get(), names(k, versions[k.prefix()], {&change, 1})).get());
    if (changed.status == Status::ok) versions[k.prefix()] = changed.version;
    return changed.status;
  }
  Status make_queue(uint64_t ino, const std::string& name, int64_t maxmsg, const Keys& k) {
    settings[ino].maxmsg = maxmsg;
    return change_names({.node = {.ino = ino, .parent = 1, .name = name, .mode = 0100644}, .settings = &settings[ino]},
                        k);
  }
  Status make_queue(uint64_t ino, const std::string& name, int64_t maxmsg) { return make_queue(ino, name, maxmsg, keys); }
  Status set_maxmsg(uint64_t ino, int64_t maxmsg) { return make_queue(ino, "q", maxmsg); }
  Status remove_queue(uint64_t ino) { return change_names(removal(ino), keys); }

  MessagePtr message(const std::string& text, engine::Priority priority = 0, engine::Type type = 1) {
    MessagePtr m = Message::make(budget, std::as_bytes(std::span{text.data(), text.size()}), priority, type);
    m->set_enqueued_ns(1'700'000'000'000'000'000 + static_cast<int64_t>(text.size()));
    return m;
  }

  Sent send(const std::vector<std::string>& texts, engine::Priority priority = 0, engine::Type type = 1,
            uint64_t queue = kQueue) {
    std::vector<MessagePtr> owned;
    std::vector<const Message*> messages;
    for (const std::string& text : texts) {
      owned.push_back(message(text, priority, type));
      messages.push_back(owned.back().get());
    }
    return parse_sent(run(c.get(), redis::send(keys, keys.queue(queue), messages)).get());
  }

  Taken take(const std::string& mount, Selection selection = {}, uint32_t most = 1, std::size_t limit = 0,
             std::size_t header = 0, uint64_t queue = kQueue) {
    return parse_taken(run(c.get(), redis::take(keys, keys.queue(queue), mount, selection, most, limit, header)).get(), budget);
  }

  // The texts of what `mount` takes, one message at a time, until none is left.
  std::vector<std::string> drain(const std::string& mount, Selection selection = {}) {
    std::vector<std::string> texts;
    for (;;) {
      Taken taken = take(mount, selection);
      if (taken.status != Status::ok) break;
      for (const MessagePtr& m : taken.messages) texts.push_back(text(*m));
      EXPECT_EQ(acknowledge(mount, taken.messages), std::vector<bool>(taken.messages.size(), true));
    }
    return texts;
  }

  std::vector<bool> acknowledge(const std::string& mount, const std::vector<MessagePtr>& taken,
                                uint64_t queue = kQueue) {
    std::vector<const Message*> messages;
    for (const MessagePtr& m : taken) messages.push_back(m.get());
    return parse_held(run(c.get(), ack(keys, keys.queue(queue), mount, messages)).get()).value_or(std::vector<bool>{});
  }

  std::vector<bool> give_back(const std::string& mount, const std::vector<MessagePtr>& taken, int64_t delay_ms = 0) {
    std::vector<const Message*> messages;
    for (const MessagePtr& m : taken) messages.push_back(m.get());
    return parse_held(run(c.get(), release(keys, keys.queue(kQueue), mount, delay_ms, messages)).get())
        .value_or(std::vector<bool>{});
  }

  long long heartbeat(const std::string& mount, int64_t lease_ms) {
    return parse_integer(run(c.get(), redis::heartbeat(keys, mount, lease_ms)).get()).value_or(-1);
  }

  Snapshot snapshot(uint64_t queue = kQueue) {
    return parse_snapshot(run(c.get(), redis::snapshot(keys, keys.queue(queue))).get(), budget);
  }

  static std::string text(const Message& m) {
    return {reinterpret_cast<const char*>(m.bytes().data()), m.size()};
  }

  std::unique_ptr<RedisServer> server;
  ContextPtr c;
  Budget budget{1000, uint64_t{1} << 30};
  Keys keys{"mqfs"};
  std::map<std::string, uint64_t> versions;      // of each prefix's names
  std::map<uint64_t, engine::Settings> settings;  // of each queue made
};

TEST_F(RedisFunctionsTest, HighestPriorityFirstThenOldest) {
  ASSERT_EQ(send({"low"}, 1).status, Status::ok);
  ASSERT_EQ(send({"high 1", "high 2"}, 32767).status, Status::ok);
  ASSERT_EQ(send({"middle"}, 5).status, Status::ok);
  ASSERT_EQ(send({"high 3"}, 32767).status, Status::ok);
  EXPECT_EQ(drain("A"), (std::vector<std::string>{"high 1", "high 2", "high 3", "middle", "low"}));
}

TEST_F(RedisFunctionsTest, TakenMessagesCarryWhatWasSent) {
  const std::string bytes("a\0b\nc", 5);
  const Sent sent = send({bytes}, 7, 42);
  ASSERT_EQ(sent.ids.size(), 1u);
  Taken taken = take("A");
  ASSERT_EQ(taken.status, Status::ok);
  ASSERT_EQ(taken.messages.size(), 1u);
  const Message& m = *taken.messages[0];
  EXPECT_EQ(text(m), bytes);
  EXPECT_EQ(m.priority(), 7);
  EXPECT_EQ(m.type(), 42);
  EXPECT_EQ(m.id(), sent.ids[0]);
  EXPECT_EQ(m.enqueued_ns(), 1'700'000'000'000'000'005);
  EXPECT_EQ(m.deliveries(), 1u);
}

TEST_F(RedisFunctionsTest, TheLargestMessageGoesThroughWhole) {
  const std::string big(engine::kMaxMsgsize, 'x');
  ASSERT_EQ(send({big}).status, Status::ok);
  Taken taken = take("A");
  ASSERT_EQ(taken.messages.size(), 1u);
  EXPECT_EQ(text(*taken.messages[0]), big);
}

TEST_F(RedisFunctionsTest, MaxmsgCountsQueuedHeldAndDelayedMessages) {
  ASSERT_EQ(set_maxmsg(kQueue, 3), Status::ok);
  const Sent first = send({"1", "2", "3", "4"});
  EXPECT_EQ(first.status, Status::full);
  EXPECT_EQ(first.ids.size(), 3u);  // queued one by one until full

  Taken held = take("A");
  ASSERT_EQ(held.status, Status::ok);
  EXPECT_EQ(send({"5"}).status, Status::full);  // held by a reader: still counted
  Taken delayed = take("B");
  ASSERT_EQ(give_back("B", delayed.messages, 60000), std::vector<bool>{true});
  EXPECT_EQ(send({"5"}).status, Status::full);  // waiting for its retry delay: counted

  ASSERT_EQ(acknowledge("A", held.messages), std::vector<bool>{true});
  const Sent after = send({"5", "6"});
  EXPECT_EQ(after.status, Status::full);
  EXPECT_EQ(after.ids.size(), 1u);
}

TEST_F(RedisFunctionsTest, AMessageTakenByOneMountIsNotTakenByAnother) {
  ASSERT_EQ(send({"only"}).status, Status::ok);
  Taken a = take("A");
  ASSERT_EQ(a.status, Status::ok);
  EXPECT_EQ(take("B").status, Status::empty);
  // Only its holder can settle it.
  EXPECT_EQ(acknowledge("B", a.messages), std::vector<bool>{false});
  EXPECT_EQ(give_back("B", a.messages), std::vector<bool>{false});
  EXPECT_EQ(acknowledge("A", a.messages), std::vector<bool>{true});
  EXPECT_EQ(acknowledge("A", a.messages), std::vector<bool>{false});
  const Snapshot s = snapshot();
  EXPECT_EQ(s.received, 1u);
  EXPECT_EQ(s.sent, 1u);
  EXPECT_TRUE(s.queued.empty());
  EXPECT_TRUE(s.held.empty());
}

TEST_F(RedisFunctionsTest, AGivenBackMessageReturnsToItsPlaceAndCountsItsDeliveries) {
  ASSERT_EQ(send({"first", "second"}).status, Status::ok);
  Taken a = take("A");
  ASSERT_EQ(text(*a.messages[0]), "first");
  ASSERT_EQ(send({"third"}).status, Status::ok);
  ASSERT_EQ(give_back("A", a.messages), std::vector<bool>{true});
  Taken again = take("B");
  ASSERT_EQ(again.status, Status::ok);
  EXPECT_EQ(text(*again.messages[0]), "first");
  EXPECT_EQ(again.messages[0]->id(), a.messages[0]->id());
  EXPECT_EQ(again.messages[0]->deliveries(), 2u);
  ASSERT_EQ(acknowledge("B", again.messages), std::vector<bool>{true});
  EXPECT_EQ(drain("A"), (std::vector<std::string>{"second", "third"}));
}

TEST_F(RedisFunctionsTest, AMessageGivenBackWithADelayComesBackWhenItIsDue) {
  ASSERT_EQ(send({"retry"}).status, Status::ok);
  Taken a = take("A");
  ASSERT_EQ(give_back("A", a.messages, 200), std::vector<bool>{true});
  EXPECT_EQ(take("A").status, Status::empty);
  ASSERT_EQ(snapshot().held.size(), 1u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  Taken due;
  while ((due = take("B")).status == Status::empty && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(due.status, Status::ok);
  EXPECT_EQ(text(*due.messages[0]), "retry");
  EXPECT_EQ(due.messages[0]->deliveries(), 2u);
}

TEST_F(RedisFunctionsTest, ADeadMountsMessagesGoBackWhenAnotherMountBeats) {
  ASSERT_EQ(send({"first", "second"}).status, Status::ok);
  heartbeat("dying", 60000);
  Taken held = take("dying", {}, 2, 1 << 20);
  ASSERT_EQ(held.messages.size(), 2u);
  EXPECT_EQ(heartbeat("A", 60000), 0);  // its lease still runs

  heartbeat("dying", 1);  // and then it stopped beating
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(take("dying").status, Status::expired);
  EXPECT_EQ(heartbeat("A", 60000), 2);
  EXPECT_EQ(drain("B"), (std::vector<std::string>{"first", "second"}));
  // Too late: what it took is no longer its own.
  EXPECT_EQ(acknowledge("dying", held.messages), (std::vector<bool>{false, false}));
  EXPECT_EQ(snapshot().received, 2u);
}

TEST_F(RedisFunctionsTest, ADeadMountThatHeldManyIsReapedAFewAtATime) {
  ASSERT_EQ(send({"1", "2", "3"}).status, Status::ok);
  heartbeat("dying", 60000);
  ASSERT_EQ(take("dying", {}, 3, 1 << 20).messages.size(), 3u);
  heartbeat("dying", 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto reap = [&] {
    return parse_integer(run(c.get(), redis::heartbeat(keys, "A", 60000, 2)).get()).value_or(-1);
  };
  EXPECT_EQ(reap(), 2);
  ReplyPtr listed = run(c.get(), Command{{"ZSCORE", "mqfs:mounts", "dying"}});
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->type, REDIS_REPLY_STRING);  // not forgotten while it holds one
  EXPECT_EQ(reap(), 1);
  listed = run(c.get(), Command{{"ZSCORE", "mqfs:mounts", "dying"}});
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->type, REDIS_REPLY_NIL);
  EXPECT_EQ(reap(), 0);
  EXPECT_EQ(drain("B"), (std::vector<std::string>{"1", "2", "3"}));
}

TEST_F(RedisFunctionsTest, ABatchTakesWholeMessagesInOrderWhileTheyFit) {
  ASSERT_EQ(send({"aaaa", "bbbb", "cccc", "dddd"}).status, Status::ok);
  // u32 framing: each message after 4 bytes of length; 16 bytes fit two.
  Taken two = take("A", {}, 100, 16, 4);
  ASSERT_EQ(two.messages.size(), 2u);
  EXPECT_EQ(text(*two.messages[0]), "aaaa");
  EXPECT_EQ(text(*two.messages[1]), "bbbb");
  Taken one = take("A", {}, 1, 1000, 4);
  ASSERT_EQ(one.messages.size(), 1u);
  EXPECT_EQ(text(*one.messages[0]), "cccc");
  const Taken big = take("A", {}, 100, 7, 4);
  EXPECT_EQ(big.status, Status::big);
  EXPECT_EQ(big.size, 4u);
  EXPECT_EQ(take("A", {}, 100, 8, 4).messages.size(), 1u);
}

TEST_F(RedisFunctionsTest, SelectionsTakeAsMsgrcvDoes) {
  ASSERT_EQ(send({"t5"}, 0, 5).status, Status::ok);
  ASSERT_EQ(send({"t2"}, 0, 2).status, Status::ok);
  ASSERT_EQ(send({"t9 high"}, 10, 9).status, Status::ok);
  ASSERT_EQ(send({"t2 again"}, 0, 2).status, Status::ok);
  ASSERT_EQ(send({"tmax"}, 0, INT64_MAX).status, Status::ok);
  ASSERT_EQ(send({"tmax-1"}, 0, INT64_MAX - 1).status, Status::ok);

  EXPECT_EQ(drain("A", {.type = 2}), (std::vector<std::string>{"t2", "t2 again"}));
  EXPECT_EQ(take("A", {.type = 2}).status, Status::empty);
  // Any but 9: the front (t9 high) is skipped.
  EXPECT_EQ(text(*take("A", {.type = 9, .except = true}).messages[0]), "t5");
  ASSERT_EQ(send({"t1"}, 0, 1).status, Status::ok);
  // The lowest type up to 9, whatever the priorities.
  EXPECT_EQ(text(*take("A", {.type = -9}).messages[0]), "t1");
  EXPECT_EQ(text(*take("A", {.type = -9}).messages[0]), "t9 high");
  EXPECT_EQ(take("A", {.type = -9}).status, Status::empty);
  // Types past 2^53 keep their exact order.
  EXPECT_EQ(text(*take("A", {.type = INT64_MIN}).messages[0]), "tmax-1");
  EXPECT_EQ(text(*take("A", {.type = INT64_MAX}).messages[0]), "tmax");
}

TEST_F(RedisFunctionsTest, ADeadLetterGoesToTheEndOfItsQueuePastMaxmsg) {
  ASSERT_EQ(make_queue(kDeadLetters, "dead", 1), Status::ok);
  ASSERT_EQ(send({"older"}, 0, 1, kDeadLetters).status, Status::ok);
  ASSERT_EQ(send({"poison"}, 9).status, Status::ok);
  Taken a = take("A");
  Status status;
  const auto id = parse_dead_letter(run(c.get(), dead_letter(keys, keys.queue(kQueue), keys.queue(kDeadLetters), "A", *a.messages[0])).get(),
                                    &status);
  ASSERT_EQ(status, Status::ok);
  ASSERT_TRUE(id);
  EXPECT_GT(*id, a.messages[0]->id());
  EXPECT_EQ(snapshot().dead_lettered, 1u);
  const Snapshot letters = snapshot(kDeadLetters);
  ASSERT_EQ(letters.queued.size(), 2u);  // maxmsg 1, and still taken in
  EXPECT_EQ(text(*letters.queued[0]), "poison");  // priority 9 kept
  EXPECT_EQ(letters.queued[0]->deliveries(), 0u);
  // Not held any more: a second move, an ack or a give-back finds nothing.
  parse_dead_letter(run(c.get(), dead_letter(keys, keys.queue(kQueue), keys.queue(kDeadLetters), "A", *a.messages[0])).get(), &status);
  EXPECT_EQ(status, Status::expired);
  EXPECT_EQ(acknowledge("A", a.messages), std::vector<bool>{false});
}

TEST_F(RedisFunctionsTest, ARemovedQueueIsGoneForEveryCall) {
  ASSERT_EQ(send({"queued", "held"}).status, Status::ok);
  Taken a = take("A");
  ASSERT_EQ(remove_queue(kQueue), Status::ok);
  EXPECT_EQ(send({"more"}).status, Status::gone);
  EXPECT_EQ(take("B").status, Status::gone);
  EXPECT_EQ(snapshot().status, Status::gone);
  EXPECT_EQ(acknowledge("A", a.messages), std::vector<bool>{false});
  ReplyPtr listed = run(c.get(), Command{{"SCARD", "mqfs:mount:A"}});  // what A holds, for reaping
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->integer, 0);
  // Nothing of it is left in Redis.
  ReplyPtr left = run(c.get(), Command{{"KEYS", "mqfs:q:2*"}});
  ASSERT_TRUE(left);
  EXPECT_EQ(left->elements, 0u);
}

TEST_F(RedisFunctionsTest, APurgeDropsQueuedMessagesAndKeepsHeldOnes) {
  ASSERT_EQ(send({"held", "queued 1", "queued 2"}).status, Status::ok);
  Taken a = take("A");
  EXPECT_EQ(parse_integer(run(c.get(), purge(keys, keys.queue(kQueue))).get()), 2);
  EXPECT_EQ(take("B").status, Status::empty);
  ASSERT_EQ(give_back("A", a.messages), std::vector<bool>{true});
  EXPECT_EQ(drain("B"), std::vector<std::string>{"held"});
}

TEST_F(RedisFunctionsTest, ASnapshotHasQueuedMessagesInOrderAndHeldOnesWithTheirHolder) {
  ASSERT_EQ(send({"b"}, 1).status, Status::ok);
  ASSERT_EQ(send({"a"}, 2).status, Status::ok);
  ASSERT_EQ(send({"c"}, 0).status, Status::ok);
  Taken a = take("A");  // "a"
  Taken b = take("B");  // "b"
  ASSERT_EQ(give_back("B", b.messages, 60000), std::vector<bool>{true});
  const Snapshot s = snapshot();
  ASSERT_EQ(s.status, Status::ok);
  EXPECT_EQ(s.maxmsg, 10);
  EXPECT_EQ(s.sent, 3u);
  ASSERT_EQ(s.queued.size(), 1u);
  EXPECT_EQ(text(*s.queued[0]), "c");
  ASSERT_EQ(s.held.size(), 2u);
  EXPECT_EQ(text(*s.held[0].message), "a");
  EXPECT_EQ(s.held[0].mount, "A");
  EXPECT_EQ(text(*s.held[1].message), "b");
  EXPECT_EQ(s.held[1].mount, "");  // waiting for its retry delay
}

TEST_F(RedisFunctionsTest, TwoPrefixesAreTwoFilesystems) {
  const Keys other{"other"};
  ASSERT_EQ(make_queue(kQueue, "q", 10, other), Status::ok);
  ASSERT_EQ(send({"here"}).status, Status::ok);
  EXPECT_EQ(parse_integer(run(c.get(), redis::heartbeat(other, "A", 60000)).get()), 0);
  EXPECT_EQ(parse_taken(run(c.get(), redis::take(other, other.queue(kQueue), "A", {}, 1, 0, 0)).get(), budget).status,
            Status::empty);
  EXPECT_EQ(drain("A"), std::vector<std::string>{"here"});
}

TEST_F(RedisFunctionsTest, EveryChangeIsPublishedForTheOtherMounts) {
  ASSERT_EQ(set_maxmsg(kQueue, 1), Status::ok);  // full at one message: its acknowledgement makes room
  ContextPtr listener = server->connect();
  ASSERT_TRUE(listener);
  ReplyPtr subscribed = run(listener.get(), Command{{"SUBSCRIBE", keys.events()}});
  ASSERT_TRUE(subscribed);
  const auto next_event = [&]() -> std::optional<Event> {
    redisReply* raw = nullptr;
    if (redisGetReply(listener.get(), reinterpret_cast<void**>(&raw)) != REDIS_OK) return std::nullopt;
    ReplyPtr reply(raw);
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return std::nullopt;
    return parse_event(keys, {reply->element[2]->str, reply->element[2]->len}, budget);
  };

  // The kind of the next event, none when none came or it did not parse.
  const auto next_kind = [&]() -> std::optional<Event::Kind> {
    auto event = next_event();
    return event ? std::optional(event->kind) : std::nullopt;
  };

  const Sent sent = send({"hello"}, 4, 6);
  auto queued = next_event();
  ASSERT_TRUE(queued);
  EXPECT_EQ(queued->kind, Event::Kind::queued);
  EXPECT_EQ(queued->queue, keys.queue(kQueue));
  ASSERT_TRUE(queued->message);
  EXPECT_EQ(text(*queued->message), "hello");
  EXPECT_EQ(queued->message->priority(), 4);
  EXPECT_EQ(queued->message->type(), 6);
  EXPECT_EQ(queued->message->id(), sent.ids[0]);

  Taken a = take("A");
  auto taken = next_event();
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->kind, Event::Kind::taken);
  EXPECT_EQ(taken->ids, sent.ids);

  ASSERT_EQ(give_back("A", a.messages), std::vector<bool>{true});
  auto back = next_event();
  ASSERT_TRUE(back);
  EXPECT_EQ(back->kind, Event::Kind::queued);
  EXPECT_EQ(back->ids, sent.ids);

  a = take("A");
  ASSERT_TRUE(next_event());
  ASSERT_EQ(acknowledge("A", a.messages), std::vector<bool>{true});
  auto acknowledged = next_event();
  ASSERT_TRUE(acknowledged);
  EXPECT_EQ(acknowledged->kind, Event::Kind::acknowledged);
  EXPECT_EQ(acknowledged->count, 1u);

  ASSERT_EQ(set_maxmsg(kQueue, 20), Status::ok);
  EXPECT_EQ(next_kind(), Event::Kind::configured);
  auto names = next_event();
  ASSERT_TRUE(names);
  EXPECT_EQ(names->kind, Event::Kind::names);
  EXPECT_EQ(names->count, versions["mqfs"]);

  // An acknowledgement in a queue that was not full makes no room anyone
  // waits for: it is not announced.
  send({"again"});
  EXPECT_EQ(next_kind(), Event::Kind::queued);
  a = take("A");
  EXPECT_EQ(next_kind(), Event::Kind::taken);
  ASSERT_EQ(acknowledge("A", a.messages), std::vector<bool>{true});

  // One send of several messages: one event for all of them.
  const Sent both = send({"x y", std::string("\0 z", 3)});
  auto batch = next_event();
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->kind, Event::Kind::queued);
  EXPECT_EQ(batch->ids, both.ids);
  ASSERT_EQ(batch->messages.size(), 2u);
  EXPECT_EQ(text(*batch->messages[0]), "x y");
  EXPECT_EQ(text(*batch->messages[1]), std::string("\0 z", 3));
  ASSERT_EQ(remove_queue(kQueue), Status::ok);
  EXPECT_EQ(next_kind(), Event::Kind::removed);
  EXPECT_EQ(next_kind(), Event::Kind::names);
}

TEST(RedisCallsTest, OrderKeysSortAsTheQueueOrder) {
  EXPECT_LT(order_key(32767, 99), order_key(32766, 1));
  EXPECT_LT(order_key(5, 9), order_key(5, 10));
  EXPECT_LT(order_key(0, 1), order_key(0, (uint64_t{1} << 53) - 1));
  const auto order = parse_order_key(order_key(1234, 567890));
  ASSERT_TRUE(order);
  EXPECT_EQ(order->priority, 1234);
  EXPECT_EQ(order->id, 567890u);
  EXPECT_FALSE(parse_order_key("zz"));
  EXPECT_FALSE(parse_order_key("8000000000000000001"));  // 19 digits
  EXPECT_FALSE(parse_order_key("800000000000000001"));   // priority below 0
}

TEST(RedisCallsTest, MalformedEventsAreRejected) {
  Budget budget{1, 1 << 20};
  const Keys keys{"mqfs"};
  EXPECT_FALSE(parse_event(keys, "", budget));
  EXPECT_FALSE(parse_event(keys, "s mqfs:q:2", budget));
  EXPECT_FALSE(parse_event(keys, "s other:q:2 7fff00000000000001 x", budget));
  EXPECT_FALSE(parse_event(keys, "t mqfs:q:2 nothex", budget));
  EXPECT_FALSE(parse_event(keys, "S mqfs:q:2 7fff00000000000001zz", budget));        // no length
  EXPECT_FALSE(parse_event(keys, "S mqfs:q:2 7fff0000000000000100000099x", budget));  // longer than the rest
  EXPECT_FALSE(parse_event(keys, "r mqfs:q:2 A", budget));                            // no token
  EXPECT_FALSE(parse_event(keys, "a mqfs:q:2 -1", budget));
  EXPECT_FALSE(parse_event(keys, "q mqfs:q:2", budget));
  EXPECT_FALSE(parse_event(keys, "n x", budget));
  EXPECT_FALSE(parse_event(keys, "x mqfs:q:", budget));
  EXPECT_FALSE(parse_event(keys, "x other:d:A:1", budget));
  EXPECT_TRUE(parse_event(keys, "x mqfs:d:A:1", budget));
  EXPECT_TRUE(parse_event(keys, "x mqfs:q:2", budget));
  EXPECT_TRUE(parse_event(keys, "n 7", budget));
}

TEST_F(RedisFunctionsTest, NamesChangeOnlyAtTheVersionTheyWereCheckedAgainst) {
  const uint64_t seen = versions["mqfs"];
  ASSERT_EQ(make_queue(10, "first", 10), Status::ok);
  EXPECT_EQ(versions["mqfs"], seen + 1);
  // Another mount checked its change against the names before that one.
  engine::Settings s;
  const NameChange late[] = {{.node = {.ino = 11, .parent = 1, .name = "second", .mode = 0100644}, .settings = &s},
                             removal(10)};
  const NamesChanged refused = parse_names_changed(run(c.get(), names(keys, seen, late)).get());
  EXPECT_EQ(refused.status, Status::conflict);
  EXPECT_EQ(refused.version, seen + 1);
  // None of its changes was made.
  const Names now = parse_names(run(c.get(), names_snapshot(keys)).get());
  ASSERT_EQ(now.status, Status::ok);
  EXPECT_EQ(now.version, seen + 1);
  std::vector<std::string> listed;
  for (const Contents::Node& n : now.nodes) listed.push_back(n.node.name);
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, (std::vector<std::string>{"first", "q"}));
  EXPECT_EQ(send({"x"}, 0, 1, 11).status, Status::gone);
  // Checked again against the names now, both go through together.
  const NamesChanged applied = parse_names_changed(run(c.get(), names(keys, now.version, late)).get());
  EXPECT_EQ(applied.status, Status::ok);
  EXPECT_EQ(send({"x"}, 0, 1, 11).status, Status::ok);
  EXPECT_EQ(send({"x"}, 0, 1, 10).status, Status::gone);
}

TEST_F(RedisFunctionsTest, ANodeKeepsItsNameOwnerModeAndSettings) {
  engine::Settings s;
  s.maxmsg = 77;
  s.framing = engine::Framing::u32;
  s.dead_letter = "jobs/dead";
  s.kind = engine::QueueKind::topic;
  s.subscribe = {"a/b", "c"};
  s.type = INT64_MAX;
  const NodeState odd{.ino = 12, .parent = 5, .name = "new\nline: \0and 7:colons"s, .mode = 0100640,
                      .uid = 1000, .gid = 100};
  const NameChange changes[] = {{.node = {.ino = 5, .parent = 1, .name = "dir", .mode = 040755}},
                                {.node = odd, .settings = &s}};
  ASSERT_EQ(parse_names_changed(run(c.get(), names(keys, versions["mqfs"], changes)).get()).status, Status::ok);
  const Names now = parse_names(run(c.get(), names_snapshot(keys)).get());
  ASSERT_EQ(now.status, Status::ok);
  const Contents::Node* queue = nullptr;
  const Contents::Node* dir = nullptr;
  for (const Contents::Node& n : now.nodes) {
    if (n.node.ino == 12) queue = &n;
    if (n.node.ino == 5) dir = &n;
  }
  ASSERT_TRUE(queue && dir);
  EXPECT_FALSE(dir->queue);
  EXPECT_EQ(dir->node.mode, 040755u);
  EXPECT_EQ(queue->node.name, odd.name);
  EXPECT_EQ(queue->node.parent, 5u);
  EXPECT_EQ(queue->node.mode, 0100640u);
  EXPECT_EQ(queue->node.uid, 1000u);
  EXPECT_EQ(queue->node.gid, 100u);
  ASSERT_TRUE(queue->queue);
  const engine::Settings& got = queue->queue->settings;
  EXPECT_EQ(got.maxmsg, 77);
  EXPECT_EQ(got.framing, engine::Framing::u32);
  EXPECT_EQ(got.dead_letter, "jobs/dead");
  EXPECT_EQ(got.kind, engine::QueueKind::topic);
  EXPECT_EQ(got.subscribe, (std::vector<std::string>{"a/b", "c"}));
  EXPECT_EQ(got.type, INT64_MAX);
  EXPECT_EQ(snapshot(12).maxmsg, 77);  // the queue was made with its maxmsg
}

TEST_F(RedisFunctionsTest, InodesComeInBlocksNoTwoMountsShare) {
  const auto first = parse_integer(run(c.get(), inodes(keys, 100)).get());
  const auto second = parse_integer(run(c.get(), inodes(keys, 100)).get());
  EXPECT_EQ(first, 2);  // 1 is the root's
  EXPECT_EQ(second, 102);
}

// SPEC section 13 across mounts: a topic (inode 20), a queue subscribing to
// it (21), and open files' subscriptions, each a queue of its own.
class RedisTopicsTest : public RedisFunctionsTest {
 protected:
  static constexpr uint64_t kTopic = 20;
  static constexpr uint64_t kLasting = 21;

  void SetUp() override {
    RedisFunctionsTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    settings[kTopic].kind = engine::QueueKind::topic;
    ASSERT_EQ(make_queue(kTopic, "topic", 10), Status::ok);
    ASSERT_EQ(make_queue(kLasting, "lasting", 10), Status::ok);
  }

  Status subscribe(const std::string& mount, uint64_t number, int64_t maxmsg) {
    return parse_status(
        run(c.get(), redis::subscribe(keys, kTopic, keys.subscription(mount, number), mount, maxmsg)).get());
  }

  Published publish(const std::vector<std::string>& texts, std::vector<uint64_t> lasting = {kLasting},
                    engine::Overflow overflow = engine::Overflow::block, engine::Priority priority = 0) {
    std::vector<MessagePtr> owned;
    std::vector<const Message*> messages;
    for (const std::string& t : texts) {
      owned.push_back(message(t, priority));
      messages.push_back(owned.back().get());
    }
    return parse_published(
        run(c.get(), redis::publish(keys, kTopic, versions["mqfs"], overflow, lasting, messages)).get());
  }

  // What a queue (by its base) holds, in queue order.
  std::vector<std::string> held_by(const std::string& base) {
    std::vector<std::string> texts;
    for (const MessagePtr& m : parse_snapshot(run(c.get(), redis::snapshot(keys, base)).get(), budget).queued)
      texts.push_back(text(*m));
    return texts;
  }
};

TEST_F(RedisTopicsTest, EverySubscriberGetsACopyOfEachMessageInPriorityOrder) {
  ASSERT_EQ(subscribe("A", 1, 10), Status::ok);
  ASSERT_EQ(subscribe("B", 1, 10), Status::ok);
  const Published low = publish({"low"}, {kLasting}, engine::Overflow::block, 1);
  EXPECT_EQ(low.status, Status::ok);
  EXPECT_EQ(low.count, 3u);
  EXPECT_EQ(publish({"high"}, {kLasting}, engine::Overflow::block, 9).count, 3u);
  const std::vector<std::string> both{"high", "low"};
  EXPECT_EQ(held_by(keys.subscription("A", 1)), both);
  EXPECT_EQ(held_by(keys.subscription("B", 1)), both);
  EXPECT_EQ(held_by(keys.queue(kLasting)), both);
  EXPECT_TRUE(held_by(keys.queue(kTopic)).empty());  // a topic keeps none itself
  EXPECT_EQ(snapshot(kTopic).sent, 2u);
  // A subscription's messages are taken as any queue's.
  const Taken taken = parse_taken(
      run(c.get(), redis::take(keys, keys.subscription("A", 1), "A", {}, 1, 0, 0)).get(), budget);
  ASSERT_EQ(taken.status, Status::ok);
  EXPECT_EQ(text(*taken.messages[0]), "high");
}

TEST_F(RedisTopicsTest, WithNoSubscriberAMessageIsDroppedAndCounted) {
  const Published none = publish({"lost"}, {});
  EXPECT_EQ(none.status, Status::ok);
  EXPECT_EQ(none.count, 0u);
  EXPECT_EQ(snapshot(kTopic).dropped, 1u);
  EXPECT_EQ(snapshot(kTopic).sent, 1u);
}

TEST_F(RedisTopicsTest, AFullSubscriberHoldsThePublisherBackOrMissesTheMessage) {
  ASSERT_EQ(subscribe("A", 1, 1), Status::ok);
  EXPECT_EQ(publish({"one", "two"}).status, Status::full);
  // Held back: nobody got anything.
  EXPECT_TRUE(held_by(keys.queue(kLasting)).empty());
  EXPECT_TRUE(held_by(keys.subscription("A", 1)).empty());
  EXPECT_EQ(publish({"one"}).count, 2u);
  EXPECT_EQ(publish({"two"}).status, Status::full);
  // overflow=drop: the full subscriber misses it, and counts it.
  EXPECT_EQ(publish({"two", "three"}, {kLasting}, engine::Overflow::drop).count, 2u);
  EXPECT_EQ(held_by(keys.subscription("A", 1)), std::vector<std::string>{"one"});
  EXPECT_EQ(held_by(keys.queue(kLasting)), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(parse_snapshot(run(c.get(), redis::snapshot(keys, keys.subscription("A", 1))).get(), budget).dropped, 2u);
}

TEST_F(RedisTopicsTest, ThePublisherFindsTheLastingSubscribersAgainWhenTheNamesChanged) {
  const uint64_t seen = versions["mqfs"];
  ASSERT_EQ(make_queue(22, "another", 10), Status::ok);
  versions["mqfs"] = seen;  // the publisher's copy of the names is older
  const Published stale = publish({"m"});
  EXPECT_EQ(stale.status, Status::conflict);
  EXPECT_EQ(stale.count, seen + 1);
  EXPECT_TRUE(held_by(keys.queue(kLasting)).empty());
}

TEST_F(RedisTopicsTest, ASubscriptionEndsWithItsFileItsMountOrItsTopic) {
  ASSERT_EQ(subscribe("A", 1, 10), Status::ok);
  ASSERT_EQ(subscribe("A", 2, 10), Status::ok);
  ASSERT_EQ(subscribe("dying", 1, 10), Status::ok);
  heartbeat("dying", 1);
  EXPECT_EQ(publish({"m"}, {}).count, 3u);
  // Its file closed.
  ASSERT_EQ(parse_status(run(c.get(), redis::unsubscribe(keys, kTopic, keys.subscription("A", 2), "A")).get()),
            Status::ok);
  EXPECT_EQ(parse_snapshot(run(c.get(), redis::snapshot(keys, keys.subscription("A", 2))).get(), budget).status,
            Status::gone);
  // Its mount died.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  heartbeat("A", 60000);
  EXPECT_EQ(parse_snapshot(run(c.get(), redis::snapshot(keys, keys.subscription("dying", 1))).get(), budget).status,
            Status::gone);
  EXPECT_EQ(publish({"n"}, {}).count, 1u);  // A's first subscription only
  // Its topic was removed.
  ASSERT_EQ(remove_queue(kTopic), Status::ok);
  EXPECT_EQ(parse_snapshot(run(c.get(), redis::snapshot(keys, keys.subscription("A", 1))).get(), budget).status,
            Status::gone);
  ReplyPtr left = run(c.get(), Command{{"KEYS", "mqfs:d:*"}});
  ASSERT_TRUE(left);
  EXPECT_EQ(left->elements, 0u);
  EXPECT_EQ(publish({"o"}, {}).status, Status::gone);
}

TEST(RedisCallsTest, MalformedNodesAreRejectedAndUnknownSettingsLeftAlone) {
  for (const char* bad : {"", "x1:1", "d1:2", "d1:21:11:01:01:0", "d1:21:11:01:01:03:ab", "d1:21:11:01:01:02:ab9",
                          "q1:21:11:01:01:02:ab6:maxmsg1:0", "q1:21:11:01:01:02:ab6:maxmsg"})
    EXPECT_FALSE(decode_node(bad)) << bad;
  const auto node = decode_node("q1:21:11:01:01:02:ab6:maxmsg2:427:unknown3:any");
  ASSERT_TRUE(node);
  EXPECT_EQ(node->node.name, "ab");
  ASSERT_TRUE(node->queue);
  EXPECT_EQ(node->queue->settings.maxmsg, 42);
}

}  // namespace
}  // namespace mqfs::store::redis::testing
