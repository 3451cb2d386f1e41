// The registry of queue attributes: one table feeds the user.mq.* xattrs and
// the mount options, so each name parses, prints and errs one way everywhere.
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
  // Writable attributes: parses `text` into `settings`; 0 or -EINVAL.
  int (*parse)(Settings& settings, std::string_view text);
  // Writable attributes: copies the value from `from` into `to` (restoring a default).
  void (*copy)(Settings& to, const Settings& from);
  std::string (*print)(const Queue& queue);

  bool writable() const { return parse != nullptr; }
};

std::span<const Attribute> attributes();
const Attribute* find_attribute(std::string_view name);

}  // namespace mqfs::engine
