// The one way a request is answered. A Reply owns a request until it answers
// it, once, or hands it to a waiter (by a move); every fuse_reply_* call of
// the adapter goes through it. So the exception guard, which answers a
// request whose handler threw, can see whether it was answered already and
// never answers twice.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/uio.h>

#include <sys/stat.h>

#include <cstddef>
#include <span>

namespace mqfs::fuse {

class Filesystem;

// An answer kept until the names change it reports is accepted by a store
// shared with other mounts (SPEC section 10): what the kernel will be told.
struct HeldAnswer {
  enum class Kind { status, entry, create, attr };
  fuse_req_t req = nullptr;
  Kind kind = Kind::status;
  int status = 0;  // 0 or -errno
  fuse_entry_param entry{};
  fuse_file_info fi{};
  struct stat attr{};
  double timeout = 0;
};

class Reply {
 public:
  explicit Reply(fuse_req_t req);
  Reply(Reply&& other) noexcept;
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  Reply& operator=(Reply&&) = delete;
  // A request still owned and unanswered is answered EIO: a waiter dropped
  // by an exception never leaves its caller waiting for ever.
  ~Reply();

  // Still to be answered by this token (not answered, not handed over).
  bool owns() const { return req_ != nullptr; }

  // Facts of the request, valid whether or not it was answered.
  Filesystem& filesystem() const { return *fs_; }
  pid_t pid() const { return ctx_.pid; }
  uid_t uid() const { return ctx_.uid; }
  gid_t gid() const { return ctx_.gid; }

  // Each answers the request if this token still owns it and says whether
  // the kernel took the answer: false when it no longer waits for it (the
  // caller was interrupted or the connection is gone), or when there was
  // nothing left to answer.
  void status(int status);  // 0 or -errno
  void error(int error) { status(-error); }
  bool done();  // status 0
  void none();
  bool entry(const fuse_entry_param& entry);
  bool create(const fuse_entry_param& entry, const fuse_file_info& fi);
  bool open(const fuse_file_info& fi);
  bool attr(const struct stat& st, double timeout);  // seconds the kernel may keep it
  bool statfs(const struct statvfs& st);
  bool xattr_size(std::size_t size);
  bool buf(const void* data, std::size_t size);
  bool iov(std::span<const iovec> data);
  bool write(std::size_t n);
  bool ioctl(const void* data, std::size_t size);
  bool poll(unsigned events);

  // Interrupts of this request call `func(data)`; null ends that.
  void on_interrupt(void (*func)(fuse_req_t, void*), void* data);
  // The request, for libfuse calls that do not answer it (fuse_add_direntry).
  fuse_req_t request() const { return req_; }

 private:
  // The request, which the caller answers now; null when it was answered.
  fuse_req_t take();
  // While the filesystem holds the answers of a names change, the answer is
  // kept (true: as if the kernel took it) instead of sent.
  bool holding() const;
  bool hold(HeldAnswer answer);
  // Answers with `reply(req)` (a fuse_reply_* call) if the request is still
  // owned; true when the kernel took the answer.
  template <class ReplyCall>
  bool answer(ReplyCall reply) {
    fuse_req_t req = take();
    return req && reply(req) == 0;
  }

  fuse_req_t req_;
  Filesystem* fs_;
  fuse_ctx ctx_;
};

}  // namespace mqfs::fuse
