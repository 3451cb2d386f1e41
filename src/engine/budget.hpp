// The mount's global limits, shared by all queues: how many queues and
// directories may exist, and how many message bytes the daemon may hold.
#pragma once

#include <cstdint>

namespace mqfs::engine {

class Budget {
 public:
  Budget(uint64_t max_nodes, uint64_t max_bytes) : max_nodes_(max_nodes), max_bytes_(max_bytes) {}

  // Message bytes held anywhere: queued, waiting in a blocked write, or the
  // unread rest of a message held by an open file.
  bool reserve_bytes(uint64_t n) {
    if (n > max_bytes_ - bytes_) return false;
    bytes_ += n;
    return true;
  }
  void release_bytes(uint64_t n) { bytes_ -= n; }

  // Queues and directories, including removed ones still open.
  bool reserve_node() {
    if (nodes_ >= max_nodes_) return false;
    ++nodes_;
    return true;
  }
  void release_node() { --nodes_; }

  uint64_t max_nodes() const { return max_nodes_; }
  uint64_t max_bytes() const { return max_bytes_; }
  uint64_t nodes() const { return nodes_; }
  uint64_t bytes() const { return bytes_; }

 private:
  uint64_t max_nodes_;
  uint64_t max_bytes_;
  uint64_t nodes_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace mqfs::engine
