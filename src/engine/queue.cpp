#include "engine/queue.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "engine/framing.hpp"

namespace mqfs::engine {

timespec now_realtime() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return now;
}

int64_t now_realtime_ns() {
  const timespec now = now_realtime();
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

Queue::Queue(Budget& budget, Timeouts& timeouts, const Settings& settings, store::Store* store, uint64_t ino,
             QueueFinder* finder, Remote* remote)
    : budget_(&budget),
      timeouts_(&timeouts),
      settings_(settings),
      store_(budget),
      backing_(store),
      ino_(ino),
      finder_(finder),
      leases_(budget),
      remote_(remote),
      fetched_(budget) {
  times_.atime = times_.mtime = times_.ctime = now_realtime();
  if (remote_) remote_->attach(ino_, *this);
}

// Waiters keep their open file, and the open file its queue: a queue with
// waiters is never destroyed — except detached sends, which end with it.
Queue::~Queue() {
  cancel_all(ENOTCONN);
  timeouts_->remove(lease_timer_);
  if (remote_) {
    return_fetched();
    remote_->detach(ino_, *this);
  }
}

void Queue::configure(const Settings& settings) {
  const bool was_topic = is_topic();
  settings_ = settings;
  // A topic back to a queue: its descriptors' subscriptions end, and a
  // blocked write goes on as a write to the queue, in settle() below.
  // Their descriptors' POLLOUT was the topic's: it changes now, and
  // notify_watchers() below no longer reaches them through subscriptions_.
  if (was_topic && !is_topic())
    while (Queue* subscription = subscriptions_.front()) {
      subscription->leave_topic();
      subscription->notify_watchers();
    }
  for (Queue* s = subscriptions_.front(); s; s = subscriptions_.next(*s)) {
    Settings own = settings;
    own.kind = QueueKind::queue;
    s->configure(own);
  }
  dead_letter_warned_ = false;
  if (backing_) backing_->put_settings(ino_, settings_);
  times_.ctime = now_realtime();
  settle();
  notify_watchers();
}

int Queue::check(const Settings& settings) const {
  if (settings.kind != QueueKind::topic) return 0;
  if (!settings.subscribe.empty()) return -EINVAL;  // a topic subscribes to nothing
  if (!is_topic() && (!store_.empty() || leases_.count() > 0)) return -EBUSY;
  return 0;
}

bool Queue::readable(const OpenFile& file) const {
  return file.holds_rest() || file.at_end() || file.read_mode() == ReadMode::peek || store_.front(file.selection()) ||
         fetched_.front(file.selection()) || removed_;
}

int64_t Queue::oldest_ms() const {
  const int64_t oldest = store_.oldest_enqueued_ns();
  if (oldest == 0) return 0;
  return std::max<int64_t>(0, (now_realtime_ns() - oldest) / 1'000'000);
}

void Queue::receive(OpenFile& file, std::size_t size, pid_t pid, Clock::time_point now, ReadRequest& request) {
  const uint64_t taken_before = received_;
  const int status = read_now(file, size, pid, request);
  if (status < 0) return request.fail(-status);
  if (status > 0) {
    // A subscription whose file reached its end is one no longer: its topic may go on.
    if (received_ != taken_before || (topic_ && file.at_end())) {
      settle();
      notify_watchers();
    }
    return;
  }
  // A shared queue's reader waits for the server's answer even when it
  // must not block: the answer is what says whether the queue is empty.
  if (file.nonblocking() && !fetching_) return request.fail(EAGAIN);
  wait(receivers_, request.park(file, pid, size), settings_.recv_timeout_ms, now);
}

int Queue::read_now(OpenFile& file, std::size_t size, pid_t pid, Receiver& to) {
  if (file.holds_rest()) {
    file.cursor().read_rest(size, to);
    return 1;
  }
  if (file.read_mode() == ReadMode::peek) return read_peek(file, size, to);
  if (file.at_end() || size == 0) {
    to.deliver({});
    return 1;
  }
  if (removed_) return -EIDRM;
  if (!source().front(file.selection())) {
    if (remote_ && store_.front(file.selection())) fetch(file, size);
    return 0;
  }
  if (settings_.framing == Framing::u32 ||
      (settings_.framing == Framing::line && file.read_mode() == ReadMode::stream))
    return read_batch(file, size, pid, to);
  return read_message(file, size, pid, to);
}

// One message, without a copy; a short buffer leaves the rest with the file
// (a copy of it when the message stays in the queue under lease).
int Queue::read_message(OpenFile& file, std::size_t size, pid_t pid, Receiver& to) {
  const Message* front = source().front(file.selection());
  const iovec part{const_cast<std::byte*>(front->bytes().data()), std::min<std::size_t>(size, front->size())};
  const bool lease = file.ack_mode() == AckMode::explicit_ack;
  MessagePtr rest(nullptr, MessageDeleter{budget_});
  if (lease) {
    leases_.reserve(1);
    if (part.iov_len < front->size() && !(rest = copy_rest(*front, part.iov_len))) return -ENOSPC;
  }
  if (!to.deliver({&part, 1})) return 1;  // the reader is gone: the message stays

  MessagePtr message = source().pop_front(file.selection());
  delivered(file, *message);
  taken(file, pid);
  if (lease) {
    hold(file, std::move(message));
    if (rest) file.cursor().keep_rest(std::move(rest), 0, true);
  } else {
    dequeued(*message);
    ++received_;
    file.cursor().keep_rest(std::move(message), part.iov_len);
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
  source().for_each(file.selection(), [&](const Message& m) {
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
  const bool lease = file.ack_mode() == AckMode::explicit_ack;
  if (lease) leases_.reserve(count);
  const iovec all{gather.data(), gather.size()};
  if (!to.deliver({&all, 1})) return 1;
  for (std::size_t i = 0; i < count; ++i) {
    MessagePtr message = source().pop_front(file.selection());
    delivered(file, *message);
    if (lease) {
      hold(file, std::move(message));
    } else {
      dequeued(*message);
      ++received_;
    }
  }
  taken(file, pid);
  return 1;
}

// Peeking: the next message in queue order after the last one peeked, one
// per read, nothing taken; then end of file. A short buffer gets a copy's
// first part, and the rest with the next reads (u32 framing: whole frames only).
int Queue::read_peek(OpenFile& file, std::size_t size, Receiver& to) {
  const Message* message = store_.next_after(file.selection(), file.cursor().peeked());
  if (!message || size == 0) {
    to.deliver({});
    return 1;
  }
  std::byte header[kFrameHeader];
  iovec parts[2];
  std::size_t count = 0;
  MessagePtr rest(nullptr, MessageDeleter{budget_});
  if (settings_.framing == Framing::u32) {
    if (kFrameHeader + message->size() > size) return -EMSGSIZE;
    put_frame_header(header, message->size());
    parts[count++] = {header, sizeof header};
    parts[count++] = {const_cast<std::byte*>(message->bytes().data()), message->size()};
  } else {
    const std::size_t part = std::min<std::size_t>(size, message->size());
    if (part < message->size() && !(rest = copy_rest(*message, part))) return -ENOSPC;
    parts[count++] = {const_cast<std::byte*>(message->bytes().data()), part};
  }
  if (!to.deliver({parts, count})) return 1;
  file.cursor().set_peeked(*message);
  file.set_last_delivery(*message);
  if (rest) file.cursor().keep_rest(std::move(rest), 0);
  return 1;
}

// What a read of the first `read` bytes of `message` leaves unread, as a
// message of its own with the same id, for a message that stays in the
// queue (leased, or peeked); null when the budget has no room.
MessagePtr Queue::copy_rest(const Message& message, std::size_t read) {
  MessagePtr rest = Message::make(*budget_, message.bytes().subspan(read), message.priority(), message.type());
  if (rest) rest->set_id(message.id());
  return rest;
}

// A read handed `message` to `file`: one more delivery.
void Queue::delivered(OpenFile& file, Message& message) {
  message.set_deliveries(message.deliveries() + 1);
  file.set_last_delivery(message);
}

// Leases a delivered message to `file` (leases_.reserve() came first).
void Queue::hold(OpenFile& file, MessagePtr message) {
  if (backing_) backing_->delivered(ino_, *message);
  leases_.hold(std::move(message), file.leases(), Clock::now() + std::chrono::milliseconds(settings_.lease_ms));
  rearm();  // whichever path read it (a framed write serves parked readers itself)
}

// Accounts for a read that delivered messages to `file`.
void Queue::taken(OpenFile& file, pid_t pid) {
  lrpid_ = pid;
  times_.atime = now_realtime();
  file.cursor().delivered();
}

void Queue::send(OpenFile& file, std::span<const std::byte> bytes, pid_t pid, Clock::time_point now,
                 WriteRequest& request) {
  if (removed_) return request.fail(EIDRM);
  if (settings_.framing == Framing::file) return append_to_message(file, bytes, request);
  if (settings_.framing != Framing::none)
    return remote_ ? send_frames_remote(file, bytes, pid, now, request) : send_frames(file, bytes, pid, now, request);

  if (bytes.size() > static_cast<uint64_t>(settings_.msgsize)) return request.fail(EMSGSIZE);
  if (!writable() && file.nonblocking()) return request.fail(EAGAIN);
  // First allocate, then answer: once the writer has its answer, queueing
  // the message cannot fail.
  MessagePtr message = Message::make(*budget_, bytes, file.priority(), file.type());
  if (!message) return request.fail(ENOSPC);
  queue_or_wait(file, std::move(message), pid, now, bytes.size(), request);
}

// Queues `message` once `request` is answered (`n`: the byte count that
// answer reports), or parks the request with it until there is room. The
// message and its priority's level exist before the answer.
void Queue::queue_or_wait(OpenFile& file, MessagePtr message, pid_t pid, Clock::time_point now, std::size_t n,
                          WriteRequest& request) {
  if (remote_) return send_remote(&file, std::move(message), pid, now, n, &request);
  if (!writable()) {
    auto writer = request.park(file, pid);
    writer->message_ = std::move(message);
    wait(senders_, std::move(writer), settings_.send_timeout_ms, now);
    return;
  }
  if (int status = prepare(*message); status < 0) return request.fail(-status);
  record(*message);
  if (!request.accept(n)) return withdraw(*message);
  enqueue(std::move(message), pid);
  settle();
  notify_watchers();
}

// File framing: the write joins the file's message under way, which its
// close sends. Bytes held under another framing join it too: they were
// written by this file and not sent. Past msgsize (or the mount's byte
// budget) the message is dropped, never sent in part, and the file's later
// writes fail the same way until a close or fsync ends it.
void Queue::append_to_message(OpenFile& file, std::span<const std::byte> bytes, WriteRequest& request) {
  FrameWriter& frames = file.frame_writer();
  if (int error = frames.append_to_message(bytes, static_cast<std::size_t>(settings_.msgsize)))
    return request.fail(error);
  if (!request.accept(bytes.size())) frames.take_back(bytes.size());
}

void Queue::send_frames(OpenFile& file, std::span<const std::byte> bytes, pid_t pid, Clock::time_point now,
                        WriteRequest& request) {
  Progress progress;
  if (senders_.empty())
    progress = write_frames(file, settings_.framing, bytes, pid);
  else
    progress.full = true;  // behind the writers already waiting
  notify_watchers();
  if (progress.error || !progress.full) return accept_or_fail(request, progress.used, -progress.error);

  // Full part way: a pipe's rules.
  if (file.nonblocking()) return accept_or_fail(request, progress.used, EAGAIN);
  auto rest = std::make_unique<HeldBytes>(*budget_);
  if (!rest->append(bytes.subspan(progress.used))) return accept_or_fail(request, progress.used, ENOSPC);
  auto writer = request.park(file, pid);
  writer->rest_ = std::move(rest);
  writer->framing_ = settings_.framing;
  writer->consumed_ = progress.used;
  wait(senders_, std::move(writer), settings_.send_timeout_ms, now);
}

// Turns `input` into messages while there is room. The start of a message
// that `input` does not finish is held by the file until the next write.
Queue::Progress Queue::write_frames(OpenFile& file, Framing framing, std::span<const std::byte> input, pid_t pid) {
  Progress progress;
  FrameWriter& frames = file.frame_writer();
  if (!frames.empty() && frames.framing() != framing) {
    // Held under a framing the queue has left: it ends as at close first
    // (a line, or a whole-file message, is sent; an unfinished frame dropped).
    if (frames.sent_when_framing_changed()) {
      if (!has_room()) {
        progress.full = true;
        return progress;
      }
      MessagePtr message = Message::make(*budget_, frames.bytes(), file.priority(), file.type());
      if (!message) {
        progress.error = -ENOSPC;
        return progress;
      }
      if (int status = enqueue_now(std::move(message), pid); status < 0) {
        progress.error = status;
        return progress;
      }
      serve_receivers();
    }
    frames.clear();
  }
  for (;;) {
    const auto rest = input.subspan(progress.used);
    const NextMessage next = next_message(framing, frames.bytes(), rest,
                                          static_cast<std::size_t>(settings_.msgsize));
    switch (next.kind) {
      case NextMessage::Kind::incomplete:
        if (!frames.hold(rest, framing))
          progress.error = -ENOSPC;
        else
          progress.used = input.size();
        return progress;
      case NextMessage::Kind::too_long:
        frames.clear();
        progress.error = -EMSGSIZE;
        return progress;
      case NextMessage::Kind::empty:
        frames.clear();
        progress.error = -EINVAL;
        return progress;
      case NextMessage::Kind::message:
        break;
    }
    if (!has_room()) {
      progress.full = true;
      return progress;
    }
    MessagePtr message = Message::make(*budget_, next.head, next.tail, file.priority(), file.type());
    if (!message) {
      progress.error = -ENOSPC;
      return progress;
    }
    if (int status = enqueue_now(std::move(message), pid); status < 0) {
      progress.error = status;
      return progress;
    }
    frames.clear();
    progress.used += next.used;
    serve_receivers();
  }
}

// Puts `waiter` at the end of `line`. When the mount's waiters are at their
// cap it is answered at once (EAGAIN, or a framed write's short write).
bool Queue::wait(List<Waiter>& line, std::unique_ptr<Waiter> waiter, int64_t timeout_ms, Clock::time_point now) {
  if (timeout_ms > 0) timeouts_->add(*waiter, now + std::chrono::milliseconds(timeout_ms));
  if (!budget_->reserve_waiter()) {
    timeouts_->remove(*waiter);
    waiter->cancelled(EAGAIN);
    return false;
  }
  waiter->queue_ = this;
  line.push_back(*waiter.release());
  return true;
}

void Queue::end_message(OpenFile& file, pid_t pid, Clock::time_point now, Ending ending, WriteRequest& request) {
  FrameWriter& frames = file.frame_writer();
  frames.end_refusal();
  if (!file.writing_message()) {
    const int status = ending == Ending::fsync ? 0 : flush(file, pid, now);  // a held line waits for its close
    return status < 0 ? request.fail(-status) : void(request.accept(0));
  }
  if (ending == Ending::killed) {
    frames.clear();
    return void(request.accept(0));
  }
  if (!writable() && file.nonblocking()) return request.fail(EAGAIN);
  MessagePtr message = frames.take_message(file.priority(), file.type());
  if (!message) return request.fail(ENOSPC);
  queue_or_wait(file, std::move(message), pid, now, 0, request);
}

int Queue::flush(OpenFile& file, pid_t pid, Clock::time_point now) {
  FrameWriter& frames = file.frame_writer();
  frames.end_refusal();
  if (frames.empty()) return 0;
  if (!frames.sent_at_release()) {
    frames.clear();
    return 0;
  }
  MessagePtr message = Message::make(*budget_, frames.bytes(), file.priority(), file.type());
  frames.clear();
  if (!message) return -ENOSPC;
  if (remote_) {
    send_remote(nullptr, std::move(message), pid, now, 0, nullptr);
    return 0;
  }
  if (writable()) {
    if (int status = enqueue_now(std::move(message), pid); status < 0) return status;
    settle();
    notify_watchers();
    return 0;
  }
  auto detached = std::make_unique<DetachedSend>(pid);
  detached->message_ = std::move(message);
  return wait(senders_, std::move(detached), settings_.send_timeout_ms, now) ? 0 : -EAGAIN;
}

// Makes sure `message` can be queued without failing: its priority's level
// exists (or may throw), and its store has room for its record (or
// -ENOSPC / -EIO, with nothing changed).
int Queue::prepare(const Message& message) {
  if (is_topic()) return prepare_publish(message);
  store_.reserve(message);
  return backing_ ? backing_->prepare(message.size()) : 0;
}

// Queues a message whose writer is answered later, or not at all (the
// messages of a framed write, a line at close): nothing was answered yet if
// there is no room for it. 0 or -errno.
int Queue::enqueue_now(MessagePtr message, pid_t pid) {
  if (int status = prepare(*message); status < 0) return status;
  record(*message);
  enqueue(std::move(message), pid);
  return 0;
}

// Gives `message` its id and records it in the store: before its writer is
// answered, so that an answered write is in the store.
void Queue::record(Message& message) {
  message.set_enqueued_ns(now_realtime_ns());
  if (is_topic()) return record_publish(message, 1);
  give_id(message);
}

void Queue::give_id(Message& message) {
  if (backing_)
    backing_->enqueued(ino_, message);
  else
    message.set_id(last_id_ + 1);
  last_id_ = message.id();
}

// A recorded message whose writer did not get the answer is not sent.
void Queue::withdraw(const Message& message) {
  if (is_topic()) {
    record_publish(message, -1);
    return discard_publish();
  }
  if (backing_) backing_->withdrawn(ino_, message);
}

// Queues a recorded message whose writer knows it was sent; prepare() made
// room for it before that answer, so nothing here can fail.
void Queue::enqueue(MessagePtr message, pid_t pid) noexcept {
  if (is_topic()) return publish(std::move(message), pid);
  const int64_t sent_ns = message->enqueued_ns();  // record() read the clock
  store_.push_back(std::move(message));
  ++sent_;
  lspid_ = pid;
  times_.mtime = timespec{.tv_sec = sent_ns / 1'000'000'000, .tv_nsec = sent_ns % 1'000'000'000};
}

std::unique_ptr<Waiter> Queue::take_waiter(Waiter& waiter) {
  waiter.unlink();
  timeouts_->remove(waiter);
  waiter.queue_ = nullptr;
  budget_->release_waiter();
  return std::unique_ptr<Waiter>(&waiter);
}

// Hands queued messages to waiting readers, oldest reader first: each gets
// what its selection takes, and a reader whose selection takes nothing
// queued holds back none behind it (SPEC section 12).
void Queue::serve_receivers() {
  if (!fed_.empty()) feed_subscribers();
  Waiter* next = receivers_.front();
  while (next && !source().empty()) {
    Waiter& waiter = *next;
    next = receivers_.next(waiter);
    if (!source().front(waiter.file().selection())) continue;
    auto taken_waiter = take_waiter(waiter);
    auto& reader = static_cast<ReceiveWaiter&>(*taken_waiter);
    if (int status = read_now(reader.file(), reader.size(), reader.pid(), reader); status < 0) reader.fail(-status);
  }
}

// Continues the blocked write at the head of the line; true when it is done.
bool Queue::resume(SendWaiter& writer) {
  if (!writer.rest_) {  // one message
    const int status = prepare(*writer.message_);  // before the answer
    auto waiter = take_waiter(writer);
    if (status < 0) {
      writer.fail(-status);
      return true;
    }
    record(*writer.message_);
    if (writer.accept(writer.message_->size()))
      enqueue(std::move(writer.message_), writer.pid());
    else
      withdraw(*writer.message_);
    return true;
  }
  const Progress progress = write_frames(writer.file(), writer.framing_, writer.rest_->bytes(), writer.pid());
  writer.consumed_ += progress.used;
  writer.rest_->drop_front(progress.used);
  if (progress.full && !progress.error) return false;  // still waiting, at the head of the line
  auto waiter = take_waiter(writer);
  accept_or_fail(writer, writer.consumed_, -progress.error);
  return true;
}

// Serves waiters while the state allows: readers while a message is queued,
// the oldest writer while there is room.
void Queue::settle() {
  if (settling_) return;  // a subscriber's room, from this loop's own publish
  settling_ = true;
  try {
    for (;;) {
      serve_receivers();
      if (remote_) {
        fetch_for_waiters();
        pump_sends();
        break;
      }
      if (senders_.empty() || !has_room()) break;
      if (!resume(static_cast<SendWaiter&>(*senders_.front()))) break;
    }
  } catch (...) {
    settling_ = false;
    throw;
  }
  settling_ = false;
  rearm();
  if (topic_ || !settings_.subscribe.empty()) wake_topics();
}

int Queue::ack(OpenFile& file, uint64_t id) {
  std::vector<MessagePtr> messages;
  if (int status = release(file, id, messages); status < 0) return status;
  for (const MessagePtr& message : messages) acknowledged(*message);
  settle();  // room for a writer
  notify_watchers();
  return 0;
}

int Queue::nack(OpenFile& file, uint64_t id, Clock::time_point now) {
  // The unread rest of a leased message given back is not read.
  if (file.cursor().holds_leased_rest() && file.ack_mode() == AckMode::explicit_ack &&
      (id == 0 || file.cursor().rest_id() == id))
    file.cursor().drop_rest();
  std::vector<MessagePtr> messages;
  if (int status = release(file, id, messages); status < 0) return status;
  for (MessagePtr& message : messages) give_back(std::move(message), now);
  settle();
  notify_watchers();
  return 0;
}

// Takes the message `file` holds under `id` (0: every one) from its lease
// into `messages`: 0, -ETIMEDOUT (its lease ran out; for 0: none held, and
// one ran out) or -ENOENT.
int Queue::release(OpenFile& file, uint64_t id, std::vector<MessagePtr>& messages) {
  bool lapsed = false;
  if (id == 0) {
    messages = leases_.release_all(file.leases(), &lapsed);
    return messages.empty() && lapsed ? -ETIMEDOUT : 0;
  }
  MessagePtr message = leases_.release(file.leases(), id, &lapsed);
  if (!message) return lapsed ? -ETIMEDOUT : -ENOENT;
  messages.push_back(std::move(message));
  return 0;
}

// A leased message was taken for good.
void Queue::acknowledged(const Message& message) {
  dequeued(message);
  ++received_;
}

// A message whose lease ended without an ACK: to the dead-letter queue
// after its last allowed delivery, else back to its place in this queue —
// after the retry delay, if there is one. Nothing is ever dropped: without
// a dead-letter queue to take it, it stays here.
void Queue::give_back(MessagePtr message, Clock::time_point now) {
  if (settings_.max_deliveries > 0 && message->deliveries() >= settings_.max_deliveries) {
    Queue* dead_letters = finder_ && !settings_.dead_letter.empty() ? finder_->find_queue(settings_.dead_letter) : nullptr;
    if (dead_letters && dead_letters != this && !dead_letters->is_topic()) {
      ++dead_lettered_;
      if (remote_) return remote_->dead_letter(ino_, dead_letters->ino_, *message);
      return dead_letters->take_dead_letter(*this, std::move(message));
    }
    if (!dead_letter_warned_)
      spdlog::warn("queue (inode {}): a message passed max_deliveries={}, but dead_letter '{}' names no other queue; "
                   "it stays in the queue",
                   ino_, settings_.max_deliveries, settings_.dead_letter);
    dead_letter_warned_ = true;  // once, until the settings change
  }
  if (remote_) return remote_->release(ino_, *message, settings_.retry_delay_ms, true);
  if (settings_.retry_delay_ms > 0)
    return leases_.delay(std::move(message), now + std::chrono::milliseconds(settings_.retry_delay_ms));
  store_.reserve(*message);
  store_.put_back(std::move(message));
}

// A dead letter from `from`: queued at the end, even past maxmsg (it has no
// writer to wait), with a new id and its delivery count back at 0.
void Queue::take_dead_letter(Queue& from, MessagePtr message) {
  store_.reserve(*message);
  message->set_deliveries(0);
  if (from.backing_ && backing_)
    backing_->moved(from.ino_, ino_, *message);
  else if (backing_)  // `from` lost its name, and its records with it
    backing_->enqueued(ino_, *message);
  else
    message->set_id(last_id_ + 1);
  last_id_ = std::max(last_id_, message->id());
  store_.push_back(std::move(message));
  ++sent_;
  times_.mtime = now_realtime();
  settle();
  notify_watchers();
}

// Returns the messages whose lease ran out, and puts back those whose retry
// delay ended.
void Queue::expire_leases(Clock::time_point now) {
  bool delayed = false;
  while (MessagePtr message = leases_.next_expired(now, &delayed)) {
    if (delayed) {
      store_.reserve(*message);
      store_.put_back(std::move(message));
    } else {
      give_back(std::move(message), now);
    }
  }
  settle();
  notify_watchers();
}

// Keeps the queue's entry on the mount's timer at its earliest deadline.
void Queue::rearm() {
  const auto next = leases_.next_deadline();
  if (next == lease_timer_.armed) return;
  if (next)
    timeouts_->add(lease_timer_, *next);
  else
    timeouts_->remove(lease_timer_);
  lease_timer_.armed = next;
}

void Queue::select(OpenFile& file, const Selection& selection) {
  file.set_selection(selection);
  serve_receivers();
  notify_watchers();
}

void Queue::set_read_mode(OpenFile& file, std::optional<ReadMode> mode) {
  file.set_read_mode(mode);
  if (topic_) topic_->room_made();  // in message mode after its message, it subscribes no more
  notify_watchers();
}

void SendWaiter::cancelled(int error) { accept_or_fail(*this, consumed_, error); }

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

// The store forgets the queued messages (a truncate: `queued_only`) or every
// message of the queue; when that is all of them, in one record.
void Queue::drop_records(bool queued_only) {
  if (!backing_) return;
  std::vector<const Message*> messages;
  messages.reserve(store_.count() + (queued_only ? 0 : leases_.count()));
  store_.for_each([&](const Message& m) {
    messages.push_back(&m);
    return true;
  });
  if (!queued_only) leases_.for_each_message([&](const Message& m) { messages.push_back(&m); });
  if (!messages.empty()) backing_->purged(ino_, messages, !queued_only || leases_.count() == 0);
}

void Queue::purge() {
  if (remote_) remote_->purge(ino_);
  drop_records(true);
  store_.clear();
  times_.mtime = times_.ctime = now_realtime();
  settle();
  notify_watchers();
}

void Queue::unlinked(NodeCharge charge) {
  if (open_files_ > 0) unlinked_charge_ = std::move(charge);
  backing_ = nullptr;
}

void Queue::dequeued(const Message& message) {
  if (remote_) return remote_->ack(ino_, message);
  if (backing_) backing_->dequeued(ino_, message);
}

void Queue::restore(const store::QueueState& state, std::vector<MessagePtr> messages) {
  settings_ = state.settings;
  sent_ = state.sent;
  received_ = state.received;
  dead_lettered_ = state.dead_lettered;
  dropped_ = state.dropped;
  for (MessagePtr& message : messages) {
    store_.reserve(*message);
    last_id_ = std::max(last_id_, message->id());
    store_.push_back(std::move(message));
  }
}

void Queue::closed(OpenFile& file) {
  if (!file.leases().empty()) {
    const auto now = Clock::now();
    for (MessagePtr& message : leases_.release_all(file.leases())) give_back(std::move(message), now);
    settle();
    notify_watchers();
  }
  if (--open_files_ == 0) unlinked_charge_.release();
}

void Queue::watch(OpenFile& file, std::unique_ptr<Watch> watch) {
  // A subscription whose topic became a queue again: its file reads what it
  // still holds, and writes to the queue. It waits on the queue, whose
  // changes reach it there, and the subscription's own changes reach it below.
  if (subscriber_ == &file && !topic_) return file.queue().watch(file, std::move(watch));
  file.watch_ = std::move(watch);
  watchers_.push_back(file);
}

void Queue::notify_watchers() {
  while (OpenFile* file = watchers_.pop_front()) {
    auto watch = std::move(file->watch_);
    watch->notify();
  }
  // A topic's writability is also its reading descriptors' POLLOUT.
  for (Queue* s = subscriptions_.front(); s; s = subscriptions_.next(*s)) s->notify_watchers();
  // A subscription that ended waits on its queue (watch() above).
  if (subscriber_ && !topic_ && subscriber_->watch_) {
    subscriber_->unlink();
    auto watch = std::move(subscriber_->watch_);
    watch->notify();
  }
}

}  // namespace mqfs::engine
