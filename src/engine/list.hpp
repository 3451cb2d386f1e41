// An intrusive doubly linked list: elements carry their own links, so putting
// one on the list allocates nothing and taking a known one off is O(1).
#pragma once

#include <cstddef>

namespace mqfs::engine {

template <class T, class Tag>
class List;

// Base of anything that can stand on a List<T>; an element leaves its list
// when destroyed. An element on two lists at once derives from a ListNode of
// each, told apart by their tags (ListNode<Lease, ByHolder>).
template <class T, class Tag = T>
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
  friend class List<T, Tag>;
  ListNode* prev_ = nullptr;
  ListNode* next_ = nullptr;
};

template <class T, class Tag = T>
class List {
  using Node = ListNode<T, Tag>;

 public:
  List() { head_.prev_ = head_.next_ = &head_; }
  List(const List&) = delete;
  List& operator=(const List&) = delete;
  ~List() {
    while (!empty()) pop_front();
  }

  bool empty() const { return head_.next_ == &head_; }

  T* front() const { return empty() ? nullptr : static_cast<T*>(head_.next_); }
  T* back() const { return empty() ? nullptr : static_cast<T*>(head_.prev_); }
  // The element after `element` on this list, or null at its end.
  T* next(const T& element) const {
    const Node* node = static_cast<const Node*>(&element);
    return node->next_ == &head_ ? nullptr : static_cast<T*>(node->next_);
  }

  void push_back(T& element) {
    Node& node = element;
    node.unlink();
    node.prev_ = head_.prev_;
    node.next_ = &head_;
    head_.prev_->next_ = &node;
    head_.prev_ = &node;
  }

  void push_front(T& element) {
    Node& node = element;
    node.unlink();
    node.prev_ = &head_;
    node.next_ = head_.next_;
    head_.next_->prev_ = &node;
    head_.next_ = &node;
  }

  T* pop_front() {
    T* element = front();
    if (element) static_cast<Node*>(element)->unlink();
    return element;
  }

  // Puts `element` after the last element that does not come after it
  // (`before(a, b)`: a comes before b): O(1) when elements mostly arrive in
  // order, as deadlines of one length do.
  template <class Before>
  void insert_sorted(T& element, Before before) {
    Node& node = element;
    node.unlink();
    Node* at = head_.prev_;
    while (at != &head_ && before(element, *static_cast<T*>(at))) at = at->prev_;
    node.prev_ = at;
    node.next_ = at->next_;
    at->next_->prev_ = &node;
    at->next_ = &node;
  }

  std::size_t size() const {
    std::size_t n = 0;
    for (auto* node = head_.next_; node != &head_; node = node->next_) ++n;
    return n;
  }

 private:
  Node head_;  // sentinel: the list is a ring through it
};

}  // namespace mqfs::engine
