// The names: a tree of directories and queues, each a node with an inode
// number, owner, mode and times. Removing a name does not end a queue that is
// still in use (mq_unlink semantics): the node lives while the kernel still
// refers to it (NodeIds), and the queue while an open file does. A removed
// node stops counting against max_nodes at once, a removed queue once no open
// file holds it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/budget.hpp"
#include "engine/queue.hpp"
#include "engine/settings.hpp"
#include "engine/waiter.hpp"
#include "store/store.hpp"

namespace mqfs::engine {

inline constexpr uint64_t kRootIno = 1;
inline constexpr std::size_t kNameMax = 255;

struct Owner {
  uid_t uid = 0;
  gid_t gid = 0;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  bool is_directory() const { return queue == nullptr; }
  bool removed() const { return parent == nullptr && ino != kRootIno; }
  Times& times() { return queue ? queue->times() : times_; }
  const Times& times() const { return queue ? queue->times() : times_; }
  uint32_t nlink() const;

  const uint64_t ino;
  mode_t mode;  // permission bits and type (S_IFDIR or S_IFREG)
  Owner owner;
  Node* parent = nullptr;  // null for the root and for removed nodes
  std::string name;
  std::map<std::string, Node*, std::less<>> children;  // directories only
  std::shared_ptr<Queue> queue;                       // queues only

 private:
  friend class Namespace;
  Node(uint64_t ino, mode_t mode, Owner owner) : ino(ino), mode(mode), owner(owner) {}
  Times times_;
  NodeCharge charge_;  // while it has a name
};

// The names, and what a store copies of them (store::Source).
class Namespace final : public store::Source, public QueueFinder {
 public:
  // `defaults` are the settings of new queues (the mount options); `store`
  // records every change (none: the mount lives in memory).
  Namespace(Budget& budget, Timeouts& timeouts, const Settings& defaults, mode_t root_mode, Owner root_owner,
            store::Store* store = nullptr);
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;
  ~Namespace() override;

  // Builds the names and queues its store kept: 0, or -ENOSPC when they pass
  // the mount's max_queues.
  int restore(store::Contents& contents);

  Node& root() { return *root_; }
  // The node of that inode number while it has a name (or is the root).
  Node* find(uint64_t ino) const;
  Node* lookup(const Node& dir, std::string_view name) const;
  const Settings& defaults() const { return defaults_; }

  // Makes a queue (S_IFREG) or directory (S_IFDIR) named `name` in `dir`:
  // 0, or -EEXIST, -ENOSPC (the mount's cap), -ENAMETOOLONG, -ENOTDIR.
  int make(Node& dir, std::string_view name, mode_t mode, Owner owner, Node*& made);
  // Removes a queue's name: 0, -ENOENT, -EISDIR.
  int unlink(Node& dir, std::string_view name);
  // Removes an empty directory: 0, -ENOENT, -ENOTDIR, -ENOTEMPTY.
  int rmdir(Node& dir, std::string_view name);
  // rename(2), with RENAME_NOREPLACE and RENAME_EXCHANGE.
  int rename(Node& from_dir, std::string_view from, Node& to_dir, std::string_view to, unsigned flags);
  // The node's mode or owner changed (chmod, chown, a write clearing set-ID bits).
  void changed(const Node& node);

  void visit_nodes(NodeVisitor& visitor) const override;
  void visit_messages(MessageVisitor& visitor) override;
  void reconcile(const std::vector<store::Contents::Node>& nodes) override;

  // The queue at `path` from the root ("a/b", or "/a/b"), or null.
  Queue* find_queue(std::string_view path) override;
  // The named queues whose user.mq.subscribe names the topic's path; valid
  // until the next call.
  std::span<Queue* const> lasting_subscribers(const Queue& topic) override;

  // New settings for a queue (setfattr): 0, or what Queue::check refuses them with.
  int configure(Node& node, const Settings& settings);

  // Named nodes, the root included.
  std::size_t size() const { return nodes_.size(); }

 private:
  void detach(Node& node);
  void attach(Node& dir, std::string_view name, Node& node);
  void remove(Node& node);
  void forget(Node& node);
  bool is_within(const Node& node, const Node& dir) const;
  void record(const Node& node);
  std::shared_ptr<Node> new_node(uint64_t ino, mode_t mode, Owner owner, NodeCharge charge);
  std::string path_of(const Node& node) const;
  void resubscribe(uint64_t ino, const std::vector<std::string>& from, const std::vector<std::string>& to);
  void topics_changed(const std::vector<std::string>& paths);
  void topics_moved(Node& node);

  Budget* budget_;
  Timeouts* timeouts_;
  Settings defaults_;
  store::Store* store_;
  uint64_t next_ino_ = kRootIno + 1;
  std::unordered_map<uint64_t, std::shared_ptr<Node>> nodes_;  // by inode number
  Node* root_;
  // SPEC section 13: the queues (inode numbers) subscribing to each topic
  // path. Paths, not topics: a subscription names whatever topic is there.
  std::unordered_map<std::string, std::vector<uint64_t>> subscriptions_;
  std::vector<Queue*> found_subscribers_;
};

}  // namespace mqfs::engine
