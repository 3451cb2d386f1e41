#include "mq/stats.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "mq/queue_file.hpp"

namespace mq {

QueueStats read_stats(const std::string& path) {
  QueueStats s;
  s.path = path;
  s.kind = attribute(path, "kind").value_or("");
  if (s.kind.empty()) fail(path, ENOTSUP);
  for (const StatsField& field : kStatsFields) s.*field.value = number(path, field.attribute);
  return s;
}

namespace {

std::string joined(const std::string& directory, const std::string& name) {
  return !directory.empty() && directory.back() == '/' ? directory + name : directory + "/" + name;
}

void collect(const std::string& directory, bool recursive, std::vector<std::string>& queues) {
  DIR* dir = ::opendir(directory.c_str());
  if (!dir) fail(directory, errno);
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = joined(directory, name);
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) continue;  // removed meanwhile
    if (S_ISREG(st.st_mode)) queues.push_back(path);
    if (S_ISDIR(st.st_mode) && recursive) collect(path, recursive, queues);
  }
}

}  // namespace

std::vector<std::string> queues_at(const std::string& path, bool recursive) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) fail(path, errno);
  if (!S_ISDIR(st.st_mode)) return {path};
  std::vector<std::string> queues;
  collect(path, recursive, queues);
  return queues;
}

std::string age(int64_t ms) {
  if (ms <= 0) return "-";
  if (ms < 1000) return std::to_string(ms) + "ms";
  const int64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

}  // namespace mq
