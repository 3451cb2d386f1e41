// One open file of a queue: what a file descriptor (its struct file) carries
// between reads and writes.
#pragma once

#include <memory>
#include <optional>

#include "engine/frame_writer.hpp"
#include "engine/leases.hpp"
#include "engine/list.hpp"
#include "engine/message.hpp"
#include "engine/read_cursor.hpp"
#include "engine/settings.hpp"

namespace mqfs::engine {

class Queue;

// SPEC section 11: whether a read takes its messages for good (auto) or
// leases them to the open file until it acknowledges them (explicit).
enum class AckMode { automatic, explicit_ack };

// The last message a file read or peeked (MQFS_IOC_GET_DELIVERY).
struct Delivery {
  uint64_t id = 0;
  int64_t type = 0;
  Priority priority = 0;
  uint32_t deliveries = 0;
  int64_t enqueued_ns = 0;
};

// Told once when the queue's readiness may have changed (poll, select, epoll).
class Watch {
 public:
  virtual ~Watch() = default;
  virtual void notify() = 0;
};

class OpenFile : public ListNode<OpenFile> {
 public:
  // `reads` and `writes`: the access mode the file was opened with.
  OpenFile(std::shared_ptr<Queue> queue, bool reads, bool writes);
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  ~OpenFile();

  Queue& queue() const { return *queue_; }
  // The queue this file's reads take from: its queue, or, on a topic, the
  // file's own subscription to it (SPEC section 13).
  Queue& source() const { return subscription_ ? *subscription_ : *queue_; }
  bool reads() const { return reads_; }
  bool writes() const { return writes_; }

  // The priority this file sends at: its own if set, else the queue's.
  Priority priority() const;
  void set_priority(std::optional<Priority> priority) { priority_ = priority; }

  // The type this file sends at: its own if set, else the queue's (SPEC section 12).
  Type type() const;
  void set_type(std::optional<Type> type) { type_ = type; }
  // Which messages this file's reads take.
  const Selection& selection() const { return selection_; }
  void set_selection(const Selection& selection) { selection_ = selection; }

  // The read mode of this file: its own if set, else the queue's.
  ReadMode read_mode() const;
  void set_read_mode(std::optional<ReadMode> mode) { read_mode_ = mode; }

  AckMode ack_mode() const { return ack_mode_; }
  void set_ack_mode(AckMode mode) { ack_mode_ = mode; }
  // The messages this file holds under lease.
  Holder& leases() { return leases_; }
  // The last message read or peeked, if any.
  const std::optional<Delivery>& last_delivery() const { return last_delivery_; }
  void set_last_delivery(const Message& message);

  // O_NONBLOCK as last seen on this file's requests (open, read, write).
  bool nonblocking() const { return nonblocking_; }
  void set_nonblocking(bool nonblocking) { nonblocking_ = nonblocking; }

  // Where this file's reads stand: the rest of a delivered message, end of file.
  ReadCursor& cursor() { return cursor_; }
  const ReadCursor& cursor() const { return cursor_; }
  // The unfinished message this file's framed writes hold.
  FrameWriter& frame_writer() { return frame_writer_; }
  const FrameWriter& frame_writer() const { return frame_writer_; }

  // Part of a delivered message not yet read: the next reads return it.
  bool holds_rest() const { return cursor_.holds_rest(); }
  // In message mode: the one message was delivered, reads return end of file.
  bool at_end() const { return cursor_.at_end(read_mode()); }

  // File framing: this file has written bytes of a message that its next
  // close or fsync sends.
  bool writing_message() const { return frame_writer_.writing_message(); }

 private:
  friend class Queue;  // keeps watch_ until it notifies

  std::shared_ptr<Queue> queue_;
  std::shared_ptr<Queue> subscription_;
  bool reads_;
  bool writes_;
  bool nonblocking_ = false;
  std::optional<Priority> priority_;
  std::optional<ReadMode> read_mode_;
  std::optional<Type> type_;
  Selection selection_;
  AckMode ack_mode_ = AckMode::automatic;
  Holder leases_;
  std::optional<Delivery> last_delivery_;
  ReadCursor cursor_;
  std::unique_ptr<Watch> watch_;
  FrameWriter frame_writer_;
};

}  // namespace mqfs::engine
