#include "engine/queue.hpp"

#include <algorithm>
#include <cerrno>

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
// waiters is never destroyed.
Queue::~Queue() = default;

void Queue::configure(const Settings& settings) {
  settings_ = settings;
  times_.ctime = now_realtime();
  settle();
  notify_watchers();
}

bool Queue::readable(const OpenFile& file) const {
  return file.holds_rest() || file.at_end() || !store_.empty();
}

bool Queue::receive(OpenFile& file, std::size_t size, pid_t pid, Receiver& to) {
  const uint64_t taken = received_;
  if (!read_now(file, size, pid, to)) return false;
  if (received_ != taken) {
    settle();
    notify_watchers();
  }
  return true;
}

bool Queue::read_now(OpenFile& file, std::size_t size, pid_t pid, Receiver& to) {
  if (file.rest_) {
    const auto rest = file.rest_->bytes().subspan(file.rest_offset_);
    const iovec part{const_cast<std::byte*>(rest.data()), std::min(size, rest.size())};
    if (to.deliver({&part, 1})) {
      file.rest_offset_ += part.iov_len;
      if (file.rest_offset_ == file.rest_->size()) file.rest_.reset();
    }
    return true;
  }
  if (file.at_end() || size == 0) {
    to.deliver({});
    return true;
  }
  if (store_.empty()) return false;

  const Message* front = store_.front();
  const iovec part{const_cast<std::byte*>(front->bytes().data()), std::min<std::size_t>(size, front->size())};
  if (!to.deliver({&part, 1})) return true;  // the reader is gone: the message stays

  MessagePtr message = store_.pop_front();
  ++received_;
  lrpid_ = pid;
  times_.atime = now_realtime();
  file.delivered_ = true;
  if (part.iov_len < message->size()) {
    file.rest_ = std::move(message);
    file.rest_offset_ = part.iov_len;
  }
  return true;
}

void Queue::receive_later(std::unique_ptr<ReceiveWaiter> waiter, Clock::time_point now) {
  waiter->queue_ = this;
  if (settings_.recv_timeout_ms > 0)
    timeouts_->add(*waiter, now + std::chrono::milliseconds(settings_.recv_timeout_ms));
  receivers_.push_back(*waiter.release());
}

int Queue::send(OpenFile& file, std::span<const std::byte> bytes, pid_t pid, Sender& to) {
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

int Queue::send_later(std::unique_ptr<SendWaiter> waiter, std::span<const std::byte> bytes, Clock::time_point now) {
  waiter->message_ = Message::make(*budget_, bytes, waiter->file().priority());
  if (!waiter->message_) return -ENOSPC;
  waiter->queue_ = this;
  if (settings_.send_timeout_ms > 0)
    timeouts_->add(*waiter, now + std::chrono::milliseconds(settings_.send_timeout_ms));
  senders_.push_back(*waiter.release());
  return 0;
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
  return std::unique_ptr<Waiter>(&waiter);
}

// Serves waiters while the state allows: the oldest reader while a message is
// queued, the oldest writer while there is room.
void Queue::settle() {
  for (;;) {
    if (!receivers_.empty() && !store_.empty()) {
      auto waiter = take_waiter(*receivers_.front());
      auto& reader = static_cast<ReceiveWaiter&>(*waiter);
      read_now(reader.file(), reader.size(), reader.pid(), reader);
    } else if (!senders_.empty() && store_.count() < static_cast<uint64_t>(settings_.maxmsg)) {
      auto waiter = take_waiter(*senders_.front());
      auto& writer = static_cast<SendWaiter&>(*waiter);
      if (writer.accept(writer.message_->size())) enqueue(std::move(writer.message_), writer.pid());
    } else {
      return;
    }
  }
}

void Queue::cancel(Waiter& waiter, int error) {
  if (waiter.queue_ != this) return;
  take_waiter(waiter)->fail(error);
  // A writer leaving the head of the line may let the next one in.
  settle();
  notify_watchers();
}

void Queue::cancel_all(int error) {
  while (Waiter* w = receivers_.front()) take_waiter(*w)->fail(error);
  while (Waiter* w = senders_.front()) take_waiter(*w)->fail(error);
}

void Queue::purge() {
  store_.clear();
  times_.mtime = times_.ctime = now_realtime();
  settle();
  notify_watchers();
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
