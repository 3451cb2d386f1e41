// mq send: one message per argument, or standard input as one message, at
// a priority and type of this send alone.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

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

// The bytes one write(2) gives the queue for `message` under its framing.
std::string framed(const std::string& queue, const std::string& message, int64_t framing) {
  if (framing == MQFS_FRAMING_LINE) {
    const std::size_t newline = message.find('\n');
    if (newline != std::string::npos && newline + 1 != message.size())
      throw Failure{queue, "message holds a newline, which line framing would split"};
    return message.back() == '\n' ? message : message + '\n';
  }
  if (framing == MQFS_FRAMING_U32) {
    const auto n = static_cast<uint32_t>(message.size());
    std::string frame{static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                      static_cast<char>(n >> 24)};
    return frame + message;
  }
  return message;
}

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
    nonblocking_ = deadline.immediate() || (deadline.limited() && framing_ == MQFS_FRAMING_FILE);
    if (!nonblocking_) {
      queue_.set_blocking();
      alarm_.emplace(deadline);
    }
  }

  void send(const std::string& message) {
    if (!queue_.is_open()) timed_out(queue_.path());  // the deadline passed as the last message was sent
    if (message.empty()) throw Failure{queue_.path(), "empty message (a message holds 1 to msgsize bytes)"};
    const std::string bytes = framed(queue_.path(), message, framing_);
    const std::size_t size = framing_ == MQFS_FRAMING_LINE ? bytes.size() : message.size();  // as queued
    for (;;) {
      const ssize_t n = ::write(queue_.fd(), bytes.data(), bytes.size());
      if (n >= 0) break;
      refused(errno, size);
    }
    if (framing_ == MQFS_FRAMING_FILE) end_whole_file_message(size);
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
  bool nonblocking_ = false;
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
