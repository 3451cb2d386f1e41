#include "engine/attributes.hpp"

#include <cerrno>
#include <charconv>

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

std::string_view to_string(ReadMode mode) { return mode == ReadMode::stream ? "stream" : "message"; }

std::string_view to_string(Framing framing) {
  switch (framing) {
    case Framing::line: return "line";
    case Framing::u32: return "u32";
    case Framing::file: return "file";
    case Framing::none: break;
  }
  return "none";
}

static std::string_view trim_newline(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return text;
}

std::optional<ReadMode> parse_read_mode(std::string_view text) {
  text = trim_newline(text);
  if (text == "message") return ReadMode::message;
  if (text == "stream") return ReadMode::stream;
  return std::nullopt;
}

std::optional<Framing> parse_framing(std::string_view text) {
  text = trim_newline(text);
  if (text == "none") return Framing::none;
  if (text == "line") return Framing::line;
  if (text == "u32") return Framing::u32;
  if (text == "file") return Framing::file;
  return std::nullopt;
}

namespace {

// An integer setting held in Settings::*Field, valid in [Min, Max].
template <int64_t Settings::*Field, int64_t Min, int64_t Max>
constexpr Attribute integer(std::string_view name) {
  return Attribute{
      name,
      [](Settings& s, std::string_view text) {
        auto value = parse_integer(text, Min, Max);
        if (!value) return -EINVAL;
        s.*Field = *value;
        return 0;
      },
      [](Settings& to, const Settings& from) { to.*Field = from.*Field; },
      [](const Queue& q) { return std::to_string(q.settings().*Field); },
  };
}

// A setting that is one of a few words (read mode, framing).
template <auto Field, auto Parse>
constexpr Attribute word(std::string_view name) {
  return Attribute{
      name,
      [](Settings& s, std::string_view text) {
        auto value = Parse(text);
        if (!value) return -EINVAL;
        s.*Field = *value;
        return 0;
      },
      [](Settings& to, const Settings& from) { to.*Field = from.*Field; },
      [](const Queue& q) { return std::string(to_string(q.settings().*Field)); },
  };
}

// A read-only counter of the queue.
template <class Get>
constexpr Attribute counter(std::string_view name, Get) {
  return Attribute{name, nullptr, nullptr, [](const Queue& q) { return std::to_string(Get{}(q)); }};
}

const Attribute kAttributes[] = {
    integer<&Settings::priority, 0, kMaxPriority>("priority"),
    integer<&Settings::maxmsg, 1, kMaxMaxmsg>("maxmsg"),
    integer<&Settings::msgsize, 1, kMaxMsgsize>("msgsize"),
    word<&Settings::read_mode, parse_read_mode>("read_mode"),
    integer<&Settings::recv_timeout_ms, 0, kMaxTimeoutMs>("recv_timeout_ms"),
    integer<&Settings::send_timeout_ms, 0, kMaxTimeoutMs>("send_timeout_ms"),
    word<&Settings::framing, parse_framing>("framing"),
    counter("curmsgs", [](const Queue& q) { return q.curmsgs(); }),
    counter("curbytes", [](const Queue& q) { return q.curbytes(); }),
    counter("sent", [](const Queue& q) { return q.sent(); }),
    counter("received", [](const Queue& q) { return q.received(); }),
    counter("lspid", [](const Queue& q) { return q.lspid(); }),
    counter("lrpid", [](const Queue& q) { return q.lrpid(); }),
};

}  // namespace

std::span<const Attribute> attributes() { return kAttributes; }

const Attribute* find_attribute(std::string_view name) {
  for (const Attribute& a : kAttributes)
    if (a.name == name) return &a;
  return nullptr;
}

}  // namespace mqfs::engine
