// The calls of the Redis store's server functions (redis_functions.lua),
// SPEC section 10: each builds its command and reads its reply, so that a
// blocking client and the loop's asynchronous one share them. Redis decides
// who gets a message and whether a queue is full; these only translate.
//
// A message's identity in Redis is its order key: the priority and the id
// Redis gave it, so that Redis orders a queue's messages as strings.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/budget.hpp"
#include "engine/message.hpp"
#include "engine/settings.hpp"
#include "store/store.hpp"

namespace mqfs::store::redis {

// The library's source, for FUNCTION LOAD REPLACE.
std::string_view functions();

// The arguments of one command (redisCommandArgv).
struct Command {
  std::vector<std::string> args;
  void add(std::string_view arg) { args.emplace_back(arg); }
};

// The keys of one filesystem in Redis (redis_prefix). The calls on a
// queue's messages name the queue by its base, queue() or subscription().
class Keys {
 public:
  explicit Keys(std::string prefix) : prefix_(std::move(prefix)) {}
  const std::string& prefix() const { return prefix_; }
  std::string queue(uint64_t ino) const { return prefix_ + ":q:" + std::to_string(ino); }
  // The queue of one open file's subscription to a topic (SPEC section 13).
  std::string subscription(std::string_view mount, uint64_t number) const {
    return prefix_ + ":d:" + std::string(mount) + ":" + std::to_string(number);
  }
  std::string events() const { return prefix_ + ":events"; }

 private:
  std::string prefix_;
};

// "PPPPIIIIIIIIIIIIII": 32767 - priority, then the id, in hex.
std::string order_key(engine::Priority priority, uint64_t id);
struct Order {
  engine::Priority priority;
  uint64_t id;
};
std::optional<Order> parse_order_key(std::string_view key);

// What a reply said, beyond its data.
enum class Status {
  ok,
  full,     // send: the queue holds maxmsg messages (those listed were queued)
  empty,    // take: nothing the selection takes is queued
  big,      // take: the first message does not fit the limit
  gone,     // the queue was removed (EIDRM)
  expired,  // take: the mount's lease ended; it must heartbeat again
  conflict, // names: another mount changed them since the version given
  failed,   // an error reply, or one of an unexpected shape
};

Status parse_status(const redisReply* reply);

// The names (directories and queues, their owners, modes and settings), kept
// whole in Redis and changed by mounts under optimistic concurrency: a
// request's changes are checked by the mount against the names at a
// version, and applied only if they are still at it.
struct NameChange {
  NodeState node;                             // remove: only its inode counts
  const engine::Settings* settings = nullptr; // a queue's (null for a directory)
  bool remove = false;
};
Command names(const Keys& keys, uint64_t version, std::span<const NameChange> changes);
struct NamesChanged {
  Status status = Status::failed;  // ok, conflict or failed
  uint64_t version = 0;            // ok: the new one; conflict: the current one
};
NamesChanged parse_names_changed(const redisReply* reply);

Command names_snapshot(const Keys& keys);
struct Names {
  Status status = Status::failed;
  uint64_t version = 0;
  std::vector<Contents::Node> nodes;  // queues' counters are not here (snapshot())
};
Names parse_names(const redisReply* reply);

// A block of `count` inodes no other mount has; replies with the first.
Command inodes(const Keys& keys, uint64_t count);

// A node as Redis keeps it, and back.
std::string encode_node(const NodeState& node, const engine::Settings* settings);
std::optional<Contents::Node> decode_node(std::string_view text);

// Queues `messages` in order while the queue has room.
Command send(const Keys& keys, const std::string& queue, std::span<const engine::Message* const> messages);
struct Sent {
  Status status = Status::failed;
  std::vector<uint64_t> ids;  // of those queued, in order
  std::vector<engine::Priority> priorities;  // ... and their priorities (their order keys with ids)
};
Sent parse_sent(const redisReply* reply);

// Takes for `mount` up to `most` messages `selection` takes, while each's
// bytes after `header` bytes of framing fit in `limit` (0: one message).
Command take(const Keys& keys, const std::string& queue, std::string_view mount, const engine::Selection& selection,
             uint32_t most, std::size_t limit, std::size_t header);
struct Taken {
  Status status = Status::failed;
  uint32_t size = 0;  // big: the first message's
  // Each with its id, enqueued_ns and deliveries; null ones where the budget
  // had no room.
  std::vector<engine::MessagePtr> messages;
};
Taken parse_taken(const redisReply* reply, engine::Budget& budget);

// Acknowledges, or gives back (after `delay_ms`), messages `mount` holds.
Command ack(const Keys& keys, const std::string& queue, std::string_view mount,
            std::span<const engine::Message* const> messages);
Command release(const Keys& keys, const std::string& queue, std::string_view mount, int64_t delay_ms,
                std::span<const engine::Message* const> messages);
// The same for messages known by their order only.
Command settle(const Keys& keys, const std::string& queue, std::string_view mount, bool acknowledge,
               int64_t delay_ms, std::span<const Order> orders);
// Takes back a message whose writer never learnt it was queued, unless a
// reader took it already; replies 1 if it was taken back (parse_integer).
Command withdraw(const Keys& keys, const std::string& queue, engine::Priority priority, uint64_t id);
// One flag per message: whether `mount` still held it.
std::optional<std::vector<bool>> parse_held(const redisReply* reply);

// Moves a message `mount` holds to the end of queue `to`; its new id, or
// nullopt with `status` expired (not held: lost), gone (`to` removed) or failed.
Command dead_letter(const Keys& keys, const std::string& from, const std::string& to, std::string_view mount,
                    const engine::Message& message);
std::optional<uint64_t> parse_dead_letter(const redisReply* reply, Status* status);

// SPEC section 13. An open file of `mount` subscribes to `topic` with a
// queue of its own, `subscription` (Keys::subscription()), or ends that.
Command subscribe(const Keys& keys, uint64_t topic, const std::string& subscription, std::string_view mount,
                  int64_t maxmsg);
Command unsubscribe(const Keys& keys, uint64_t topic, const std::string& subscription, std::string_view mount);
// Publishes `messages` to `topic`: to its descriptors' subscriptions and to
// `subscribers`, the queues the names at `version` say subscribe to it.
Command publish(const Keys& keys, uint64_t topic, uint64_t version, engine::Overflow overflow,
                std::span<const uint64_t> subscribers, std::span<const engine::Message* const> messages);
struct Published {
  Status status = Status::failed;  // ok, full, conflict, gone or failed
  uint64_t count = 0;              // ok: the copies made; conflict: the names' version
};
Published parse_published(const redisReply* reply);

// `mount` lives `lease_ms` more; the messages of mounts whose lease ended go
// back, at most `most` in this call. Replies with how many did.
Command heartbeat(const Keys& keys, std::string_view mount, int64_t lease_ms, std::size_t most = 1000);
Command purge(const Keys& keys, const std::string& queue);
std::optional<long long> parse_integer(const redisReply* reply);

// A mount's copy of one queue.
// `mount` and `token`: the snapshot is also marked among the events (an
// event of kind `read`), so that the mount can order the two.
Command snapshot(const Keys& keys, const std::string& queue, std::string_view mount = {}, uint64_t token = 0);
struct Snapshot {
  Status status = Status::failed;  // ok, gone or failed
  int64_t maxmsg = 0;
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t dead_lettered = 0;
  uint64_t dropped = 0;
  std::vector<engine::MessagePtr> queued;  // in queue order
  struct Held {
    engine::MessagePtr message;
    std::string mount;  // empty: waiting for its retry delay
  };
  std::vector<Held> held;
};
Snapshot parse_snapshot(const redisReply* reply, engine::Budget& budget);

// An event published on keys.events() (see redis_functions.lua).
struct Event {
  enum class Kind { queued, taken, acknowledged, purged, removed, configured, names, read } kind;
  std::string queue;                // its base: Keys::queue() or subscription()
  std::vector<uint64_t> ids;        // queued (one), taken
  engine::MessagePtr message;       // queued: the message, with id, enqueued_ns and deliveries 0
  std::vector<engine::MessagePtr> messages;  // queued by one send: the messages, as `message`
  uint64_t count = 0;               // acknowledged; names: their new version; read: the token
  std::string mount;                // read: whose snapshot
};
std::optional<Event> parse_event(const Keys& keys, std::string_view payload, engine::Budget& budget);

}  // namespace mqfs::store::redis
