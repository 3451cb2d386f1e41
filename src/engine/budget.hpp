// The mount's global limits, shared by all queues. Together they bound the
// daemon's memory: message bytes (with each message's bookkeeping), queues
// and directories, open files, and reads and writes waiting at once.
#pragma once

#include <cstdint>
#include <utility>

namespace mqfs::engine {

struct Limits {
  uint64_t max_nodes = UINT64_MAX;
  uint64_t max_bytes = UINT64_MAX;
  uint64_t max_open_files = UINT64_MAX;
  uint64_t max_waiters = UINT64_MAX;
  // Charged to max_bytes for each message on top of its bytes: what holding
  // one costs besides them (header, allocator rounding, a priority's entry).
  uint64_t message_overhead = 0;
};

class Budget {
 public:
  explicit Budget(const Limits& limits) : limits_(limits) {}
  Budget(uint64_t max_nodes, uint64_t max_bytes) : Budget(Limits{.max_nodes = max_nodes, .max_bytes = max_bytes}) {}

  // Message bytes held anywhere: queued, waiting in a blocked write, or the
  // unread rest of a message held by an open file.
  bool reserve_bytes(uint64_t n) {
    if (n > limits_.max_bytes - bytes_) return false;
    bytes_ += n;
    return true;
  }
  void release_bytes(uint64_t n) { bytes_ -= n; }
  uint64_t message_overhead() const { return limits_.message_overhead; }

  // Queues and directories, including removed ones still open.
  bool reserve_node() { return reserve(nodes_, limits_.max_nodes); }
  void release_node() { --nodes_; }

  // Open files: counted by OpenFile itself; an open is refused when full.
  bool may_open_file() const { return open_files_ < limits_.max_open_files; }
  void add_open_file() { ++open_files_; }
  void remove_open_file() { --open_files_; }

  // Reads and writes waiting in any queue.
  bool reserve_waiter() { return reserve(waiters_, limits_.max_waiters); }
  void release_waiter() { --waiters_; }

  uint64_t max_nodes() const { return limits_.max_nodes; }
  uint64_t max_bytes() const { return limits_.max_bytes; }
  uint64_t nodes() const { return nodes_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t open_files() const { return open_files_; }
  uint64_t waiters() const { return waiters_; }

 private:
  static bool reserve(uint64_t& count, uint64_t max) {
    if (count >= max) return false;
    ++count;
    return true;
  }

  Limits limits_;
  uint64_t nodes_ = 0;
  uint64_t bytes_ = 0;
  uint64_t open_files_ = 0;
  uint64_t waiters_ = 0;
};

// One place under max_nodes, held by a directory or queue while it counts
// and given back when released or destroyed.
class NodeCharge {
 public:
  NodeCharge() = default;
  explicit NodeCharge(Budget& budget) : budget_(&budget) {}
  NodeCharge(NodeCharge&& other) noexcept : budget_(std::exchange(other.budget_, nullptr)) {}
  NodeCharge& operator=(NodeCharge&& other) noexcept {
    release();
    budget_ = std::exchange(other.budget_, nullptr);
    return *this;
  }
  ~NodeCharge() { release(); }

  void release() {
    if (budget_) std::exchange(budget_, nullptr)->release_node();
  }

 private:
  Budget* budget_ = nullptr;
};

}  // namespace mqfs::engine
