#include "daemon/options.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "engine/attributes.hpp"

namespace mqfs::daemon {

namespace {

enum Key { kSetting, kMaxQueues, kMaxBytes, kMaxOpenFiles, kMaxWaiters, kLogLevel, kLogFile };

struct Parsing {
  Options options;
  std::vector<std::string> positional;
  bool failed = false;
};

void fail(Parsing& p, std::string_view option, std::string_view why) {
  spdlog::error("bad option '{}': {}", option, why);
  p.failed = true;
}

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

uint64_t& cap_of(fuse::Config& config, int key) {
  switch (key) {
    case kMaxQueues: return config.max_queues;
    case kMaxBytes: return config.max_bytes;
    case kMaxOpenFiles: return config.max_open_files;
    default: return config.max_waiters;
  }
}

int process(void* data, const char* arg, int key, fuse_args*) {
  auto& p = *static_cast<Parsing*>(data);
  if (key == FUSE_OPT_KEY_NONOPT) {
    p.positional.emplace_back(arg);
    return 0;
  }
  if (key == FUSE_OPT_KEY_OPT) return 1;  // FUSE's own

  std::string_view option(arg);
  const auto eq = option.find('=');
  const std::string_view name = option.substr(0, eq), value = option.substr(eq + 1);
  switch (key) {
    case kSetting: {
      const engine::Attribute* attribute = engine::find_attribute(name);
      if (attribute->parse(p.options.config.defaults, value) < 0) fail(p, option, "invalid value");
      break;
    }
    case kMaxQueues:
    case kMaxBytes:
    case kMaxOpenFiles:
    case kMaxWaiters:
      if (auto size = parse_size(value))
        cap_of(p.options.config, key) = *size;
      else
        fail(p, option, "expected a positive number");
      break;
    case kLogLevel:
      if (value != "trace" && value != "debug" && value != "info" && value != "warn" && value != "error" &&
          value != "off")
        fail(p, option, "expected trace, debug, info, warn, error or off");
      p.options.log_level = value;
      break;
    case kLogFile:
      p.options.log_file = value;
      break;
  }
  return p.failed ? -1 : 0;
}

}  // namespace

std::optional<Options> parse_options(fuse_args& args) {
  // One "NAME=" key per writable attribute: the registry is the list.
  std::vector<std::string> templates;
  for (const engine::Attribute& attribute : engine::attributes())
    if (attribute.writable()) templates.push_back(std::string(attribute.name) + "=");
  std::vector<fuse_opt> table;
  for (const std::string& t : templates) table.push_back(FUSE_OPT_KEY(t.c_str(), kSetting));
  table.push_back(FUSE_OPT_KEY("max_queues=", kMaxQueues));
  table.push_back(FUSE_OPT_KEY("max_bytes=", kMaxBytes));
  table.push_back(FUSE_OPT_KEY("max_open_files=", kMaxOpenFiles));
  table.push_back(FUSE_OPT_KEY("max_waiters=", kMaxWaiters));
  table.push_back(FUSE_OPT_KEY("log_level=", kLogLevel));
  table.push_back(FUSE_OPT_KEY("log_file=", kLogFile));
  table.push_back(FUSE_OPT_END);

  Parsing p;
  if (fuse_opt_parse(&args, &p, table.data(), process) != 0 || p.failed) return std::nullopt;
  // mount(8) through mount.fuse3 passes "mqfs SOURCE MOUNTPOINT": the source is ignored.
  if (p.positional.size() > 2) {
    spdlog::error("too many arguments (see --help)");
    return std::nullopt;
  }
  if (!p.positional.empty()) p.options.mountpoint = p.positional.back();
  return p.options;
}

void print_option_help() {
  std::printf(
      "mqfs options (-o NAME=VALUE), defaults for every new queue:\n"
      "    priority=N           priority of messages sent without their own (0-32767, default 0)\n"
      "    maxmsg=N             most messages a queue holds (default 10)\n"
      "    msgsize=N            largest message in bytes (default 8192, at most %lld)\n"
      "    read_mode=MODE       message (one message per open, default) or stream\n"
      "    recv_timeout_ms=N    longest wait of a blocked read (default 0: no limit)\n"
      "    send_timeout_ms=N    longest wait of a blocked write (default 0: no limit)\n"
      "    framing=MODE         none (default), line or u32: many messages per write and read;\n"
      "                         file: all one open file writes, up to its close, is one message\n"
      "mount-wide limits and logging:\n"
      "    max_queues=N         most queues and directories (default 65536)\n"
      "    max_bytes=SIZE       most memory for messages in all queues, k/M/G suffixes (default 1G;\n"
      "                         each message counts its bytes plus 128 of bookkeeping)\n"
      "    max_open_files=N     most open files of all queues (default 65536; more: ENFILE)\n"
      "    max_waiters=N        most reads and writes blocked at once (default 65536; more: EAGAIN)\n"
      "    log_level=LEVEL      trace, debug, info (default), warn, error or off\n"
      "    log_file=PATH        log to PATH (default: stderr with -f, else syslog)\n",
      static_cast<long long>(engine::kMaxMsgsize));
}

}  // namespace mqfs::daemon
