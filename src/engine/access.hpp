// Who may do what to a node: the checks that the kernel's default_permissions
// leaves to the filesystem, decided as Linux decides them for any file.
#pragma once

#include <sys/types.h>

#include <span>

#include "engine/namespace.hpp"

namespace mqfs::engine {

// The process asking: its filesystem uid and gid and its supplementary groups.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  std::span<const gid_t> groups;

  // Root passes permission checks, as with the capability CAP_DAC_OVERRIDE
  // that root holds.
  bool privileged() const { return uid == 0; }
};

// Whether `caller` may read `node` by its mode: root always; the owner by the
// owner bits alone, a member of the node's group by the group bits, anyone
// else by the other bits.
bool may_read(const Node& node, const Caller& caller);

}  // namespace mqfs::engine
