#include "fuse/waiters.hpp"

namespace mqfs::fuse {

// A reply fails when the kernel no longer waits for it (the caller was
// interrupted or the connection is gone): then the engine takes nothing.
static bool reply_data(fuse_req_t req, std::span<const iovec> data) {
  if (data.empty()) return fuse_reply_buf(req, nullptr, 0) == 0;
  return fuse_reply_iov(req, data.data(), static_cast<int>(data.size())) == 0;
}

bool ReadReply::deliver(std::span<const iovec> data) { return reply_data(req_, data); }

bool WriteReply::accept(std::size_t n) { return fuse_reply_write(req_, n) == 0; }

void ParkedRequest::listen_for_interrupts() { fuse_req_interrupt_func(req_, on_interrupt, this); }

void ParkedRequest::on_interrupt(fuse_req_t req, void* data) {
  auto* parked = static_cast<ParkedRequest*>(data);
  filesystem(req).interrupted(parked->interrupted_);
}

fuse_req_t ParkedRequest::take() {
  fuse_req_interrupt_func(req_, nullptr, nullptr);
  interrupted_.unlink();
  return req_;
}

bool PendingRead::deliver(std::span<const iovec> data) { return reply_data(request_.take(), data); }

void PendingRead::fail(int error) { fuse_reply_err(request_.take(), error); }

bool PendingWrite::accept(std::size_t n) { return fuse_reply_write(request_.take(), n) == 0; }

void PendingWrite::fail(int error) { fuse_reply_err(request_.take(), error); }

}  // namespace mqfs::fuse
