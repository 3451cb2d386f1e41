#include "fuse/waiters.hpp"

namespace mqfs::fuse {

bool answer_sent(Reply& reply, Sent sent, std::size_t n) {
  Filesystem& fs = reply.filesystem();
  switch (sent) {
    case Sent::bytes: return fs.answer_write(reply, n, false);
    case Sent::status: return fs.answer_write(reply, 0, true);
    case Sent::synced: fs.answer_fsync(reply); return true;
  }
  return false;
}

std::unique_ptr<engine::ReceiveWaiter> ReadRequest::park(engine::OpenFile& file, pid_t pid, std::size_t size) {
  return std::make_unique<PendingRead>(std::move(*reply_), file, pid, size);
}

std::unique_ptr<engine::SendWaiter> WriteRequest::park(engine::OpenFile& file, pid_t pid) {
  return std::make_unique<PendingWrite>(std::move(*reply_), file, pid, sent_);
}

// An interrupt that came already is reported at once, and handled as soon as
// the current request is done: by then the waiter is in its queue, or it has
// answered and stopped listening.
ParkedRequest::ParkedRequest(Reply reply, engine::Waiter& waiter)
    : reply_(std::move(reply)), interrupted_(waiter) {
  reply_.on_interrupt(on_interrupt, this);
}

ParkedRequest::~ParkedRequest() { take(); }

void ParkedRequest::on_interrupt(fuse_req_t, void* data) {
  auto* parked = static_cast<ParkedRequest*>(data);
  parked->reply_.filesystem().interrupted(parked->interrupted_);
}

Reply& ParkedRequest::take() {
  reply_.on_interrupt(nullptr, nullptr);
  interrupted_.unlink();
  return reply_;
}

}  // namespace mqfs::fuse
