// Leases (SPEC section 11): the messages a queue has handed to readers in
// explicit acknowledgement mode, invisible to other readers until their
// reader acknowledges them (taken for good) or they come back — given back,
// closed over, or run out — and the returned messages waiting out their
// retry delay.
//
// A lease costs 48 bytes besides its message, from a pool that grows with
// the queue's leases, so that holding a message costs well under half again
// what queueing a small one does. Deadlines of one length arrive in order, so each list of deadlines
// takes a new one at its end, and the queue keeps one entry, its earliest,
// on the mount's timer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/list.hpp"
#include "engine/message.hpp"
#include "engine/waiter.hpp"

namespace mqfs::engine {

struct ByDeadline {};
class Lease;

// The leases of one open file, oldest first. A lease that ran out stays here
// without its message, so that a late ACK of it gets ETIMEDOUT rather than
// ENOENT; the last kMaxLapsed of them are remembered.
class Holder {
 public:
  static constexpr uint32_t kMaxLapsed = 1024;

  Holder() = default;
  Holder(const Holder&) = delete;
  Holder& operator=(const Holder&) = delete;
  bool empty() const { return first_ == nullptr; }
  // Leases with their message.
  std::size_t held() const { return held_; }

 private:
  friend class Leases;
  Lease* first_ = nullptr;  // linked by Lease::next_held_
  Lease* last_ = nullptr;
  std::size_t held_ = 0;
  uint32_t lapsed_ = 0;
};

class Lease : public ListNode<Lease, ByDeadline> {
 public:
  uint64_t id() const { return message_ ? message_->id() : lapsed_id_; }
  bool lapsed() const { return message_ == nullptr; }
  Clock::time_point deadline() const { return Clock::time_point(Clock::duration(deadline_)); }
  const Message& message() const { return *message_; }

 private:
  friend class Leases;
  Lease* next_held_ = nullptr;
  Holder* holder_ = nullptr;  // null while a returned message waits for its retry delay
  Message* message_ = nullptr;
  union {
    Clock::rep deadline_ = 0;  // with a message: when the lease or the delay ends
    uint64_t lapsed_id_;       // without: the id of the message it held
  };
};

class Leases {
 public:
  explicit Leases(Budget& budget) : budget_(&budget) {}
  Leases(const Leases&) = delete;
  Leases& operator=(const Leases&) = delete;
  ~Leases();

  // Leased messages and returned ones waiting for their delay.
  std::size_t count() const { return count_; }
  // Makes sure `n` leases can be made without allocating (may throw).
  void reserve(std::size_t n);

  // Leases `message` to `holder` until `deadline`; reserve() came first.
  void hold(MessagePtr message, Holder& holder, Clock::time_point deadline) noexcept;
  // The message `holder` holds under `id`, taken from its lease: null, with
  // *lapsed set when that lease ran out (it is then forgotten).
  MessagePtr release(Holder& holder, uint64_t id, bool* lapsed);
  // Every message `holder` holds, oldest first; its lapsed leases are
  // forgotten. *lapsed: whether there were any.
  std::vector<MessagePtr> release_all(Holder& holder, bool* lapsed = nullptr);

  // Keeps a returned message until `deadline` (its retry delay).
  void delay(MessagePtr message, Clock::time_point deadline);

  // The earliest deadline of a lease or a delay.
  std::optional<Clock::time_point> next_deadline() const;
  // The message of the lease or delay that ended first, if it ended by
  // `now` (*delayed: a delay ended); a lease stays with its holder as lapsed.
  MessagePtr next_expired(Clock::time_point now, bool* delayed);

  // Calls `visit(Message&)` for every message held or delayed.
  template <class Visit>
  void for_each_message(Visit visit) {
    for (auto* list : {&leased_, &delayed_})
      for (Lease* l = list->front(); l; l = list->next(*l)) visit(*l->message_);
  }

 private:
  Lease& make();
  void free(Lease& lease);
  void unlink_held(Holder& holder, Lease* before, Lease& lease);
  void lapse(Lease& lease);

  Budget* budget_;
  std::vector<std::unique_ptr<Lease[]>> pool_;
  List<Lease, ByDeadline> free_;
  List<Lease, ByDeadline> leased_;   // by the end of the lease
  List<Lease, ByDeadline> delayed_;  // by the end of the retry delay
  std::size_t free_count_ = 0;
  std::size_t pooled_ = 0;
  std::size_t count_ = 0;
};

}  // namespace mqfs::engine
