#include "engine/namespace.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

namespace mqfs::engine {

uint32_t Node::nlink() const {
  if (removed()) return 0;
  if (!is_directory()) return 1;
  uint32_t n = 2;
  for (const auto& [name, child] : children) n += child->is_directory();
  return n;
}

Namespace::Namespace(Budget& budget, Timeouts& timeouts, const Settings& defaults, mode_t root_mode,
                     Owner root_owner)
    : budget_(&budget), timeouts_(&timeouts), defaults_(defaults) {
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

Node* Namespace::lookup(const Node& dir, std::string_view name) const {
  auto it = dir.children.find(name);
  return it == dir.children.end() ? nullptr : it->second;
}

static void touch_directory(Node& dir) {
  auto now = now_realtime();
  dir.times().mtime = dir.times().ctime = now;
}

int Namespace::make(Node& dir, std::string_view name, mode_t mode, Owner owner, Node*& made) {
  if (!dir.is_directory()) return -ENOTDIR;
  if (name.size() > kNameMax) return -ENAMETOOLONG;
  if (lookup(dir, name)) return -EEXIST;
  if (!budget_->reserve_node()) return -ENOSPC;
  NodeCharge charge(*budget_);

  const uint64_t ino = next_ino_++;
  auto node = std::shared_ptr<Node>(new Node(ino, mode, owner));
  node->charge_ = std::move(charge);
  if (S_ISDIR(mode)) {
    auto now = now_realtime();
    node->times_.atime = node->times_.mtime = node->times_.ctime = now;
  } else {
    node->mode = S_IFREG | (mode & 07777);
    node->queue = std::make_shared<Queue>(*budget_, *timeouts_, defaults_);
  }
  made = node.get();
  nodes_.emplace(ino, std::move(node));
  attach(dir, name, *made);
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
  detach(node);
  if (node.queue) node.queue->unlinked(std::move(node.charge_));
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
  return 0;
}

}  // namespace mqfs::engine
