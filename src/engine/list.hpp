// An intrusive doubly linked list: elements carry their own links, so putting
// one on the list allocates nothing and taking a known one off is O(1).
#pragma once

#include <cstddef>

namespace mqfs::engine {

template <class T>
class List;

// Base of anything that can stand on a List<T>; an element leaves its list
// when destroyed.
template <class T>
class ListNode {
 public:
  ListNode() = default;
  ListNode(const ListNode&) = delete;
  ListNode& operator=(const ListNode&) = delete;
  ~ListNode() { unlink(); }

  bool linked() const { return prev_ != nullptr; }

  void unlink() {
    if (!linked()) return;
    prev_->next_ = next_;
    next_->prev_ = prev_;
    prev_ = next_ = nullptr;
  }

 private:
  friend class List<T>;
  ListNode* prev_ = nullptr;
  ListNode* next_ = nullptr;
};

template <class T>
class List {
 public:
  List() { head_.prev_ = head_.next_ = &head_; }
  List(const List&) = delete;
  List& operator=(const List&) = delete;
  ~List() {
    while (!empty()) pop_front();
  }

  bool empty() const { return head_.next_ == &head_; }

  T* front() const { return empty() ? nullptr : static_cast<T*>(head_.next_); }

  void push_back(T& element) {
    ListNode<T>& node = element;
    node.unlink();
    node.prev_ = head_.prev_;
    node.next_ = &head_;
    head_.prev_->next_ = &node;
    head_.prev_ = &node;
  }

  void push_front(T& element) {
    ListNode<T>& node = element;
    node.unlink();
    node.prev_ = &head_;
    node.next_ = head_.next_;
    head_.next_->prev_ = &node;
    head_.next_ = &node;
  }

  T* pop_front() {
    T* element = front();
    if (element) static_cast<ListNode<T>*>(element)->unlink();
    return element;
  }

  std::size_t size() const {
    std::size_t n = 0;
    for (auto* node = head_.next_; node != &head_; node = node->next_) ++n;
    return n;
  }

 private:
  ListNode<T> head_;  // sentinel: the list is a ring through it
};

}  // namespace mqfs::engine
