// What the kernel tells of a task that is closing files as it exits.
#pragma once

#include <sys/types.h>

namespace mqfs::fuse {

// True when task `tid` (a thread id, as a request's pid is) is exiting
// because a signal killed it. The kernel closes an exiting task's files
// after it has set PF_EXITING and its exit code, so a close made by a task
// that a signal killed can be told from one made by a task that exits
// normally. False when it cannot be told (no /proc, or the exit code is
// hidden from a daemon that may not trace the task).
bool killed_by_signal(pid_t tid);

}  // namespace mqfs::fuse
