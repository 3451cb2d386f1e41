#include "daemon/mountpoint.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

namespace mqfs::daemon {

namespace {

// The absolute path as /proc/self/mountinfo spells it, found without
// stat-ing `path` itself: a dead FUSE mount fails every access to its root.
std::string absolute(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") {
    dir = path;
    base.clear();
  }
  char resolved[PATH_MAX];
  if (!realpath(dir.c_str(), resolved)) return path;
  std::string result = resolved;
  if (!base.empty()) result += (result == "/" ? "" : "/") + base;
  return result;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      out += static_cast<char>(std::strtol(field.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

// The type of the topmost mount at `path` ("fuse.mqfs", "tmpfs"), if any.
std::optional<std::string> mount_type(const std::string& path) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::optional<std::string> type;
  std::string line;
  while (std::getline(mountinfo, line)) {
    // ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
    std::istringstream fields(line);
    std::string id, parent, device, root, mountpoint, field;
    fields >> id >> parent >> device >> root >> mountpoint;
    if (unescape(mountpoint) != path) continue;
    while (fields >> field && field != "-") {
    }
    if (fields >> field) type = field;
  }
  return type;
}

}  // namespace

bool usable_mountpoint(const std::string& path) {
  const std::string where = absolute(path);
  struct statx st {};
  if (statx(AT_FDCWD, path.c_str(), 0, STATX_TYPE, &st) != 0) {
    const int error = errno;
    if (auto type = mount_type(where)) {
      // Typically a FUSE daemon that died (ENOTCONN), or another user's FUSE
      // mount without allow_other (EACCES).
      spdlog::error("mount point {}: already a mount ({}) that cannot be reached ({}); "
                    "clear it with `fusermount3 -u {}` (or `umount -l {}`)",
                    path, *type, std::strerror(error), where, where);
    } else {
      spdlog::error("mount point {}: {}", path, std::strerror(error));
    }
    return false;
  }
  if (!S_ISDIR(st.stx_mode)) {
    spdlog::error("mount point {}: not a directory", path);
    return false;
  }
  // The kernel marks the root of every mount (since Linux 5.8); mountinfo
  // covers older kernels.
  const bool marked = (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (st.stx_attributes & STATX_ATTR_MOUNT_ROOT);
  const auto type = mount_type(where);
  if (marked || type) {
    spdlog::error("mount point {}: already a mount ({}); unmount it first (`umount {}`) or choose another directory",
                  path, type.value_or("unknown type"), where);
    return false;
  }
  return true;
}

}  // namespace mqfs::daemon
