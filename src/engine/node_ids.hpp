// The kernel's references to nodes, by node id: what FUSE's lookup count
// keeps alive, and what every request names a node by.
//
// A directory has one node id, its inode number. A queue may have many node
// ids, all mapping to the one queue and showing its one inode number, so
// that no two path walks that open a queue share a kernel inode: a writer
// waiting for room holds its inode's lock in the kernel for as long as it
// waits, and with inodes of their own, later writers, `setfattr`, `chmod`,
// `rm` and `mv` of that queue never wait behind that lock, unkillable (SPEC
// section 4). Queues are looked up at every path walk (entry timeout 0), and
// a lookup is answered with the queue's latest node id only while that one is
// idle: no open file uses it and no lookup handed it out without an open
// since. Otherwise the lookup gets a new node id. So a loop of `cat q` reuses
// one node id, and concurrent walks get one each.
//
// Two bounds. The kernel lets one lookup of a name run at a time; walks that
// waited for it look the name up again, and a new node id sends them round
// once more: n walks at once would cost n * n / 2 lookups. So after
// kMaxContended lookups of a queue answered with new node ids since the last
// open of it, lookups share the latest node id: a burst of up to about that
// many opens at once gets an inode each, and a burst of thousands ends in a
// few rounds (its walks past the first ones may share an inode). And past
// max_ids node ids in all, lookups share a queue's latest, to bound memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "engine/namespace.hpp"

namespace mqfs::engine {

class NodeIds {
 public:
  // Queue node ids start here, far above any inode number.
  static constexpr uint64_t kFirstQueueId = uint64_t{1} << 62;
  static constexpr uint64_t kMaxContended = 32;

  // `max_ids`: node ids held at once. Past it, a queue's lookups share the
  // node id it was last given instead of taking a new one.
  NodeIds(Node& root, std::size_t max_ids);

  Node* find(uint64_t id) const;
  // Hands out one reference to `node` and returns its node id.
  uint64_t remember(Node& node);
  // The kernel dropped `n` references to `id`. Its last one may free a node
  // whose name was removed.
  void forget(uint64_t id, uint64_t n);
  // A file was opened on `id` (open, create), or its last copy released.
  void opened(uint64_t id);
  void released(uint64_t id);

  std::size_t size() const { return ids_.size(); }

 private:
  struct Entry {
    std::shared_ptr<Node> node;
    uint64_t lookups = 0;
    uint64_t open_files = 0;
    bool unopened = false;  // handed out by a lookup, no open since
  };
  // A queue's node ids.
  struct Queue {
    uint64_t latest = 0;     // 0 once forgotten
    uint64_t ids = 0;
    uint64_t contended = 0;  // new node ids handed out since the last open
  };
  uint64_t id_for(Node& node);

  std::size_t max_ids_;
  uint64_t next_queue_id_ = kFirstQueueId;
  std::unordered_map<uint64_t, Entry> ids_;
  std::unordered_map<const Node*, Queue> queues_;
};

}  // namespace mqfs::engine
