#include "store/redis_store.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>

#include "engine/queue.hpp"

namespace mqfs::store::redis {

namespace {

std::string random_mount_name() {
  unsigned char bytes[8];
  if (getrandom(bytes, sizeof bytes, 0) != sizeof bytes) throw std::system_error(errno, std::generic_category(), "getrandom");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name;
  for (unsigned char b : bytes) {
    name += kHex[b >> 4];
    name += kHex[b & 15];
  }
  return name;
}

engine::RemoteStatus remote_status(Status status) {
  switch (status) {
    case Status::ok: return engine::RemoteStatus::ok;
    case Status::full: return engine::RemoteStatus::full;
    case Status::empty: return engine::RemoteStatus::empty;
    case Status::big: return engine::RemoteStatus::big;
    case Status::gone: return engine::RemoteStatus::gone;
    default: return engine::RemoteStatus::failed;
  }
}

void watch(int epoll, int fd) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = fd;
  if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0) throw std::system_error(errno, std::generic_category(), "epoll_ctl");
}

}  // namespace

RedisStore::RedisStore(const Options& options, engine::Budget& budget)
    : budget_(&budget),
      keys_(options.prefix),
      mount_(random_mount_name()),
      lease_(options.lease),
      calls_(options.address, options.timeout, {Command{{"FUNCTION", "LOAD", "REPLACE", std::string(functions())}}},
             [] {}),
      events_(options.address, options.timeout, {}, [this] { recheck(); }) {
  events_.subscribe(keys_.events(), [this](std::string_view payload) { on_event(payload); });
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  watch(epoll_, calls_.fd());
  watch(epoll_, events_.fd());
  heartbeat();
}

RedisStore::~RedisStore() {
  closing_ = true;
  queues_.clear();
  ::close(epoll_);
}

void RedisStore::handle(Clock::time_point now) {
  calls_.handle(now);
  events_.handle(now);
  if (now >= next_heartbeat_) {
    heartbeat();
    recheck();
  }
}

std::optional<Clock::time_point> RedisStore::next_deadline() const {
  std::optional<Clock::time_point> next = next_heartbeat_;
  for (const auto& deadline : {calls_.next_deadline(), events_.next_deadline()})
    if (deadline && *deadline < *next) next = deadline;
  return next;
}

void RedisStore::heartbeat() {
  next_heartbeat_ = Clock::now() + lease_ / 3;
  calls_.call(redis::heartbeat(keys_, mount_, lease_.count()), [](const redisReply* reply) {
    const auto returned = parse_integer(reply);
    if (!returned) spdlog::warn("redis: the mount's lease was not renewed (no answer)");
    else if (*returned > 0) spdlog::info("redis: {} messages of mounts that stopped went back to their queues", *returned);
  });
}

// Events may have been missed (a new connection, or only in case): every
// waiting writer tries again, and queues with waiting readers are read again.
void RedisStore::recheck() {
  for (const auto& [ino, queue] : queues_) {
    if (queue->senders_waiting() > 0) queue->remote_room();
    if (queue->receivers_waiting() > 0 || !events_.connected()) refresh(ino);
  }
}

engine::Queue* RedisStore::find(uint64_t ino) const {
  auto it = queues_.find(ino);
  return it == queues_.end() ? nullptr : it->second;
}

void RedisStore::attach(uint64_t ino, engine::Queue& queue) {
  queues_[ino] = &queue;
  refresh(ino);
}

void RedisStore::detach(uint64_t ino) { queues_.erase(ino); }

void RedisStore::send(uint64_t ino, uint64_t ticket, const engine::Message& message) {
  const engine::Message* messages[] = {&message};
  const std::string queue = keys_.queue(ino);
  calls_.call(redis::send(keys_, queue, messages),
              [this, ino, ticket, queue, priority = message.priority()](const redisReply* reply) {
                const Sent sent = parse_sent(reply);
                const engine::RemoteStatus status = remote_status(sent.status);
                engine::Queue* owner = find(ino);
                const bool told = owner && owner->remote_sent(ticket, status);
                if (closing_) return;
                if (status == engine::RemoteStatus::ok && !told && !sent.ids.empty())
                  calls_.call(withdraw(keys_, queue, priority, sent.ids.front()), [](const redisReply* reply) {
                    if (parse_integer(reply).value_or(0) != 1)
                      spdlog::warn("redis: a message whose writer was not told it was queued stayed queued");
                  });
              });
}

void RedisStore::take(uint64_t ino, const engine::Selection& selection, uint32_t most, std::size_t limit,
                      std::size_t header) {
  const std::string queue = keys_.queue(ino);
  calls_.call(redis::take(keys_, queue, mount_, selection, most, limit, header),
              [this, ino, queue](const redisReply* reply) {
                Taken taken = parse_taken(reply, *budget_);
                if (taken.status == Status::expired) heartbeat();  // the take that follows it is served
                // A message the budget had no room for goes back at once.
                std::vector<engine::MessagePtr> messages;
                for (std::size_t i = 0; i < taken.messages.size(); ++i) {
                  if (taken.messages[i]) {
                    messages.push_back(std::move(taken.messages[i]));
                  } else if (auto order = parse_order_key({reply->element[1 + 3 * i]->str,
                                                           reply->element[1 + 3 * i]->len})) {
                    settle(queue, false, -1, order->priority, order->id);
                  }
                }
                engine::Queue* owner = find(ino);
                if (!owner) {
                  for (const engine::MessagePtr& m : messages) settle(queue, false, -1, m->priority(), m->id());
                  return;
                }
                owner->remote_taken(remote_status(taken.status), std::move(messages));
              });
}

void RedisStore::ack(uint64_t ino, const engine::Message& message) {
  settle(keys_.queue(ino), true, 0, message.priority(), message.id());
}

void RedisStore::release(uint64_t ino, const engine::Message& message, int64_t delay_ms, bool delivered) {
  settle(keys_.queue(ino), false, delivered ? delay_ms : -1, message.priority(), message.id());
}

// Acknowledges (or gives back) a message this mount holds, again and again
// until Redis answers: held, it would stay held while the mount lives.
void RedisStore::settle(const std::string& queue, bool acknowledge, int64_t delay_ms, engine::Priority priority,
                        uint64_t id) {
  calls_.call(redis::settle(keys_, queue, mount_, acknowledge, delay_ms, Order{priority, id}),
              [this, queue, acknowledge, delay_ms, priority, id](const redisReply* reply) {
                if (!parse_held(reply) && !closing_) settle(queue, acknowledge, delay_ms, priority, id);
              });
}

void RedisStore::dead_letter(uint64_t ino, uint64_t to, const engine::Message& message) {
  const std::string queue = keys_.queue(ino);
  calls_.call(redis::dead_letter(keys_, queue, keys_.queue(to), mount_, message),
              [this, queue, priority = message.priority(), id = message.id()](const redisReply* reply) {
                Status status = Status::failed;
                if (parse_dead_letter(reply, &status) || closing_) return;
                // Its dead-letter queue is gone, or no answer: back to its place.
                if (status != Status::expired) settle(queue, false, 0, priority, id);
              });
}

void RedisStore::purge(uint64_t ino) {
  calls_.call(redis::purge(keys_, keys_.queue(ino)), [](const redisReply* reply) {
    if (!parse_integer(reply)) spdlog::warn("redis: a truncate got no answer; it may not have been made");
  });
}

void RedisStore::refresh(uint64_t ino) {
  calls_.call(snapshot(keys_, keys_.queue(ino)), [this, ino](const redisReply* reply) {
    engine::Queue* queue = find(ino);
    if (!queue) return;
    Snapshot copy = parse_snapshot(reply, *budget_);
    if (copy.status == Status::gone) return queue->remote_removed();
    if (copy.status == Status::ok) queue->remote_reset(std::move(copy.queued));
  });
}

void RedisStore::on_event(std::string_view payload) {
  std::optional<Event> event = parse_event(keys_, payload, *budget_);
  if (!event) return;
  const std::string named = keys_.prefix() + ":q:";
  if (!event->queue.starts_with(named)) return;
  uint64_t ino = 0;
  const char* digits = event->queue.data() + named.size();
  const char* end = event->queue.data() + event->queue.size();
  if (std::from_chars(digits, end, ino).ptr != end) return;
  engine::Queue* queue = find(ino);
  if (!queue) return;
  switch (event->kind) {
    case Event::Kind::queued: return queue->remote_queued(std::move(event->message));
    case Event::Kind::taken: return queue->remote_unqueued(event->ids);
    case Event::Kind::acknowledged:
    case Event::Kind::configured: return queue->remote_room();
    case Event::Kind::purged: return queue->remote_purged();
    case Event::Kind::removed: return queue->remote_removed();
    case Event::Kind::names: return;
  }
}

}  // namespace mqfs::store::redis
