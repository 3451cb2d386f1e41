// mq recv and mq peek: messages out of queues, printed.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <string_view>
#include <vector>

#include "mq/commands.hpp"
#include "mq/deadline.hpp"
#include "mq/queue_file.hpp"

namespace mq {

mqfs_select Selection::select() const {
  if (except) return {.type = *except, .except = 1, .reserved = 0};
  return {.type = type.value_or(0), .except = 0, .reserved = 0};
}

namespace {

std::vector<char>& buffer() {
  static std::vector<char> bytes;
  return bytes;
}

void print(const std::string& queue, std::string_view message, const mqfs_delivery& delivery, const Output& output) {
  if (output.verbose)
    std::printf("%s priority=%" PRId32 " type=%" PRId64 " delivery=%" PRIu32 "\n", queue.c_str(), delivery.priority,
                delivery.type, delivery.deliveries);
  std::fwrite(message.data(), 1, message.size(), stdout);
  if (!output.raw && (message.empty() || message.back() != '\n')) std::fputc('\n', stdout);
  std::fflush(stdout);
}

// A queue that recv takes from. Line and u32 framing would give a stream
// read many messages at once, so those queues are read one message per
// open file, as `cat` reads them.
struct Source {
  Source(const std::string& path, const Selection& selection, int flags) : file(path, O_RDONLY | flags) {
    const mqfs_attr attr = file.attr();
    framing = attr.framing;
    msgsize = attr.msgsize;
    one_per_open = framing == MQFS_FRAMING_LINE || framing == MQFS_FRAMING_U32;
    file.set_read_mode(one_per_open ? MQFS_READ_MESSAGE : MQFS_READ_STREAM);
    if (selection.type || selection.except) file.set_select(selection.select());
  }

  QueueFile file;
  int64_t framing = MQFS_FRAMING_NONE;
  int64_t msgsize = 0;
  bool one_per_open = false;
};

// Takes one message from `source` and prints it: true when one was taken,
// false when none was there (EAGAIN) or the call was interrupted.
bool take(Source& source, const Selection& selection, const Output& output, const Alarm& alarm) {
  const ssize_t n = read_message(source.file.fd(), source.msgsize, buffer());
  if (n < 0) {
    if (errno == EAGAIN || (errno == EINTR && !alarm.rang())) return false;
    if (errno == EINTR || errno == ETIMEDOUT) timed_out(source.file.path());
    fail(source.file.path(), errno);
  }
  const std::string_view message(buffer().data(), static_cast<std::size_t>(n));
  if (n > 0) print(source.file.path(), payload(message, source.framing), source.file.delivery(), output);
  if (source.one_per_open || n == 0) {
    const int flags = ::fcntl(source.file.fd(), F_GETFL) & O_NONBLOCK;
    source = Source(source.file.path(), selection, flags);
  }
  return n > 0;
}

}  // namespace

// One queue: a blocked read, as `cat` does, so that the queue counts recv
// among its waiting readers, serves it in arrival order and applies its
// recv_timeout_ms. Several: non-blocking reads and poll(2), the first
// queue given first.
int recv(const RecvOptions& options) {
  const Deadline deadline(options.wait_seconds);
  const bool blocking = options.queues.size() == 1 && !deadline.immediate();
  std::vector<Source> sources;
  sources.reserve(options.queues.size());
  for (const std::string& queue : options.queues)
    sources.emplace_back(queue, options.selection, blocking ? 0 : O_NONBLOCK);

  const Alarm alarm(blocking ? deadline : Deadline(std::nullopt));
  std::vector<pollfd> fds(sources.size());
  for (int64_t received = 0; received < options.count;) {
    bool took = false;
    for (Source& source : sources)
      if ((took = take(source, options.selection, options.output, alarm))) break;
    if (took) {
      ++received;
      continue;
    }
    if (deadline.passed() || deadline.immediate()) timed_out(options.queues.front());
    if (blocking) continue;
    for (std::size_t i = 0; i < sources.size(); ++i) fds[i] = {sources[i].file.fd(), POLLIN, 0};
    if (::poll(fds.data(), fds.size(), deadline.poll_ms()) < 0 && errno != EINTR) fail(options.queues.front(), errno);
  }
  return kDone;
}

int peek(const PeekOptions& options) {
  QueueFile file(options.queue, O_RDONLY | O_NONBLOCK);
  const mqfs_attr attr = file.attr();
  file.set_read_mode(MQFS_READ_PEEK);
  if (options.selection.type || options.selection.except) file.set_select(options.selection.select());
  for (int64_t shown = 0; !options.count || shown < *options.count;) {
    const ssize_t n = read_message(file.fd(), attr.msgsize, buffer());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(options.queue, errno);
    if (n == 0) break;
    print(options.queue, payload({buffer().data(), static_cast<std::size_t>(n)}, attr.framing), file.delivery(),
          options.output);
    ++shown;
  }
  return kDone;
}

}  // namespace mq
