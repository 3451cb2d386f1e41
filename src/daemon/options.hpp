// The mount options: the per-queue defaults (named as the user.mq.*
// attributes), the global caps, and logging.
#pragma once

#include <fuse_lowlevel.h>

#include <optional>
#include <string>

#include "fuse/filesystem.hpp"

namespace mqfs::daemon {

struct Options {
  fuse::Config config;
  std::string log_level = "info";
  std::string log_file;        // empty: stderr in the foreground, syslog when daemonized
  std::string mountpoint;      // the last positional argument; empty if none
  std::string store_dir;       // empty: in memory
  bool sync_disk = false;
};

// Takes mqfs's own options and positional arguments out of `args`, leaving
// FUSE's. Returns nullopt after printing one line on a bad option.
std::optional<Options> parse_options(fuse_args& args);

void print_option_help();

}  // namespace mqfs::daemon
