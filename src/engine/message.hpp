// Messages and the priority structure that orders them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <span>
#include <vector>

#include "engine/budget.hpp"

namespace mqfs::engine {

using Priority = uint16_t;
inline constexpr Priority kMaxPriority = 32767;

class Message;

// What holding a message costs besides its bytes, at most: its 40-byte
// header, the allocator's header and rounding (up to 23 bytes), and a 64-byte
// entry for its priority when it is alone there. The mount charges this to
// max_bytes with every message, so that max_bytes bounds the memory messages
// take, however small they are.
inline constexpr uint64_t kMessageOverhead = 128;

// Frees a message and gives its bytes back to the budget.
struct MessageDeleter {
  Budget* budget = nullptr;
  void operator()(Message* message) const;
};
using MessagePtr = std::unique_ptr<Message, MessageDeleter>;

// The bytes of one write, with their priority. Header and payload are one
// allocation, so a queued 64-byte message costs about 80 bytes.
class Message {
 public:
  // A copy of `bytes`, or null when the budget has no room for them.
  static MessagePtr make(Budget& budget, std::span<const std::byte> bytes, Priority priority) {
    return make(budget, bytes, {}, priority);
  }
  // A message of `head` followed by `tail`.
  static MessagePtr make(Budget& budget, std::span<const std::byte> head, std::span<const std::byte> tail,
                         Priority priority);

  std::span<const std::byte> bytes() const { return {payload(), size_}; }
  uint32_t size() const { return size_; }
  Priority priority() const { return priority_; }

  // The identity its store gave it when it was queued: later messages have
  // larger ids, so a priority's FIFO order is the order of its ids.
  uint64_t id() const { return id_; }
  void set_id(uint64_t id) { id_ = id; }
  // Where the journal store keeps its record (a segment's number).
  uint32_t segment() const { return segment_; }
  void set_segment(uint32_t segment) { segment_ = segment; }
  // When it was sent: CLOCK_REALTIME nanoseconds.
  int64_t enqueued_ns() const { return enqueued_ns_; }
  void set_enqueued_ns(int64_t ns) { enqueued_ns_ = ns; }
  // How many times a read delivered it (a lease that ended returns it, and
  // the next read counts again).
  uint32_t deliveries() const { return deliveries_; }
  void set_deliveries(uint32_t deliveries) { deliveries_ = deliveries; }

 private:
  friend class MessageStore;
  friend struct MessageDeleter;

  Message(uint32_t size, Priority priority) : size_(size), priority_(priority) {}
  std::byte* payload() { return reinterpret_cast<std::byte*>(this + 1); }
  const std::byte* payload() const { return reinterpret_cast<const std::byte*>(this + 1); }

  Message* next_ = nullptr;  // the next message of the same priority
  uint64_t id_ = 0;
  int64_t enqueued_ns_ = 0;
  uint32_t size_;
  Priority priority_;
  uint32_t segment_ = 0;
  uint32_t deliveries_ = 0;
};

// Bytes held outside messages — the unfinished message of a framed write, the
// unsent rest of a blocked framed write — charged to the budget as messages are.
class HeldBytes {
 public:
  explicit HeldBytes(Budget& budget) : budget_(&budget) {}
  HeldBytes(const HeldBytes&) = delete;
  HeldBytes& operator=(const HeldBytes&) = delete;
  ~HeldBytes() { clear(); }

  // Appends `more`; false, with nothing appended, when the budget has no room.
  bool append(std::span<const std::byte> more);
  void clear();
  // Gives up the first `n` bytes (their memory stays until clear()).
  void drop_front(std::size_t n);
  // Gives up the bytes after the first `size` (their memory stays until clear()).
  void truncate(std::size_t size);
  std::size_t size() const { return bytes_.size(); }
  std::span<const std::byte> bytes() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }

 private:
  Budget* budget_;
  std::vector<std::byte> bytes_;
  std::size_t charged_ = 0;  // bytes_'s capacity
};

// The queued messages: one FIFO per priority, priorities highest first
// (the kernel's ipc/mqueue.c shape). FIFO order within a priority comes from
// the lists themselves; an emptied priority is erased.
class MessageStore {
 public:
  explicit MessageStore(Budget& budget) : budget_(&budget) {}
  MessageStore(const MessageStore&) = delete;
  MessageStore& operator=(const MessageStore&) = delete;
  ~MessageStore() { clear(); }

  std::size_t count() const { return count_; }
  uint64_t bytes() const { return bytes_; }
  bool empty() const { return count_ == 0; }

  // The message a receive gets next: highest priority, oldest first.
  const Message* front() const { return empty() ? nullptr : levels_.begin()->second.head; }

  // Makes sure a message of `priority` can be queued without allocating:
  // its level exists, or the spare node is there for it. May throw; changes
  // nothing that readers see. As the kernel's mqueue.c does, everything is
  // allocated before the point of commit, so that once a writer has been
  // answered, queueing its message cannot fail.
  void reserve(Priority priority);
  // Queue a message; reserve(its priority) must have come first, with no
  // other push in between.
  void push_back(MessagePtr message) noexcept;
  // Returns a message to its place among its priority's messages, which are
  // in id order: O(1) when messages come back in the order they were taken,
  // or in the reverse of it. reserve(its priority) must have come first.
  void put_back(MessagePtr message) noexcept;
  MessagePtr pop_front();
  void clear();

  // The message after the one of `priority` and `id` in queue order, or the
  // front when there was none before (peeking): O(messages of that priority).
  const Message* next_after(std::optional<std::pair<Priority, uint64_t>> position) const;
  // The earliest enqueued_ns of the queued messages (0: none).
  int64_t oldest_enqueued_ns() const;

  // Calls `visit(const Message&)` front to back while it returns true.
  template <class Visit>
  void for_each(Visit visit) const {
    for (const auto& [priority, fifo] : levels_)
      for (const Message* m = fifo.head; m; m = m->next_)
        if (!visit(*m)) return;
  }
  // Calls `visit(Message&)` for every message, front to back.
  template <class Visit>
  void for_each_mutable(Visit visit) {
    for (auto& [priority, fifo] : levels_)
      for (Message* m = fifo.head; m; m = m->next_) visit(*m);
  }

 private:
  struct Fifo {
    Message* head = nullptr;
    Message* tail = nullptr;
    Message* put_back = nullptr;  // the last message put back, while it is here
  };
  using Levels = std::map<Priority, Fifo, std::greater<Priority>>;

  Fifo& level(Priority priority) noexcept;

  Budget* budget_;
  Levels levels_;
  Levels::node_type spare_;  // keeps the common one-priority case free of allocation
  std::size_t count_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace mqfs::engine
