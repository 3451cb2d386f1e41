// The mount options: one registry of every -o option — the per-queue defaults
// (the writable user.mq.* attributes, engine/attributes.hpp), the global caps,
// logging and the store — each with its parser, printer, default and help
// line. Parsing, --help and the tests all read it.
#pragma once

#include <fuse_lowlevel.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "fuse/filesystem.hpp"

namespace mqfs::daemon {

struct Options {
  fuse::Config config;
  std::string log_level = "info";
  std::string log_file;        // empty: stderr in the foreground, syslog when daemonized
  std::string store_dir;       // absolute; empty: the mount lives in memory
  bool sync_disk = false;      // sync=disk: a write returns once its message is on disk
  // SPEC section 10: the state lives in Redis, shared with other mounts.
  std::string redis_url;       // empty: not in Redis
  std::string redis_prefix = "mqfs";
  int64_t redis_lease_ms = 10000;
  int64_t redis_timeout_ms = 5000;
  std::string mountpoint;      // the last positional argument; empty if none
};

struct Option {
  std::string_view name;
  std::string_view value;  // what the value is in --help: "N", "SIZE", "MODE"
  std::string_view help;   // one line of --help, wrapped when printed
  // Sets the option in `options`: empty, or why `text` is refused.
  std::function<std::string_view(Options& options, std::string_view text)> parse;
  std::function<std::string(const Options& options)> print;
  bool queue_default = false;  // sets a writable attribute of every new queue
  std::string_view needs = {}; // another option without which this one is refused
};

std::span<const Option> options();
const Option* find_option(std::string_view name);

// Takes mqfs's own options and positional arguments out of `args`, leaving
// FUSE's. Returns nullopt after printing one line on a bad option.
std::optional<Options> parse_options(fuse_args& args);

// The options' part of --help: the per-queue defaults, then the rest.
std::string option_help();

}  // namespace mqfs::daemon
