// A queue shared by several mounts (SPEC section 10; remote.hpp): writes and
// reads that wait for the server's answer, and the mirror of what the
// server has queued.
//
// A write parks as a blocked write does, its message with the server until
// the answer: queued (the writer is answered), full (it waits for room, as
// on any full queue), gone (EIDRM) or no answer (EIO). A read takes from
// the messages the server gave this mount; when there are none but the
// mirror shows one the read's selection takes, it parks and the queue asks
// the server for it (one take under way at a time). The usual hand-off then
// serves the waiting readers, so a message reaches exactly one reader: one
// whose reply the kernel took is acknowledged, one that reached no reader
// goes back as if never taken.
#include <algorithm>
#include <cerrno>

#include "engine/framing.hpp"
#include "engine/frame_writer.hpp"
#include "engine/queue.hpp"

namespace mqfs::engine {

void Queue::send_remote(OpenFile* file, MessagePtr message, pid_t pid, Clock::time_point now, std::size_t n,
                        WriteRequest* request) {
  std::unique_ptr<SendWaiter> writer =
      request ? request->park(*file, pid) : std::make_unique<DetachedSend>(pid);
  message->set_enqueued_ns(now_realtime_ns());
  writer->message_ = std::move(message);
  writer->count_ = n;
  if (wait(senders_, std::move(writer), settings_.send_timeout_ms, now)) pump_sends();
}

// A framed write (SPEC section 7): its whole messages go to the server in
// one call, which queues them one by one while there is room, as a pipe
// takes bytes; the unfinished message after them is held by the file once
// they are all queued. A short write reports the messages queued when the
// queue filled (O_NONBLOCK) or a bad message came after them.
void Queue::send_frames_remote(OpenFile& file, std::span<const std::byte> bytes, pid_t pid, Clock::time_point now,
                               WriteRequest& request) {
  FrameWriter& held = file.frame_writer();
  auto frames = std::make_unique<SendWaiter::Frames>();
  frames->size = bytes.size();
  std::span<const std::byte> pending = held.bytes();
  if (!held.empty() && held.framing() != settings_.framing) {
    // Held under a framing the queue has left: it ends as at a close.
    if (held.sent_when_framing_changed()) {
      MessagePtr message = Message::make(*budget_, held.bytes(), file.priority(), file.type());
      if (!message) return request.fail(ENOSPC);
      message->set_enqueued_ns(now_realtime_ns());
      frames->messages.push_back(std::move(message));
      frames->ends.push_back(0);
      frames->clears_held = true;
    } else {
      held.clear();
    }
    pending = {};
  }
  std::size_t used = 0;
  while (!frames->error) {
    const NextMessage next = next_message(settings_.framing, pending, bytes.subspan(used),
                                          static_cast<std::size_t>(settings_.msgsize));
    if (next.kind == NextMessage::Kind::incomplete) {
      frames->tail.assign(bytes.begin() + used, bytes.end());
      break;
    }
    if (next.kind != NextMessage::Kind::message) {
      frames->error = next.kind == NextMessage::Kind::too_long ? EMSGSIZE : EINVAL;
      break;
    }
    MessagePtr message = Message::make(*budget_, next.head, next.tail, file.priority(), file.type());
    if (!message) {
      frames->error = ENOSPC;
      break;
    }
    message->set_enqueued_ns(now_realtime_ns());
    frames->clears_held = frames->clears_held || !next.head.empty();
    frames->messages.push_back(std::move(message));
    used += next.used;
    frames->ends.push_back(used);
    pending = {};
  }
  if (frames->messages.empty()) {
    if (frames->error) {
      if (frames->error != ENOSPC) held.clear();  // the bad message is dropped, as a pipe would not take it
      return request.fail(frames->error);
    }
    if (!held.hold(frames->tail, settings_.framing)) return request.fail(ENOSPC);
    if (!request.accept(bytes.size())) held.take_back(frames->tail.size());
    return;
  }
  if (!writable() && file.nonblocking()) return request.fail(EAGAIN);
  auto writer = request.park(file, pid);
  writer->frames_ = std::move(frames);
  if (wait(senders_, std::move(writer), settings_.send_timeout_ms, now)) pump_sends();
}

// Hands the server every waiting message not with it yet, in order, unless
// the queue is full.
void Queue::pump_sends() {
  if (remote_full_ || removed_) return;
  static thread_local std::vector<const Message*> messages;
  std::vector<uint64_t> subscribers;  // a topic's, by name
  if (is_topic() && finder_)
    for (Queue* q : finder_->lasting_subscribers(*this))
      if (q != this && !q->is_topic()) subscribers.push_back(q->ino_);
  for (Waiter* w = senders_.front(); w; w = senders_.next(*w)) {
    auto& writer = static_cast<SendWaiter&>(*w);
    if (writer.ticket_) continue;
    writer.ticket_ = next_ticket_++;
    messages.clear();
    if (writer.frames_)
      for (const MessagePtr& m : writer.frames_->messages) messages.push_back(m.get());
    else
      messages.push_back(writer.message_.get());
    remote_->send(ino_, writer.ticket_, messages, subscribers);
  }
}

// The messages of a framed write that the server queued (all, or those
// before the queue filled): they are the write's consumed bytes now.
void Queue::frames_queued(SendWaiter& writer, std::span<const uint64_t> ids) {
  SendWaiter::Frames& frames = *writer.frames_;
  const std::size_t queued = std::min(ids.size(), frames.messages.size());
  if (queued == 0) return;
  for (std::size_t i = 0; i < queued; ++i) {
    frames.messages[i]->set_id(ids[i]);
    if (!is_topic()) mirror(std::move(frames.messages[i]));  // a topic keeps none
  }
  if (frames.clears_held) writer.file().frame_writer().clear();
  frames.clears_held = false;
  writer.consumed_ = frames.ends[queued - 1];
  frames.messages.erase(frames.messages.begin(), frames.messages.begin() + static_cast<std::ptrdiff_t>(queued));
  frames.ends.erase(frames.ends.begin(), frames.ends.begin() + static_cast<std::ptrdiff_t>(queued));
  sent_ += queued;
  lspid_ = writer.pid();
  times_.mtime = now_realtime();
}

// A framed write whose messages are all queued: the file holds the
// unfinished one after them. False when the writer did not get the answer.
bool Queue::frames_sent(SendWaiter& writer) {
  auto waiter = take_waiter(writer);
  const SendWaiter::Frames& frames = *writer.frames_;
  FrameWriter& held = writer.file().frame_writer();
  if (frames.error) {
    if (frames.error != ENOSPC) held.clear();
    accept_or_fail(writer, writer.consumed_, frames.error);
  } else if (!held.hold(frames.tail, settings_.framing)) {
    accept_or_fail(writer, writer.consumed_, ENOSPC);
  } else if (!writer.accept(frames.size)) {
    held.take_back(frames.tail.size());
    return false;
  }
  return true;
}

// One message queued with `ids`: in the mirror at once, so that this mount
// reads its own writes. False when the writer did not get the answer.
bool Queue::message_sent(SendWaiter& writer, std::span<const uint64_t> ids) {
  auto waiter = take_waiter(writer);
  if (!writer.accept(writer.count_)) return false;
  ++sent_;
  lspid_ = writer.pid();
  times_.mtime = now_realtime();
  if (!ids.empty() && !is_topic()) {  // a topic keeps none
    writer.message_->set_id(ids.front());
    mirror(std::move(writer.message_));
    fetch_for_waiters();
  }
  return true;
}

// The server's answer to the write `ticket`; false when its writer did not
// get the answer and what was queued must be withdrawn.
bool Queue::remote_sent(uint64_t ticket, RemoteStatus status, std::span<const uint64_t> ids) {
  SendWaiter* writer = nullptr;
  for (Waiter* w = senders_.front(); w && !writer; w = senders_.next(*w))
    if (static_cast<SendWaiter*>(w)->ticket_ == ticket) writer = static_cast<SendWaiter*>(w);
  if (!writer) return false;  // it timed out or was interrupted meanwhile
  if (writer->frames_) frames_queued(*writer, ids);
  bool told = true;
  switch (status) {
    case RemoteStatus::ok:
      told = writer->frames_ ? frames_sent(*writer) : message_sent(*writer, ids);
      break;
    case RemoteStatus::full:
      remote_full_ = true;
      writer->ticket_ = 0;
      // A framed write that queued some reports them (a short write).
      if (writer->file_ && writer->file().nonblocking()) take_waiter(*writer)->cancelled(EAGAIN);
      break;
    case RemoteStatus::gone:
      remote_removed();
      break;
    case RemoteStatus::retry:
      writer->ticket_ = 0;
      break;
    default:
      take_waiter(*writer)->cancelled(EIO);
  }
  notify_watchers();
  return told;
}

// Asks the server for what a read of `size` bytes on `file` takes: one
// message, or for a framed stream read as many whole ones as fit (as
// read_batch() gathers them).
void Queue::fetch(const OpenFile& file, std::size_t size) {
  if (fetching_ || fetch_stale_ || removed_) return;
  fetching_ = true;
  const bool batch = settings_.framing == Framing::u32 ||
                     (settings_.framing == Framing::line && file.read_mode() == ReadMode::stream);
  if (fetch_one_) return remote_->take(ino_, file.selection(), 1, 0, 0);
  // A read of one message takes the next ones too, for the reads that
  // follow it (a `cat` loop, a worker): they go back if none comes.
  if (!batch || file.read_mode() == ReadMode::message || size == 0)
    return remote_->take(ino_, file.selection(), kPrefetched, kPrefetchedBytes, 0);
  const std::size_t header = settings_.framing == Framing::u32 ? kFrameHeader : 0;
  const std::size_t limit = size > static_cast<std::size_t>(kMaxMsgsize) ? size - 1 : size;
  remote_->take(ino_, file.selection(), kMostFetched, limit, header);
}

// Asks for a message for the first waiting reader that the mirror has one
// for; gives back what was taken for readers that left.
void Queue::fetch_for_waiters() {
  for (Waiter* w = receivers_.front(); w; w = receivers_.next(*w)) {
    const Selection& selection = w->file().selection();
    if (fetched_.front(selection)) continue;
    if (store_.front(selection)) {
      fetch(w->file(), static_cast<ReceiveWaiter*>(w)->size());
      break;
    }
  }
  if (receivers_.empty()) linger_fetched();
}

void Queue::linger_fetched() {
  if (fetched_.empty() || linger_timer_.armed) return;
  linger_timer_.armed = Clock::now() + kLinger;
  timeouts_->add(linger_timer_, *linger_timer_.armed);
}

void Queue::linger_expired(Clock::time_point) {
  if (receivers_.empty()) return_fetched();
}

void Queue::return_fetched() {
  if (linger_timer_.armed) {
    timeouts_->remove(linger_timer_);
    linger_timer_.armed.reset();
  }
  while (MessagePtr message = fetched_.pop_front()) remote_->release(ino_, *message, 0, false);
}

void Queue::remote_taken(RemoteStatus status, std::vector<MessagePtr> messages) {
  fetching_ = false;
  if (status == RemoteStatus::gone) return remote_removed();
  for (MessagePtr& message : messages) {
    unmirror(message->id());
    // The server counted this delivery; the read that hands it out counts it here.
    message->set_deliveries(message->deliveries() > 0 ? message->deliveries() - 1 : 0);
    fetched_.reserve(*message);
    fetched_.push_back(std::move(message));
  }
  // The first message does not fit the read: it is taken alone, and the
  // read says so (u32) or takes it in parts (line).
  fetch_one_ = status == RemoteStatus::big;
  if (status == RemoteStatus::empty) {
    // The mirror showed a message the server no longer has: it missed an
    // event. It is read again; until then, no take is asked for.
    fetch_stale_ = true;
    remote_->refresh(ino_);
  }
  serve_receivers();
  // Readers that must not block had only this answer to wait for (or the
  // take of a message alone that follows a 'big').
  const int error = status == RemoteStatus::failed ? EIO : EAGAIN;
  for (Waiter* w = status == RemoteStatus::big ? nullptr : receivers_.front(); w;) {
    Waiter& waiter = *w;
    w = receivers_.next(waiter);
    if (waiter.file().nonblocking() && !fetched_.front(waiter.file().selection())) take_waiter(waiter)->fail(error);
  }
  fetch_for_waiters();
  notify_watchers();
}

void Queue::mirror(MessagePtr message) {
  const uint64_t id = message->id();
  if (!mirrored_.emplace(id, std::pair{message->type(), message->priority()}).second) return;
  store_.reserve(*message);
  if (id > mirror_last_id_) {
    mirror_last_id_ = id;
    store_.push_back(std::move(message));
  } else {
    store_.put_back(std::move(message));  // given back: to its place
  }
}

void Queue::remote_queued(MessagePtr message) {
  if (removed_) return;
  // Messages taken ahead of time must not pass one that comes before them.
  if (const Message* first = fetched_.front(); first && MessageStore::before(*message, *first)) return_fetched();
  mirror(std::move(message));
  fetch_stale_ = false;
  fetch_for_waiters();
  notify_watchers();
}

void Queue::unmirror(uint64_t id) {
  auto it = mirrored_.find(id);
  if (it == mirrored_.end()) return;
  store_.remove(it->second.first, it->second.second, id);
  mirrored_.erase(it);
}

void Queue::remote_unqueued(std::span<const uint64_t> ids) {
  for (const uint64_t id : ids) unmirror(id);
  notify_watchers();
}

void Queue::remote_room() {
  remote_full_ = false;
  pump_sends();
  notify_watchers();
}

void Queue::remote_purged() {
  store_.clear();
  mirrored_.clear();
  remote_room();
}

void Queue::remote_reset(std::vector<MessagePtr> queued) {
  if (removed_) return;
  store_.clear();
  mirrored_.clear();
  for (MessagePtr& message : queued)
    if (message) mirror(std::move(message));
  fetch_stale_ = false;
  remote_full_ = false;
  settle();
  notify_watchers();
}

void Queue::remote_removed() {
  if (removed_) return;
  removed_ = true;
  store_.clear();
  mirrored_.clear();
  fetched_.clear();
  while (Waiter* w = receivers_.front()) take_waiter(*w)->cancelled(EIDRM);
  while (Waiter* w = senders_.front()) take_waiter(*w)->cancelled(EIDRM);
  notify_watchers();
}

}  // namespace mqfs::engine
