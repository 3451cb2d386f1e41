// Messages and the priority structure that orders them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
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

// SPEC section 12: a message's type, >= 1 (System V's mtype).
using Type = int64_t;
inline constexpr Type kMaxType = INT64_MAX;

// What holding a message costs besides its bytes, at most: its 48-byte
// header, the allocator's header and rounding (up to 23 bytes), and a 64-byte
// entry for its priority when it is alone there. The mount charges this to
// max_bytes with every message, so that max_bytes bounds the memory messages
// take, however small they are.
inline constexpr uint64_t kMessageOverhead = 136;

// Frees a message and gives its bytes back to the budget.
struct MessageDeleter {
  Budget* budget = nullptr;
  void operator()(Message* message) const;
};
using MessagePtr = std::unique_ptr<Message, MessageDeleter>;

// SPEC section 13: the bytes of one publish to a topic, shared by its
// subscribers' copies, so that N subscribers do not cost N copies of them.
struct SharedBody {
  const Message* source = nullptr;  // the message whose bytes the copies share
  MessagePtr owner;                 // the same message, once the publish commits
  uint32_t refs = 0;                // the copies alive, and the publish while it is under way
};

// The bytes of one write, with their priority and type. Header and payload
// are one allocation, so a queued 64-byte message costs about 112 bytes.
class Message {
 public:
  // A copy of `bytes`, or null when the budget has no room for them.
  static MessagePtr make(Budget& budget, std::span<const std::byte> bytes, Priority priority, Type type) {
    return make(budget, bytes, {}, priority, type);
  }
  // A message of `head` followed by `tail`.
  static MessagePtr make(Budget& budget, std::span<const std::byte> head, std::span<const std::byte> tail,
                         Priority priority, Type type);

  // A subscriber's copy of `body`'s message: a header of its own (id,
  // deliveries...) that shares the bytes, charged to the budget as a message
  // without bytes. Null when the budget has no room for it.
  static MessagePtr share(Budget& budget, SharedBody& body);

  std::span<const std::byte> bytes() const { return shared_ ? body()->source->bytes() : std::span{payload(), size_}; }
  uint32_t size() const { return size_; }
  Priority priority() const { return priority_; }
  Type type() const { return type_; }

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

  Message(uint32_t size, Priority priority, Type type) : type_(type), size_(size), priority_(priority) {}
  std::byte* payload() { return reinterpret_cast<std::byte*>(this + 1); }
  const std::byte* payload() const { return reinterpret_cast<const std::byte*>(this + 1); }
  // A shared copy's payload is the pointer to its body.
  SharedBody* body() const {
    SharedBody* body;
    std::memcpy(&body, payload(), sizeof body);
    return body;
  }
  // What the budget was charged for it.
  uint64_t charge(const Budget& budget) const { return (shared_ ? 0 : size_) + budget.message_overhead(); }

  Message* next_ = nullptr;  // the next message of the same priority
  uint64_t id_ = 0;
  int64_t enqueued_ns_ = 0;
  Type type_;
  uint32_t size_;
  Priority priority_;
  bool shared_ = false;  // its bytes are a SharedBody's
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

// SPEC section 12: the messages a reader takes, as msgrcv's msgtyp says.
struct Selection {
  Type type = 0;        // 0: any; > 0: that type (except: any other); < 0: the lowest type <= -type
  bool except = false;  // only with type > 0

  // The highest type a negative selection takes.
  Type bound() const { return type == INT64_MIN ? kMaxType : -type; }
  // Whether a message of `message_type` qualifies (a negative selection
  // takes the lowest qualifying type first).
  bool takes(Type message_type) const {
    if (type == 0) return true;
    if (type < 0) return message_type <= bound();
    return (message_type == type) != except;
  }
};

// The queued messages, indexed by type: for each type, one FIFO per
// priority, priorities highest first (the kernel's ipc/mqueue.c shape), and
// an ordered set of each type's front message. So the front of any
// selection is found in O(log types): any type is the first front, "any
// but t" the first or second, type t its own front, and the lowest type up
// to a bound the first type. FIFO order within a priority comes from the
// lists themselves; an emptied priority or type is erased.
class MessageStore {
 public:
  // A place in a selection's order (peeking).
  struct Position {
    Type type;
    Priority priority;
    uint64_t id;
  };

  explicit MessageStore(Budget& budget) : budget_(&budget) {}
  MessageStore(const MessageStore&) = delete;
  MessageStore& operator=(const MessageStore&) = delete;
  ~MessageStore() { clear(); }

  std::size_t count() const { return count_; }
  uint64_t bytes() const { return bytes_; }
  bool empty() const { return count_ == 0; }

  // The message a receive with `selection` gets next: of its qualifying
  // messages the highest priority, oldest first (for a negative selection,
  // of the lowest type). Null when none qualifies.
  const Message* front(const Selection& selection = {}) const;

  // Makes sure `message` can be queued without allocating: its type's and
  // priority's entries exist, or the spare nodes are there for them. May
  // throw; changes nothing that readers see. As the kernel's mqueue.c does,
  // everything is allocated before the point of commit, so that once a
  // writer has been answered, queueing its message cannot fail.
  void reserve(const Message& message);
  // Queue a message; reserve(it) must have come first, with no other push
  // in between.
  void push_back(MessagePtr message) noexcept;
  // Returns a message to its place among its priority's messages, which are
  // in id order: O(1) when messages come back in the order they were taken,
  // or in the reverse of it. reserve(it) must have come first.
  void put_back(MessagePtr message) noexcept;
  // Receive order across types: higher priority, then older.
  static bool before(const Message& a, const Message& b) {
    return a.priority() != b.priority() ? a.priority() > b.priority() : a.id() < b.id();
  }

  // Takes front(selection); null when none qualifies.
  MessagePtr pop_front(const Selection& selection = {});
  // Takes the message of that type, priority and id, wherever it is; null
  // when it is not here. O(messages ahead of it at its priority).
  MessagePtr remove(Type type, Priority priority, uint64_t id);
  void clear();

  // The message after `position` in `selection`'s order, or its front when
  // there was none before (peeking): O(types × messages of that priority).
  const Message* next_after(const Selection& selection, std::optional<Position> position) const;
  // The earliest enqueued_ns of the queued messages (0: none).
  int64_t oldest_enqueued_ns() const;

  // Calls `visit(const Message&)` in the order `selection` takes messages,
  // while it returns true.
  template <class Visit>
  void for_each(const Selection& selection, Visit visit) const {
    Walk walk(*this, selection);
    while (const Message* m = walk.next())
      if (!visit(*m)) return;
  }
  template <class Visit>
  void for_each(Visit visit) const {
    for_each(Selection{}, visit);
  }
  // Calls `visit(Message&)` for every message, in no particular order.
  template <class Visit>
  void for_each_mutable(Visit visit) {
    for (auto& [type, kind] : types_)
      for (auto& [priority, fifo] : kind.levels)
        for (Message* m = fifo.head; m; m = m->next_) visit(*m);
  }

 private:
  struct Fifo {
    Message* head = nullptr;
    Message* tail = nullptr;
    Message* put_back = nullptr;  // the last message put back, while it is here
  };
  using Levels = std::map<Priority, Fifo, std::greater<Priority>>;
  // The messages of one type.
  struct TypeFifos {
    Type type = 0;
    Levels levels;
    const Message* front() const { return levels.begin()->second.head; }
  };
  using Types = std::map<Type, TypeFifos>;
  // Each type's front message, the queue's front first.
  struct FrontFirst {
    bool operator()(const TypeFifos* a, const TypeFifos* b) const { return before(*a->front(), *b->front()); }
  };
  using Fronts = std::set<TypeFifos*, FrontFirst>;


  // The messages of one type from a place on, in order.
  struct Cursor {
    Levels::const_iterator level, end;
    const Message* at;
    const Message* take();
  };
  // The messages in a selection's order: one type after another (exact and
  // negative selections), or the types merged by priority and age.
  class Walk {
   public:
    Walk(const MessageStore& store, const Selection& selection);
    const Message* next();

   private:
    static bool later(const Cursor& a, const Cursor& b);
    std::vector<Cursor> cursors_;
    std::size_t current_ = 0;
    bool merge_ = false;  // cursors_ is a heap, soonest message first
  };

  const TypeFifos* find_type(Type type) const;
  static const Message* after(const TypeFifos& kind, const Position& position);
  void place(Message* message, bool at_back) noexcept;
  Fifo& level(TypeFifos& kind, Priority priority) noexcept;

  Budget* budget_;
  Types types_;
  Fronts fronts_;
  // Keep the common cases free of allocation.
  Levels::node_type spare_level_;
  Types::node_type spare_kind_;
  Fronts::node_type spare_front_;
  std::size_t count_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace mqfs::engine
