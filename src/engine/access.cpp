#include "engine/access.hpp"

#include <sys/stat.h>

#include <algorithm>

namespace mqfs::engine {

bool may_read(const Node& node, const Caller& caller) {
  if (caller.privileged()) return true;
  if (caller.uid == node.owner.uid) return node.mode & S_IRUSR;
  const bool in_group =
      caller.gid == node.owner.gid || std::ranges::find(caller.groups, node.owner.gid) != caller.groups.end();
  if (in_group) return node.mode & S_IRGRP;
  return node.mode & S_IROTH;
}

mode_t mode_after_write(mode_t mode, const Caller& caller) {
  if (caller.privileged() || !S_ISREG(mode)) return mode;
  mode &= ~S_ISUID;
  if (mode & S_IXGRP) mode &= ~S_ISGID;
  return mode;
}

}  // namespace mqfs::engine
