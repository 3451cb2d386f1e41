// The files `mq` works on: one open queue, its attributes and ioctls, and
// the one way a failure is reported (a line naming the queue and the
// reason in words, and an exit status).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mqfs.h"

namespace mq {

// Exit statuses, as mq(1) documents them.
enum Status : int { kDone = 0, kError = 1, kUsage = 2, kTimeout = 3 };

// Why `mq` stops: printed as `mq: WHERE: REASON`, then exit with `status`.
struct Failure {
  std::string where;
  std::string reason;
  int status = kError;
  int error = 0;  // the errno, when one was the cause
};

// An errno as the reason of a failure, in words (`no such queue`, `the
// queue was removed`, ...).
std::string reason_of(int error);
[[noreturn]] void fail(const std::string& where, int error);
[[noreturn]] void timed_out(const std::string& where);

// A read this large gets any message whole: msgsize is at most
// 1 MiB - 4 KiB, and a u32 frame adds its 4-byte length.
inline constexpr std::size_t kReadBuffer = (std::size_t{1} << 20) + 8;

// One read(2) of a whole message into `buffer`: its length, 0 at end of
// file, or -1 with errno. It reads with room for `msgsize` (and a u32
// length) first, and only for a longer message (sent before msgsize was
// lowered) with room for any: the kernel faults in every page of a read's
// buffer, which for 1 MiB costs more than the rest of a receive.
ssize_t read_message(int fd, int64_t msgsize, std::vector<char>& buffer);

// One open queue. Every call that fails throws a Failure naming the queue.
class QueueFile {
 public:
  QueueFile(std::string path, int flags);
  QueueFile(QueueFile&& other) noexcept;
  QueueFile& operator=(QueueFile&& other) noexcept;
  ~QueueFile();

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }

  mqfs_attr attr() const;           // MQFS_IOC_GET_ATTR
  mqfs_delivery delivery() const;   // MQFS_IOC_GET_DELIVERY: the last message read
  void set_priority(int32_t priority);
  void set_type(int64_t type);
  void set_read_mode(int32_t mode);
  void set_ack(int32_t mode);
  void set_blocking();  // clears O_NONBLOCK
  void set_select(const mqfs_select& select);
  // MQFS_IOC_ACK or MQFS_IOC_NACK of one message: 0, or the errno.
  int settle(unsigned long request, uint64_t id) const;
  // Closes it now: 0, or the errno close(2) gave (it may send a message).
  int close();
  bool is_open() const { return fd_ >= 0; }
  bool removed() const;  // its name is gone (st_nlink 0)

 private:
  void control(unsigned long request, const void* argument) const;

  std::string path_;
  int fd_ = -1;
};

// user.mq.NAME of the file at `path`: nullopt when it has none (not an
// mqfs queue); throws a Failure for any other error.
std::optional<std::string> attribute(const std::string& path, std::string_view name);
// The same, as a number; a file without it is `not an mqfs queue`.
int64_t number(const std::string& path, std::string_view name);

// A message as `mq` prints or hands it on: for a u32-framed queue, without
// the 4-byte length its read carried.
std::string_view payload(std::string_view read, int64_t framing);

}  // namespace mq
