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
// The names (directories, queues, owners, modes, settings) are shared by
// version (mqfs_names): a request is checked and made by the engine in
// memory, and answered once Redis accepted its changes at the version the
// mount last read. When another mount changed the names meanwhile, the
// changes are made again at the new version if they still can be (no one
// took the name, the directory is still there), and refused otherwise; the
// mount then reads the names again and makes its copy theirs
// (Source::reconcile). Other mounts' changes arrive the same way, on their
// events. Inodes come in blocks no other mount is given.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

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
  // Connects in the background; load() waits for the names.
  explicit RedisStore(const Options& options);
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;
  ~RedisStore() override;

  // This mount's name in Redis: random, new at each start.
  const std::string& mount() const { return mount_; }
  const Keys& keys() const { return keys_; }

  // For the loop: readable when either connection has work.
  int server_fd() const override { return epoll_; }
  void handle_server(Clock::time_point now) override;
  std::optional<Clock::time_point> server_deadline() const override;
  bool connected() const { return calls_.connected() && events_.connected(); }

  // Store: the names (above). The messages of shared queues go through
  // engine::Remote instead of these records.
  // Reads the names, waiting up to redis_timeout_ms for Redis: 0, or -EIO.
  int load(engine::Budget&, Contents& contents) override;
  void set_source(Source& source) override { source_ = &source; }
  int prepare(std::size_t) override { return 0; }
  void put_node(const NodeState& node) override;
  void remove_node(uint64_t ino) override;
  void put_settings(uint64_t ino, const engine::Settings& settings) override;
  std::optional<uint64_t> new_ino() override;
  bool shares_names() const override { return true; }
  void commit_names(std::function<void(int)> done) override;
  engine::Remote* remote() override { return this; }
  void enqueued(uint64_t, engine::Message&) override {}
  void dequeued(uint64_t, const engine::Message&) override {}
  void delivered(uint64_t, const engine::Message&) override {}
  void moved(uint64_t, uint64_t, engine::Message&) override {}
  void counted(uint64_t, int64_t, int64_t) override {}
  void withdrawn(uint64_t, const engine::Message&) override {}
  void purged(uint64_t, std::span<const engine::Message* const>, bool) override {}
  // The calls made so far go to Redis's socket (before every answer, and
  // at the end of each loop turn).
  int write_out() override;
  // At unmount: what this mount holds for no one goes back, and every call
  // made gets its answer (at most redis_timeout_ms; none while Redis is
  // not connected).
  void close() override;
  bool batches_records() const override { return false; }

  // engine::Remote
  void attach(uint64_t ino, engine::Queue& queue) override;
  void detach(uint64_t ino, engine::Queue& queue) override;
  void send(uint64_t ino, uint64_t ticket, std::span<const engine::Message* const> messages,
            std::span<const uint64_t> subscribers) override;
  uint64_t subscribe(uint64_t topic, int64_t maxmsg) override;
  void unsubscribe(uint64_t topic, uint64_t subscription) override;
  void take(uint64_t ino, const engine::Selection& selection, uint32_t most, std::size_t limit,
            std::size_t header) override;
  void ack(uint64_t ino, const engine::Message& message) override;
  void release(uint64_t ino, const engine::Message& message, int64_t delay_ms, bool delivered) override;
  void dead_letter(uint64_t ino, uint64_t to, const engine::Message& message) override;
  void purge(uint64_t ino) override;
  void refresh(uint64_t ino) override;

 private:
  // One request's changes to the names.
  struct Change {
    NodeState node;                          // remove: only its inode counts
    std::optional<engine::Settings> settings; // a queue's
    bool remove = false;
    bool made = false;  // the node is new
  };
  using Changes = std::vector<Change>;
  void offer_names(std::shared_ptr<Changes> changes, uint64_t version, std::function<void(int)> done);
  int rebase(const Changes& changes) const;
  void take_names(Names names);
  void reload_names();
  void ask_inodes();
  bool wait(const std::function<bool()>& done);

  engine::Queue* find(uint64_t ino) const;
  void read_new_queues();
  std::string base(uint64_t ino) const;
  void publish(uint64_t ino, uint64_t ticket, std::span<const engine::Message* const> messages,
               std::span<const uint64_t> subscribers);
  void wake_publishers();
  // The inode numbers of this mount's descriptors' subscriptions (SPEC
  // section 13) lie above every named queue's.
  static constexpr uint64_t kSubscriptions = uint64_t{1} << 62;
  void settle(uint64_t ino, bool acknowledge, int64_t delay_ms, engine::Priority priority, uint64_t id);
  struct Settlement {
    uint64_t ino;
    bool acknowledge;
    int64_t delay_ms;
    auto operator<=>(const Settlement&) const = default;
  };
  void send_settlements();
  void send_settlement(const Settlement& settlement, std::vector<Order> orders);
  void heartbeat();
  void recheck();
  void reconnected();
  void on_event(std::string_view payload);
  void apply(uint64_t ino, Event& event);
  void take_copy(uint64_t ino);

  engine::Budget* budget_ = nullptr;  // the mount's, from load()
  Keys keys_;
  std::string mount_;
  std::string named_;  // the base of every named queue, but its inode number
  std::string own_;    // ... of this mount's subscriptions, but their number
  std::chrono::milliseconds lease_;
  std::chrono::milliseconds timeout_;
  Connection calls_;
  Connection events_;
  int epoll_ = -1;
  Clock::time_point next_heartbeat_{};
  bool closing_ = false;
  bool stopping_ = false;  // close(): no call is made again
  std::unordered_map<uint64_t, engine::Queue*> queues_;
  std::vector<uint64_t> unread_;  // attached, their copies not asked for yet
  // A queue's copy being read: the snapshot, its mark among the events, and
  // the events after the mark while the snapshot has not come.
  struct Read {
    uint64_t token = 0;
    bool marked = false;
    std::optional<Snapshot> copy;
    std::vector<Event> after;
  };
  std::unordered_map<uint64_t, Read> reads_;
  std::map<Settlement, std::vector<Order>> settlements_;  // made this loop turn
  uint64_t refreshes_ = 0;
  uint64_t subscriptions_ = 0;
  bool republish_ = false;  // a publish waits for the names to be read again

  // The names as Redis had them at version_, and the changes of the
  // request under way (by inode).
  Source* source_ = nullptr;
  uint64_t version_ = 0;
  std::map<uint64_t, Contents::Node> names_;
  std::map<uint64_t, Change> pending_;
  bool loaded_ = false;       // the mount was built from names_ (load())
  bool reconciling_ = false;  // the changes made now are Redis's own
  int offered_ = 0;           // changes waiting for Redis's answer
  bool reload_wanted_ = false;
  bool reloading_ = false;
  uint64_t next_ino_ = 0;  // this mount's block of inodes: [next_ino_, end_ino_)
  uint64_t end_ino_ = 0;
  bool asking_inodes_ = false;
};

}  // namespace mqfs::store::redis
