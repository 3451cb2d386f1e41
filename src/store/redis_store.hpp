// The Redis store (SPEC section 10): the messages of every queue live in
// Redis, shared by every mount with the same Redis and prefix, and the
// engine's queues are copies of them (engine/remote.hpp). This is the
// engine's Remote: it turns each question into a server function call
// (redis_calls.hpp) on the loop's asynchronous connection, and each answer
// and each event of other mounts into the queue's remote_*() call.
//
//   - Answers find their queue by inode number: a queue gone meanwhile is
//     not told, and what it was given is settled here (a message queued for
//     a writer that left is withdrawn; messages taken for no one go back).
//   - Acknowledgements and give-backs that got no answer are made again
//     until Redis has them: a message this mount holds must not stay held.
//   - The mount's lease (redis_lease_ms) is renewed three times per lease;
//     each renewal also gives back the messages of mounts whose lease ran
//     out, and lets waiting writers try again and waiting readers read the
//     queue again, in case an event was missed.
//   - Events come on a connection of their own; when it is made again, every
//     queue is read again, since events meanwhile were lost.
//
// The names (directories, queues, owners, modes, settings) are not shared
// by this class yet: it records none of them, and its queues must exist in
// Redis (mqfs_names) before messages are sent to them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "engine/remote.hpp"
#include "store/redis_connection.hpp"
#include "store/store.hpp"

namespace mqfs::store::redis {

struct Options {
  Address address;
  std::string prefix = "mqfs";                  // redis_prefix
  std::chrono::milliseconds lease{10000};       // redis_lease_ms
  std::chrono::milliseconds timeout{5000};      // redis_timeout_ms
};

class RedisStore final : public Store, public engine::Remote {
 public:
  RedisStore(const Options& options, engine::Budget& budget);
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;
  ~RedisStore() override;

  // This mount's name in Redis: random, new at each start.
  const std::string& mount() const { return mount_; }
  const Keys& keys() const { return keys_; }

  // For the loop: readable when either connection has work; handle() then,
  // and at next_deadline().
  int fd() const { return epoll_; }
  void handle(Clock::time_point now);
  std::optional<Clock::time_point> next_deadline() const;
  bool connected() const { return calls_.connected() && events_.connected(); }

  // Store: the names are not kept here yet (see above); the messages of
  // shared queues go through engine::Remote instead.
  int load(engine::Budget&, Contents&) override { return 0; }
  void set_source(Source&) override {}
  int prepare(std::size_t) override { return 0; }
  void put_node(const NodeState&) override {}
  void remove_node(uint64_t) override {}
  void put_settings(uint64_t, const engine::Settings&) override {}
  void enqueued(uint64_t, engine::Message&) override {}
  void dequeued(uint64_t, const engine::Message&) override {}
  void delivered(uint64_t, const engine::Message&) override {}
  void moved(uint64_t, uint64_t, engine::Message&) override {}
  void counted(uint64_t, int64_t, int64_t) override {}
  void withdrawn(uint64_t, const engine::Message&) override {}
  void purged(uint64_t, std::span<const engine::Message* const>, bool) override {}
  int write_out() override { return 0; }
  bool batches_records() const override { return false; }

  // engine::Remote
  void attach(uint64_t ino, engine::Queue& queue) override;
  void detach(uint64_t ino) override;
  void send(uint64_t ino, uint64_t ticket, const engine::Message& message) override;
  void take(uint64_t ino, const engine::Selection& selection, uint32_t most, std::size_t limit,
            std::size_t header) override;
  void ack(uint64_t ino, const engine::Message& message) override;
  void release(uint64_t ino, const engine::Message& message, int64_t delay_ms, bool delivered) override;
  void dead_letter(uint64_t ino, uint64_t to, const engine::Message& message) override;
  void purge(uint64_t ino) override;
  void refresh(uint64_t ino) override;

 private:
  engine::Queue* find(uint64_t ino) const;
  void settle(const std::string& queue, bool acknowledge, int64_t delay_ms, engine::Priority priority,
              uint64_t id);
  void heartbeat();
  void recheck();
  void on_event(std::string_view payload);

  engine::Budget* budget_;
  Keys keys_;
  std::string mount_;
  std::chrono::milliseconds lease_;
  Connection calls_;
  Connection events_;
  int epoll_ = -1;
  Clock::time_point next_heartbeat_{};
  bool closing_ = false;
  std::unordered_map<uint64_t, engine::Queue*> queues_;
};

}  // namespace mqfs::store::redis
