#include "engine/queue.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "engine/framing.hpp"

namespace mqfs::engine {

timespec now_realtime() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return now;
}

Queue::Queue(Budget& budget, Timeouts& timeouts, const Settings& settings)
    : budget_(&budget), timeouts_(&timeouts), settings_(settings), store_(budget) {
  times_.atime = times_.mtime = times_.ctime = now_realtime();
}

// Waiters keep their open file, and the open file its queue: a queue with
// waiters is never destroyed — except detached sends, which end with it.
Queue::~Queue() { cancel_all(ENOTCONN); }

void Queue::configure(const Settings& settings) {
  settings_ = settings;
  times_.ctime = now_realtime();
  settle();
  notify_watchers();
}

bool Queue::readable(const OpenFile& file) const {
  return file.holds_rest() || file.at_end() || !store_.empty();
}

int Queue::receive(OpenFile& file, std::size_t size, pid_t pid, Receiver& to) {
  const uint64_t taken_before = received_;
  const int status = read_now(file, size, pid, to);
  if (received_ != taken_before) {
    settle();
    notify_watchers();
  }
  return status;
}

int Queue::read_now(OpenFile& file, std::size_t size, pid_t pid, Receiver& to) {
  if (file.rest_) {
    const auto rest = file.rest_->bytes().subspan(file.rest_offset_);
    const iovec part{const_cast<std::byte*>(rest.data()), std::min(size, rest.size())};
    if (to.deliver({&part, 1})) {
      file.rest_offset_ += part.iov_len;
      if (file.rest_offset_ == file.rest_->size()) file.rest_.reset();
    }
    return 1;
  }
  if (file.at_end() || size == 0) {
    to.deliver({});
    return 1;
  }
  if (store_.empty()) return 0;
  if (settings_.framing == Framing::u32 ||
      (settings_.framing == Framing::line && file.read_mode() == ReadMode::stream))
    return read_batch(file, size, pid, to);
  return read_message(file, size, pid, to);
}

// One message, without a copy; a short buffer leaves the rest with the file.
int Queue::read_message(OpenFile& file, std::size_t size, pid_t pid, Receiver& to) {
  const Message* front = store_.front();
  const iovec part{const_cast<std::byte*>(front->bytes().data()), std::min<std::size_t>(size, front->size())};
  if (!to.deliver({&part, 1})) return 1;  // the reader is gone: the message stays

  MessagePtr message = store_.pop_front();
  taken(file, 1, pid);
  if (part.iov_len < message->size()) {
    file.rest_ = std::move(message);
    file.rest_offset_ = part.iov_len;
  }
  return 1;
}

// A framed read: whole messages (u32: each after its length), as many as fit,
// gathered into one buffer. A request larger than any message may be the
// first part of a larger read(2) that the kernel continues with another
// request if this one is filled; it is never filled, so one read(2) never
// waits for a second batch.
int Queue::read_batch(OpenFile& file, std::size_t size, pid_t pid, Receiver& to) {
  static thread_local std::vector<std::byte> gather;
  const bool u32 = settings_.framing == Framing::u32;
  const std::size_t header = u32 ? kFrameHeader : 0;
  const std::size_t limit = size > static_cast<std::size_t>(kMaxMsgsize) ? size - 1 : size;
  const std::size_t most = file.read_mode() == ReadMode::message ? 1 : SIZE_MAX;

  gather.clear();
  std::size_t count = 0;
  store_.for_each([&](const Message& m) {
    if (count == most || gather.size() + header + m.size() > limit) return false;
    const std::size_t at = gather.size();
    gather.resize(at + header + m.size());
    if (u32) put_frame_header(gather.data() + at, m.size());
    std::memcpy(gather.data() + at + header, m.bytes().data(), m.size());
    ++count;
    return true;
  });
  if (count == 0) {
    if (u32) return -EMSGSIZE;  // whole frames only
    return read_message(file, size, pid, to);  // a line longer than the buffer comes in parts
  }
  const iovec all{gather.data(), gather.size()};
  if (!to.deliver({&all, 1})) return 1;
  for (std::size_t i = 0; i < count; ++i) store_.pop_front();
  taken(file, count, pid);
  return 1;
}

// Accounts for `count` messages delivered to `file`.
void Queue::taken(OpenFile& file, std::size_t count, pid_t pid) {
  received_ += count;
  lrpid_ = pid;
  times_.atime = now_realtime();
  file.delivered_ = true;
}

int Queue::receive_later(std::unique_ptr<ReceiveWaiter> waiter, Clock::time_point now) {
  if (!budget_->reserve_waiter()) return -EAGAIN;
  waiter->queue_ = this;
  if (settings_.recv_timeout_ms > 0)
    timeouts_->add(*waiter, now + std::chrono::milliseconds(settings_.recv_timeout_ms));
  receivers_.push_back(*waiter.release());
  return 0;
}

int Queue::send(OpenFile& file, std::span<const std::byte> bytes, pid_t pid, Sender& to) {
  if (settings_.framing != Framing::none) {
    if (!senders_.empty()) return -EAGAIN;  // behind the writers already waiting
    const Progress progress = write_frames(file, settings_.framing, bytes, pid);
    notify_watchers();
    if (progress.error && progress.used == 0) return progress.error;
    if (progress.full && !progress.error) return progress.used > 0 ? static_cast<int>(progress.used) : -EAGAIN;
    to.accept(progress.used);  // all of it, or a short write before a refused message
    return 0;
  }

  if (bytes.size() > static_cast<uint64_t>(settings_.msgsize)) return -EMSGSIZE;
  if (!writable()) return -EAGAIN;
  MessagePtr message = Message::make(*budget_, bytes, file.priority());
  if (!message) return -ENOSPC;
  if (to.accept(bytes.size())) {
    enqueue(std::move(message), pid);
    settle();
    notify_watchers();
  }
  return 0;
}

// Turns `input` into messages while there is room. The start of a message
// that `input` does not finish is held by the file until the next write.
Queue::Progress Queue::write_frames(OpenFile& file, Framing framing, std::span<const std::byte> input, pid_t pid) {
  Progress progress;
  if (!file.pending_.empty() && file.pending_framing_ != framing) {
    // Held under a framing the queue has left: it ends as at close first.
    if (file.pending_framing_ == Framing::line) {
      if (!has_room()) {
        progress.full = true;
        return progress;
      }
      MessagePtr message = Message::make(*budget_, file.pending_.bytes(), file.priority());
      if (!message) {
        progress.error = -ENOSPC;
        return progress;
      }
      enqueue(std::move(message), pid);
      serve_receivers();
    }
    file.pending_.clear();
  }
  for (;;) {
    const auto rest = input.subspan(progress.used);
    const NextMessage next = next_message(framing, file.pending_.bytes(), rest,
                                          static_cast<std::size_t>(settings_.msgsize));
    switch (next.kind) {
      case NextMessage::Kind::incomplete:
        if (!file.pending_.append(rest)) {
          progress.error = -ENOSPC;
        } else {
          file.pending_framing_ = framing;
          progress.used = input.size();
        }
        return progress;
      case NextMessage::Kind::too_long:
        file.pending_.clear();
        progress.error = -EMSGSIZE;
        return progress;
      case NextMessage::Kind::empty:
        file.pending_.clear();
        progress.error = -EINVAL;
        return progress;
      case NextMessage::Kind::message:
        break;
    }
    if (!has_room()) {
      progress.full = true;
      return progress;
    }
    MessagePtr message = Message::make(*budget_, next.head, next.tail, file.priority());
    if (!message) {
      progress.error = -ENOSPC;
      return progress;
    }
    file.pending_.clear();
    progress.used += next.used;
    enqueue(std::move(message), pid);
    serve_receivers();
  }
}

int Queue::send_later(std::unique_ptr<SendWaiter> waiter, std::span<const std::byte> bytes, Clock::time_point now,
                      std::size_t consumed) {
  if (settings_.framing != Framing::none) {
    waiter->rest_ = std::make_unique<HeldBytes>(*budget_);
    if (!waiter->rest_->append(bytes)) return -ENOSPC;
    waiter->framing_ = settings_.framing;
    waiter->consumed_ = consumed;
  } else {
    waiter->message_ = Message::make(*budget_, bytes, waiter->file().priority());
    if (!waiter->message_) return -ENOSPC;
  }
  return park(std::move(waiter), now);
}

int Queue::park(std::unique_ptr<SendWaiter> writer, Clock::time_point now) {
  if (!budget_->reserve_waiter()) return -EAGAIN;
  writer->queue_ = this;
  if (settings_.send_timeout_ms > 0)
    timeouts_->add(*writer, now + std::chrono::milliseconds(settings_.send_timeout_ms));
  senders_.push_back(*writer.release());
  return 0;
}

int Queue::flush(OpenFile& file, pid_t pid, Clock::time_point now) {
  if (file.pending_.empty()) return 0;
  if (file.pending_framing_ != Framing::line) {  // an unfinished u32 frame is no message
    file.pending_.clear();
    return 0;
  }
  MessagePtr message = Message::make(*budget_, file.pending_.bytes(), file.priority());
  file.pending_.clear();
  if (!message) return -ENOSPC;
  if (writable()) {
    enqueue(std::move(message), pid);
    settle();
    notify_watchers();
    return 0;
  }
  auto detached = std::make_unique<DetachedSend>(pid);
  detached->message_ = std::move(message);
  return park(std::move(detached), now);
}

// Queues a message whose writer knows it was sent.
void Queue::enqueue(MessagePtr message, pid_t pid) {
  store_.push_back(std::move(message));
  ++sent_;
  lspid_ = pid;
  times_.mtime = now_realtime();
}

std::unique_ptr<Waiter> Queue::take_waiter(Waiter& waiter) {
  waiter.unlink();
  timeouts_->remove(waiter);
  waiter.queue_ = nullptr;
  budget_->release_waiter();
  return std::unique_ptr<Waiter>(&waiter);
}

// Hands queued messages to waiting readers, oldest reader first.
void Queue::serve_receivers() {
  while (!receivers_.empty() && !store_.empty()) {
    auto waiter = take_waiter(*receivers_.front());
    auto& reader = static_cast<ReceiveWaiter&>(*waiter);
    if (int status = read_now(reader.file(), reader.size(), reader.pid(), reader); status < 0) reader.fail(-status);
  }
}

// Continues the blocked write at the head of the line; true when it is done.
bool Queue::resume(SendWaiter& writer) {
  if (!writer.rest_) {  // one message
    auto waiter = take_waiter(writer);
    if (writer.accept(writer.message_->size())) enqueue(std::move(writer.message_), writer.pid());
    return true;
  }
  const Progress progress = write_frames(writer.file(), writer.framing_, writer.rest_->bytes(), writer.pid());
  writer.consumed_ += progress.used;
  writer.rest_->drop_front(progress.used);
  if (progress.full && !progress.error) return false;  // still waiting, at the head of the line
  auto waiter = take_waiter(writer);
  if (progress.error && writer.consumed_ == 0)
    writer.fail(-progress.error);
  else
    writer.accept(writer.consumed_);
  return true;
}

// Serves waiters while the state allows: readers while a message is queued,
// the oldest writer while there is room.
void Queue::settle() {
  for (;;) {
    serve_receivers();
    if (senders_.empty() || !has_room()) return;
    if (!resume(static_cast<SendWaiter&>(*senders_.front()))) return;
  }
}

void SendWaiter::cancelled(int error) {
  if (consumed_ > 0)
    accept(consumed_);
  else
    fail(error);
}

void Queue::cancel(Waiter& waiter, int error) {
  if (waiter.queue_ != this) return;
  auto taken_waiter = take_waiter(waiter);
  taken_waiter->cancelled(error);
  taken_waiter.reset();
  // A writer leaving the head of the line may let the next one in.
  settle();
  notify_watchers();
}

void Queue::cancel_all(int error) {
  while (Waiter* w = receivers_.front()) take_waiter(*w)->cancelled(error);
  while (Waiter* w = senders_.front()) take_waiter(*w)->cancelled(error);
}

void Queue::purge() {
  store_.clear();
  times_.mtime = times_.ctime = now_realtime();
  settle();
  notify_watchers();
}

void Queue::unlinked(NodeCharge charge) {
  if (open_files_ > 0) unlinked_charge_ = std::move(charge);
}

void Queue::closed() {
  if (--open_files_ == 0) unlinked_charge_.release();
}

void Queue::watch(OpenFile& file, std::unique_ptr<Watch> watch) {
  file.watch_ = std::move(watch);
  watchers_.push_back(file);
}

void Queue::notify_watchers() {
  while (OpenFile* file = watchers_.pop_front()) {
    auto watch = std::move(file->watch_);
    watch->notify();
  }
}

}  // namespace mqfs::engine
