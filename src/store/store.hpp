// Where a mount keeps its state. The engine serves every read from memory and
// tells the store each change as it makes it, in order:
//
//   prepare  — a change that may be refused (a new message, a new name) asks
//              for room first: 0, or -ENOSPC / -EIO with nothing changed;
//   record   — the change is committed in memory and recorded (cannot fail);
//   durable  — the adapter answers the request once the store says the
//              record is as durable as the mount promises (write_out before
//              every answer; with sync=disk, writers wait for synced()).
//
// The memory store records nothing. The journal store (journal.hpp) appends
// every record to segment files. Messages carry the identity the store gave
// them (Message::id), so that a record can name the message it takes.
//
// The Redis store (redis_store.hpp, SPEC section 10) is shared with other
// mounts: it decides, so the engine asks it first (engine::Remote for
// messages; commit_names() for names, whose answers the adapter holds) and
// changes its memory with the answer.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/budget.hpp"
#include "engine/message.hpp"
#include "engine/remote.hpp"
#include "engine/settings.hpp"

namespace mqfs::store {

// A directory or queue as the store keeps it.
struct NodeState {
  uint64_t ino = 0;
  uint64_t parent = 0;  // 0 for the root
  std::string name;
  uint32_t mode = 0;  // type and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// What a queue keeps besides its messages.
struct QueueState {
  engine::Settings settings;
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t dead_lettered = 0;
  uint64_t dropped = 0;  // SPEC section 13
};

// The state a store held at mount: what the engine builds the mount from.
struct Contents {
  struct Node {
    NodeState node;
    std::optional<QueueState> queue;  // set for queues
  };
  std::vector<Node> nodes;  // the root's entry, when it was ever changed, among them
  // Each queue's messages in queue order (highest priority first, oldest
  // first), those that were in flight among them, with their delivery counts.
  std::unordered_map<uint64_t, std::vector<engine::MessagePtr>> messages;
};

// The live state, as the engine holds it: what a store copies when it
// compacts itself.
class Source {
 public:
  virtual ~Source() = default;
  struct NodeVisitor {
    virtual void node(const NodeState& node, const QueueState* queue) = 0;
  };
  struct MessageVisitor {
    virtual void message(uint64_t queue, engine::Message& message) = 0;
  };
  // Every named node, parents before their children.
  virtual void visit_nodes(NodeVisitor& visitor) const = 0;
  // Every message of every named queue.
  virtual void visit_messages(MessageVisitor& visitor) = 0;
  // A store shared with other mounts (SPEC section 10): the names are now
  // `nodes` (queues' settings, not their messages), whoever changed them.
  // Nothing of it is recorded back.
  virtual void reconcile(const std::vector<Contents::Node>& nodes) = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // The state kept, built with `budget`'s bytes; 0, or -errno after logging
  // one line that names the file and the reason.
  virtual int load(engine::Budget& budget, Contents& contents) = 0;
  // Where compaction reads the live state from.
  virtual void set_source(Source& source) = 0;

  // Room for a record of about `bytes` bytes that may be refused: 0,
  // -ENOSPC (the store's disk is full) or -EIO.
  virtual int prepare(std::size_t bytes) = 0;

  virtual void put_node(const NodeState& node) = 0;
  virtual void remove_node(uint64_t ino) = 0;
  virtual void put_settings(uint64_t queue, const engine::Settings& settings) = 0;
  // Gives `message` its id, then records it.
  virtual void enqueued(uint64_t queue, engine::Message& message) = 0;
  // Taken for good: read in auto mode, or acknowledged.
  virtual void dequeued(uint64_t queue, const engine::Message& message) = 0;
  // Leased to a reader (SPEC section 11): its delivery count went up.
  virtual void delivered(uint64_t queue, const engine::Message& message) = 0;
  // Moved to the dead-letter queue `to`: gives `message` its new id there.
  virtual void moved(uint64_t from, uint64_t to, engine::Message& message) = 0;
  // Counters that change without a message (SPEC section 13): a topic's
  // publishes, and messages missed; negative takes them back.
  virtual void counted(uint64_t queue, int64_t sent, int64_t dropped) = 0;
  // A recorded message whose writer did not get the answer: it was never sent.
  virtual void withdrawn(uint64_t queue, const engine::Message& message) = 0;
  // `messages` of the queue were dropped (truncate, or its name removed),
  // before they go; `all`: they were its every message.
  virtual void purged(uint64_t queue, std::span<const engine::Message* const> messages, bool all) = 0;

  // Hands the records made since the last call to the kernel: 0 or -errno.
  virtual int write_out() = 0;
  // Whether writers wait for their messages to reach the disk (sync=disk).
  virtual bool syncs_writes() const { return false; }
  // The position after the last record made; a request that must be durable
  // waits until synced() has reached it.
  virtual uint64_t position() const { return 0; }
  virtual uint64_t synced() const { return 0; }
  // Starts making everything written out durable, unless that is under way;
  // the loop learns of the end through completion_fd() and calls
  // sync_completed(). -1: nothing to wait for.
  virtual void start_sync() {}
  virtual int completion_fd() const { return -1; }
  virtual void sync_completed() {}
  // An fdatasync failed (-errno): what reached the disk is unknown, and the
  // store refuses further changes.
  virtual int failed() const { return 0; }
  // Whether records are written out once a loop turn (write_out): the loop
  // then takes requests in batches, so that a busy mount writes once for many.
  virtual bool batches_records() const { return true; }
  // Work that may wait for an idle moment (compaction); bounded per call.
  virtual void idle() {}
  // Writes out and syncs everything, at unmount.
  virtual void close() {}

  // A store shared with other mounts (SPEC section 10) holds the queues'
  // messages itself: queues ask it through this (null: they hold them).
  virtual engine::Remote* remote() { return nullptr; }
  // The inode of a new node, unique among all mounts of the store: nullopt
  // when the store cannot give one now (the mount then refuses with EIO);
  // 0: the mount numbers its nodes itself.
  virtual std::optional<uint64_t> new_ino() { return 0; }
  // Whether the names are shared with other mounts, so that a request that
  // changed them is answered only once the store accepted its changes.
  virtual bool shares_names() const { return false; }
  // Offers the names changes recorded since the last call; `done` is called
  // once: 0 when they were accepted (or there were none), else -errno — the
  // names were changed meanwhile in a way that refuses them (EEXIST, ENOENT),
  // or no answer came (EIO) — and the names are then the store's again.
  virtual void commit_names(std::function<void(int)> done) { done(0); }

  // A store that talks to a server: a descriptor the loop watches (-1:
  // none); handle_server() when it is readable and at server_deadline().
  virtual int server_fd() const { return -1; }
  virtual void handle_server(std::chrono::steady_clock::time_point) {}
  virtual std::optional<std::chrono::steady_clock::time_point> server_deadline() const { return std::nullopt; }
};

// The default: the mount lives in memory only.
class MemoryStore final : public Store {
 public:
  int load(engine::Budget&, Contents&) override { return 0; }
  void set_source(Source&) override {}
  int prepare(std::size_t) override { return 0; }
  void put_node(const NodeState&) override {}
  void remove_node(uint64_t) override {}
  void put_settings(uint64_t, const engine::Settings&) override {}
  void enqueued(uint64_t, engine::Message& message) override { message.set_id(next_id_++); }
  void dequeued(uint64_t, const engine::Message&) override {}
  void delivered(uint64_t, const engine::Message&) override {}
  void moved(uint64_t, uint64_t, engine::Message& message) override { message.set_id(next_id_++); }
  void withdrawn(uint64_t, const engine::Message&) override {}
  void counted(uint64_t, int64_t, int64_t) override {}
  void purged(uint64_t, std::span<const engine::Message* const>, bool) override {}
  int write_out() override { return 0; }
  bool batches_records() const override { return false; }

 private:
  uint64_t next_id_ = 1;
};

}  // namespace mqfs::store
