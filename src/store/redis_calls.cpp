#include "store/redis_calls.hpp"

#include <charconv>
#include <cinttypes>
#include <cstdio>

#include "engine/attributes.hpp"

namespace mqfs::store::redis {

namespace {

// A message's value in Redis: its type key, its enqueued_ns, then its bytes.
constexpr std::size_t kKeyDigits = 16;
constexpr std::size_t kValueHeader = 2 * kKeyDigits;
constexpr std::size_t kOrderKeyDigits = 18;

std::string hex16(uint64_t value) {
  char text[kKeyDigits + 1];
  std::snprintf(text, sizeof text, "%016" PRIx64, value);
  return text;
}

std::optional<uint64_t> parse_hex(std::string_view text) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (error != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string type_key(engine::Type type) { return hex16(static_cast<uint64_t>(type)); }

std::string_view text_of(const redisReply* reply) {
  if (!reply || (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_STATUS)) return {};
  return {reply->str, reply->len};
}

bool is_array(const redisReply* reply) { return reply && reply->type == REDIS_REPLY_ARRAY; }

Status status_of(std::string_view text) {
  if (text == "ok") return Status::ok;
  if (text == "full") return Status::full;
  if (text == "empty") return Status::empty;
  if (text == "big") return Status::big;
  if (text == "gone") return Status::gone;
  if (text == "expired") return Status::expired;
  if (text == "conflict") return Status::conflict;
  return Status::failed;
}

// A message from its order key and value; null when either is malformed or
// the budget has no room.
engine::MessagePtr message_of(std::string_view key, std::string_view value, engine::Budget& budget) {
  const auto order = parse_order_key(key);
  if (!order || value.size() < kValueHeader) return engine::MessagePtr(nullptr, engine::MessageDeleter{&budget});
  const auto type = parse_hex(value.substr(0, kKeyDigits));
  const auto enqueued_ns = parse_hex(value.substr(kKeyDigits, kKeyDigits));
  if (!type || !enqueued_ns) return engine::MessagePtr(nullptr, engine::MessageDeleter{&budget});
  const auto bytes = value.substr(kValueHeader);
  engine::MessagePtr message =
      engine::Message::make(budget, std::as_bytes(std::span{bytes.data(), bytes.size()}), order->priority,
                            static_cast<engine::Type>(*type));
  if (!message) return message;
  message->set_id(order->id);
  message->set_enqueued_ns(static_cast<int64_t>(*enqueued_ns));
  return message;
}

Command call(std::string_view function, const Keys& keys, const std::string& base) {
  Command command;
  command.add("FCALL");
  command.add(function);
  command.add("2");
  command.add(base);
  command.add(keys.prefix());
  return command;
}

// The count, then each message's priority, type key, enqueued_ns and bytes.
void add_messages(Command& command, std::span<const engine::Message* const> messages) {
  command.add(std::to_string(messages.size()));
  for (const engine::Message* m : messages) {
    command.add(std::to_string(m->priority()));
    command.add(type_key(m->type()));
    command.add(hex16(static_cast<uint64_t>(m->enqueued_ns())));
    const auto bytes = m->bytes();
    command.add({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
  }
}

void add_order_keys(Command& command, std::span<const engine::Message* const> messages) {
  for (const engine::Message* m : messages) command.add(order_key(m->priority(), m->id()));
}

}  // namespace

std::string order_key(engine::Priority priority, uint64_t id) {
  char text[kOrderKeyDigits + 1];
  std::snprintf(text, sizeof text, "%04x%014" PRIx64, static_cast<unsigned>(engine::kMaxPriority - priority), id);
  return text;
}

std::optional<Order> parse_order_key(std::string_view key) {
  if (key.size() != kOrderKeyDigits) return std::nullopt;
  const auto inverse = parse_hex(key.substr(0, 4));
  const auto id = parse_hex(key.substr(4));
  if (!inverse || *inverse > engine::kMaxPriority || !id) return std::nullopt;
  return Order{static_cast<engine::Priority>(engine::kMaxPriority - *inverse), *id};
}

Status parse_status(const redisReply* reply) { return status_of(text_of(reply)); }

namespace {

// Fields as "LENGTH:BYTES", so that any byte may be in a name.
void put_field(std::string& out, std::string_view field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}

std::optional<std::string_view> next_field(std::string_view& in) {
  const std::size_t colon = in.find(':');
  std::size_t size = 0;
  if (colon == std::string_view::npos) return std::nullopt;
  const auto [end, error] = std::from_chars(in.data(), in.data() + colon, size);
  if (error != std::errc{} || end != in.data() + colon || colon == 0 || size > in.size() - colon - 1)
    return std::nullopt;
  const std::string_view field = in.substr(colon + 1, size);
  in.remove_prefix(colon + 1 + size);
  return field;
}

template <class Number>
bool next_number(std::string_view& in, Number& value) {
  const auto field = next_field(in);
  if (!field) return false;
  const auto [end, error] = std::from_chars(field->data(), field->data() + field->size(), value);
  return error == std::errc{} && end == field->data() + field->size() && !field->empty();
}

}  // namespace

std::string encode_node(const NodeState& node, const engine::Settings* settings) {
  std::string out(settings ? "q" : "d");
  for (uint64_t number : {node.ino, node.parent, uint64_t{node.mode}, uint64_t{node.uid}, uint64_t{node.gid}})
    put_field(out, std::to_string(number));
  put_field(out, node.name);
  if (settings)
    for (const engine::Attribute& attribute : engine::attributes())
      if (attribute.writable()) {
        put_field(out, attribute.name);
        put_field(out, attribute.print_setting(*settings));
      }
  return out;
}

std::optional<Contents::Node> decode_node(std::string_view text) {
  if (text.empty() || (text[0] != 'd' && text[0] != 'q')) return std::nullopt;
  const bool queue = text[0] == 'q';
  text.remove_prefix(1);
  Contents::Node node;
  NodeState& n = node.node;
  if (!next_number(text, n.ino) || !next_number(text, n.parent) || !next_number(text, n.mode) ||
      !next_number(text, n.uid) || !next_number(text, n.gid))
    return std::nullopt;
  const auto name = next_field(text);
  if (!name) return std::nullopt;
  n.name = *name;
  if (!queue) return text.empty() ? std::optional(std::move(node)) : std::nullopt;
  node.queue.emplace();
  while (!text.empty()) {
    const auto attribute_name = next_field(text);
    const auto value = attribute_name ? next_field(text) : std::nullopt;
    if (!value) return std::nullopt;
    // A setting this mount does not know (a newer mount's) is left alone.
    if (const engine::Attribute* attribute = engine::find_attribute(*attribute_name); attribute && attribute->writable())
      if (attribute->parse(node.queue->settings, *value) != 0) return std::nullopt;
  }
  return node;
}

Command names(const Keys& keys, uint64_t version, std::span<const NameChange> changes) {
  Command command = call("mqfs_names", keys, "-");
  command.add(std::to_string(version));
  for (const NameChange& change : changes) {
    if (change.remove) {
      command.add("del");
      command.add(std::to_string(change.node.ino));
      continue;
    }
    const std::string node = encode_node(change.node, change.settings);
    command.add("put");
    command.add(std::to_string(change.node.ino));
    command.add(node.substr(0, 1));
    command.add(change.settings ? std::to_string(change.settings->maxmsg) : "0");
    command.add(std::string_view(node).substr(1));
  }
  return command;
}

NamesChanged parse_names_changed(const redisReply* reply) {
  NamesChanged changed;
  if (!is_array(reply) || reply->elements != 2 || reply->element[1]->type != REDIS_REPLY_INTEGER) return changed;
  changed.status = status_of(text_of(reply->element[0]));
  changed.version = static_cast<uint64_t>(reply->element[1]->integer);
  if (changed.status != Status::ok && changed.status != Status::conflict) changed.status = Status::failed;
  return changed;
}

Command names_snapshot(const Keys& keys) { return call("mqfs_names_snapshot", keys, "-"); }

Names parse_names(const redisReply* reply) {
  Names names;
  if (!is_array(reply) || reply->elements == 0 || reply->elements % 2 != 1 ||
      reply->element[0]->type != REDIS_REPLY_INTEGER)
    return names;
  names.version = static_cast<uint64_t>(reply->element[0]->integer);
  for (std::size_t i = 1; i < reply->elements; i += 2) {
    auto node = decode_node(text_of(reply->element[i + 1]));
    if (!node) return names;
    names.nodes.push_back(std::move(*node));
  }
  names.status = Status::ok;
  return names;
}

Command inodes(const Keys& keys, uint64_t count) {
  Command command = call("mqfs_inodes", keys, "-");
  command.add(std::to_string(count));
  return command;
}

Command send(const Keys& keys, const std::string& queue, std::span<const engine::Message* const> messages) {
  Command command = call("mqfs_send", keys, queue);
  add_messages(command, messages);
  return command;
}

Sent parse_sent(const redisReply* reply) {
  Sent sent;
  if (!is_array(reply) || reply->elements == 0) return sent;
  sent.status = status_of(text_of(reply->element[0]));
  for (std::size_t i = 1; i < reply->elements && sent.status != Status::failed; ++i) {
    const auto order = parse_order_key(text_of(reply->element[i]));
    if (!order) {
      sent.status = Status::failed;
    } else {
      sent.ids.push_back(order->id);
      sent.priorities.push_back(order->priority);
    }
  }
  return sent;
}

Command take(const Keys& keys, const std::string& queue, std::string_view mount, const engine::Selection& selection,
             uint32_t most, std::size_t limit, std::size_t header) {
  Command command = call("mqfs_take", keys, queue);
  command.add(mount);
  if (selection.type == 0) {
    command.add("any");
    command.add("");
  } else if (selection.type < 0) {
    command.add("upto");
    command.add(type_key(selection.bound()));
  } else {
    command.add(selection.except ? "except" : "type");
    command.add(type_key(selection.type));
  }
  command.add(std::to_string(most));
  command.add(std::to_string(limit));
  command.add(std::to_string(header));
  return command;
}

Taken parse_taken(const redisReply* reply, engine::Budget& budget) {
  Taken taken;
  if (!is_array(reply) || reply->elements == 0) return taken;
  taken.status = status_of(text_of(reply->element[0]));
  if (taken.status == Status::big) {
    if (reply->elements != 2 || reply->element[1]->type != REDIS_REPLY_INTEGER) taken.status = Status::failed;
    else taken.size = static_cast<uint32_t>(reply->element[1]->integer);
    return taken;
  }
  if (taken.status != Status::ok) return taken;
  if ((reply->elements - 1) % 3 != 0) {
    taken.status = Status::failed;
    return taken;
  }
  for (std::size_t i = 1; i < reply->elements; i += 3) {
    const redisReply* deliveries = reply->element[i + 2];
    engine::MessagePtr message = message_of(text_of(reply->element[i]), text_of(reply->element[i + 1]), budget);
    if (message && deliveries->type == REDIS_REPLY_INTEGER)
      message->set_deliveries(static_cast<uint32_t>(deliveries->integer));
    taken.messages.push_back(std::move(message));
  }
  return taken;
}

Command ack(const Keys& keys, const std::string& queue, std::string_view mount,
            std::span<const engine::Message* const> messages) {
  Command command = call("mqfs_ack", keys, queue);
  command.add(mount);
  add_order_keys(command, messages);
  return command;
}

Command release(const Keys& keys, const std::string& queue, std::string_view mount, int64_t delay_ms,
                std::span<const engine::Message* const> messages) {
  Command command = call("mqfs_release", keys, queue);
  command.add(mount);
  command.add(std::to_string(delay_ms));
  add_order_keys(command, messages);
  return command;
}

Command settle(const Keys& keys, const std::string& queue, std::string_view mount, bool acknowledge,
               int64_t delay_ms, std::span<const Order> orders) {
  Command command = call(acknowledge ? "mqfs_ack" : "mqfs_release", keys, queue);
  command.add(mount);
  if (!acknowledge) command.add(std::to_string(delay_ms));
  for (const Order& order : orders) command.add(order_key(order.priority, order.id));
  return command;
}

Command withdraw(const Keys& keys, const std::string& queue, engine::Priority priority, uint64_t id) {
  Command command = call("mqfs_withdraw", keys, queue);
  command.add(order_key(priority, id));
  return command;
}

std::optional<std::vector<bool>> parse_held(const redisReply* reply) {
  if (!is_array(reply)) return std::nullopt;
  std::vector<bool> held;
  for (std::size_t i = 0; i < reply->elements; ++i) {
    if (reply->element[i]->type != REDIS_REPLY_INTEGER) return std::nullopt;
    held.push_back(reply->element[i]->integer == 1);
  }
  return held;
}

Command dead_letter(const Keys& keys, const std::string& from, const std::string& to, std::string_view mount,
                    const engine::Message& message) {
  Command command;
  command.add("FCALL");
  command.add("mqfs_dead_letter");
  command.add("3");
  command.add(from);
  command.add(keys.prefix());
  command.add(to);
  command.add(mount);
  command.add(order_key(message.priority(), message.id()));
  return command;
}

std::optional<uint64_t> parse_dead_letter(const redisReply* reply, Status* status) {
  const std::string_view text = text_of(reply);
  if (const auto order = parse_order_key(text)) {
    *status = Status::ok;
    return order->id;
  }
  *status = text == "lost" ? Status::expired : text == "gone" ? Status::gone : Status::failed;
  return std::nullopt;
}

Command subscribe(const Keys& keys, uint64_t topic, const std::string& subscription, std::string_view mount,
                  int64_t maxmsg) {
  Command command = call("mqfs_subscribe", keys, keys.queue(topic));
  command.add(subscription);
  command.add(mount);
  command.add(std::to_string(maxmsg));
  return command;
}

Command unsubscribe(const Keys& keys, uint64_t topic, const std::string& subscription, std::string_view mount) {
  Command command = call("mqfs_unsubscribe", keys, keys.queue(topic));
  command.add(subscription);
  command.add(mount);
  return command;
}

Command publish(const Keys& keys, uint64_t topic, uint64_t version, engine::Overflow overflow,
                std::span<const uint64_t> subscribers, std::span<const engine::Message* const> messages) {
  Command command = call("mqfs_publish", keys, keys.queue(topic));
  command.add(std::to_string(version));
  command.add(engine::to_string(overflow));
  command.add(std::to_string(subscribers.size()));
  for (uint64_t queue : subscribers) command.add(std::to_string(queue));
  add_messages(command, messages);
  return command;
}

Published parse_published(const redisReply* reply) {
  Published published;
  if (!is_array(reply) || reply->elements == 0) return published;
  published.status = status_of(text_of(reply->element[0]));
  if (published.status == Status::ok || published.status == Status::conflict) {
    if (reply->elements != 2 || reply->element[1]->type != REDIS_REPLY_INTEGER) published.status = Status::failed;
    else published.count = static_cast<uint64_t>(reply->element[1]->integer);
  }
  return published;
}

Command heartbeat(const Keys& keys, std::string_view mount, int64_t lease_ms, std::size_t most) {
  Command command = call("mqfs_heartbeat", keys, "-");
  command.add(mount);
  command.add(std::to_string(lease_ms));
  command.add(std::to_string(most));
  return command;
}

Command purge(const Keys& keys, const std::string& queue) { return call("mqfs_purge", keys, queue); }

std::optional<long long> parse_integer(const redisReply* reply) {
  if (!reply || reply->type != REDIS_REPLY_INTEGER) return std::nullopt;
  return reply->integer;
}

Command snapshot(const Keys& keys, const std::string& queue, std::string_view mount, uint64_t token) {
  Command command = call("mqfs_snapshot", keys, queue);
  if (!mount.empty()) {
    command.add(mount);
    command.add(std::to_string(token));
  }
  return command;
}

Snapshot parse_snapshot(const redisReply* reply, engine::Budget& budget) {
  Snapshot snapshot;
  if (!is_array(reply)) return snapshot;
  if (reply->elements == 0) {
    snapshot.status = Status::gone;
    return snapshot;
  }
  constexpr std::size_t kHeader = 5;  // maxmsg, sent, received, dead_lettered, dropped
  if (reply->elements < kHeader || (reply->elements - kHeader) % 4 != 0) return snapshot;
  const auto number = [&](std::size_t i) {
    int64_t value = 0;
    const std::string_view text = text_of(reply->element[i]);
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
  };
  snapshot.maxmsg = number(0);
  snapshot.sent = static_cast<uint64_t>(number(1));
  snapshot.received = static_cast<uint64_t>(number(2));
  snapshot.dead_lettered = static_cast<uint64_t>(number(3));
  snapshot.dropped = static_cast<uint64_t>(number(4));
  for (std::size_t i = kHeader; i < reply->elements; i += 4) {
    engine::MessagePtr message = message_of(text_of(reply->element[i]), text_of(reply->element[i + 1]), budget);
    if (!message) return snapshot;
    if (const auto deliveries = parse_integer(reply->element[i + 2]))
      message->set_deliveries(static_cast<uint32_t>(*deliveries));
    const std::string_view holder = text_of(reply->element[i + 3]);
    if (holder.empty())
      snapshot.queued.push_back(std::move(message));
    else
      snapshot.held.push_back({std::move(message), holder == "-" ? std::string() : std::string(holder)});
  }
  snapshot.status = Status::ok;
  return snapshot;
}

std::optional<Event> parse_event(const Keys& keys, std::string_view payload, engine::Budget& budget) {
  if (payload.starts_with("n ")) {  // "n VERSION"
    Event event{};
    event.kind = Event::Kind::names;
    const std::string_view version = payload.substr(2);
    const auto [end, error] = std::from_chars(version.data(), version.data() + version.size(), event.count);
    if (error != std::errc{} || end != version.data() + version.size()) return std::nullopt;
    return event;
  }
  // "K BASE[ REST]", BASE being P:q:INODE or P:d:MOUNT:N
  const std::string named = keys.prefix() + ":q:";
  const std::string unnamed = keys.prefix() + ":d:";
  if (payload.size() < 2 || payload[1] != ' ') return std::nullopt;
  std::string_view rest = payload.substr(2);
  const std::size_t space = rest.find(' ');
  const std::string_view base = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  if ((!base.starts_with(named) || base.size() == named.size()) &&
      (!base.starts_with(unnamed) || base.size() == unnamed.size()))
    return std::nullopt;

  Event event{};
  event.queue = base;
  switch (payload[0]) {
    case 's': {
      event.kind = Event::Kind::queued;
      if (rest.size() < kOrderKeyDigits + 1) return std::nullopt;
      event.message = message_of(rest.substr(0, kOrderKeyDigits), rest.substr(kOrderKeyDigits + 1), budget);
      if (!event.message) return std::nullopt;
      event.ids.push_back(event.message->id());
      return event;
    }
    case 'S':  // [ORDERKEY LENGTH VALUE]...
      event.kind = Event::Kind::queued;
      while (!rest.empty()) {
        if (rest.size() < kOrderKeyDigits + 8) return std::nullopt;
        uint32_t length = 0;
        const std::string_view digits = rest.substr(kOrderKeyDigits, 8);
        const auto [e, err] = std::from_chars(digits.data(), digits.data() + 8, length, 16);
        if (err != std::errc{} || e != digits.data() + 8 || rest.size() - kOrderKeyDigits - 8 < length)
          return std::nullopt;
        // A message the budget has no room for is left out: the copy
        // misses it until it is read again.
        if (engine::MessagePtr m = message_of(rest.substr(0, kOrderKeyDigits),
                                              rest.substr(kOrderKeyDigits + 8, length), budget)) {
          event.ids.push_back(m->id());
          event.messages.push_back(std::move(m));
        }
        rest.remove_prefix(kOrderKeyDigits + 8 + length);
      }
      return event;
    case 't':
      event.kind = Event::Kind::taken;
      while (!rest.empty()) {
        const std::size_t next = rest.find(' ');
        const auto order = parse_order_key(rest.substr(0, next));
        if (!order) return std::nullopt;
        event.ids.push_back(order->id);
        rest = next == std::string_view::npos ? std::string_view{} : rest.substr(next + 1);
      }
      return event;
    case 'a': {
      event.kind = Event::Kind::acknowledged;
      const auto [e, err] = std::from_chars(rest.data(), rest.data() + rest.size(), event.count);
      if (err != std::errc{} || e != rest.data() + rest.size()) return std::nullopt;
      return event;
    }
    case 'p': event.kind = Event::Kind::purged; return rest.empty() ? std::optional<Event>(std::move(event)) : std::nullopt;
    case 'x': event.kind = Event::Kind::removed; return rest.empty() ? std::optional<Event>(std::move(event)) : std::nullopt;
    case 'c': event.kind = Event::Kind::configured; return rest.empty() ? std::optional<Event>(std::move(event)) : std::nullopt;
    case 'r': {  // "MOUNT TOKEN"
      event.kind = Event::Kind::read;
      const std::size_t space = rest.find(' ');
      if (space == std::string_view::npos || space == 0) return std::nullopt;
      event.mount = rest.substr(0, space);
      const std::string_view token = rest.substr(space + 1);
      const auto [e, err] = std::from_chars(token.data(), token.data() + token.size(), event.count);
      if (err != std::errc{} || e != token.data() + token.size()) return std::nullopt;
      return event;
    }
  }
  return std::nullopt;
}

}  // namespace mqfs::store::redis
