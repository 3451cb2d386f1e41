// The names: a tree of directories and queues, each a node with an inode
// number, owner, mode and times. Removing a name does not end a queue that is
// still in use (mq_unlink semantics): the node lives while the kernel still
// refers to it, and the queue while an open file does.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "engine/budget.hpp"
#include "engine/queue.hpp"
#include "engine/settings.hpp"
#include "engine/waiter.hpp"

namespace mqfs::engine {

inline constexpr uint64_t kRootIno = 1;
inline constexpr std::size_t kNameMax = 255;

struct Owner {
  uid_t uid = 0;
  gid_t gid = 0;
};

class Node {
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
  uint64_t lookups = 0;  // references the kernel holds (FUSE lookup count)

 private:
  friend class Namespace;
  Node(uint64_t ino, mode_t mode, Owner owner) : ino(ino), mode(mode), owner(owner) {}
  Times times_;
};

class Namespace {
 public:
  // `defaults` are the settings of new queues (the mount options).
  Namespace(Budget& budget, Timeouts& timeouts, const Settings& defaults, mode_t root_mode, Owner root_owner);
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;
  ~Namespace();

  Node& root() { return *root_; }
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

  // The kernel took or dropped references to a node.
  void remember(Node& node) { ++node.lookups; }
  void forget(Node& node, uint64_t n);

  std::size_t size() const { return nodes_.size(); }

  // Every queue that has a name or is still open, for shutdown.
  template <class Visit>
  void for_each_queue(Visit visit) {
    for (auto& [ino, node] : nodes_)
      if (node->queue) visit(*node->queue);
  }

 private:
  void detach(Node& node);
  void attach(Node& dir, std::string_view name, Node& node);
  void release_if_unused(Node& node);
  bool is_within(const Node& node, const Node& dir) const;

  Budget* budget_;
  Timeouts* timeouts_;
  Settings defaults_;
  uint64_t next_ino_ = kRootIno + 1;
  std::unordered_map<uint64_t, std::unique_ptr<Node>> nodes_;
  Node* root_;
};

}  // namespace mqfs::engine
