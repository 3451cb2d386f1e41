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
#include <cerrno>

#include "engine/queue.hpp"

namespace mqfs::engine {

void Queue::send_remote(OpenFile* file, MessagePtr message, pid_t pid, Clock::time_point now, std::size_t n,
                        WriteRequest* request) {
  std::unique_ptr<SendWaiter> writer =
      request ? request->park(*file, pid) : std::make_unique<DetachedSend>(pid);
  writer->message_ = std::move(message);
  writer->count_ = n;
  if (wait(senders_, std::move(writer), settings_.send_timeout_ms, now)) pump_sends();
}

// Hands the server every waiting message not with it yet, in order, unless
// the queue is full.
void Queue::pump_sends() {
  if (remote_full_ || removed_) return;
  for (Waiter* w = senders_.front(); w; w = senders_.next(*w)) {
    auto& writer = static_cast<SendWaiter&>(*w);
    if (writer.ticket_) continue;
    writer.ticket_ = next_ticket_++;
    remote_->send(ino_, writer.ticket_, *writer.message_);
  }
}

bool Queue::remote_sent(uint64_t ticket, RemoteStatus status) {
  SendWaiter* writer = nullptr;
  for (Waiter* w = senders_.front(); w && !writer; w = senders_.next(*w))
    if (static_cast<SendWaiter*>(w)->ticket_ == ticket) writer = static_cast<SendWaiter*>(w);
  if (!writer) return false;  // it timed out or was interrupted meanwhile
  switch (status) {
    case RemoteStatus::ok: {
      auto waiter = take_waiter(*writer);
      const bool told = writer->accept(writer->count_);
      if (told) {
        ++sent_;
        lspid_ = writer->pid();
        times_.mtime = now_realtime();
      }
      notify_watchers();
      return told;
    }
    case RemoteStatus::full:
      remote_full_ = true;
      writer->ticket_ = 0;
      if (writer->file_ && writer->file().nonblocking()) take_waiter(*writer)->fail(EAGAIN);
      notify_watchers();
      return true;
    case RemoteStatus::gone:
      remote_removed();
      return true;
    default:
      take_waiter(*writer)->fail(EIO);
      return true;
  }
}

void Queue::fetch(const OpenFile& file, std::size_t) {
  if (fetching_ || fetch_stale_ || removed_) return;
  fetching_ = true;
  remote_->take(ino_, file.selection(), 1, 0, 0);
}

// Asks for a message for the first waiting reader that the mirror has one
// for; gives back what was taken for readers that left.
void Queue::fetch_for_waiters() {
  for (Waiter* w = receivers_.front(); w; w = receivers_.next(*w)) {
    const Selection& selection = w->file().selection();
    if (fetched_.front(selection)) continue;
    if (store_.front(selection)) {
      fetch(w->file(), 0);
      break;
    }
  }
  if (receivers_.empty()) return_fetched();
}

void Queue::return_fetched() {
  while (MessagePtr message = fetched_.pop_front()) remote_->release(ino_, *message, 0, false);
}

void Queue::remote_taken(RemoteStatus status, std::vector<MessagePtr> messages) {
  fetching_ = false;
  if (status == RemoteStatus::gone) return remote_removed();
  for (MessagePtr& message : messages) {
    if (auto it = mirrored_.find(message->id()); it != mirrored_.end()) {
      store_.remove(it->second.first, it->second.second, message->id());
      mirrored_.erase(it);
    }
    // The server counted this delivery; the read that hands it out counts it here.
    message->set_deliveries(message->deliveries() > 0 ? message->deliveries() - 1 : 0);
    fetched_.reserve(*message);
    fetched_.push_back(std::move(message));
  }
  if (status == RemoteStatus::empty) {
    // The mirror showed a message the server no longer has: it missed an
    // event. It is read again; until then, no take is asked for.
    fetch_stale_ = true;
    remote_->refresh(ino_);
  }
  serve_receivers();
  // Readers that must not block had only this answer to wait for.
  const int error = status == RemoteStatus::failed ? EIO : EAGAIN;
  for (Waiter* w = receivers_.front(); w;) {
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
  mirror(std::move(message));
  fetch_stale_ = false;
  fetch_for_waiters();
  notify_watchers();
}

void Queue::remote_unqueued(std::span<const uint64_t> ids) {
  for (const uint64_t id : ids) {
    auto it = mirrored_.find(id);
    if (it == mirrored_.end()) continue;
    store_.remove(it->second.first, it->second.second, id);
    mirrored_.erase(it);
  }
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
