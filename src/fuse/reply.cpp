#include "fuse/reply.hpp"

#include "fuse/filesystem.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <utility>

namespace mqfs::fuse {

Reply::Reply(fuse_req_t req)
    : req_(req), fs_(static_cast<Filesystem*>(fuse_req_userdata(req))), ctx_(*fuse_req_ctx(req)) {}

Reply::Reply(Reply&& other) noexcept
    : req_(std::exchange(other.req_, nullptr)), fs_(other.fs_), ctx_(other.ctx_) {}

Reply::~Reply() {
  if (!owns()) return;
  spdlog::error("a request was left unanswered; answering EIO");
  error(EIO);
}

// Every answer leaves after the store has handed the changes made so far to
// the kernel (sync=os): a change a caller has heard of survives the daemon.
fuse_req_t Reply::take() {
  if (!req_) {
    spdlog::error("a second answer to one request was refused");
    return nullptr;
  }
  fs_->store().write_out();
  return std::exchange(req_, nullptr);
}

bool Reply::holding() const { return fs_->holds_answer(req_); }

bool Reply::hold(HeldAnswer answer) {
  answer.req = take();
  if (!answer.req) return false;
  fs_->hold(answer);
  return true;
}

void Reply::status(int status) {
  if (holding()) return void(hold({.kind = HeldAnswer::Kind::status, .status = status}));
  answer([&](fuse_req_t req) { return fuse_reply_err(req, -status); });
}

bool Reply::done() {
  if (holding()) return hold({.kind = HeldAnswer::Kind::status});
  return answer([](fuse_req_t req) { return fuse_reply_err(req, 0); });
}

void Reply::none() {
  if (fuse_req_t req = take()) fuse_reply_none(req);
}

bool Reply::entry(const fuse_entry_param& entry) {
  if (holding()) return hold({.kind = HeldAnswer::Kind::entry, .entry = entry});
  return answer([&](fuse_req_t req) { return fuse_reply_entry(req, &entry); });
}

bool Reply::create(const fuse_entry_param& entry, const fuse_file_info& fi) {
  if (holding()) return hold({.kind = HeldAnswer::Kind::create, .entry = entry, .fi = fi});
  return answer([&](fuse_req_t req) { return fuse_reply_create(req, &entry, &fi); });
}

bool Reply::open(const fuse_file_info& fi) {
  return answer([&](fuse_req_t req) { return fuse_reply_open(req, &fi); });
}

bool Reply::attr(const struct stat& st, double timeout) {
  if (holding()) return hold({.kind = HeldAnswer::Kind::attr, .attr = st, .timeout = timeout});
  return answer([&](fuse_req_t req) { return fuse_reply_attr(req, &st, timeout); });
}

bool Reply::statfs(const struct statvfs& st) {
  return answer([&](fuse_req_t req) { return fuse_reply_statfs(req, &st); });
}

bool Reply::xattr_size(std::size_t size) {
  return answer([&](fuse_req_t req) { return fuse_reply_xattr(req, size); });
}

bool Reply::buf(const void* data, std::size_t size) {
  return answer([&](fuse_req_t req) { return fuse_reply_buf(req, static_cast<const char*>(data), size); });
}

bool Reply::iov(std::span<const iovec> data) {
  if (data.empty()) return buf(nullptr, 0);
  return answer([&](fuse_req_t req) { return fuse_reply_iov(req, data.data(), static_cast<int>(data.size())); });
}

bool Reply::write(std::size_t n) {
  return answer([&](fuse_req_t req) { return fuse_reply_write(req, n); });
}

bool Reply::ioctl(const void* data, std::size_t size) {
  return answer([&](fuse_req_t req) { return fuse_reply_ioctl(req, 0, data, size); });
}

bool Reply::poll(unsigned events) {
  return answer([&](fuse_req_t req) { return fuse_reply_poll(req, events); });
}

void Reply::on_interrupt(void (*func)(fuse_req_t, void*), void* data) {
  if (req_) fuse_req_interrupt_func(req_, func, data);
}

}  // namespace mqfs::fuse
