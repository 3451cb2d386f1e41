// The permission work that default_permissions leaves to the filesystem.
#pragma once

#include <fuse_lowlevel.h>

#include <vector>

#include "engine/access.hpp"

namespace mqfs::fuse {

// The caller of `req`; with `groups`, its supplementary groups as well
// (read from /proc by libfuse, so only where a check needs them).
engine::Caller caller_of(fuse_req_t req, std::vector<gid_t>* groups = nullptr);

}  // namespace mqfs::fuse
