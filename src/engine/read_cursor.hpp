// The read side of an open file (SPEC section 3): the unread rest of a
// message it was delivered, and whether message read mode reached end of file.
#pragma once

#include <cstddef>
#include <optional>
#include <utility>

#include "engine/message.hpp"
#include "engine/settings.hpp"

namespace mqfs::engine {

class Receiver;

class ReadCursor {
 public:
  // Part of a delivered message not yet read: the next reads return it.
  bool holds_rest() const { return rest_ != nullptr; }
  // In message read mode: the one message was delivered and read to its
  // end, so reads return end of file.
  bool at_end(ReadMode mode) const { return delivered_ && !rest_ && mode == ReadMode::message; }

  // Messages left the queue for this file: its reader got them.
  void delivered() { delivered_ = true; }
  // Keeps what the reader has not read of `message`, of which it got the
  // first `read` bytes; a message read whole is dropped. `leased`: it is a
  // copy of the rest of a message leased to the file.
  void keep_rest(MessagePtr message, std::size_t read, bool leased = false);
  // Hands the next part of the rest, at most `size` bytes, to `to`; it
  // counts as read only when the reader got it.
  void read_rest(std::size_t size, Receiver& to);
  // The rest held is a copy of the rest of a message leased to the file;
  // its id.
  bool holds_leased_rest() const { return rest_ && rest_leased_; }
  uint64_t rest_id() const { return rest_ ? rest_->id() : 0; }
  void drop_rest() { rest_.reset(); }

  // Peek read mode: the place in queue order of the last message peeked.
  const std::optional<MessageStore::Position>& peeked() const { return peeked_; }
  void set_peeked(const Message& message) {
    peeked_ = MessageStore::Position{message.type(), message.priority(), message.id()};
  }

 private:
  std::optional<MessageStore::Position> peeked_;
  MessagePtr rest_;
  bool rest_leased_ = false;
  std::size_t rest_offset_ = 0;  // bytes of rest_ already read
  bool delivered_ = false;
};

}  // namespace mqfs::engine
