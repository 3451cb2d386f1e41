// The loop's connection to Redis (store/redis_connection.hpp) against a real
// redis-server that the tests stop, restart and freeze: every call answered
// exactly once, EIO after the timeout, nothing lost on the way back, the
// set-up and the subscription made again on every new connection.
#include <gtest/gtest.h>

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "redis_server.hpp"
#include "store/redis_connection.hpp"

namespace mqfs::store::redis::testing {
namespace {

using namespace std::chrono_literals;

// Runs the connection as the daemon's loop would until `done()` or `limit`
// passed; whether `done()` came true. `tick` runs every turn.
bool run_until(Connection& connection, const std::function<bool()>& done, std::chrono::milliseconds limit,
               const std::function<void()>& tick = {}) {
  const Clock::time_point end = Clock::now() + limit;
  while (!done()) {
    const Clock::time_point now = Clock::now();
    if (now >= end) return false;
    Clock::time_point wake = std::min(end, now + 20ms);
    if (const auto next = connection.next_deadline()) wake = std::min(wake, *next);
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(std::max(wake - now, Clock::duration{0}));
    pollfd p{connection.fd(), POLLIN, 0};
    poll(&p, 1, static_cast<int>(wait.count()));
    connection.handle(Clock::now());
    if (tick) tick();
  }
  return true;
}

Address local(const RedisServer& server) {
  Address address;
  address.host = "127.0.0.1";
  address.port = server.port();
  return address;
}

// What the calls got: each answered call's reply as text, "none" for EIO.
struct Answers {
  std::vector<std::string> got;
  Connection::Callback next() {
    return [this](const redisReply* reply) {
      if (!reply) return got.push_back("none");
      if (reply->type == REDIS_REPLY_INTEGER) return got.push_back(std::to_string(reply->integer));
      if (reply->type == REDIS_REPLY_NIL) return got.push_back("nil");
      got.push_back(std::string(reply->str, reply->len));
    };
  }
  std::size_t size() const { return got.size(); }
};

// Runs the connection until `answers` holds `n` answers, or `limit` passed.
bool answered(Connection& connection, const Answers& answers, std::size_t n, std::chrono::milliseconds limit) {
  return run_until(connection, [&] { return answers.size() == n; }, limit);
}

class RedisConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override { MQFS_REQUIRE_REDIS_SERVER(); }
};

TEST_F(RedisConnectionTest, CallsAreAnsweredOnceEachInOrder) {
  RedisServer server;
  ASSERT_TRUE(server.started());
  Answers answers;  // outlives the connection, which answers its calls as it closes
  Connection connection(local(server), 5s, {}, {});
  for (int i = 0; i < 200; ++i) connection.call(Command{{"INCR", "n"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 200, 10s));
  for (int i = 0; i < 200; ++i) ASSERT_EQ(answers.got[i], std::to_string(i + 1));
  EXPECT_EQ(connection.connections(), 1u);
}

TEST_F(RedisConnectionTest, ACallWaitsForRedisToComeUp) {
  RedisServer server({}, false);
  Answers answers;  // outlives the connection, which answers its calls as it closes
  Connection connection(local(server), 5s, {}, {});
  connection.call(Command{{"PING"}}, answers.next());
  // Nothing answers while Redis is away...
  EXPECT_FALSE(answered(connection, answers, 1, 300ms));
  ASSERT_TRUE(server.start());
  // ...and the call goes out once it is there.
  ASSERT_TRUE(answered(connection, answers, 1, 4s));
  EXPECT_EQ(answers.got, std::vector<std::string>{"PONG"});
}

TEST_F(RedisConnectionTest, ACallFailsWithNoReplyAfterTheTimeoutWhileRedisIsDown) {
  RedisServer server({}, false);
  Answers answers;  // outlives the connection, which answers its calls as it closes
  Connection connection(local(server), 300ms, {}, {});
  const Clock::time_point start = Clock::now();
  connection.call(Command{{"PING"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 1, 3s));
  const auto waited = Clock::now() - start;
  EXPECT_EQ(answers.got, std::vector<std::string>{"none"});
  EXPECT_GE(waited, 300ms);
  EXPECT_LT(waited, 1s);
  // Answered once: nothing more comes.
  EXPECT_FALSE(run_until(connection, [&] { return answers.size() > 1; }, 200ms));
}

TEST_F(RedisConnectionTest, AHungRedisFailsTheCallsItTookAndTheNextConnectionServesTheRest) {
  RedisServer server;
  ASSERT_TRUE(server.started());
  Answers answers;  // outlives the connection, which answers its calls as it closes
  Connection connection(local(server), 300ms, {}, {});
  connection.call(Command{{"SET", "k", "before"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 1, 3s));

  server.pause();
  const Clock::time_point start = Clock::now();
  connection.call(Command{{"SET", "k", "during"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 2, 3s));
  EXPECT_EQ(answers.got[1], "none");
  EXPECT_GE(Clock::now() - start, 300ms);

  server.resume();
  connection.call(Command{{"GET", "k"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 3, 3s));
  // The hung call's outcome was unknown to its caller; Redis did take it.
  EXPECT_EQ(answers.got[2], "during");
  EXPECT_EQ(connection.connections(), 2u);
}

TEST_F(RedisConnectionTest, ACallMadeWhenAnotherFoundTheConnectionLostWaitsForTheNextOne) {
  RedisServer server;
  ASSERT_TRUE(server.started());
  Answers answers;  // outlives the connection, which answers its calls as it closes
  Connection connection(local(server), 5s, {}, {});
  connection.call(Command{{"SET", "k", "v"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 1, 3s));
  server.stop();
  // The first call goes out on the dead connection; its callback calls again
  // at once, as a store that makes a lost call again does.
  connection.call(Command{{"PING"}}, [&](const redisReply* reply) {
    answers.next()(reply);
    if (!reply) connection.call(Command{{"PING"}}, answers.next());
  });
  ASSERT_TRUE(answered(connection, answers, 2, 3s));
  ASSERT_EQ(answers.got[1], "none");
  EXPECT_FALSE(answered(connection, answers, 3, 200ms));  // it waits...
  ASSERT_TRUE(server.start());
  ASSERT_TRUE(answered(connection, answers, 3, 4s));  // ...for Redis
  EXPECT_EQ(answers.got[2], "PONG");
}

TEST_F(RedisConnectionTest, ARestartedRedisGetsTheSetUpAgainBeforeAnyCall) {
  RedisServer server;
  ASSERT_TRUE(server.started());
  int connected = 0;
  Answers answers;  // outlives the connection, which answers its calls as it closes
  Connection connection(local(server), 2s, {Command{{"FUNCTION", "LOAD", "REPLACE", std::string(functions())}}},
                        [&] { ++connected; });
  connection.call(Command{{"FCALL", "mqfs_purge", "2", "mqfs:q:2", "mqfs"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 1, 3s));
  EXPECT_EQ(answers.got[0], "0");
  EXPECT_EQ(connected, 1);

  server.stop();  // forgets the functions: nothing is saved
  ASSERT_TRUE(server.start());
  connection.call(Command{{"FCALL", "mqfs_purge", "2", "mqfs:q:2", "mqfs"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 2, 4s));
  // The call made on the dead connection failed (none) or, made after it was
  // seen dead, waited for the new one, which loaded the functions first.
  EXPECT_TRUE(answers.got[1] == "0" || answers.got[1] == "none") << answers.got[1];
  connection.call(Command{{"FCALL", "mqfs_purge", "2", "mqfs:q:2", "mqfs"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 3, 4s));
  EXPECT_EQ(answers.got[2], "0");
  EXPECT_EQ(connected, 2);
}

TEST_F(RedisConnectionTest, ASubscriptionIsMadeAgainOnEveryNewConnection) {
  RedisServer server;
  ASSERT_TRUE(server.started());
  std::vector<std::string> messages;
  int connected = 0;
  Connection listener(local(server), 2s, {}, [&] { ++connected; });
  listener.subscribe("mqfs:events", [&](std::string_view m) { messages.emplace_back(m); });
  const auto publish = [&](const std::string& text) {
    ContextPtr c = server.connect();
    if (!c) return 0LL;
    ReplyPtr r = run(c.get(), Command{{"PUBLISH", "mqfs:events", text}});
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0LL;
  };
  // Published until the subscription is in place (PUBLISH counts receivers).
  ASSERT_TRUE(run_until(listener, [&] { return connected == 1 && publish("one") == 1; }, 3s));
  ASSERT_TRUE(run_until(listener, [&] { return !messages.empty(); }, 3s));
  EXPECT_EQ(messages, std::vector<std::string>{"one"});

  server.stop();
  ASSERT_TRUE(server.start());
  ASSERT_TRUE(run_until(listener, [&] { return connected == 2 && publish("two") == 1; }, 4s));
  ASSERT_TRUE(run_until(listener, [&] { return messages.size() == 2; }, 3s));
  EXPECT_EQ(messages.back(), "two");
}

TEST_F(RedisConnectionTest, APasswordAndADatabaseAreUsed) {
  RedisServer server({"--requirepass", "s3cret"});
  ASSERT_TRUE(server.started());
  Address address = local(server);
  address.password = "s3cret";
  address.db = 3;
  Answers answers;  // outlives the connection, which answers its calls as it closes
  Connection connection(address, 2s, {}, {});
  connection.call(Command{{"SET", "k", "v"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 1, 3s));
  EXPECT_EQ(answers.got[0], "OK");
  ContextPtr c = server.connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(run(c.get(), Command{{"AUTH", "s3cret"}}));
  ASSERT_TRUE(run(c.get(), Command{{"SELECT", "3"}}));
  ReplyPtr value = run(c.get(), Command{{"GET", "k"}});
  ASSERT_TRUE(value);
  EXPECT_EQ(std::string(value->str, value->len), "v");
}

TEST_F(RedisConnectionTest, AWrongPasswordFailsTheCallsAfterTheTimeout) {
  RedisServer server({"--requirepass", "s3cret"});
  ASSERT_TRUE(server.started());
  Address address = local(server);
  address.password = "wrong";
  Answers answers;  // outlives the connection, which answers its calls as it closes
  Connection connection(address, 300ms, {}, {});
  connection.call(Command{{"PING"}}, answers.next());
  ASSERT_TRUE(answered(connection, answers, 1, 3s));
  EXPECT_EQ(answers.got[0], "none");
  EXPECT_FALSE(connection.connected());
}

TEST_F(RedisConnectionTest, ClosingAnswersEveryCallStillWaiting) {
  RedisServer server;
  ASSERT_TRUE(server.started());
  Answers answers;
  {
    Connection connection(local(server), 5s, {}, {});
    connection.call(Command{{"PING"}}, answers.next());  // waits for the connection
    ASSERT_TRUE(run_until(connection, [&] { return connection.connected(); }, 3s));
    ASSERT_EQ(answers.size(), 0u);  // sent, not yet read
    connection.call(Command{{"BLPOP", "nothing", "0"}}, answers.next());  // never answered by Redis
    ASSERT_TRUE(answered(connection, answers, 1, 3s));
  }
  EXPECT_EQ(answers.got, (std::vector<std::string>{"PONG", "none"}));
}

// A master, its replica and a sentinel watching them (quorum 1, the master
// down after 300 ms): a connection through the sentinel follows the
// master when the sentinel fails it over, and what was written before is
// there.
TEST_F(RedisConnectionTest, ThroughASentinelTheConnectionFollowsAFailover) {
  RedisServer master;
  ASSERT_TRUE(master.started());
  RedisServer replica({"--replicaof", "127.0.0.1", std::to_string(master.port())});
  ASSERT_TRUE(replica.started());
  char config[] = "/tmp/mqfs-sentinel-XXXXXX";
  const int fd = mkstemp(config);
  ASSERT_GE(fd, 0);
  struct Removed {
    const char* path;
    ~Removed() { unlink(path); }
  } removed{config};  // however the test ends
  const std::string text = "sentinel monitor m 127.0.0.1 " + std::to_string(master.port()) +
                           " 1\nsentinel down-after-milliseconds m 300\nsentinel failover-timeout m 1000\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  RedisServer sentinel({}, true, {config, "--sentinel"});
  ASSERT_TRUE(sentinel.started());
  ContextPtr s = sentinel.connect();
  ASSERT_TRUE(s);
  // Wait until the sentinel knows the replica, and the replica has synced.
  const auto knows_replica = [&] {
    ReplyPtr r = run(s.get(), Command{{"SENTINEL", "replicas", "m"}});
    return r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
  };
  const auto deadline = Clock::now() + 15s;
  while (!knows_replica() && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(knows_replica()) << "the sentinel did not find the replica";

  Address address;
  address.sentinels = {{.host = "127.0.0.1", .port = sentinel.port()}};
  address.master = "m";
  Answers answers;  // outlives the connection, which answers its calls as it closes
  Connection connection(address, 10s, {}, {});
  connection.call(Command{{"SET", "k", "before"}}, answers.next());
  connection.call(Command{{"WAIT", "1", "5000"}}, answers.next());  // on the replica too
  ASSERT_TRUE(answered(connection, answers, 2, 10s));
  ASSERT_EQ(answers.got, (std::vector<std::string>{"OK", "1"}));

  master.stop();
  // A call sent before the connection is seen lost gets none (its outcome is
  // unknown); calls made after it wait while the sentinel promotes the
  // replica, and go there.
  const Clock::time_point give_up = Clock::now() + 20s;
  do {
    connection.call(Command{{"SET", "k", "after"}}, answers.next());
    ASSERT_TRUE(answered(connection, answers, answers.size() + 1, 15s));
  } while (answers.got.back() != "OK" && Clock::now() < give_up);
  ASSERT_EQ(answers.got.back(), "OK");
  EXPECT_LE(answers.size(), 5u);  // at most the few calls made before the loss was seen
  EXPECT_GE(connection.connections(), 2u);
  ContextPtr promoted = replica.connect();
  ASSERT_TRUE(promoted);
  ReplyPtr value = run(promoted.get(), Command{{"GET", "k"}});
  ASSERT_TRUE(value && value->type == REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(value->str, value->len), "after");
}

TEST(RedisUrlTest, TheFormsOfSpecSection10) {
  std::string error;
  auto a = parse_url("redis://db.example:6380/2", &error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->host, "db.example");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->db, 2);
  EXPECT_EQ(a->password, "");
  a = parse_url("redis://:p@ss:w@10.0.0.1", &error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->password, "p@ss:w");
  EXPECT_EQ(a->host, "10.0.0.1");
  EXPECT_EQ(a->port, 6379);
  EXPECT_EQ(a->db, 0);
  a = parse_url("redis://[::1]:7000", &error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 7000);
  for (const char* bad : {"http://h", "redis://", "redis://:6379", "redis://h:0", "redis://h:65536", "redis://h:",
                          "redis://h/x", "redis://user:pw@h", "redis://:@h", "redis://[::1", "redis://[::1]x"}) {
    error.clear();
    EXPECT_FALSE(parse_url(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(RedisUrlTest, SentinelUrls) {
  std::string error;
  auto a = parse_url("sentinel://:pw@s1:26380,[::1],10.0.0.3:5000/mymaster", &error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->password, "pw");
  EXPECT_EQ(a->master, "mymaster");
  ASSERT_EQ(a->sentinels.size(), 3u);
  EXPECT_EQ(a->sentinels[0].host, "s1");
  EXPECT_EQ(a->sentinels[0].port, 26380);
  EXPECT_EQ(a->sentinels[1].host, "::1");
  EXPECT_EQ(a->sentinels[1].port, 26379);
  EXPECT_EQ(a->sentinels[2].port, 5000);
  for (const char* bad : {"sentinel://s1:26379", "sentinel://s1:26379/", "sentinel://s1,,s2/m", "sentinel:///m",
                          "sentinel://s1:x/m"}) {
    error.clear();
    EXPECT_FALSE(parse_url(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(RedisUrlTest, LoopbackHosts) {
  EXPECT_TRUE(is_loopback("127.0.0.1"));
  EXPECT_TRUE(is_loopback("127.1.2.3"));
  EXPECT_TRUE(is_loopback("localhost"));
  EXPECT_TRUE(is_loopback("::1"));
  EXPECT_FALSE(is_loopback("10.0.0.1"));
  EXPECT_FALSE(is_loopback("128.0.0.1"));
  EXPECT_FALSE(is_loopback("localhost.example"));
}

}  // namespace
}  // namespace mqfs::store::redis::testing
