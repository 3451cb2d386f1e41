// The registry of queue attributes: one table feeds the user.mq.* xattrs and
// the mount options of the same names (the daemon's registry takes every
// writable one as a per-queue default), so each name parses, prints, errs and
// is described one way everywhere.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "engine/settings.hpp"

namespace mqfs::engine {

class Queue;

inline constexpr std::string_view kAttributePrefix = "user.mq.";

struct Attribute {
  std::string_view name;  // without the "user.mq." prefix

  // Writable attributes, each also the mount option that sets it for every
  // new queue. Parses `text` into `settings`: 0 or -EINVAL, leaving them alone.
  int (*parse)(Settings& settings, std::string_view text) = nullptr;
  std::string (*print_setting)(const Settings& settings) = nullptr;
  // Copies the value from `from` into `to` (restoring a default).
  void (*copy)(Settings& to, const Settings& from) = nullptr;
  std::string_view value = {};  // what the value is in --help: "N", "MODE"
  std::string_view help = {};   // the mount option's line in --help

  // Read-only attributes: the queue's counter.
  std::string (*count)(const Queue& queue) = nullptr;

  bool writable() const { return parse != nullptr; }
  std::string print(const Queue& queue) const;
};

std::span<const Attribute> attributes();
const Attribute* find_attribute(std::string_view name);

}  // namespace mqfs::engine
