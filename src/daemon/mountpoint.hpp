// Checks a mount point before mounting on it.
#pragma once

#include <string>

namespace mqfs::daemon {

// True if `path` is a directory that mqfs may mount on: not missing, not a
// file, and not already a mount (of mqfs or anything else), since a second
// mount would hide the first. Otherwise logs one line saying why and what to
// do, and returns false.
bool usable_mountpoint(const std::string& path);

}  // namespace mqfs::daemon
