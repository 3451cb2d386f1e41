#include "engine/leases.hpp"

#include <algorithm>

namespace mqfs::engine {

Leases::~Leases() {
  for (auto* list : {&leased_, &delayed_})
    while (Lease* l = list->pop_front()) MessagePtr(l->message_, MessageDeleter{budget_});
}

// A lease, its message's header and the allocator's share fit in the 128
// bytes kMessageOverhead charges every message (a leased message has no
// place in the priority store meanwhile).
static_assert(sizeof(Lease) == 48);

// The pool grows by as much as it has (16 at first, 4096 at most a time),
// so that a queue with a few leases costs little and one with many makes
// few allocations.
void Leases::reserve(std::size_t n) {
  while (free_count_ < n) {
    const std::size_t size = std::clamp<std::size_t>(pooled_, 16, 4096);
    auto chunk = std::make_unique<Lease[]>(size);
    for (std::size_t i = 0; i < size; ++i) free_.push_back(chunk[i]);
    free_count_ += size;
    pooled_ += size;
    pool_.push_back(std::move(chunk));
  }
}

Lease& Leases::make() {
  Lease& lease = *free_.pop_front();
  --free_count_;
  ++count_;
  return lease;
}

void Leases::free(Lease& lease) {
  if (lease.message_) --count_;
  lease.next_held_ = nullptr;
  lease.holder_ = nullptr;
  lease.message_ = nullptr;
  lease.deadline_ = 0;
  free_.push_front(lease);  // unlinks it from its list of deadlines
  ++free_count_;
}

void Leases::hold(MessagePtr message, Holder& holder, Clock::time_point deadline) noexcept {
  Lease& lease = make();
  lease.message_ = message.release();
  lease.holder_ = &holder;
  lease.deadline_ = deadline.time_since_epoch().count();
  leased_.insert_sorted(lease, [](const Lease& a, const Lease& b) { return a.deadline_ < b.deadline_; });
  if (holder.last_)
    holder.last_->next_held_ = &lease;
  else
    holder.first_ = &lease;
  holder.last_ = &lease;
  ++holder.held_;
}

// Takes `lease`, which follows `before` (null: it is first), off its holder's list.
void Leases::unlink_held(Holder& holder, Lease* before, Lease& lease) {
  (before ? before->next_held_ : holder.first_) = lease.next_held_;
  if (holder.last_ == &lease) holder.last_ = before;
  if (lease.lapsed())
    --holder.lapsed_;
  else
    --holder.held_;
}

// A message the holder read again after its lease ran out is held under
// both leases, the lapsed one first: the live one answers, and the lapsed
// one is forgotten with it.
MessagePtr Leases::release(Holder& holder, uint64_t id, bool* lapsed) {
  *lapsed = false;
  Lease* before = nullptr;
  for (Lease* l = holder.first_; l;) {
    Lease* next = l->next_held_;
    if (l->id() != id) {
      before = l;
      l = next;
      continue;
    }
    unlink_held(holder, before, *l);
    MessagePtr message(l->message_, MessageDeleter{budget_});
    free(*l);
    if (message) {
      *lapsed = false;
      return message;
    }
    *lapsed = true;
    l = next;
  }
  return MessagePtr(nullptr, MessageDeleter{budget_});
}

std::vector<MessagePtr> Leases::release_all(Holder& holder, bool* lapsed) {
  if (lapsed) *lapsed = holder.lapsed_ > 0;
  std::vector<MessagePtr> messages;
  messages.reserve(holder.held_);
  while (Lease* l = holder.first_) {
    unlink_held(holder, nullptr, *l);
    if (l->message_) messages.emplace_back(l->message_, MessageDeleter{budget_});
    free(*l);
  }
  return messages;
}

void Leases::delay(MessagePtr message, Clock::time_point deadline) {
  reserve(1);
  Lease& lease = make();
  lease.message_ = message.release();
  lease.deadline_ = deadline.time_since_epoch().count();
  delayed_.insert_sorted(lease, [](const Lease& a, const Lease& b) { return a.deadline_ < b.deadline_; });
}

std::optional<Clock::time_point> Leases::next_deadline() const {
  const Lease* leased = leased_.front();
  const Lease* delayed = delayed_.front();
  if (!leased && !delayed) return std::nullopt;
  if (!delayed || (leased && leased->deadline_ < delayed->deadline_)) return leased->deadline();
  return delayed->deadline();
}

MessagePtr Leases::next_expired(Clock::time_point now, bool* delayed_ended) {
  const auto due = [&](const Lease* l) { return l && l->deadline() <= now; };
  Lease* leased = leased_.front();
  Lease* delayed = delayed_.front();
  *delayed_ended = due(delayed) && (!due(leased) || delayed->deadline_ <= leased->deadline_);
  if (*delayed_ended) {
    MessagePtr message(delayed->message_, MessageDeleter{budget_});
    free(*delayed);
    return message;
  }
  if (!due(leased)) return MessagePtr(nullptr, MessageDeleter{budget_});
  MessagePtr message(leased->message_, MessageDeleter{budget_});
  lapse(*leased);
  return message;
}

// A lease ran out: its message goes, the lease stays with its holder to
// answer a late ACK, and the holder's oldest lapsed lease past kMaxLapsed is
// forgotten.
void Leases::lapse(Lease& lease) {
  Holder& holder = *lease.holder_;
  const uint64_t id = lease.message_->id();
  lease.message_ = nullptr;
  lease.lapsed_id_ = id;
  lease.unlink();  // from the list of deadlines
  --count_;
  --holder.held_;
  ++holder.lapsed_;
  if (holder.lapsed_ <= Holder::kMaxLapsed) return;
  Lease* before = nullptr;
  for (Lease* l = holder.first_; l; before = l, l = l->next_held_) {
    if (!l->lapsed()) continue;
    unlink_held(holder, before, *l);
    free(*l);
    return;
  }
}

}  // namespace mqfs::engine
