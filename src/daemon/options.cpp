#include "daemon/options.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "engine/attributes.hpp"

namespace mqfs::daemon {

namespace {

// A size with an optional k, M or G (powers of 1024).
std::optional<uint64_t> parse_size(std::string_view text) {
  uint64_t scale = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k': case 'K': scale = uint64_t{1} << 10; break;
      case 'm': case 'M': scale = uint64_t{1} << 20; break;
      case 'g': case 'G': scale = uint64_t{1} << 30; break;
    }
    if (scale != 1) text.remove_suffix(1);
  }
  auto value = engine::parse_integer(text, 1, INT64_MAX / static_cast<int64_t>(scale));
  if (!value) return std::nullopt;
  return static_cast<uint64_t>(*value) * scale;
}

// The largest suffix that divides `size` exactly: 1G, not 1073741824.
std::string print_size(uint64_t size) {
  for (auto [shift, suffix] : {std::pair{30, 'G'}, std::pair{20, 'M'}, std::pair{10, 'k'}})
    if (size % (uint64_t{1} << shift) == 0) return std::to_string(size >> shift) + suffix;
  return std::to_string(size);
}

// A writable attribute as the mount option that sets it for every new queue.
Option queue_default(const engine::Attribute& attribute) {
  return Option{
      .name = attribute.name,
      .value = attribute.value,
      .help = attribute.help,
      .parse = [&attribute](Options& o, std::string_view text) -> std::string_view {
        return attribute.parse(o.config.defaults, text) < 0 ? "invalid value" : "";
      },
      .print = [&attribute](const Options& o) { return attribute.print_setting(o.config.defaults); },
      .queue_default = true,
  };
}

// A cap of the mount: a positive number, k/M/G suffixes allowed; printed with
// one if `Sized`.
template <uint64_t fuse::Config::*Field, bool Sized = false>
Option cap(std::string_view name, std::string_view help) {
  return Option{
      .name = name,
      .value = Sized ? "SIZE" : "N",
      .help = help,
      .parse = [](Options& o, std::string_view text) -> std::string_view {
        auto size = parse_size(text);
        if (!size) return "expected a positive number";
        o.config.*Field = *size;
        return "";
      },
      .print = [](const Options& o) {
        return Sized ? print_size(o.config.*Field) : std::to_string(o.config.*Field);
      },
  };
}

std::string_view parse_log_level(Options& o, std::string_view text) {
  for (std::string_view level : {"trace", "debug", "info", "warn", "error", "off"}) {
    if (text == level) {
      o.log_level = text;
      return "";
    }
  }
  return "expected trace, debug, info, warn, error or off";
}

std::string_view parse_store(Options& o, std::string_view text) {
  if (text.empty()) return "expected a directory";
  // Absolute, because daemonizing moves the daemon to /.
  std::error_code error;
  const std::filesystem::path dir = std::filesystem::absolute(text, error);
  if (error) return "cannot make the path absolute";
  o.store_dir = dir.string();
  return "";
}

std::string_view parse_sync(Options& o, std::string_view text) {
  if (text != "os" && text != "disk") return "expected os or disk";
  o.sync_disk = text == "disk";
  return "";
}

// A duration of the Redis store in milliseconds, 1 ms to a day.
template <int64_t Options::*Field>
Option milliseconds(std::string_view name, std::string_view help) {
  return Option{
      .name = name,
      .value = "MS",
      .help = help,
      .parse = [](Options& o, std::string_view text) -> std::string_view {
        auto ms = engine::parse_integer(text, 1, 86'400'000);
        if (!ms) return "expected milliseconds, 1 to 86400000";
        o.*Field = *ms;
        return "";
      },
      .print = [](const Options& o) { return std::to_string(o.*Field); },
      .needs = "redis",
  };
}

std::string_view parse_redis_prefix(Options& o, std::string_view text) {
  // Events name keys between spaces: a prefix has none.
  if (text.empty() || text.size() > 100 ||
      std::any_of(text.begin(), text.end(), [](char c) { return c <= ' ' || c == 127; }))
    return "expected 1 to 100 characters, no spaces or control characters";
  o.redis_prefix = text;
  return "";
}

std::vector<Option> make_options() {
  std::vector<Option> all;
  for (const engine::Attribute& attribute : engine::attributes())
    if (attribute.writable()) all.push_back(queue_default(attribute));
  all.push_back(cap<&fuse::Config::max_queues>("max_queues", "most queues and directories (default 65536)"));
  all.push_back(cap<&fuse::Config::max_bytes, true>(
      "max_bytes",
      "most memory for messages in all queues, k/M/G suffixes (default 1G; each message counts its bytes plus "
      "136 of bookkeeping)"));
  all.push_back(cap<&fuse::Config::max_open_files>("max_open_files",
                                                   "most open files of all queues (default 65536; more: ENFILE)"));
  all.push_back(cap<&fuse::Config::max_waiters>(
      "max_waiters", "most reads and writes blocked at once (default 65536; more: EAGAIN)"));
  all.push_back(Option{
      .name = "log_level",
      .value = "LEVEL",
      .help = "trace, debug, info (default), warn, error or off",
      .parse = parse_log_level,
      .print = [](const Options& o) { return o.log_level; },
  });
  all.push_back(Option{
      .name = "log_file",
      .value = "PATH",
      .help = "log to PATH (default: stderr with -f, else syslog)",
      .parse = [](Options& o, std::string_view text) -> std::string_view {
        o.log_file = text;
        return "";
      },
      .print = [](const Options& o) { return o.log_file; },
  });
  all.push_back(Option{
      .name = "store",
      .value = "DIR",
      .help = "keep queues and messages in DIR (created 0700), so they survive a restart or crash "
              "(default: in memory)",
      .parse = parse_store,
      .print = [](const Options& o) { return o.store_dir; },
  });
  all.push_back(Option{
      .name = "sync",
      .value = "MODE",
      .help = "os (default): every change reaches the kernel before its reply; disk: a write returns once its "
              "message is on disk (fdatasync, shared by concurrent writers)",
      .parse = parse_sync,
      .print = [](const Options& o) { return std::string(o.sync_disk ? "disk" : "os"); },
      .needs = "store",
  });
  all.push_back(Option{
      .name = "redis",
      .value = "URL",
      .help = "keep queues and messages in Redis, shared by every mount with the same Redis and redis_prefix, on "
              "any host: redis://[:PASSWORD@]HOST[:PORT][/DB] or sentinel://[:PASSWORD@]HOST[:PORT][,...]/MASTER "
              "(a password is required unless HOST is this machine)",
      .parse = [](Options& o, std::string_view text) -> std::string_view {
        if (text.empty()) return "expected a URL";
        o.redis_url = text;
        return "";
      },
      .print = [](const Options& o) { return o.redis_url; },
  });
  all.push_back(Option{
      .name = "redis_prefix",
      .value = "NAME",
      .help = "the filesystem's name in Redis, so that one Redis holds several (default mqfs)",
      .parse = parse_redis_prefix,
      .print = [](const Options& o) { return o.redis_prefix; },
      .needs = "redis",
  });
  all.push_back(milliseconds<&Options::redis_lease_ms>(
      "redis_lease_ms", "how long after this daemon stops the messages it held go back to their queues (default 10000)"));
  all.push_back(milliseconds<&Options::redis_timeout_ms>(
      "redis_timeout_ms", "how long a call waits for Redis before it fails with EIO (default 5000)"));
  return all;
}

struct Parsing {
  Options options;
  std::vector<std::string> positional;
  std::vector<std::pair<const Option*, std::string>> given;  // each option as written
  bool failed = false;
};

void fail(Parsing& p, std::string_view option, std::string_view why) {
  spdlog::error("bad option '{}': {}", option, why);
  p.failed = true;
}

bool was_given(const Parsing& p, std::string_view name) {
  return std::any_of(p.given.begin(), p.given.end(), [&](const auto& g) { return g.first->name == name; });
}

// fuse_opt_parse's callback; `key` is the option's place in the registry.
int process(void* data, const char* arg, int key, fuse_args*) {
  auto& p = *static_cast<Parsing*>(data);
  if (key == FUSE_OPT_KEY_NONOPT) {
    p.positional.emplace_back(arg);
    return 0;
  }
  if (key == FUSE_OPT_KEY_OPT) return 1;  // FUSE's own

  const std::string_view option(arg);
  const Option& entry = options()[static_cast<size_t>(key)];
  const std::string_view why = entry.parse(p.options, option.substr(option.find('=') + 1));
  if (!why.empty()) fail(p, option, why);
  p.given.emplace_back(&entry, option);
  return p.failed ? -1 : 0;
}

// Refuses an option given without the one it needs (sync without store).
void check_needs(Parsing& p) {
  for (const auto& [entry, text] : p.given) {
    if (entry->needs.empty() || was_given(p, entry->needs)) continue;
    const Option* needed = find_option(entry->needs);
    fail(p, text, fmt::format("only valid together with {}={}", needed->name, needed->value));
    return;
  }
}

// "    NAME=VALUE           help", the help wrapped at 100 columns under itself.
void append_help(std::string& out, const Option& option) {
  constexpr size_t kColumn = 25, kWidth = 100;
  std::string line = fmt::format("    {}={}", option.name, option.value);
  line.resize(std::max(line.size() + 1, kColumn), ' ');
  bool line_empty = true;
  std::string_view rest = option.help;
  while (!rest.empty()) {
    const size_t space = rest.find(' ');
    const std::string_view word = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    if (!line_empty && line.size() + 1 + word.size() > kWidth) {
      out += line + '\n';
      line.assign(kColumn, ' ');
      line_empty = true;
    }
    if (!line_empty) line += ' ';
    line += word;
    line_empty = false;
  }
  out += line + '\n';
}

}  // namespace

std::span<const Option> options() {
  static const std::vector<Option> all = make_options();
  return all;
}

const Option* find_option(std::string_view name) {
  for (const Option& option : options())
    if (option.name == name) return &option;
  return nullptr;
}

std::optional<Options> parse_options(fuse_args& args) {
  // One "NAME=" key per option, its key the option's place in the registry.
  std::vector<std::string> templates;
  for (const Option& option : options()) templates.push_back(std::string(option.name) + "=");
  std::vector<fuse_opt> table;
  for (size_t i = 0; i < templates.size(); ++i)
    table.push_back(FUSE_OPT_KEY(templates[i].c_str(), static_cast<int>(i)));
  table.push_back(FUSE_OPT_END);

  Parsing p;
  if (fuse_opt_parse(&args, &p, table.data(), process) != 0 || p.failed) return std::nullopt;
  check_needs(p);
  if (p.failed) return std::nullopt;
  if (was_given(p, "store") && was_given(p, "redis")) {
    spdlog::error("bad option 'redis': the state is kept either in a store directory or in Redis, not both");
    return std::nullopt;
  }
  // mount(8) through mount.fuse3 passes "mqfs SOURCE MOUNTPOINT": the source is ignored.
  if (p.positional.size() > 2) {
    spdlog::error("too many arguments (see --help)");
    return std::nullopt;
  }
  if (!p.positional.empty()) p.options.mountpoint = p.positional.back();
  return p.options;
}

std::string option_help() {
  std::string out = "mqfs options (-o NAME=VALUE), defaults for every new queue:\n";
  for (const Option& option : options())
    if (option.queue_default) append_help(out, option);
  out += "mount-wide limits, logging and store:\n";
  for (const Option& option : options())
    if (!option.queue_default) append_help(out, option);
  return out;
}

}  // namespace mqfs::daemon
