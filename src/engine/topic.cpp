// Topics (SPEC section 13): a message written to a topic goes to each of its
// subscribers — the descriptors open on it for reading, each with a
// subscription of its own, and the queues whose user.mq.subscribe names it
// — as a copy that shares its bytes. The topic keeps none itself.
//
// A publish follows the rule of every write: its copies, and room for them
// in each subscriber, are made before its writer is answered (prepare), are
// recorded before the answer (record), and are handed out only once the
// writer got it (enqueue), or dropped if it did not (withdraw).
#include <cerrno>

#include "engine/queue.hpp"

namespace mqfs::engine {

std::shared_ptr<Queue> Queue::subscribe(OpenFile& file) {
  Settings settings = settings_;
  settings.kind = QueueKind::queue;
  settings.subscribe.clear();
  // Shared by several mounts (SPEC section 10): the subscription is a queue
  // of the server's, which every mount's publishes reach.
  const uint64_t ino = remote_ ? remote_->subscribe(ino_, settings.maxmsg) : 0;
  auto subscription = std::make_shared<Queue>(*budget_, *timeouts_, settings, nullptr, ino, finder_, remote_);
  subscription->topic_ = this;
  subscription->subscriber_ = &file;
  subscriptions_.push_back(*subscription);
  return subscription;
}

// The file closed, or the topic became a queue: no more messages come. A
// subscriber that leaves may make room for the topic's writers.
void Queue::unsubscribe() {
  if (Queue* topic = leave_topic()) topic->room_made();
}

Queue* Queue::leave_topic() {
  if (!topic_) return nullptr;
  if (remote_) remote_->unsubscribe(topic_->ino_, ino_);
  unlink();
  return std::exchange(topic_, nullptr);
}

// A descriptor's subscription takes messages while its file may still read
// one: a message-mode reader that had its message is no longer a subscriber.
bool Queue::active_subscription() const { return topic_ && !subscriber_->at_end(); }

template <class Visit>
void Queue::for_each_subscriber(Visit visit) const {
  for (Queue* s = subscriptions_.front(); s; s = subscriptions_.next(*s))
    if (s->active_subscription()) visit(*s);
  if (finder_)
    for (Queue* q : finder_->lasting_subscribers(*this))
      if (q != this && !q->is_topic()) visit(*q);
}

uint64_t Queue::subscribers() const {
  uint64_t count = 0;
  if (is_topic()) for_each_subscriber([&](Queue&) { ++count; });
  return count;
}

// overflow=block: a publish waits until every subscriber has room.
bool Queue::subscribers_have_room() const {
  if (settings_.overflow == Overflow::drop) return true;
  bool room = true;
  for_each_subscriber([&](Queue& s) { room = room && s.has_room(); });
  return room;
}

// Makes a copy of `message` for each subscriber with room (a full one misses
// it: overflow=drop), with its place in the subscriber's priority structure
// and store. 0, or -ENOSPC / -EIO with nothing changed.
int Queue::prepare_publish(const Message& message) {
  discard_publish();
  int status = 0;
  try {
    for_each_subscriber([&](Queue& s) {
      if (status < 0) return;
      if (!s.has_room()) return missed_.push_back(&s);
      if (!body_) body_ = new SharedBody{.source = &message, .owner = {}, .refs = 1};  // the publish's own reference
      const MessagePtr& copy = copies_.emplace_back(&s, Message::share(*budget_, *body_)).second;
      if (!copy) {
        status = -ENOSPC;
        return;
      }
      s.store_.reserve(*copy);
      if (s.backing_) status = s.backing_->prepare(copy->size());
    });
  } catch (...) {
    discard_publish();
    throw;
  }
  if (status < 0) discard_publish();
  return status;
}

// What the publish under way adds to the topic's dropped: itself, when no
// subscriber takes it, and each descriptor that misses it.
uint64_t Queue::publish_dropped() const {
  uint64_t dropped = copies_.empty() && missed_.empty() ? 1 : 0;
  for (const Queue* s : missed_)
    if (s->topic_) ++dropped;
  return dropped;
}

// Before the writer's answer: each copy gets its id in its subscriber and
// its record there, and the counters their records (`sign` -1 takes them
// back: the writer did not get the answer).
void Queue::record_publish(const Message& message, int sign) {
  if (sign > 0) {
    for (auto& [subscriber, copy] : copies_) {
      copy->set_enqueued_ns(message.enqueued_ns());
      subscriber->give_id(*copy);
    }
  } else {
    for (auto& [subscriber, copy] : copies_) subscriber->withdraw(*copy);
  }
  if (backing_) backing_->counted(ino_, sign, sign * static_cast<int64_t>(publish_dropped()));
  for (Queue* s : missed_)
    if (!s->topic_ && s->backing_) s->backing_->counted(s->ino_, 0, sign);
}

// Forgets the publish under way, without records.
void Queue::discard_publish() {
  copies_.clear();
  missed_.clear();
  release_body();
}

// The publish lets go of its body: the copies handed out keep it, and the
// last of them frees it.
void Queue::release_body() noexcept {
  if (SharedBody* body = std::exchange(body_, nullptr); body && --body->refs == 0) delete body;
}

// The writer was answered: each subscriber takes its copy. The readers
// waiting in them are served by serve_receivers(), outside this noexcept.
void Queue::publish(MessagePtr message, pid_t pid) noexcept {
  const int64_t sent_ns = message->enqueued_ns();
  dropped_ += publish_dropped();
  for (Queue* s : missed_)
    if (!s->topic_) ++s->dropped_;
  missed_.clear();
  if (body_) body_->owner = std::move(message);
  for (auto& [subscriber, copy] : copies_) {
    subscriber->take_copy(std::move(copy), pid);
    fed_.push_back(subscriber);
  }
  copies_.clear();
  release_body();
  ++sent_;
  lspid_ = pid;
  times_.mtime = timespec{.tv_sec = sent_ns / 1'000'000'000, .tv_nsec = sent_ns % 1'000'000'000};
}

void Queue::take_copy(MessagePtr copy, pid_t pid) noexcept {
  const int64_t sent_ns = copy->enqueued_ns();
  store_.push_back(std::move(copy));
  ++sent_;
  lspid_ = pid;
  times_.mtime = timespec{.tv_sec = sent_ns / 1'000'000'000, .tv_nsec = sent_ns % 1'000'000'000};
}

// Serves the readers of the subscribers that took copies since the last call.
void Queue::feed_subscribers() {
  std::vector<Queue*> fed;
  fed.swap(fed_);
  for (Queue* subscriber : fed) {
    subscriber->settle();
    subscriber->notify_watchers();
  }
}

// A subscriber made room (or left): the topic's writers may go on.
void Queue::room_made() {
  if (settling_) return;  // its settle() loop checks the room again
  if (!senders_.empty()) settle();
  notify_watchers();
}

// The topics this queue subscribes to, after it made room.
void Queue::wake_topics() {
  if (topic_) return topic_->room_made();
  if (!finder_) return;
  for (const std::string& path : settings_.subscribe) {
    Queue* topic = finder_->find_queue(path);
    if (topic && topic != this && topic->is_topic()) topic->room_made();
  }
}

}  // namespace mqfs::engine
