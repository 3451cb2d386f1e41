// parse_fuzz: the mount options and the attribute values.
//
//  - The input, split at NUL bytes, is a command line (argv[1..]) for
//    mqfs::daemon::parse_options. An accepted command line gives default
//    settings within the attributes' ranges, positive caps, a known log
//    level, an absolute store directory if any, and sync=disk only with one.
//  - The input, each NUL-separated piece and each piece's part after '=' are
//    values for every writable attribute of the registry (engine/attributes.hpp),
//    parsed into two different Settings. A value is accepted exactly when the
//    table in README.md says so; a refused value (-EINVAL) leaves the settings
//    unchanged; an accepted one changes only its own setting (copy() of the
//    old value undoes it), and prints back (Attribute::print) to a text that
//    parses to the same settings.
//  - engine::parse_integer, parse_read_mode and parse_framing against a
//    reference written here: a strict decimal with one optional trailing
//    newline, within [min, max]; an accepted value is in range and its
//    decimal parses back to it.
#include <fuse_log.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/options.hpp"
#include "engine/attributes.hpp"
#include "engine/queue.hpp"
#include "engine/settings.hpp"
#include "check.hpp"

namespace mqfs::engine {
namespace {

std::string_view without_newline(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return text;
}

// A strict decimal integer in [min, max], written apart from parse_integer.
std::optional<int64_t> reference_integer(std::string_view text, int64_t min, int64_t max) {
  text = without_newline(text);
  const bool negative = !text.empty() && text.front() == '-';
  if (negative) text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  uint64_t magnitude = 0;
  bool overflow = false;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (magnitude > (UINT64_MAX - digit) / 10) overflow = true;
    magnitude = magnitude * 10 + digit;
  }
  const uint64_t limit = negative ? uint64_t{1} << 63 : uint64_t{INT64_MAX};
  if (overflow || magnitude > limit) return std::nullopt;
  const int64_t value = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
  if (value < min || value > max) return std::nullopt;
  return value;
}

bool same(const Settings& a, const Settings& b) {
  return a.priority == b.priority && a.maxmsg == b.maxmsg && a.msgsize == b.msgsize && a.read_mode == b.read_mode &&
         a.recv_timeout_ms == b.recv_timeout_ms && a.send_timeout_ms == b.send_timeout_ms && a.framing == b.framing &&
         a.lease_ms == b.lease_ms && a.retry_delay_ms == b.retry_delay_ms && a.max_deliveries == b.max_deliveries &&
         a.dead_letter == b.dead_letter;
}

bool in_range(const Settings& s) {
  return s.priority >= 0 && s.priority <= kMaxPriority && s.maxmsg >= 1 && s.maxmsg <= kMaxMaxmsg &&
         s.msgsize >= 1 && s.msgsize <= kMaxMsgsize && s.recv_timeout_ms >= 0 && s.recv_timeout_ms <= kMaxTimeoutMs &&
         s.send_timeout_ms >= 0 && s.send_timeout_ms <= kMaxTimeoutMs && s.lease_ms >= 1 &&
         s.lease_ms <= kMaxTimeoutMs && s.retry_delay_ms >= 0 && s.retry_delay_ms <= kMaxTimeoutMs &&
         s.max_deliveries >= 0 && s.max_deliveries <= kMaxDeliveries && s.dead_letter.size() <= kMaxPathLength &&
         (s.dead_letter.empty() || s.dead_letter.front() != '/');
}

// Whether README.md's table accepts `text` for the attribute `name`; nullopt
// for an attribute it does not know.
std::optional<bool> documented(std::string_view name, std::string_view text) {
  struct Range {
    std::string_view name;
    int64_t min, max;
  };
  static constexpr Range kRanges[] = {{"priority", 0, kMaxPriority}, {"maxmsg", 1, kMaxMaxmsg},
                                      {"msgsize", 1, kMaxMsgsize},   {"recv_timeout_ms", 0, kMaxTimeoutMs},
                                      {"send_timeout_ms", 0, kMaxTimeoutMs}};
  for (const Range& r : kRanges)
    if (r.name == name) return reference_integer(text, r.min, r.max).has_value();
  const std::string_view word = without_newline(text);
  if (name == "read_mode") return word == "message" || word == "stream";
  if (name == "framing") return word == "none" || word == "line" || word == "u32" || word == "file";
  return std::nullopt;
}

Budget budget{Limits{}};
Timeouts timeouts;

void check_attribute(const Attribute& a, const Settings& before, std::string_view text) {
  Settings s = before;
  const int status = a.parse(s, text);
  if (auto expected = documented(a.name, text)) CHECK((status == 0) == *expected);
  if (status != 0) {
    CHECK(status == -EINVAL && same(s, before));
    return;
  }
  CHECK(in_range(s));
  Settings undone = s;
  a.copy(undone, before);
  CHECK(same(undone, before));  // only its own setting changed
  Settings copied = before;
  a.copy(copied, s);
  CHECK(same(copied, s));

  const Queue queue(budget, timeouts, s);
  const std::string printed = a.print(queue);
  Settings again = before;
  CHECK(a.parse(again, printed) == 0 && same(again, s));
}

void check_value(std::string_view text) {
  const Settings other{.priority = 7, .maxmsg = 3, .msgsize = 100, .read_mode = ReadMode::stream,
                       .recv_timeout_ms = 5, .send_timeout_ms = 6, .framing = Framing::u32};
  for (const Attribute& a : attributes()) {
    if (!a.writable()) continue;
    check_attribute(a, Settings{}, text);
    check_attribute(a, other, text);
  }

  struct Range {
    int64_t min, max;
  };
  static constexpr Range kRanges[] = {{0, 10},        {-5, 5},         {1, kMaxMaxmsg},       {0, kMaxTimeoutMs},
                                      {1, INT64_MAX / 1024}, {INT64_MIN, INT64_MAX}, {INT64_MIN, -1}};
  for (const Range& r : kRanges) {
    const auto value = parse_integer(text, r.min, r.max);
    CHECK(value == reference_integer(text, r.min, r.max));
    if (value) {
      CHECK(*value >= r.min && *value <= r.max);
      CHECK(parse_integer(std::to_string(*value), r.min, r.max) == value);
    }
  }

  const std::string_view word = without_newline(text);
  const auto mode = parse_read_mode(text);
  CHECK(mode.has_value() == (word == "message" || word == "stream"));
  if (mode) CHECK(to_string(*mode) == word);
  const auto framing = parse_framing(text);
  CHECK(framing.has_value() == (word == "none" || word == "line" || word == "u32" || word == "file"));
  if (framing) CHECK(to_string(*framing) == word);
}

void check_command_line(const std::vector<std::string>& pieces) {
  std::string program = "mqfs";
  std::vector<char*> argv{program.data()};
  for (const std::string& piece : pieces) argv.push_back(const_cast<char*>(piece.c_str()));
  argv.push_back(nullptr);
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size() - 1), argv.data());
  const auto options = daemon::parse_options(args);
  fuse_opt_free_args(&args);
  if (!options) return;
  const fuse::Config& config = options->config;
  CHECK(in_range(config.defaults));
  CHECK(config.max_queues >= 1 && config.max_bytes >= 1 && config.max_open_files >= 1 && config.max_waiters >= 1);
  const std::string& level = options->log_level;
  CHECK(level == "trace" || level == "debug" || level == "info" || level == "warn" || level == "error" ||
        level == "off");
  CHECK(options->store_dir.empty() || options->store_dir.front() == '/');
  CHECK(!options->sync_disk || !options->store_dir.empty());  // sync= only with store=
}

}  // namespace
}  // namespace mqfs::engine

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  fuse_set_log_func([](fuse_log_level, const char*, va_list) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> pieces;
  for (std::size_t at = 0; at <= input.size() && pieces.size() < 16;) {
    const std::size_t end = std::min(input.find('\0', at), input.size());
    pieces.push_back(input.substr(at, end - at));
    at = end + 1;
  }
  mqfs::engine::check_command_line(pieces);
  mqfs::engine::check_value(input);
  for (const std::string& piece : pieces) {
    if (pieces.size() > 1) mqfs::engine::check_value(piece);
    if (const std::size_t eq = piece.find('='); eq != std::string::npos)
      mqfs::engine::check_value(piece.substr(eq + 1));
  }
  return 0;
}
