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

  // Root passes permission checks and keeps set-ID bits, as with the
  // capabilities CAP_DAC_OVERRIDE and CAP_FSETID that root holds.
  bool privileged() const { return uid == 0; }
};

// Whether `caller` may read `node` by its mode: root always; the owner by the
// owner bits alone, a member of the node's group by the group bits, anyone
// else by the other bits.
bool may_read(const Node& node, const Caller& caller);

// The mode a regular file keeps after a write by `caller` (the kernel's
// should_remove_suid): an unprivileged writer, its owner too, clears
// set-user-ID, and set-group-ID if group-execute is set (set-group-ID without
// it marks mandatory locking, not a privilege).
mode_t mode_after_write(mode_t mode, const Caller& caller);

}  // namespace mqfs::engine
