#include "engine/namespace.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <utility>

#include <spdlog/spdlog.h>

namespace mqfs::engine {

uint32_t Node::nlink() const {
  if (removed()) return 0;
  if (!is_directory()) return 1;
  uint32_t n = 2;
  for (const auto& [name, child] : children) n += child->is_directory();
  return n;
}

Namespace::Namespace(Budget& budget, Timeouts& timeouts, const Settings& defaults, mode_t root_mode,
                     Owner root_owner, store::Store* store)
    : budget_(&budget), timeouts_(&timeouts), defaults_(defaults), store_(store) {
  auto root = std::shared_ptr<Node>(new Node(kRootIno, S_IFDIR | (root_mode & 07777), root_owner));
  root->times_.atime = root->times_.mtime = root->times_.ctime = now_realtime();
  root_ = root.get();
  nodes_.emplace(kRootIno, std::move(root));
}

Namespace::~Namespace() = default;

Node* Namespace::find(uint64_t ino) const {
  auto it = nodes_.find(ino);
  return it == nodes_.end() ? nullptr : it->second.get();
}

Queue* Namespace::find_queue(std::string_view path) {
  const Node* node = root_;
  while (node && !path.empty()) {
    const std::size_t slash = path.find('/');
    const std::string_view name = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (name.empty()) continue;
    if (node->is_directory())
      node = lookup(*node, name);
    else
      return nullptr;
  }
  return node && !node->is_directory() ? node->queue.get() : nullptr;
}

Node* Namespace::lookup(const Node& dir, std::string_view name) const {
  auto it = dir.children.find(name);
  return it == dir.children.end() ? nullptr : it->second;
}

static void touch_directory(Node& dir) {
  auto now = now_realtime();
  dir.times().mtime = dir.times().ctime = now;
}

std::shared_ptr<Node> Namespace::new_node(uint64_t ino, mode_t mode, Owner owner, NodeCharge charge) {
  auto node = std::shared_ptr<Node>(new Node(ino, mode, owner));
  node->charge_ = std::move(charge);
  if (S_ISDIR(mode)) {
    node->mode = S_IFDIR | (mode & 07777);
    auto now = now_realtime();
    node->times_.atime = node->times_.mtime = node->times_.ctime = now;
  } else {
    node->mode = S_IFREG | (mode & 07777);
    node->queue = std::make_shared<Queue>(*budget_, *timeouts_, defaults_, store_, ino, this,
                                          store_ ? store_->remote() : nullptr);
    resubscribe(ino, {}, defaults_.subscribe);
  }
  return node;
}

std::string Namespace::path_of(const Node& node) const {
  std::string path = node.name;
  for (const Node* dir = node.parent; dir && dir != root_; dir = dir->parent) path = dir->name + '/' + path;
  return path;
}

void Namespace::resubscribe(uint64_t ino, const std::vector<std::string>& from, const std::vector<std::string>& to) {
  for (const std::string& path : from) {
    auto it = subscriptions_.find(path);
    if (it == subscriptions_.end()) continue;
    std::erase(it->second, ino);
    if (it->second.empty()) subscriptions_.erase(it);
  }
  for (const std::string& path : to) subscriptions_[path].push_back(ino);
}

std::span<Queue* const> Namespace::lasting_subscribers(const Queue& topic) {
  found_subscribers_.clear();
  const Node* node = find(topic.ino());
  if (!node || node->queue.get() != &topic || subscriptions_.empty()) return {};
  auto it = subscriptions_.find(path_of(*node));
  if (it == subscriptions_.end()) return {};
  for (uint64_t ino : it->second)
    if (const Node* subscriber = find(ino); subscriber && subscriber->queue)
      found_subscribers_.push_back(subscriber->queue.get());
  return found_subscribers_;
}

int Namespace::configure(Node& node, const Settings& settings) {
  if (int status = node.queue->check(settings); status < 0) return status;
  const std::vector<std::string> left = node.queue->settings().subscribe;
  if (settings.subscribe != left) resubscribe(node.ino, left, settings.subscribe);
  node.queue->configure(settings);
  topics_changed(left);  // a writer held back by this queue may go on
  return 0;
}

// The subscribers of the topics at `paths` changed.
void Namespace::topics_changed(const std::vector<std::string>& paths) {
  for (const std::string& path : paths)
    if (Queue* topic = find_queue(path); topic && topic->is_topic()) topic->room_made();
}

// `node` and what is under it changed paths, or lost them: each topic among
// them has other lasting subscribers now.
void Namespace::topics_moved(Node& node) {
  if (node.queue) {
    if (node.queue->is_topic()) node.queue->room_made();
    return;
  }
  std::vector<Node*> children;
  for (auto& [name, child] : node.children) children.push_back(child);
  for (Node* child : children) topics_moved(*child);
}

int Namespace::make(Node& dir, std::string_view name, mode_t mode, Owner owner, Node*& made) {
  if (!dir.is_directory()) return -ENOTDIR;
  if (name.size() > kNameMax) return -ENAMETOOLONG;
  if (lookup(dir, name)) return -EEXIST;
  if (store_)
    if (int status = store_->prepare(name.size() + 64); status < 0) return status;
  std::optional<uint64_t> given = store_ ? store_->new_ino() : 0;
  if (!given) return -EIO;
  if (!budget_->reserve_node()) return -ENOSPC;
  NodeCharge charge(*budget_);

  const uint64_t ino = *given ? *given : next_ino_++;
  auto node = new_node(ino, mode, owner, std::move(charge));
  made = node.get();
  nodes_.emplace(ino, std::move(node));
  attach(dir, name, *made);
  record(*made);
  if (made->queue && store_) store_->put_settings(ino, made->queue->settings());
  return 0;
}

static store::NodeState state_of(const Node& node) {
  return store::NodeState{.ino = node.ino,
                          .parent = node.parent ? node.parent->ino : 0,
                          .name = node.name,
                          .mode = node.mode,
                          .uid = node.owner.uid,
                          .gid = node.owner.gid};
}

void Namespace::record(const Node& node) {
  if (store_) store_->put_node(state_of(node));
}

void Namespace::changed(const Node& node) {
  if (!node.removed()) record(node);
}

// Parents before children, so that a snapshot restores in one pass.
void Namespace::visit_nodes(NodeVisitor& visitor) const {
  std::vector<const Node*> pending{root_};
  while (!pending.empty()) {
    const Node* node = pending.back();
    pending.pop_back();
    if (node->queue) {
      const store::QueueState queue{node->queue->settings(), node->queue->sent(), node->queue->received(),
                                    node->queue->dead_lettered(), node->queue->dropped()};
      visitor.node(state_of(*node), &queue);
    } else {
      visitor.node(state_of(*node), nullptr);
    }
    for (const auto& [name, child] : node->children) pending.push_back(child);
  }
}

void Namespace::visit_messages(MessageVisitor& visitor) {
  for (auto& entry : nodes_) {
    const uint64_t ino = entry.first;
    if (Queue* queue = entry.second->queue.get()) queue->for_each_message([&](Message& m) { visitor.message(ino, m); });
  }
}

int Namespace::restore(store::Contents& contents) {
  std::unordered_map<uint64_t, std::pair<Node*, uint64_t>> parents;  // node and its parent's ino
  for (store::Contents::Node& kept : contents.nodes) {
    const store::NodeState& state = kept.node;
    next_ino_ = std::max(next_ino_, state.ino + 1);
    if (state.ino == kRootIno) {
      root_->mode = S_IFDIR | (state.mode & 07777);
      root_->owner = Owner{state.uid, state.gid};
      continue;
    }
    if (!budget_->reserve_node()) return -ENOSPC;
    auto node = new_node(state.ino, state.mode, Owner{state.uid, state.gid}, NodeCharge(*budget_));
    if (node->queue && kept.queue) {
      auto it = contents.messages.find(state.ino);
      std::vector<MessagePtr> messages;
      if (it != contents.messages.end()) messages = std::move(it->second);
      resubscribe(state.ino, node->queue->settings().subscribe, kept.queue->settings.subscribe);
      node->queue->restore(*kept.queue, std::move(messages));
    }
    parents.emplace(state.ino, std::pair{node.get(), state.parent});
    node->name = state.name;
    nodes_.emplace(state.ino, std::move(node));
  }
  // A node whose parent is gone (never the case in a store written by
  // mqfs) is dropped rather than left unreachable.
  for (auto& [ino, entry] : parents) {
    auto [node, parent_ino] = entry;
    Node* parent = find(parent_ino);
    if (!parent || !parent->is_directory() || parent->children.contains(node->name)) continue;
    node->parent = parent;
    parent->children.emplace(node->name, node);
  }
  std::erase_if(nodes_, [](const auto& entry) { return entry.second->removed(); });
  return 0;
}

void Namespace::attach(Node& dir, std::string_view name, Node& node) {
  node.parent = &dir;
  node.name = name;
  dir.children.emplace(node.name, &node);
  touch_directory(dir);
}

void Namespace::detach(Node& node) {
  node.parent->children.erase(node.name);
  touch_directory(*node.parent);
  node.parent = nullptr;
  node.name.clear();
  node.times().ctime = now_realtime();
}

// Ends a node's name. The kernel's references (NodeIds) keep the node, open
// files its queue; it counts against max_nodes only while a file is open.
void Namespace::remove(Node& node) {
  if (store_) {
    if (node.queue) node.queue->drop_records();
    store_->remove_node(node.ino);
  }
  detach(node);
  forget(node);
}

// The rest of a removal, once the node is detached from its directory.
void Namespace::forget(Node& node) {
  if (node.queue) {
    resubscribe(node.ino, node.queue->settings().subscribe, {});
    topics_changed(node.queue->settings().subscribe);
    topics_moved(node);
    node.queue->unlinked(std::move(node.charge_));
  }
  node.charge_.release();
  nodes_.erase(node.ino);  // last: it may free the node
}

int Namespace::unlink(Node& dir, std::string_view name) {
  Node* node = lookup(dir, name);
  if (!node) return -ENOENT;
  if (node->is_directory()) return -EISDIR;
  remove(*node);
  return 0;
}

int Namespace::rmdir(Node& dir, std::string_view name) {
  Node* node = lookup(dir, name);
  if (!node) return -ENOENT;
  if (!node->is_directory()) return -ENOTDIR;
  if (!node->children.empty()) return -ENOTEMPTY;
  remove(*node);
  return 0;
}

// Whether `node` is `dir` or one of its ancestors.
bool Namespace::is_within(const Node& node, const Node& dir) const {
  for (const Node* d = &dir; d; d = d->parent)
    if (d == &node) return true;
  return false;
}

int Namespace::rename(Node& from_dir, std::string_view from, Node& to_dir, std::string_view to,
                      unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return -EINVAL;
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return -EINVAL;
  if (!to_dir.is_directory()) return -ENOTDIR;
  if (to.size() > kNameMax) return -ENAMETOOLONG;
  Node* source = lookup(from_dir, from);
  if (!source) return -ENOENT;
  Node* target = lookup(to_dir, to);
  if (source == target) return 0;
  if (source->is_directory() && is_within(*source, to_dir)) return -EINVAL;

  if (flags & RENAME_EXCHANGE) {
    if (!target) return -ENOENT;
    if (target->is_directory() && is_within(*target, from_dir)) return -EINVAL;
    detach(*source);
    detach(*target);
    attach(to_dir, to, *source);
    attach(from_dir, from, *target);
    record(*source);
    record(*target);
    topics_moved(*source);
    topics_moved(*target);
    return 0;
  }
  if (target) {
    if (flags & RENAME_NOREPLACE) return -EEXIST;
    if (source->is_directory() && !target->is_directory()) return -ENOTDIR;
    if (!source->is_directory() && target->is_directory()) return -EISDIR;
    if (target->is_directory() && !target->children.empty()) return -ENOTEMPTY;
    remove(*target);
  }
  detach(*source);
  attach(to_dir, to, *source);
  record(*source);
  topics_moved(*source);
  return 0;
}

// Makes the names those of `nodes`, in three passes: every node whose place
// changed, or that is gone, leaves its directory; nodes new here are made;
// then each takes its place, and those gone are removed (their queues fail
// every wait and call with EIDRM). The store is where `nodes` came from:
// detach, attach and forget record nothing, and a queue's new settings
// reach a store that shares names while it reconciles, which ignores them.
void Namespace::reconcile(const std::vector<store::Contents::Node>& nodes) {
  std::unordered_map<uint64_t, const store::Contents::Node*> wanted;
  for (const store::Contents::Node& kept : nodes) wanted.emplace(kept.node.ino, &kept);

  auto same_kind = [](const Node& node, const store::NodeState& state) {
    return node.is_directory() == S_ISDIR(state.mode);
  };
  std::vector<Node*> moving, going;
  for (auto& [ino, node] : nodes_) {
    if (ino == kRootIno) continue;
    auto it = wanted.find(ino);
    if (it == wanted.end() || !same_kind(*node, it->second->node))
      going.push_back(node.get());
    else if (!node->parent || node->parent->ino != it->second->node.parent || node->name != it->second->node.name)
      moving.push_back(node.get());
  }
  for (Node* node : moving) detach(*node);
  for (Node* node : going) {
    if (node->queue) node->queue->remote_removed();
    detach(*node);
  }
  for (Node* node : going) forget(*node);

  std::vector<const store::Contents::Node*> placing;
  for (const store::Contents::Node& kept : nodes) {
    const store::NodeState& state = kept.node;
    if (state.ino == kRootIno) {
      root_->mode = S_IFDIR | (state.mode & 07777);
      root_->owner = Owner{state.uid, state.gid};
      continue;
    }
    auto it = nodes_.find(state.ino);
    if (it == nodes_.end()) {
      if (!budget_->reserve_node()) {
        spdlog::warn("another mount's {} '{}' is not shown: max_queues is reached", S_ISDIR(state.mode) ? "directory" : "queue",
                     state.name);
        continue;
      }
      it = nodes_.emplace(state.ino, new_node(state.ino, state.mode, Owner{state.uid, state.gid}, NodeCharge(*budget_)))
               .first;
      placing.push_back(&kept);
    } else if (!it->second->parent) {
      placing.push_back(&kept);
    }
    Node& node = *it->second;
    node.mode = (node.mode & S_IFMT) | (state.mode & 07777);
    node.owner = Owner{state.uid, state.gid};
    if (node.queue && kept.queue && !(node.queue->settings() == kept.queue->settings)) {
      resubscribe(node.ino, node.queue->settings().subscribe, kept.queue->settings.subscribe);
      node.queue->configure(kept.queue->settings);
    }
  }
  for (const store::Contents::Node* kept : placing) {
    Node& node = *nodes_.at(kept->node.ino);
    Node* dir = find(kept->node.parent);
    if (dir && dir->is_directory() && !dir->children.contains(kept->node.name)) {
      attach(*dir, kept->node.name, node);
      continue;
    }
    spdlog::warn("the names in the store put '{}' (inode {}) where it cannot be; it is not shown", kept->node.name,
                 kept->node.ino);
    if (node.queue) node.queue->remote_removed();
    forget(node);
  }
}

}  // namespace mqfs::engine
