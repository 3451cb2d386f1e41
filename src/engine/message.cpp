#include "engine/message.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <new>
#include <utility>

namespace mqfs::engine {

static_assert(sizeof(Message) == 48);

void MessageDeleter::operator()(Message* message) const {
  if (!message) return;
  budget->release_bytes(message->charge(*budget));
  SharedBody* body = message->shared_ ? message->body() : nullptr;
  message->~Message();
  ::operator delete(message);
  if (body && --body->refs == 0) delete body;
}

MessagePtr Message::share(Budget& budget, SharedBody& body) {
  const Message& source = *body.source;
  if (!budget.reserve_bytes(budget.message_overhead())) return MessagePtr(nullptr, MessageDeleter{&budget});
  void* memory;
  try {
    memory = ::operator new(sizeof(Message) + sizeof(SharedBody*));
  } catch (...) {
    budget.release_bytes(budget.message_overhead());
    throw;
  }
  auto* message = new (memory) Message(source.size_, source.priority_, source.type_);
  message->shared_ = true;
  SharedBody* pointer = &body;
  std::memcpy(message->payload(), &pointer, sizeof pointer);
  message->enqueued_ns_ = source.enqueued_ns_;
  ++body.refs;
  return MessagePtr(message, MessageDeleter{&budget});
}

MessagePtr Message::make(Budget& budget, std::span<const std::byte> head, std::span<const std::byte> tail,
                         Priority priority, Type type) {
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
  auto* message = new (memory) Message(static_cast<uint32_t>(size), priority, type);
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

void MessageStore::reserve(const Message& message) {
  auto it = types_.find(message.type());
  if (it == types_.end()) {
    if (!spare_kind_) {
      Types one;
      one.try_emplace(message.type());
      spare_kind_ = one.extract(one.begin());
    }
    if (!spare_front_) {
      Fronts one;
      one.insert(nullptr);  // the comparator is not called on an empty set
      spare_front_ = one.extract(one.begin());
    }
  } else if (it->second.levels.contains(message.priority())) {
    return;
  }
  if (!spare_level_) {
    Levels one;
    one.try_emplace(message.priority());
    spare_level_ = one.extract(one.begin());
  }
}

// A new level takes the spare node that reserve() made sure of.
MessageStore::Fifo& MessageStore::level(TypeFifos& kind, Priority priority) noexcept {
  auto it = kind.levels.find(priority);
  if (it != kind.levels.end()) return it->second;
  assert(spare_level_ && "MessageStore::reserve() comes before a push");
  spare_level_.key() = priority;
  spare_level_.mapped() = Fifo{};
  return kind.levels.insert(std::move(spare_level_)).position->second;
}

// Puts a message among its type's: at the back of its priority's FIFO, or
// at its place by id (put back). A new front of its type moves in fronts_.
void MessageStore::place(Message* m, bool at_back) noexcept {
  auto it = types_.find(m->type());
  if (it == types_.end()) {
    assert(spare_kind_ && "MessageStore::reserve() comes before a push");
    spare_kind_.key() = m->type();
    spare_kind_.mapped() = TypeFifos{.type = m->type(), .levels = {}};
    it = types_.insert(std::move(spare_kind_)).position;
  }
  TypeFifos& kind = it->second;
  Fronts::node_type front;
  if (kind.levels.empty())
    front = std::move(spare_front_);
  else if (before(*m, *kind.front()))
    front = fronts_.extract(&kind);

  Fifo& fifo = level(kind, m->priority());
  if (at_back) {
    m->next_ = nullptr;
    if (fifo.tail)
      fifo.tail->next_ = m;
    else
      fifo.head = m;
    fifo.tail = m;
  } else {
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
  ++count_;
  bytes_ += m->size();
  if (front) {
    front.value() = &kind;
    fronts_.insert(std::move(front));
  }
}

void MessageStore::push_back(MessagePtr message) noexcept { place(message.release(), true); }

void MessageStore::put_back(MessagePtr message) noexcept { place(message.release(), false); }

const MessageStore::TypeFifos* MessageStore::find_type(Type type) const {
  auto it = types_.find(type);
  return it == types_.end() ? nullptr : &it->second;
}

const Message* MessageStore::front(const Selection& selection) const {
  if (empty()) return nullptr;
  if (selection.type < 0) {
    const TypeFifos& lowest = types_.begin()->second;
    return lowest.type <= selection.bound() ? lowest.front() : nullptr;
  }
  if (selection.type > 0 && !selection.except) {
    const TypeFifos* kind = find_type(selection.type);
    return kind ? kind->front() : nullptr;
  }
  auto it = fronts_.begin();
  if (selection.except && (*it)->type == selection.type) ++it;
  return it == fronts_.end() ? nullptr : (*it)->front();
}

MessagePtr MessageStore::pop_front(const Selection& selection) {
  const Message* first = front(selection);
  if (!first) return MessagePtr(nullptr, MessageDeleter{budget_});
  return remove(first->type(), first->priority(), first->id());
}

MessagePtr MessageStore::remove(Type type, Priority priority, uint64_t id) {
  auto kind_it = types_.find(type);
  if (kind_it == types_.end()) return MessagePtr(nullptr, MessageDeleter{budget_});
  TypeFifos& kind = kind_it->second;
  auto it = kind.levels.find(priority);
  if (it == kind.levels.end()) return MessagePtr(nullptr, MessageDeleter{budget_});
  Fifo& fifo = it->second;
  Message* before = nullptr;
  Message* m = fifo.head;
  while (m && m->id() != id) before = std::exchange(m, m->next_);
  if (!m) return MessagePtr(nullptr, MessageDeleter{budget_});

  // The type's front may change: its entry in fronts_ is keyed by it.
  Fronts::node_type front = fronts_.extract(&kind);
  if (fifo.put_back == m) fifo.put_back = nullptr;
  (before ? before->next_ : fifo.head) = m->next_;
  if (fifo.tail == m) fifo.tail = before;
  m->next_ = nullptr;
  if (!fifo.head) {
    auto node = kind.levels.extract(it);
    if (!spare_level_) spare_level_ = std::move(node);
  }
  if (!kind.levels.empty()) {
    fronts_.insert(std::move(front));
  } else {
    if (!spare_front_) spare_front_ = std::move(front);
    auto node = types_.extract(kind_it);
    if (!spare_kind_) spare_kind_ = std::move(node);
  }
  --count_;
  bytes_ -= m->size();
  return MessagePtr(m, MessageDeleter{budget_});
}

// The first message of `kind` after `position` in receive order.
const Message* MessageStore::after(const TypeFifos& kind, const Position& position) {
  for (auto it = kind.levels.lower_bound(position.priority); it != kind.levels.end(); ++it) {
    const Message* m = it->second.head;
    if (it->first == position.priority)
      while (m && m->id() <= position.id) m = m->next_;
    if (m) return m;
  }
  return nullptr;
}

const Message* MessageStore::next_after(const Selection& selection, std::optional<Position> position) const {
  if (!position) return front(selection);
  if (selection.type > 0 && !selection.except) {
    const TypeFifos* kind = find_type(selection.type);
    return kind ? after(*kind, *position) : nullptr;
  }
  if (selection.type < 0) {  // types in order, each in receive order
    for (auto it = types_.lower_bound(position->type); it != types_.end() && it->first <= selection.bound(); ++it) {
      if (it->first > position->type) return it->second.front();
      if (const Message* m = after(it->second, *position)) return m;
    }
    return nullptr;
  }
  const Message* best = nullptr;
  for (const auto& [type, kind] : types_) {
    if (!selection.takes(type)) continue;
    const Message* m = after(kind, *position);
    if (m && (!best || before(*m, *best))) best = m;
  }
  return best;
}

int64_t MessageStore::oldest_enqueued_ns() const {
  int64_t oldest = 0;
  for (const auto& [type, kind] : types_)
    for (const auto& [priority, fifo] : kind.levels)
      if (oldest == 0 || fifo.head->enqueued_ns() < oldest) oldest = fifo.head->enqueued_ns();
  return oldest;
}

void MessageStore::clear() {
  while (!empty()) pop_front();
}

const Message* MessageStore::Cursor::take() {
  const Message* m = at;
  at = at->next_;
  if (!at && ++level != end) at = level->second.head;
  return m;
}

MessageStore::Walk::Walk(const MessageStore& store, const Selection& selection) {
  auto add = [&](const TypeFifos& kind) {
    cursors_.push_back(Cursor{kind.levels.begin(), kind.levels.end(), kind.front()});
  };
  if (selection.type > 0 && !selection.except) {
    if (const TypeFifos* kind = store.find_type(selection.type)) add(*kind);
  } else if (selection.type < 0) {
    for (auto it = store.types_.begin(); it != store.types_.end() && it->first <= selection.bound(); ++it)
      add(it->second);
  } else {
    for (const auto& [type, kind] : store.types_)
      if (selection.takes(type)) add(kind);
    merge_ = cursors_.size() > 1;
    if (merge_) std::make_heap(cursors_.begin(), cursors_.end(), later);
  }
}

// Heap order for the merge: the cursor whose message comes first on top.
bool MessageStore::Walk::later(const Cursor& a, const Cursor& b) { return before(*b.at, *a.at); }

const Message* MessageStore::Walk::next() {
  if (!merge_) {
    for (; current_ < cursors_.size(); ++current_)
      if (cursors_[current_].at) return cursors_[current_].take();
    return nullptr;
  }
  if (cursors_.empty()) return nullptr;
  std::pop_heap(cursors_.begin(), cursors_.end(), later);
  Cursor& cursor = cursors_.back();
  const Message* m = cursor.take();
  if (cursor.at)
    std::push_heap(cursors_.begin(), cursors_.end(), later);
  else
    cursors_.pop_back();
  return m;
}

}  // namespace mqfs::engine
