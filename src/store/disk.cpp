#include "store/disk.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace mqfs::store {

namespace {

int result_or_errno(int result) { return result < 0 ? -errno : result; }

}  // namespace

// Missing parents are made as `mkdir -p` makes them (so that a boot-time
// mount of /var/lib/mqfs/NAME needs no step before it); the store itself is
// private to the daemon.
std::unique_ptr<PosixDisk> PosixDisk::open_directory(const std::string& directory) {
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(directory).parent_path(), error);
  if (error) {
    spdlog::error("store {}: cannot create its parent directory: {}", directory, error.message());
    return nullptr;
  }
  if (mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    spdlog::error("store {}: cannot create it: {}", directory, std::strerror(errno));
    return nullptr;
  }
  int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    spdlog::error("store {}: {}", directory, std::strerror(errno));
    return nullptr;
  }
  // One daemon per store: the lock lives as long as this daemon's descriptor.
  int lock = ::openat(dir, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char pid[32] = {};
    if (lock >= 0) [[maybe_unused]] auto n = pread(lock, pid, sizeof pid - 1, 0);
    if (error == EWOULDBLOCK)
      spdlog::error("store {} is in use by another mqfs (pid {}); a store serves one mount at a time", directory,
                    std::strtol(pid, nullptr, 10));
    else
      spdlog::error("store {}: cannot lock it: {}", directory, std::strerror(error));
    if (lock >= 0) ::close(lock);
    ::close(dir);
    return nullptr;
  }
  auto disk = std::unique_ptr<PosixDisk>(new PosixDisk(directory, dir, lock));
  disk->write_owner();
  return disk;
}

void PosixDisk::write_owner() {
  const std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(lock_, 0) == 0) [[maybe_unused]] auto n = pwrite(lock_, pid.data(), pid.size(), 0);
}

PosixDisk::~PosixDisk() {
  ::close(lock_);
  ::close(directory_);
}

int PosixDisk::open(const std::string& name, bool create) {
  return result_or_errno(::openat(directory_, name.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600));
}

void PosixDisk::close(int file) { ::close(file); }

ssize_t PosixDisk::read(int file, void* buffer, std::size_t size, uint64_t offset) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(file, static_cast<char*>(buffer) + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

int PosixDisk::write(int file, const void* buffer, std::size_t size, uint64_t offset) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(file, static_cast<const char*>(buffer) + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

int PosixDisk::allocate(int file, uint64_t size) {
  int error = posix_fallocate(file, 0, static_cast<off_t>(size));
  return -error;
}

int64_t PosixDisk::size(int file) {
  struct stat st;
  if (fstat(file, &st) != 0) return -errno;
  return st.st_size;
}

int PosixDisk::sync(int file) { return result_or_errno(fdatasync(file)); }

int PosixDisk::remove(const std::string& name) { return result_or_errno(unlinkat(directory_, name.c_str(), 0)); }

int PosixDisk::sync_directory() { return result_or_errno(fsync(directory_)); }

int PosixDisk::list(std::vector<std::string>& names) {
  int fd = ::openat(directory_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  DIR* dir = fdopendir(fd);
  if (!dir) {
    ::close(fd);
    return -errno;
  }
  while (dirent* entry = readdir(dir)) names.emplace_back(entry->d_name);
  closedir(dir);
  return 0;
}

}  // namespace mqfs::store
