// The permission work that default_permissions leaves to the filesystem.
#pragma once

#include <fuse_lowlevel.h>

#include <vector>

#include "engine/access.hpp"
#include "fuse/reply.hpp"

namespace mqfs::fuse {

// The caller of a request not answered yet; with `groups`, its
// supplementary groups as well (read from /proc by libfuse, so only where a
// check needs them).
engine::Caller caller_of(const Reply& reply, std::vector<gid_t>* groups = nullptr);

// A write clears the set-ID bits of a queue as on other Linux filesystems
// (see engine::mode_after_write), at once: before the message is queued or
// waits for room, whatever then becomes of the write, as the kernel clears
// them before it writes.
void clear_setid_bits_for_write(const Reply& reply, fuse_ino_t ino);

}  // namespace mqfs::fuse
