// Queues shared by several mounts (SPEC section 10) through the engine and
// the Redis store, without FUSE: each "mount" is an engine queue with a
// RedisStore of its own, and all of them share one real redis-server. The
// loop below does what the daemon's loop does for the store: it waits on the
// store's descriptor and hands it its events and deadlines.
#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../doubles.hpp"
#include "engine/queue.hpp"
#include "redis_server.hpp"
#include "store/redis_store.hpp"

namespace mqfs::store::redis::testing {
namespace {

using namespace std::chrono_literals;
using engine::Outcome;

constexpr uint64_t kQueue = 2;

// One mount of the filesystem: its budget, timer, store and queue, and files
// open on the queue.
struct Mount {
  Mount(const Options& options, const engine::Settings& settings)
      : budget(engine::Limits{.max_nodes = 100, .max_bytes = 1 << 24}),
        store(loaded(options, budget)),
        queue(std::make_shared<engine::Queue>(budget, timeouts, settings, store.get(), kQueue, nullptr, store.get())) {}
  static std::unique_ptr<RedisStore> loaded(const Options& options, engine::Budget& budget) {
    auto store = std::make_unique<RedisStore>(options);
    Contents contents;
    EXPECT_EQ(store->load(budget, contents), 0);
    return store;
  }
  ~Mount() {
    files.clear();
    queue->cancel_all(ECANCELED);
    queue.reset();
  }

  engine::OpenFile& open(bool nonblocking = false) {
    auto& file = *files.emplace_back(std::make_unique<engine::OpenFile>(queue, true, true));
    file.set_nonblocking(nonblocking);
    file.set_read_mode(engine::ReadMode::stream);  // a `cat` that goes on reading
    return file;
  }
  Outcome& write(engine::OpenFile& file, std::string_view text, engine::Priority priority = 0) {
    Outcome& outcome = outcomes.emplace_back();
    engine::FakeWrite request(outcome);
    file.set_priority(priority);
    queue->send(file, engine::bytes_of(text), engine::kWriterPid, engine::Clock::now(), request);
    return outcome;
  }
  Outcome& read(engine::OpenFile& file, std::size_t size = 1 << 16) {
    Outcome& outcome = outcomes.emplace_back();
    engine::FakeRead request(outcome);
    queue->receive(file, size, engine::kReaderPid, engine::Clock::now(), request);
    return outcome;
  }

  void handle(engine::Clock::time_point now) {
    store->handle_server(now);
    timeouts.expire(now);
  }

  engine::Budget budget;
  engine::Timeouts timeouts;
  std::deque<Outcome> outcomes;  // outlive the queue, which answers its waiters to the end
  std::unique_ptr<RedisStore> store;
  std::shared_ptr<engine::Queue> queue;
  std::deque<std::unique_ptr<engine::OpenFile>> files;
  bool running = true;  // false: the mount is frozen, as a daemon that hangs or died
};

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MQFS_REQUIRE_REDIS_SERVER();
    server = std::make_unique<RedisServer>();
    ASSERT_TRUE(server->started()) << "redis-server did not start";
    options.address.host = "127.0.0.1";
    options.address.port = server->port();
    options.prefix = "t";
    options.lease = 600ms;
    options.timeout = 400ms;
    settings.maxmsg = 10;
    make_queue(settings.maxmsg);
  }

  // The queue's name, made in Redis as a mount's mqfs_names would.
  void make_queue(int64_t maxmsg) {
    ContextPtr c = server->connect();
    ASSERT_TRUE(c);
    Command load{{"FUNCTION", "LOAD", "REPLACE", std::string(functions())}};
    ASSERT_TRUE(run(c.get(), load));
    engine::Settings s = settings;
    s.maxmsg = maxmsg;
    const NameChange change{.node = {.ino = kQueue, .parent = 1, .name = "q", .mode = 0100644}, .settings = &s};
    const Keys keys(options.prefix);
    Names current = parse_names(run(c.get(), names_snapshot(keys)).get());
    ASSERT_EQ(parse_names_changed(run(c.get(), names(keys, current.version, {&change, 1})).get()).status, Status::ok);
  }
  void remove_queue() {
    ContextPtr c = server->connect();
    ASSERT_TRUE(c);
    NameChange change;
    change.node.ino = kQueue;
    change.remove = true;
    const Keys keys(options.prefix);
    Names current = parse_names(run(c.get(), names_snapshot(keys)).get());
    ASSERT_EQ(parse_names_changed(run(c.get(), names(keys, current.version, {&change, 1})).get()).status, Status::ok);
  }

  Mount& mount() {
    mounts.push_back(std::make_unique<Mount>(options, settings));
    return *mounts.back();
  }

  // Runs every running mount's loop until `done` holds, for at most `limit`.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 3s) {
    const auto deadline = engine::Clock::now() + limit;
    while (!done()) {
      const auto now = engine::Clock::now();
      if (now >= deadline) return false;
      std::vector<pollfd> fds;
      for (auto& m : mounts)
        if (m->running) fds.push_back({m->store->server_fd(), POLLIN, 0});
      poll(fds.data(), fds.size(), 5);
      for (auto& m : mounts)
        if (m->running) m->handle(engine::Clock::now());
    }
    return true;
  }
  bool answered(const Outcome& outcome, std::chrono::milliseconds limit = 3s) {
    return run_until([&] { return outcome.answers > 0; }, limit);
  }
  // Lets the mounts run a while (nothing is expected to happen).
  void run_for(std::chrono::milliseconds time) { run_until([] { return false; }, time); }
  bool ready(Mount& m) {
    return run_until([&] { return m.store->connected(); });
  }

  std::unique_ptr<RedisServer> server;
  Options options;
  engine::Settings settings;
  std::vector<std::unique_ptr<Mount>> mounts;
};

TEST_F(RedisStoreTest, AReaderBlockedOnOneMountGetsAMessageWrittenOnAnother) {
  Mount& a = mount();
  Mount& b = mount();
  ASSERT_TRUE(ready(a) && ready(b));
  Outcome& read = b.read(b.open());
  run_for(50ms);
  ASSERT_TRUE(read.waiting()) << "the queue is empty: the read waits";

  Outcome& write = a.write(a.open(), "job 1");
  ASSERT_TRUE(answered(write));
  EXPECT_EQ(write.accepted, 5u);
  ASSERT_TRUE(answered(read));
  EXPECT_EQ(read.got, "job 1");
  EXPECT_TRUE(run_until([&] { return a.queue->curmsgs() == 0 && b.queue->curmsgs() == 0; }))
      << "every mount's copy follows";
}

TEST_F(RedisStoreTest, EachMessageReachesExactlyOneReaderOfAllMounts) {
  Mount& a = mount();
  Mount& b = mount();
  Mount& c = mount();
  ASSERT_TRUE(ready(a) && ready(b) && ready(c));
  std::vector<Outcome*> reads;
  for (Mount* m : {&a, &b, &c})
    for (int i = 0; i < 3; ++i) reads.push_back(&m->read(m->open()));
  engine::OpenFile& writer = a.open();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(answered(a.write(writer, "m" + std::to_string(i))));
  auto delivered = [&] {
    std::size_t n = 0;
    for (Outcome* r : reads) n += r->got.has_value();
    return n;
  };
  ASSERT_TRUE(run_until([&] { return delivered() == 6; }));
  run_for(100ms);
  std::multiset<std::string> got;
  for (Outcome* r : reads)
    if (r->got) got.insert(*r->got);
  EXPECT_EQ(got, (std::multiset<std::string>{"m0", "m1", "m2", "m3", "m4", "m5"}));
  EXPECT_EQ(delivered(), 6u) << "three readers still wait";
}

TEST_F(RedisStoreTest, ReadersOfAnyMountGetTheGlobalPriorityOrder) {
  Mount& a = mount();
  Mount& b = mount();
  ASSERT_TRUE(ready(a) && ready(b));
  engine::OpenFile& writer = a.open();
  ASSERT_TRUE(answered(a.write(writer, "low", 1)));
  ASSERT_TRUE(answered(a.write(writer, "high", 9)));
  ASSERT_TRUE(answered(a.write(writer, "low 2", 1)));
  ASSERT_TRUE(run_until([&] { return b.queue->curmsgs() == 3; }))
      << "b's copy follows the events: " << b.queue->curmsgs();
  engine::OpenFile& reader = b.open(true);
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    Outcome& read = b.read(reader);
    ASSERT_TRUE(answered(read));
    ASSERT_TRUE(read.got) << "error " << read.error;
    got.push_back(*read.got);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"high", "low", "low 2"}));
  Outcome& empty = b.read(reader);
  ASSERT_TRUE(answered(empty));
  EXPECT_EQ(empty.error, EAGAIN);
}

TEST_F(RedisStoreTest, MessagesTakenAheadOfReadsNeverPassAHigherPriorityOne) {
  Mount& a = mount();
  Mount& b = mount();
  ASSERT_TRUE(ready(a) && ready(b));
  engine::OpenFile& writer = a.open();
  for (const char* text : {"low 1", "low 2", "low 3"}) ASSERT_TRUE(answered(a.write(writer, text, 1)));
  ASSERT_TRUE(run_until([&] { return b.queue->curmsgs() == 3; }));
  engine::OpenFile& reader = b.open();
  Outcome& first = b.read(reader);
  ASSERT_TRUE(answered(first));
  EXPECT_EQ(first.got, "low 1");  // low 2 and 3 were taken with it, for the next reads
  ASSERT_TRUE(answered(a.write(writer, "high", 9)));
  ASSERT_TRUE(run_until([&] {
    const engine::Message* front = b.queue->messages().front();
    return front && front->priority() == 9;
  })) << "b's copy shows it";
  Outcome& second = b.read(reader);
  ASSERT_TRUE(answered(second));
  EXPECT_EQ(second.got, "high");
  Outcome& third = a.read(a.open());
  ASSERT_TRUE(answered(third, 3s)) << "what b took ahead goes back when no read of b wants it";
  EXPECT_EQ(third.got, "low 2");
}

TEST_F(RedisStoreTest, MaxmsgCountsTheMessagesOfEveryMount) {
  make_queue(2);
  Mount& a = mount();
  Mount& b = mount();
  ASSERT_TRUE(ready(a) && ready(b));
  ASSERT_TRUE(answered(a.write(a.open(), "1")));
  ASSERT_TRUE(answered(a.write(a.open(), "2")));
  Outcome& blocked = b.write(b.open(), "3");
  run_for(100ms);
  EXPECT_TRUE(blocked.waiting()) << "the queue holds maxmsg messages, written on another mount";
  EXPECT_FALSE(b.queue->writable()) << "POLLOUT follows the shared state";

  Outcome& nonblocking = b.write(b.open(true), "4");
  ASSERT_TRUE(answered(nonblocking));
  EXPECT_EQ(nonblocking.error, EAGAIN);

  Outcome& read = a.read(a.open());
  ASSERT_TRUE(answered(read));
  EXPECT_EQ(read.got, "1");
  ASSERT_TRUE(answered(blocked)) << "the read on a made room for b's writer";
  EXPECT_EQ(blocked.accepted, 1u);
}

TEST_F(RedisStoreTest, RemovingTheQueueFailsEveryMountsWaitersAndCallsWithEidrm) {
  Mount& a = mount();
  Mount& b = mount();
  ASSERT_TRUE(ready(a) && ready(b));
  engine::OpenFile& reader = b.open();
  Outcome& read = b.read(reader);
  run_for(50ms);
  ASSERT_TRUE(read.waiting());
  remove_queue();
  ASSERT_TRUE(answered(read));
  EXPECT_EQ(read.error, EIDRM);
  EXPECT_TRUE(b.queue->readable(reader)) << "poll wakes, and the read says why";
  Outcome& write = a.write(a.open(), "late");
  ASSERT_TRUE(answered(write));
  EXPECT_EQ(write.error, EIDRM);
}

TEST_F(RedisStoreTest, AMountThatStopsGivesBackWhatItHeldAfterItsLease) {
  Mount& a = mount();
  Mount& b = mount();
  ASSERT_TRUE(ready(a) && ready(b));
  ASSERT_TRUE(answered(a.write(a.open(), "job")));
  engine::OpenFile& leasing = a.open();
  leasing.set_ack_mode(engine::AckMode::explicit_ack);
  Outcome& first = a.read(leasing);
  ASSERT_TRUE(answered(first));
  ASSERT_EQ(first.got, "job");

  Outcome& second = b.read(b.open());
  a.running = false;  // a hangs, holding the message: no heartbeat, no call
  ASSERT_TRUE(answered(second, 3s)) << "b's heartbeat gives back a's message once a's lease ran out";
  EXPECT_EQ(second.got, "job");
  EXPECT_EQ(b.queue->curmsgs(), 0u);
}

TEST_F(RedisStoreTest, AReaderThatLeftGivesBackWhatWasTakenForIt) {
  Mount& a = mount();
  Mount& b = mount();
  ASSERT_TRUE(ready(a) && ready(b));
  engine::OpenFile& reader = b.open();
  Outcome& read = b.read(reader);
  Outcome& write = a.write(a.open(), "once");
  // b's copy shows the message: the take for its reader is under way (its
  // answer comes at a later turn of b's loop), and the reader leaves.
  ASSERT_TRUE(run_until([&] { return b.queue->curmsgs() == 1; }));
  ASSERT_TRUE(read.waiting()) << "its take is under way";
  b.queue->cancel(*read.waiter, EINTR);
  EXPECT_EQ(read.error, EINTR);
  ASSERT_TRUE(answered(write));
  Outcome& other = a.read(a.open());
  ASSERT_TRUE(answered(other)) << "what was taken for no one goes back";
  EXPECT_EQ(other.got, "once");
}

TEST_F(RedisStoreTest, WhileRedisHangsCallsFailWithEioAndBlockedReadersGoOnAfter) {
  Mount& a = mount();
  Mount& b = mount();
  ASSERT_TRUE(ready(a) && ready(b));
  Outcome& read = b.read(b.open());
  run_for(50ms);
  server->pause();
  Outcome& lost = a.write(a.open(), "unknown");
  ASSERT_TRUE(answered(lost, 3s));
  EXPECT_EQ(lost.error, EIO) << "no answer within redis_timeout_ms";
  EXPECT_TRUE(read.waiting()) << "a blocked reader keeps waiting";
  server->resume();
  ASSERT_TRUE(run_until([&] { return a.store->connected() && b.store->connected(); }, 5s));
  Outcome& write = a.write(a.open(), "after");
  ASSERT_TRUE(answered(write, 3s));
  ASSERT_TRUE(answered(read, 3s));
  ASSERT_TRUE(read.got);
  // The lost write's outcome is unknown: it may have been queued before
  // Redis hung. Either way no message is lost or read twice.
  std::vector<std::string> got{*read.got};
  engine::OpenFile& rest = b.open();
  while (std::find(got.begin(), got.end(), "after") == got.end() && got.size() < 3) {
    Outcome& more = b.read(rest);
    ASSERT_TRUE(answered(more)) << "'after' was queued";
    ASSERT_TRUE(more.got);
    got.push_back(*more.got);
  }
  EXPECT_NE(std::find(got.begin(), got.end(), "after"), got.end());
  EXPECT_LE(got.size(), 2u);
}

}  // namespace
}  // namespace mqfs::store::redis::testing
