#include "engine/message.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <new>

namespace mqfs::engine {

void MessageDeleter::operator()(Message* message) const {
  if (!message) return;
  budget->release_bytes(message->size() + budget->message_overhead());
  message->~Message();
  ::operator delete(message);
}

MessagePtr Message::make(Budget& budget, std::span<const std::byte> head, std::span<const std::byte> tail,
                         Priority priority) {
  const std::size_t size = head.size() + tail.size();
  const uint64_t charge = size + budget.message_overhead();
  if (!budget.reserve_bytes(charge)) return MessagePtr(nullptr, MessageDeleter{&budget});
  void* memory;
  try {
    memory = ::operator new(sizeof(Message) + size);
  } catch (...) {
    budget.release_bytes(charge);
    throw;
  }
  auto* message = new (memory) Message(static_cast<uint32_t>(size), priority);
  if (!head.empty()) std::memcpy(message->payload(), head.data(), head.size());
  if (!tail.empty()) std::memcpy(message->payload() + head.size(), tail.data(), tail.size());
  return MessagePtr(message, MessageDeleter{&budget});
}

// The budget is charged for the buffer's capacity, which is what it holds in
// memory; it grows by doubling when the budget allows, else to fit.
bool HeldBytes::append(std::span<const std::byte> more) {
  const std::size_t needed = bytes_.size() + more.size();
  if (needed > charged_) {
    std::size_t capacity = std::max(needed, 2 * charged_);
    if (!budget_->reserve_bytes(capacity - charged_)) {
      capacity = needed;
      if (!budget_->reserve_bytes(capacity - charged_)) return false;
    }
    bytes_.reserve(capacity);  // exactly `capacity` (libstdc++), as charged
    charged_ = capacity;
  }
  bytes_.insert(bytes_.end(), more.begin(), more.end());
  return true;
}

void HeldBytes::drop_front(std::size_t n) {
  n = std::min(n, bytes_.size());
  bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(n));
}

void HeldBytes::truncate(std::size_t size) {
  if (size < bytes_.size()) bytes_.resize(size);
}

void HeldBytes::clear() {
  budget_->release_bytes(charged_);
  charged_ = 0;
  std::vector<std::byte>().swap(bytes_);
}

void MessageStore::reserve(Priority priority) {
  if (spare_ || levels_.contains(priority)) return;
  Levels one;
  one.emplace(priority, Fifo{});
  spare_ = one.extract(one.begin());
}

// A new level takes the spare node that reserve() made sure of.
MessageStore::Fifo& MessageStore::level(Priority priority) noexcept {
  auto it = levels_.find(priority);
  if (it != levels_.end()) return it->second;
  assert(spare_ && "MessageStore::reserve() comes before a push");
  spare_.key() = priority;
  spare_.mapped() = Fifo{};
  return levels_.insert(std::move(spare_)).position->second;
}

void MessageStore::push_back(MessagePtr message) noexcept {
  Message* m = message.release();
  Fifo& fifo = level(m->priority());
  m->next_ = nullptr;
  if (fifo.tail)
    fifo.tail->next_ = m;
  else
    fifo.head = m;
  fifo.tail = m;
  ++count_;
  bytes_ += m->size();
}

void MessageStore::put_back(MessagePtr message) noexcept {
  Message* m = message.release();
  Fifo& fifo = level(m->priority());
  ++count_;
  bytes_ += m->size();
  if (!fifo.head || m->id() < fifo.head->id()) {
    m->next_ = fifo.head;
    fifo.head = m;
    if (!fifo.tail) fifo.tail = m;
  } else {
    Message* at = fifo.put_back && fifo.put_back->id() < m->id() ? fifo.put_back : fifo.head;
    while (at->next_ && at->next_->id() < m->id()) at = at->next_;
    m->next_ = at->next_;
    at->next_ = m;
    if (fifo.tail == at) fifo.tail = m;
  }
  fifo.put_back = m;
}

const Message* MessageStore::next_after(std::optional<std::pair<Priority, uint64_t>> position) const {
  if (!position) return front();
  const auto [priority, id] = *position;
  for (auto it = levels_.lower_bound(priority); it != levels_.end(); ++it) {
    const Message* m = it->second.head;
    if (it->first == priority)
      while (m && m->id() <= id) m = m->next_;
    if (m) return m;
  }
  return nullptr;
}

int64_t MessageStore::oldest_enqueued_ns() const {
  int64_t oldest = 0;
  for (const auto& [priority, fifo] : levels_)
    if (oldest == 0 || fifo.head->enqueued_ns() < oldest) oldest = fifo.head->enqueued_ns();
  return oldest;
}

MessagePtr MessageStore::pop_front() {
  if (empty()) return MessagePtr(nullptr, MessageDeleter{budget_});
  auto it = levels_.begin();
  Fifo& fifo = it->second;
  Message* m = fifo.head;
  if (fifo.put_back == m) fifo.put_back = nullptr;
  fifo.head = m->next_;
  m->next_ = nullptr;
  if (!fifo.head) {
    auto node = levels_.extract(it);
    if (!spare_) spare_ = std::move(node);
  }
  --count_;
  bytes_ -= m->size();
  return MessagePtr(m, MessageDeleter{budget_});
}

void MessageStore::clear() {
  while (!empty()) pop_front();
}

}  // namespace mqfs::engine
