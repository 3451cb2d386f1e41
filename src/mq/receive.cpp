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

void Selection::apply(QueueFile& file) const {
  if (except) return file.set_select({.type = *except, .except = 1, .reserved = 0});
  if (type) file.set_select({.type = *type, .except = 0, .reserved = 0});
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
class Source {
 public:
  Source(const std::string& path, const Selection& selection, int flags)
      : selection_(selection), flags_(O_RDONLY | flags), file_(path, flags_) {
    const mqfs_attr attr = file_.attr();
    framing_ = attr.framing;
    msgsize_ = attr.msgsize;
    one_per_open_ = framing_ == MQFS_FRAMING_LINE || framing_ == MQFS_FRAMING_U32;
    prepare();
  }

  int fd() const { return file_.fd(); }

  // Takes one message and prints it: true when one was taken, false when
  // none was there (EAGAIN) or the call was interrupted.
  bool take(const Output& output, const Alarm& alarm) {
    const ssize_t n = read_message(file_.fd(), msgsize_, buffer());
    if (n < 0) {
      if (errno == EAGAIN || (errno == EINTR && !alarm.rang())) return false;
      if (errno == EINTR || errno == ETIMEDOUT) timed_out(file_.path());
      fail(file_.path(), errno);
    }
    if (n > 0) print(file_.path(), payload({buffer().data(), static_cast<std::size_t>(n)}, framing_), file_.delivery(),
                     output);
    if (one_per_open_ || n == 0) {
      file_ = QueueFile(file_.path(), flags_);
      prepare();
    }
    return n > 0;
  }

 private:
  void prepare() {
    file_.set_read_mode(one_per_open_ ? MQFS_READ_MESSAGE : MQFS_READ_STREAM);
    selection_.apply(file_);
  }

  const Selection& selection_;
  int flags_;
  QueueFile file_;
  int64_t framing_ = MQFS_FRAMING_NONE;
  int64_t msgsize_ = 0;
  bool one_per_open_ = false;
};

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
      if ((took = source.take(options.output, alarm))) break;
    if (took) {
      ++received;
      continue;
    }
    if (deadline.passed() || deadline.immediate()) timed_out(options.queues.front());
    if (blocking) continue;
    for (std::size_t i = 0; i < sources.size(); ++i) fds[i] = {sources[i].fd(), POLLIN, 0};
    if (::poll(fds.data(), fds.size(), deadline.poll_ms()) < 0 && errno != EINTR) fail(options.queues.front(), errno);
  }
  return kDone;
}

int peek(const PeekOptions& options) {
  QueueFile file(options.queue, O_RDONLY | O_NONBLOCK);
  const mqfs_attr attr = file.attr();
  file.set_read_mode(MQFS_READ_PEEK);
  options.selection.apply(file);
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
