#include "mq/queue_file.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace mq {

std::string reason_of(int error) {
  switch (error) {
    case ENOENT: return "no such queue";
    case EISDIR: return "is a directory";
    case ENOTDIR: return "a component of the path is not a directory";
    case EACCES:
    case EPERM: return "permission denied";
    case EIDRM: return "the queue was removed";
    case ENOTTY:
    case ENODATA:
    case ENOTSUP: return "not an mqfs queue";
    case ENOSPC: return "no space: the mount's max_bytes or its store is full";
    case EIO: return "input/output error (the mount's store failed)";
    case ENOTCONN: return "the mount is gone (mqfs is not running)";
    case EMFILE:
    case ENFILE: return "too many open files";
    default: {
      std::string words = std::strerror(error);
      if (!words.empty()) words[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(words[0])));
      return words;
    }
  }
}

void fail(const std::string& where, int error) { throw Failure{where, reason_of(error), kError, error}; }

void timed_out(const std::string& where) { throw Failure{where, "timed out", kTimeout}; }

QueueFile::QueueFile(std::string path, int flags) : path_(std::move(path)) {
  do fd_ = ::open(path_.c_str(), flags | O_CLOEXEC);
  while (fd_ < 0 && errno == EINTR);
  if (fd_ < 0) fail(path_, errno);
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && S_ISDIR(st.st_mode)) fail(path_, EISDIR);  // a directory opens for reading
}

QueueFile::QueueFile(QueueFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

QueueFile& QueueFile::operator=(QueueFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

QueueFile::~QueueFile() {
  if (fd_ >= 0) ::close(fd_);
}

void QueueFile::control(unsigned long request, const void* argument) const {
  if (::ioctl(fd_, request, argument) < 0) fail(path_, errno);
}

mqfs_attr QueueFile::attr() const {
  mqfs_attr attr{};
  control(MQFS_IOC_GET_ATTR, &attr);
  return attr;
}

mqfs_delivery QueueFile::delivery() const {
  mqfs_delivery delivery{};
  control(MQFS_IOC_GET_DELIVERY, &delivery);
  return delivery;
}

void QueueFile::set_priority(int32_t priority) { control(MQFS_IOC_SET_PRIORITY, &priority); }
void QueueFile::set_type(int64_t type) { control(MQFS_IOC_SET_TYPE, &type); }
void QueueFile::set_read_mode(int32_t mode) { control(MQFS_IOC_SET_READ_MODE, &mode); }
void QueueFile::set_ack(int32_t mode) { control(MQFS_IOC_SET_ACK, &mode); }
void QueueFile::set_select(const mqfs_select& select) { control(MQFS_IOC_SET_SELECT, &select); }

void QueueFile::set_blocking() {
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK) < 0) fail(path_, errno);
}

int QueueFile::settle(unsigned long request, uint64_t id) const {
  return ::ioctl(fd_, request, &id) < 0 ? errno : 0;
}

bool QueueFile::removed() const {
  struct stat st {};
  return ::fstat(fd_, &st) == 0 && st.st_nlink == 0;
}

int QueueFile::close() {
  const int status = ::close(std::exchange(fd_, -1));
  return status < 0 ? errno : 0;
}

std::optional<std::string> attribute(const std::string& path, std::string_view name) {
  const std::string key = "user.mq." + std::string(name);
  char value[4096];
  const ssize_t n = ::getxattr(path.c_str(), key.c_str(), value, sizeof value);
  if (n >= 0) return std::string(value, static_cast<std::size_t>(n));
  if (errno == ENODATA || errno == ENOTSUP) return std::nullopt;
  fail(path, errno);
}

int64_t number(const std::string& path, std::string_view name) {
  const std::optional<std::string> text = attribute(path, name);
  if (!text) fail(path, ENOTSUP);
  return std::strtoll(text->c_str(), nullptr, 10);
}

ssize_t read_message(int fd, int64_t msgsize, std::vector<char>& buffer) {
  const std::size_t first = std::min<std::size_t>(static_cast<std::size_t>(std::max<int64_t>(msgsize, 1)) + 5,
                                                  kReadBuffer);
  if (buffer.size() < first) buffer.resize(first);
  ssize_t n = ::read(fd, buffer.data(), first);
  if (n < 0 && errno != EMSGSIZE) return -1;
  if (n >= 0 && static_cast<std::size_t>(n) < first) return n;
  // Longer than msgsize: a u32 frame was refused whole (EMSGSIZE), any other
  // message left its rest with the open file, which the next read returns.
  const std::size_t done = n < 0 ? 0 : static_cast<std::size_t>(n);
  buffer.resize(kReadBuffer);
  const ssize_t rest = ::read(fd, buffer.data() + done, kReadBuffer - done);
  return rest < 0 ? -1 : static_cast<ssize_t>(done) + rest;
}

std::string_view payload(std::string_view read, int64_t framing) {
  if (framing == MQFS_FRAMING_U32 && read.size() >= 4) read.remove_prefix(4);
  return read;
}

}  // namespace mq
