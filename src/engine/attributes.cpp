#include "engine/attributes.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <utility>

#include "engine/namespace.hpp"
#include "engine/queue.hpp"

namespace mqfs::engine {

std::optional<int64_t> parse_integer(std::string_view text, int64_t min, int64_t max) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty() || text.front() == '+') return std::nullopt;
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value < min || value > max) return std::nullopt;
  return value;
}

static std::string_view trim_newline(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return text;
}

namespace {

// The words of a setting that is one of a few, each with its value.
template <class Value>
using Word = std::pair<std::string_view, Value>;

template <class Value, std::size_t N>
std::optional<Value> parse_word(std::string_view text, const Word<Value> (&words)[N]) {
  text = trim_newline(text);
  for (const auto& [word, value] : words)
    if (text == word) return value;
  return std::nullopt;
}

template <class Value, std::size_t N>
std::string_view word_of(Value value, const Word<Value> (&words)[N]) {
  for (const auto& [word, of] : words)
    if (of == value) return word;
  return words[0].first;
}

// A queue's read mode is never peek (a file's only): it prints as message.
constexpr Word<ReadMode> kReadModes[] = {{"message", ReadMode::message}, {"stream", ReadMode::stream}};
constexpr Word<Framing> kFramings[] = {
    {"none", Framing::none}, {"line", Framing::line}, {"u32", Framing::u32}, {"file", Framing::file}};
constexpr Word<QueueKind> kKinds[] = {{"queue", QueueKind::queue}, {"topic", QueueKind::topic}};
constexpr Word<Overflow> kOverflows[] = {{"block", Overflow::block}, {"drop", Overflow::drop}};

}  // namespace

std::string_view to_string(ReadMode mode) { return word_of(mode, kReadModes); }
std::string_view to_string(Framing framing) { return word_of(framing, kFramings); }
std::string_view to_string(QueueKind kind) { return word_of(kind, kKinds); }
std::string_view to_string(Overflow overflow) { return word_of(overflow, kOverflows); }
std::optional<ReadMode> parse_read_mode(std::string_view text) { return parse_word(text, kReadModes); }
std::optional<Framing> parse_framing(std::string_view text) { return parse_word(text, kFramings); }
std::optional<QueueKind> parse_kind(std::string_view text) { return parse_word(text, kKinds); }
std::optional<Overflow> parse_overflow(std::string_view text) { return parse_word(text, kOverflows); }

namespace {

// An integer setting held in Settings::*Field, valid in [Min, Max].
template <int64_t Settings::*Field, int64_t Min, int64_t Max>
constexpr Attribute integer(std::string_view name, std::string_view help) {
  return Attribute{
      .name = name,
      .parse = [](Settings& s, std::string_view text) {
        auto value = parse_integer(text, Min, Max);
        if (!value) return -EINVAL;
        s.*Field = *value;
        return 0;
      },
      .print_setting = [](const Settings& s) { return std::to_string(s.*Field); },
      .copy = [](Settings& to, const Settings& from) { to.*Field = from.*Field; },
      .value = "N",
      .help = help,
  };
}

// A setting's value as text: a word, or the text itself.
template <class Value>
std::string text_of(const Value& value) {
  return std::string(to_string(value));
}
std::string text_of(const std::string& value) { return value; }
// A list of paths: each from the root, separated by commas.
std::string text_of(const std::vector<std::string>& paths) {
  std::string text;
  for (const std::string& path : paths) {
    if (!text.empty()) text += ',';
    text += '/' + path;
  }
  return text;
}

// A setting written as text: one of a few words (read mode, framing), or a
// path. Parse gives the value, or nothing when the text is not one.
template <auto Field, auto Parse>
constexpr Attribute text(std::string_view name, std::string_view value, std::string_view help) {
  return Attribute{
      .name = name,
      .parse = [](Settings& s, std::string_view input) {
        auto parsed = Parse(input);
        if (!parsed) return -EINVAL;
        s.*Field = std::move(*parsed);
        return 0;
      },
      .print_setting = [](const Settings& s) { return text_of(s.*Field); },
      .copy = [](Settings& to, const Settings& from) { to.*Field = from.*Field; },
      .value = value,
      .help = help,
  };
}

// A queue's path from the mount root ("" for none): stored without a
// leading '/', each component a name (not empty, ".", or "..") without a
// newline, so that it prints back as it parses.
std::optional<std::string> parse_queue_path(std::string_view text) {
  text = trim_newline(text);
  if (!text.empty() && text.front() == '/') {
    text.remove_prefix(1);
    if (text.empty()) return std::nullopt;  // the root is no queue
  }
  if (text.size() > kMaxPathLength || text.find_first_of(std::string_view("\0\n", 2)) != std::string_view::npos)
    return std::nullopt;
  for (std::string_view rest = text; !rest.empty();) {
    const std::size_t slash = rest.find('/');
    const std::string_view name = rest.substr(0, slash);
    if (name.empty() || name == "." || name == ".." || name.size() > kNameMax) return std::nullopt;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
    if (rest.empty()) return std::nullopt;  // a trailing '/'
  }
  return std::string(text);
}

// The topics a queue subscribes to: paths separated by commas ("" for
// none), each kept once, in the order given.
std::optional<std::vector<std::string>> parse_topic_paths(std::string_view text) {
  text = trim_newline(text);
  std::vector<std::string> paths;
  if (text.empty()) return paths;
  if (text.find('\n') != std::string_view::npos) return std::nullopt;
  for (;;) {
    const std::size_t comma = text.find(',');
    auto path = parse_queue_path(text.substr(0, comma));
    if (!path || path->empty()) return std::nullopt;
    if (std::find(paths.begin(), paths.end(), *path) == paths.end()) paths.push_back(std::move(*path));
    if (comma == std::string_view::npos) return paths;
    text.remove_prefix(comma + 1);
  }
}

// A read-only counter of the queue.
template <class Get>
constexpr Attribute counter(std::string_view name, Get) {
  return Attribute{.name = name, .count = [](const Queue& q) { return std::to_string(Get{}(q)); }};
}

const Attribute kAttributes[] = {
    integer<&Settings::priority, 0, kMaxPriority>(
        "priority", "priority of messages sent without their own (0-32767, default 0)"),
    integer<&Settings::type, 1, kMaxType>("type", "type of messages sent without their own (1-9223372036854775807, "
                                                  "default 1)"),
    integer<&Settings::maxmsg, 1, kMaxMaxmsg>("maxmsg", "most messages a queue holds (default 10)"),
    integer<&Settings::msgsize, 1, kMaxMsgsize>("msgsize", "largest message in bytes (default 8192, at most 1044480)"),
    text<&Settings::read_mode, parse_read_mode>("read_mode", "MODE",
                                                "message (one message per open, default) or stream"),
    integer<&Settings::recv_timeout_ms, 0, kMaxTimeoutMs>("recv_timeout_ms",
                                                          "longest wait of a blocked read (default 0: no limit)"),
    integer<&Settings::send_timeout_ms, 0, kMaxTimeoutMs>("send_timeout_ms",
                                                          "longest wait of a blocked write (default 0: no limit)"),
    text<&Settings::framing, parse_framing>("framing", "MODE",
                                            "none (default), line or u32: many messages per write and read; "
                                            "file: all one open file writes, up to its close, is one message"),
    integer<&Settings::lease_ms, 1, kMaxTimeoutMs>(
        "lease_ms", "how long a message read with explicit acknowledgement stays leased (default 30000)"),
    integer<&Settings::retry_delay_ms, 0, kMaxTimeoutMs>(
        "retry_delay_ms", "how long a returned message waits before it is queued again (default 0)"),
    integer<&Settings::max_deliveries, 0, kMaxDeliveries>(
        "max_deliveries", "deliveries before a returned message goes to dead_letter (default 0: no limit)"),
    text<&Settings::dead_letter, parse_queue_path>(
        "dead_letter", "PATH", "the queue, by its path from the mount root, that takes dead letters (default none)"),
    text<&Settings::kind, parse_kind>("kind", "KIND",
                                      "queue (default) or topic: each message goes to every subscriber"),
    text<&Settings::overflow, parse_overflow>(
        "overflow", "MODE", "a topic's full subscriber: block (default) holds the publisher, drop misses the message"),
    text<&Settings::subscribe, parse_topic_paths>(
        "subscribe", "PATHS", "topics, by paths from the mount root separated by commas, whose messages a queue "
                              "keeps a copy of (default none)"),
    counter("curmsgs", [](const Queue& q) { return q.curmsgs(); }),
    counter("curbytes", [](const Queue& q) { return q.curbytes(); }),
    counter("sent", [](const Queue& q) { return q.sent(); }),
    counter("received", [](const Queue& q) { return q.received(); }),
    counter("lspid", [](const Queue& q) { return q.lspid(); }),
    counter("lrpid", [](const Queue& q) { return q.lrpid(); }),
    counter("inflight", [](const Queue& q) { return q.inflight(); }),
    counter("dead_lettered", [](const Queue& q) { return q.dead_lettered(); }),
    counter("waiting_readers", [](const Queue& q) { return q.receivers_waiting(); }),
    counter("waiting_writers", [](const Queue& q) { return q.senders_waiting(); }),
    counter("oldest_ms", [](const Queue& q) { return q.oldest_ms(); }),
    counter("dropped", [](const Queue& q) { return q.dropped(); }),
    counter("subscribers", [](const Queue& q) { return q.subscribers(); }),
};

}  // namespace

std::string Attribute::print(const Queue& queue) const {
  return writable() ? print_setting(queue.settings()) : count(queue);
}

std::span<const Attribute> attributes() { return kAttributes; }

const Attribute* find_attribute(std::string_view name) {
  for (const Attribute& a : kAttributes)
    if (a.name == name) return &a;
  return nullptr;
}

}  // namespace mqfs::engine
