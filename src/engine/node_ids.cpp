#include "engine/node_ids.hpp"

#include <algorithm>

namespace mqfs::engine {

NodeIds::NodeIds(Node& root, std::size_t max_ids) : max_ids_(max_ids) {
  ids_.emplace(kRootIno, Entry{root.shared_from_this(), 1});  // the kernel never forgets the root
}

Node* NodeIds::find(uint64_t id) const {
  auto it = ids_.find(id);
  return it == ids_.end() ? nullptr : it->second.node.get();
}

uint64_t NodeIds::id_for(Node& node) {
  if (node.is_directory()) return node.ino;
  Queue& queue = queues_[&node];
  if (auto latest = ids_.find(queue.latest); latest != ids_.end()) {
    const Entry& entry = latest->second;
    if (entry.open_files == 0 && !entry.unopened) return queue.latest;  // idle
    if (queue.contended >= kMaxContended || ids_.size() >= max_ids_) return queue.latest;
    ++queue.contended;
  }
  queue.latest = next_queue_id_++;
  ++queue.ids;
  return queue.latest;
}

uint64_t NodeIds::remember(Node& node) {
  const uint64_t id = id_for(node);
  Entry& entry = ids_[id];
  if (!entry.node) entry.node = node.shared_from_this();
  ++entry.lookups;
  entry.unopened = !node.is_directory();
  return id;
}

void NodeIds::opened(uint64_t id) {
  auto it = ids_.find(id);
  if (it == ids_.end()) return;
  Entry& entry = it->second;
  ++entry.open_files;
  entry.unopened = false;
  if (!entry.node->is_directory()) queues_.at(entry.node.get()).contended = 0;
}

void NodeIds::released(uint64_t id) {
  auto it = ids_.find(id);
  if (it != ids_.end() && it->second.open_files > 0) --it->second.open_files;
}

void NodeIds::forget(uint64_t id, uint64_t n) {
  auto it = ids_.find(id);
  if (it == ids_.end() || id == kRootIno) return;
  Entry& entry = it->second;
  entry.lookups -= std::min(n, entry.lookups);
  if (entry.lookups > 0) return;
  if (!entry.node->is_directory()) {
    auto queue = queues_.find(entry.node.get());
    if (--queue->second.ids == 0) queues_.erase(queue);
  }
  ids_.erase(it);  // last: it may free the node
}

}  // namespace mqfs::engine
