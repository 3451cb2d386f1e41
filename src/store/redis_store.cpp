#include "store/redis_store.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>
#include <utility>

#include "engine/namespace.hpp"
#include "engine/queue.hpp"

namespace mqfs::store::redis {

namespace {

constexpr uint64_t kInodeBlock = 4096;

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

RedisStore::RedisStore(const Options& options)
    : keys_(options.prefix),
      mount_(random_mount_name()),
      named_(keys_.prefix() + ":q:"),
      own_(keys_.subscription(mount_, 0)),
      lease_(options.lease),
      timeout_(options.timeout),
      calls_(options.address, options.timeout, {Command{{"FUNCTION", "LOAD", "REPLACE", std::string(functions())}}},
             [] {}),
      events_(options.address, options.timeout, {}, [this] { reconnected(); }) {
  own_.pop_back();  // "P:d:MOUNT:0" without its number
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

void RedisStore::handle_server(Clock::time_point now) {
  send_settlements();
  read_new_queues();
  calls_.handle(now);
  events_.handle(now);
  if (now >= next_heartbeat_) {
    heartbeat();
    recheck();
    if (reload_wanted_) reload_names();  // one that got no answer
  }
}

std::optional<Clock::time_point> RedisStore::server_deadline() const {
  std::optional<Clock::time_point> next = next_heartbeat_;
  for (const auto& deadline : {calls_.next_deadline(), events_.next_deadline()})
    if (deadline && *deadline < *next) next = deadline;
  return next;
}

void RedisStore::close() {
  for (const auto& [ino, queue] : queues_) queue->remote_unmount();
  send_settlements();
  stopping_ = true;
  const auto deadline = Clock::now() + timeout_;
  // With Redis gone, the calls wait for nothing: the mount's lease returns
  // what it held.
  wait([&] { return calls_.idle() || !calls_.connected() || Clock::now() >= deadline; });
}

int RedisStore::write_out() {
  send_settlements();
  calls_.flush();
  return 0;
}

void RedisStore::heartbeat() {
  next_heartbeat_ = Clock::now() + lease_ / 3;
  calls_.call(redis::heartbeat(keys_, mount_, lease_.count()), [](const redisReply* reply) {
    const auto returned = parse_integer(reply);
    if (!returned) spdlog::warn("redis: the mount's lease was not renewed (no answer)");
    else if (*returned > 0) spdlog::info("redis: {} messages of mounts that stopped went back to their queues", *returned);
  });
}

void RedisStore::wake_publishers() {
  for (const auto& [ino, queue] : queues_)
    if (queue->is_topic() && queue->senders_waiting() > 0) queue->remote_room();
}

// A new events connection: every event meanwhile may have been missed, the
// marks of copies being read among them. Everything is read again.
void RedisStore::reconnected() {
  reads_.clear();
  reload_names();
  for (const auto& [ino, queue] : queues_) {
    refresh(ino);
    queue->remote_room();
  }
}

// Events may have been missed (a new connection, or only in case): every
// waiting writer tries again, and queues with waiting readers are read again.
void RedisStore::recheck() {
  for (const auto& [ino, queue] : queues_) {
    if (queue->senders_waiting() > 0) queue->remote_room();
    if (queue->receivers_waiting() > 0) refresh(ino);
  }
}

engine::Queue* RedisStore::find(uint64_t ino) const {
  auto it = queues_.find(ino);
  return it == queues_.end() ? nullptr : it->second;
}

// Its copy is read once the names change that made it went out (calls go
// out in order), at the latest at the next handle_server().
void RedisStore::attach(uint64_t ino, engine::Queue& queue) {
  queues_[ino] = &queue;
  unread_.push_back(ino);
}

void RedisStore::read_new_queues() {
  for (uint64_t ino : std::exchange(unread_, {}))
    if (find(ino)) refresh(ino);
}

void RedisStore::detach(uint64_t ino, engine::Queue& queue) {
  if (find(ino) == &queue) queues_.erase(ino);
}

void RedisStore::send(uint64_t ino, uint64_t ticket, std::span<const engine::Message* const> messages,
                      std::span<const uint64_t> subscribers) {
  engine::Queue* owner = find(ino);
  if (owner && owner->is_topic()) return publish(ino, ticket, messages, subscribers);
  calls_.call(redis::send(keys_, base(ino), messages), [this, ino, ticket](const redisReply* reply) {
    const Sent sent = parse_sent(reply);
    const engine::RemoteStatus status = remote_status(sent.status);
    engine::Queue* owner = find(ino);
    const bool told = owner && owner->remote_sent(ticket, status, sent.ids);
    if (closing_ || told || status != engine::RemoteStatus::ok) return;
    // Its writer left before the answer: what was queued for it leaves again.
    for (std::size_t i = 0; i < sent.ids.size(); ++i)
      calls_.call(withdraw(keys_, base(ino), sent.priorities[i], sent.ids[i]), [](const redisReply* reply) {
        if (parse_integer(reply).value_or(0) != 1)
          spdlog::warn("redis: a message whose writer was not told it was queued stayed queued");
      });
  });
}

// SPEC section 13: a topic's messages go to every subscriber in one call,
// at the names' version whose subscribers by name the engine found; a
// newer version is read first, then the publish is made again.
void RedisStore::publish(uint64_t ino, uint64_t ticket, std::span<const engine::Message* const> messages,
                         std::span<const uint64_t> subscribers) {
  const engine::Overflow overflow = find(ino)->settings().overflow;
  const std::size_t count = messages.size();
  calls_.call(redis::publish(keys_, ino, version_, overflow, subscribers, messages),
              [this, ino, ticket, count](const redisReply* reply) {
                const Published published = parse_published(reply);
                engine::RemoteStatus status = remote_status(published.status);
                if (published.status == Status::conflict) {
                  status = engine::RemoteStatus::retry;
                  republish_ = true;
                  reload_names();
                }
                // All or none were published: the engine counts them by their ids.
                const std::vector<uint64_t> ids(status == engine::RemoteStatus::ok ? count : 0, 0);
                if (engine::Queue* owner = find(ino)) owner->remote_sent(ticket, status, ids);
              });
}

uint64_t RedisStore::subscribe(uint64_t topic, int64_t maxmsg) {
  const uint64_t ino = kSubscriptions + ++subscriptions_;
  calls_.call(redis::subscribe(keys_, topic, base(ino), mount_, maxmsg), [this, ino](const redisReply* reply) {
    if (reply && reply->str && std::string_view(reply->str, reply->len) == "ok") return;
    spdlog::warn("redis: a subscription to a topic was not made; its reader gets EIDRM");
    if (engine::Queue* queue = find(ino)) queue->remote_removed();
  });
  return ino;
}

void RedisStore::unsubscribe(uint64_t topic, uint64_t subscription) {
  calls_.call(redis::unsubscribe(keys_, topic, base(subscription), mount_), [](const redisReply*) {});
}

// A queue's base in Redis: a named queue's, or one of this mount's
// descriptors' subscriptions.
std::string RedisStore::base(uint64_t ino) const {
  return ino > kSubscriptions ? keys_.subscription(mount_, ino - kSubscriptions) : keys_.queue(ino);
}

void RedisStore::take(uint64_t ino, const engine::Selection& selection, uint32_t most, std::size_t limit,
                      std::size_t header) {
  calls_.call(redis::take(keys_, base(ino), mount_, selection, most, limit, header),
              [this, ino](const redisReply* reply) {
                Taken taken = parse_taken(reply, *budget_);
                if (taken.status == Status::expired) heartbeat();  // the take that follows it is served
                // A message the budget had no room for goes back at once.
                std::vector<engine::MessagePtr> messages;
                for (std::size_t i = 0; i < taken.messages.size(); ++i) {
                  if (taken.messages[i]) {
                    messages.push_back(std::move(taken.messages[i]));
                  } else if (auto order = parse_order_key({reply->element[1 + 3 * i]->str,
                                                           reply->element[1 + 3 * i]->len})) {
                    settle(ino, false, -1, order->priority, order->id);
                  }
                }
                engine::Queue* owner = find(ino);
                if (!owner) {
                  for (const engine::MessagePtr& m : messages) settle(ino, false, -1, m->priority(), m->id());
                  return;
                }
                owner->remote_taken(remote_status(taken.status), std::move(messages));
              });
}

void RedisStore::ack(uint64_t ino, const engine::Message& message) {
  settle(ino, true, 0, message.priority(), message.id());
}

void RedisStore::release(uint64_t ino, const engine::Message& message, int64_t delay_ms, bool delivered) {
  settle(ino, false, delivered ? delay_ms : -1, message.priority(), message.id());
}

// Acknowledges (or gives back) a message this mount holds. The loop turn's
// settlements of a queue go in one call (send_settlements()).
void RedisStore::settle(uint64_t ino, bool acknowledge, int64_t delay_ms, engine::Priority priority, uint64_t id) {
  settlements_[Settlement{ino, acknowledge, delay_ms}].push_back(Order{priority, id});
}

void RedisStore::send_settlements() {
  for (auto& [settlement, orders] : std::exchange(settlements_, {})) send_settlement(settlement, std::move(orders));
}

// Made again and again until Redis answers: a message left held would stay
// held while the mount lives.
void RedisStore::send_settlement(const Settlement& settlement, std::vector<Order> orders) {
  calls_.call(redis::settle(keys_, base(settlement.ino), mount_, settlement.acknowledge, settlement.delay_ms, orders),
              [this, settlement, orders](const redisReply* reply) {
                if (!parse_held(reply) && !closing_ && !stopping_) send_settlement(settlement, orders);
              });
}

void RedisStore::dead_letter(uint64_t ino, uint64_t to, const engine::Message& message) {
  calls_.call(redis::dead_letter(keys_, base(ino), base(to), mount_, message),
              [this, ino, priority = message.priority(), id = message.id()](const redisReply* reply) {
                Status status = Status::failed;
                if (parse_dead_letter(reply, &status) || closing_) return;
                // Its dead-letter queue is gone, or no answer: back to its place.
                if (status != Status::expired) settle(ino, false, 0, priority, id);
              });
}

void RedisStore::purge(uint64_t ino) {
  calls_.call(redis::purge(keys_, base(ino)), [](const redisReply* reply) {
    if (!parse_integer(reply)) spdlog::warn("redis: a truncate got no answer; it may not have been made");
  });
}

// The copy and the events travel on two connections, so either may come
// first. The snapshot marks its place among the events ("r"): events
// before the mark are in the copy; those after it wait, when the copy has
// not come yet, and are made on it once it has.
void RedisStore::refresh(uint64_t ino) {
  const uint64_t token = ++refreshes_;
  Read read;
  read.token = token;
  reads_[ino] = std::move(read);
  calls_.call(snapshot(keys_, base(ino), mount_, token), [this, ino, token](const redisReply* reply) {
    auto it = reads_.find(ino);
    if (it == reads_.end() || it->second.token != token || !budget_) return;
    Snapshot copy = parse_snapshot(reply, *budget_);
    if (copy.status == Status::failed) {  // no copy: the events go on as they come; a recheck reads it again
      Read read = std::move(it->second);
      reads_.erase(it);
      for (Event& event : read.after) apply(ino, event);
      return;
    }
    it->second.copy = std::move(copy);
    if (it->second.marked) take_copy(ino);
  });
}

void RedisStore::take_copy(uint64_t ino) {
  auto it = reads_.find(ino);
  Read read = std::move(it->second);
  reads_.erase(it);
  engine::Queue* queue = find(ino);
  if (!queue) return;
  if (read.copy->status == Status::gone) return queue->remote_removed();
  queue->remote_reset(std::move(read.copy->queued));
  for (Event& event : read.after) apply(ino, event);
}

void RedisStore::on_event(std::string_view payload) {
  if (!budget_) return;  // before load(): the names read there are newer
  std::optional<Event> event = parse_event(keys_, payload, *budget_);
  if (!event) return;
  if (event->kind == Event::Kind::names) {
    if (event->count > version_) reload_names();
    return;
  }
  // Room made anywhere may be room a topic's blocked writers wait for.
  if (event->kind == Event::Kind::acknowledged || event->kind == Event::Kind::purged ||
      event->kind == Event::Kind::removed)
    wake_publishers();
  const bool named = event->queue.starts_with(named_);
  if (!named && !event->queue.starts_with(own_)) return;
  const std::string_view number = std::string_view(event->queue).substr(named ? named_.size() : own_.size());
  uint64_t ino = 0;
  if (std::from_chars(number.data(), number.data() + number.size(), ino).ptr != number.data() + number.size())
    return;
  if (!named) ino += kSubscriptions;
  auto read = reads_.find(ino);
  if (event->kind == Event::Kind::read) {
    if (event->mount != mount_ || read == reads_.end() || read->second.token != event->count) return;
    read->second.marked = true;
    if (read->second.copy) take_copy(ino);
    return;
  }
  if (read != reads_.end() && read->second.marked) return read->second.after.push_back(std::move(*event));
  apply(ino, *event);
}

void RedisStore::apply(uint64_t ino, Event& event) {
  engine::Queue* queue = find(ino);
  if (!queue) return;
  switch (event.kind) {
    case Event::Kind::queued:
      if (event.message) queue->remote_queued(std::move(event.message));
      for (engine::MessagePtr& message : event.messages) queue->remote_queued(std::move(message));
      return;
    case Event::Kind::taken: return queue->remote_unqueued(event.ids);
    case Event::Kind::acknowledged:
    case Event::Kind::configured: return queue->remote_room();
    case Event::Kind::purged: return queue->remote_purged();
    case Event::Kind::removed: return queue->remote_removed();
    case Event::Kind::names:
    case Event::Kind::read: return;
  }
}

// Names ---------------------------------------------------------------------

// Runs the connections until `done`, at mount: every call is answered
// within redis_timeout_ms, so this ends.
bool RedisStore::wait(const std::function<bool()>& done) {
  while (!done()) {
    epoll_event event;
    const auto next = server_deadline();
    int ms = 50;
    if (next) ms = static_cast<int>(std::clamp<int64_t>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(*next - Clock::now()).count() + 1, 0, 50));
    if (epoll_wait(epoll_, &event, 1, ms) < 0 && errno != EINTR) return false;
    handle_server(Clock::now());
  }
  return true;
}

int RedisStore::load(engine::Budget& budget, Contents& contents) {
  budget_ = &budget;
  std::optional<Status> read;
  calls_.call(names_snapshot(keys_), [&](const redisReply* reply) {
    Names names = parse_names(reply);
    read = names.status;
    if (names.status == Status::ok && names.version >= version_) take_names(std::move(names));
  });
  ask_inodes();
  if (!wait([&] { return read.has_value() && !asking_inodes_; }) || *read != Status::ok) {
    spdlog::error("redis: the names could not be read: Redis did not answer within redis_timeout_ms");
    return -EIO;
  }
  if (next_ino_ == end_ino_) {
    spdlog::error("redis: no inodes were given: Redis did not answer within redis_timeout_ms");
    return -EIO;
  }
  for (const auto& [ino, node] : names_) contents.nodes.push_back(node);
  loaded_ = true;
  return 0;
}

void RedisStore::put_node(const NodeState& node) {
  if (reconciling_) return;
  Change& change = pending_[node.ino];
  change.node = node;
  change.remove = false;
  change.made = change.made || !names_.contains(node.ino);
}

void RedisStore::remove_node(uint64_t ino) {
  if (reconciling_) return;
  Change& change = pending_[ino];
  change.node.ino = ino;
  change.remove = true;
}

void RedisStore::put_settings(uint64_t ino, const engine::Settings& settings) {
  if (reconciling_) return;
  Change& change = pending_[ino];
  if (change.remove) return;
  if (change.node.ino == 0) {  // only its settings changed
    auto it = names_.find(ino);
    if (it == names_.end()) return pending_.erase(ino), void();
    change.node = it->second.node;
  }
  change.settings = settings;
}

std::optional<uint64_t> RedisStore::new_ino() {
  if (end_ino_ - next_ino_ < kInodeBlock / 4) ask_inodes();
  if (next_ino_ == end_ino_) return std::nullopt;
  return next_ino_++;
}

void RedisStore::ask_inodes() {
  if (asking_inodes_) return;
  asking_inodes_ = true;
  calls_.call(inodes(keys_, kInodeBlock), [this](const redisReply* reply) {
    asking_inodes_ = false;
    const auto first = parse_integer(reply);
    if (!first || *first < 2) return;
    // What is left of the old block is dropped: inodes need not be dense.
    next_ino_ = static_cast<uint64_t>(*first);
    end_ino_ = next_ino_ + kInodeBlock;
  });
}

void RedisStore::commit_names(std::function<void(int)> done) {
  if (pending_.empty()) return done(0);
  auto changes = std::make_shared<Changes>();
  for (auto& [ino, change] : pending_) {
    // A queue's node is put with its settings: those Redis has, unless changed.
    if (!change.remove && !change.settings && !S_ISDIR(change.node.mode)) {
      auto it = names_.find(ino);
      change.settings = it != names_.end() && it->second.queue ? it->second.queue->settings : engine::Settings{};
    }
    changes->push_back(std::move(change));
  }
  pending_.clear();
  offer_names(std::move(changes), version_, std::move(done));
  read_new_queues();
}

// Offers `changes` at `version`; on a conflict, again at the new version if
// they still apply there.
void RedisStore::offer_names(std::shared_ptr<Changes> changes, uint64_t version, std::function<void(int)> done) {
  std::vector<NameChange> offered;
  for (const Change& change : *changes)
    offered.push_back(NameChange{.node = change.node,
                                 .settings = change.settings ? &*change.settings : nullptr,
                                 .remove = change.remove});
  ++offered_;
  calls_.call(names(keys_, version, offered), [this, changes, version, done](const redisReply* reply) {
    if (closing_) return;
    const NamesChanged answer = parse_names_changed(reply);
    if (answer.status == Status::ok) {
      --offered_;
      for (const Change& change : *changes) {
        if (change.remove) {
          names_.erase(change.node.ino);
          continue;
        }
        Contents::Node& node = names_[change.node.ino];
        node.node = change.node;
        if (change.settings) node.queue = QueueState{.settings = *change.settings};
      }
      // Another mount's changes came in between: the copy takes them.
      if (version != version_ || answer.version != version_ + 1) reload_wanted_ = true;
      version_ = answer.version;
      done(0);
      if (reload_wanted_) reload_names();
      return;
    }
    if (answer.status == Status::conflict) {
      calls_.call(names_snapshot(keys_), [this, changes, done](const redisReply* reply) {
        if (closing_) return;
        Names names = parse_names(reply);
        --offered_;
        if (names.status != Status::ok) {
          reload_wanted_ = true;
          done(-EIO);
          return;
        }
        const uint64_t now = names.version;
        take_names(std::move(names));
        if (const int error = rebase(*changes); error < 0) {
          reload_wanted_ = true;  // the copy drops this request's changes
          done(error);
          return reload_names();
        }
        offer_names(changes, now, done);
      });
      return;
    }
    --offered_;
    reload_wanted_ = true;  // whether they were made is unknown: the copy becomes Redis's
    done(-EIO);
    reload_names();
  });
}

// Whether `changes`, checked against older names, still apply to names_:
// 0, -EEXIST (another node took a name they give) or -ENOENT (a node they
// change, or a directory they put one in, is gone).
int RedisStore::rebase(const Changes& changes) const {
  std::map<uint64_t, const Change*> changed;
  for (const Change& change : changes) changed[change.node.ino] = &change;
  for (const Change& change : changes) {
    if (change.remove) continue;
    const NodeState& node = change.node;
    if (!change.made && !names_.contains(node.ino) && node.ino != engine::kRootIno) return -ENOENT;
    if (node.parent == 0) continue;
    const bool parent_here =
        node.parent == engine::kRootIno || (names_.contains(node.parent) && !changed.contains(node.parent)) ||
        (changed.contains(node.parent) && !changed.at(node.parent)->remove);
    if (!parent_here) return -ENOENT;
    for (const auto& [ino, other] : names_) {
      if (ino == node.ino || other.node.parent != node.parent || other.node.name != node.name) continue;
      if (!changed.contains(ino)) return -EEXIST;  // taken, and this request does not move it away
    }
  }
  return 0;
}

void RedisStore::take_names(Names names) {
  names_.clear();
  for (Contents::Node& node : names.nodes) names_.emplace(node.node.ino, std::move(node));
  version_ = names.version;
}

// Reads the names and makes the mount's copy theirs — once no change of
// this mount waits for its answer, which would otherwise be undone here.
void RedisStore::reload_names() {
  if (offered_ > 0 || reloading_) {
    reload_wanted_ = true;
    return;
  }
  reload_wanted_ = false;
  reloading_ = true;
  calls_.call(names_snapshot(keys_), [this](const redisReply* reply) {
    reloading_ = false;
    if (closing_) return;
    Names names = parse_names(reply);
    if (names.status != Status::ok || offered_ > 0) {
      // No answer: the next heartbeat reads them; a change of this mount
      // waits for its answer: its end reads them.
      reload_wanted_ = true;
      return;
    }
    if (names.version < version_) return;  // older than what the mount has
    take_names(std::move(names));
    if (source_ && loaded_) {  // before, load() hands the names over
      std::vector<Contents::Node> nodes;
      for (const auto& [ino, node] : names_) nodes.push_back(node);
      reconciling_ = true;
      source_->reconcile(nodes);
      reconciling_ = false;
    }
    if (std::exchange(republish_, false))  // publishes refused for an older version
      for (const auto& [ino, queue] : queues_)
        if (queue->is_topic()) queue->remote_room();
    if (reload_wanted_) reload_names();
  });
}

}  // namespace mqfs::store::redis
