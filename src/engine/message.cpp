#include "engine/message.hpp"

#include <cstring>
#include <new>

namespace mqfs::engine {

void MessageDeleter::operator()(Message* message) const {
  if (!message) return;
  budget->release_bytes(message->size());
  message->~Message();
  ::operator delete(message);
}

MessagePtr Message::make(Budget& budget, std::span<const std::byte> bytes, Priority priority) {
  if (!budget.reserve_bytes(bytes.size())) return MessagePtr(nullptr, MessageDeleter{&budget});
  void* memory;
  try {
    memory = ::operator new(sizeof(Message) + bytes.size());
  } catch (...) {
    budget.release_bytes(bytes.size());
    throw;
  }
  auto* message = new (memory) Message(static_cast<uint32_t>(bytes.size()), priority);
  if (!bytes.empty()) std::memcpy(message->payload(), bytes.data(), bytes.size());
  return MessagePtr(message, MessageDeleter{&budget});
}

MessageStore::Fifo& MessageStore::level(Priority priority) {
  auto it = levels_.find(priority);
  if (it != levels_.end()) return it->second;
  if (spare_) {
    spare_.key() = priority;
    spare_.mapped() = Fifo{};
    return levels_.insert(std::move(spare_)).position->second;
  }
  return levels_.emplace(priority, Fifo{}).first->second;
}

void MessageStore::push_back(MessagePtr message) {
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

void MessageStore::push_front(MessagePtr message) {
  Message* m = message.release();
  Fifo& fifo = level(m->priority());
  m->next_ = fifo.head;
  fifo.head = m;
  if (!fifo.tail) fifo.tail = m;
  ++count_;
  bytes_ += m->size();
}

MessagePtr MessageStore::pop_front() {
  if (empty()) return MessagePtr(nullptr, MessageDeleter{budget_});
  auto it = levels_.begin();
  Fifo& fifo = it->second;
  Message* m = fifo.head;
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
