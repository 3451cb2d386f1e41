#include "fuse/exit_status.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <string_view>

namespace mqfs::fuse {

namespace {

constexpr unsigned long kPfExiting = 0x4;  // include/linux/sched.h
constexpr int kFlagsField = 9;              // proc(5): /proc/PID/stat
constexpr int kExitCodeField = 52;          // since Linux 3.5

// Field `wanted` (1-based, as proc(5) counts) of a stat line, after the
// command name, which may hold spaces and parentheses.
std::string_view field(std::string_view stat, int wanted) {
  const std::size_t name_end = stat.rfind(')');
  if (name_end == std::string_view::npos) return {};
  std::string_view rest = stat.substr(name_end + 1);
  for (int n = 3;; ++n) {  // field 3 follows the name
    const std::size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) return {};
    rest.remove_prefix(start);
    const std::size_t end = std::min(rest.find(' '), rest.size());
    if (n == wanted) return rest.substr(0, end);
    rest.remove_prefix(end);
  }
}

template <class Integer>
bool parse(std::string_view text, Integer& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace

bool killed_by_signal(pid_t tid) {
  if (tid <= 0) return false;
  std::array<char, 64> path{};
  std::snprintf(path.data(), path.size(), "/proc/%d/stat", static_cast<int>(tid));
  const int fd = ::open(path.data(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::array<char, 2048> buf{};
  const ssize_t n = ::read(fd, buf.data(), buf.size() - 1);
  ::close(fd);
  if (n <= 0) return false;
  std::string_view stat(buf.data(), static_cast<std::size_t>(n));
  while (!stat.empty() && stat.back() == '\n') stat.remove_suffix(1);

  unsigned long flags = 0;
  long exit_code = 0;
  if (!parse(field(stat, kFlagsField), flags) || !parse(field(stat, kExitCodeField), exit_code)) return false;
  // wait(2)'s format: the low 7 bits are the signal that ended the task.
  return (flags & kPfExiting) != 0 && (exit_code & 0x7f) != 0;
}

}  // namespace mqfs::fuse
