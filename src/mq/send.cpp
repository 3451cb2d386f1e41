// mq send: one message per argument, or standard input as one message, at
// a priority and type of this send alone.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mq/commands.hpp"
#include "mq/deadline.hpp"
#include "mq/queue_file.hpp"

namespace mq {
namespace {

std::string read_standard_input(const std::string& queue) {
  std::string all;
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n == 0) return all;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Failure{queue, "standard input: " + reason_of(errno)};
    all.append(chunk, static_cast<std::size_t>(n));
  }
}

// What one write(2) gives the queue for a message under its framing: the
// message itself, or for line and u32 framing a copy with its newline or
// its length. (One contiguous buffer: the kernel passes a write of up to
// 1 MiB - 4 KiB from one buffer to FUSE whole.)
struct Framed {
  Framed(const std::string& queue, std::string_view message, int64_t framing) : bytes(message) {
    if (framing == MQFS_FRAMING_LINE) {
      const std::size_t newline = message.find('\n');
      if (newline != std::string_view::npos && newline + 1 != message.size())
        throw Failure{queue, "message holds a newline, which line framing would split"};
      if (newline == std::string_view::npos) bytes = copy.append(message).append(1, '\n');
    } else if (framing == MQFS_FRAMING_U32) {
      for (int i = 0; i < 4; ++i) copy += static_cast<char>(message.size() >> (8 * i));
      bytes = copy.append(message);
    }
    size = framing == MQFS_FRAMING_U32 ? message.size() : bytes.size();
  }
  Framed(const Framed&) = delete;
  Framed& operator=(const Framed&) = delete;

  std::string copy;
  std::string_view bytes;
  std::size_t size = 0;  // the message as the queue keeps it
};

class Sender {
 public:
  Sender(const SendOptions& options, const Deadline& deadline)
      : queue_(options.queue, O_WRONLY | O_NONBLOCK), deadline_(deadline) {
    const mqfs_attr attr = queue_.attr();
    framing_ = attr.framing;
    msgsize_ = attr.msgsize;
    if (options.priority) queue_.set_priority(static_cast<int32_t>(*options.priority));
    if (options.type) queue_.set_type(*options.type);
    // A whole-file message under a deadline waits in poll(2), not in a
    // blocked fsync(2): an fsync that the deadline interrupts might or might
    // not have dropped the bytes, a non-blocking one leaves them with the
    // file. Otherwise a blocked write, as echo's.
    if (!deadline.immediate() && !(deadline.limited() && framing_ == MQFS_FRAMING_FILE)) {
      queue_.set_blocking();
      alarm_.emplace(deadline);
    }
  }

  void send(const std::string& message) {
    if (!queue_.is_open()) timed_out(queue_.path());  // the deadline passed as the last message was sent
    if (message.empty()) throw Failure{queue_.path(), "empty message (a message holds 1 to msgsize bytes)"};
    const Framed framed(queue_.path(), message, framing_);
    while (::write(queue_.fd(), framed.bytes.data(), framed.bytes.size()) < 0) refused(errno, framed.size);
    if (framing_ == MQFS_FRAMING_FILE) end_whole_file_message(framed.size);
  }

 private:
  // A whole-file message is queued when fsync(2) ends it; a full queue
  // makes a blocking fsync wait, as a blocked write waits, and a
  // non-blocking one fail with EAGAIN, the bytes still with the file.
  void end_whole_file_message(std::size_t size) {
    while (::fsync(queue_.fd()) < 0) {
      if (errno == EAGAIN && !deadline_.passed() && !deadline_.immediate()) {
        pollfd room{queue_.fd(), POLLOUT, 0};
        if (::poll(&room, 1, deadline_.poll_ms()) < 0 && errno != EINTR) fail(queue_.path(), errno);
        continue;
      }
      if (errno == EAGAIN) {
        // Its close sends the message if the queue has room by now, and says so.
        if (queue_.close() == 0) return;
        timed_out(queue_.path());
      }
      refused(errno, size);
    }
  }

  bool rang() const { return alarm_ && alarm_->rang(); }

  // Returns when the call may be tried again (interrupted by a signal other
  // than the deadline's); throws otherwise.
  void refused(int error, std::size_t size) {
    if (error == EINTR && !rang()) return;
    if (error == EINTR || error == EAGAIN || error == ETIMEDOUT) timed_out(queue_.path());
    if (error == EMSGSIZE)
      throw Failure{queue_.path(), "message of " + std::to_string(size) + " bytes larger than msgsize " +
                                       std::to_string(msgsize_)};
    fail(queue_.path(), error);
  }

  QueueFile queue_;
  const Deadline& deadline_;
  std::optional<Alarm> alarm_;
  int64_t framing_ = MQFS_FRAMING_NONE;
  int64_t msgsize_ = 0;
};

}  // namespace

int send(const SendOptions& options) {
  if (options.priority && (*options.priority < 0 || *options.priority > MQFS_PRIORITY_MAX))
    throw Failure{options.queue, "priority " + std::to_string(*options.priority) + " out of range 0.." +
                                     std::to_string(MQFS_PRIORITY_MAX), kUsage};
  if (options.type && *options.type < 1)
    throw Failure{options.queue, "type " + std::to_string(*options.type) + " out of range 1..9223372036854775807",
                  kUsage};
  const Deadline deadline(options.wait_seconds);
  Sender sender(options, deadline);
  if (options.messages.empty()) {
    sender.send(read_standard_input(options.queue));
  } else {
    for (const std::string& message : options.messages) sender.send(message);
  }
  return kDone;
}

}  // namespace mq
