// write: enqueue, now or when there is room.
#include <fcntl.h>

#include <cerrno>
#include <memory>

#include "fuse/access.hpp"
#include "fuse/waiters.hpp"

namespace mqfs::fuse {

void do_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t, fuse_file_info* fi) {
  clear_setid_bits_for_write(req, ino);
  engine::OpenFile& file = open_file_of(fi);
  file.set_nonblocking(fi->flags & O_NONBLOCK);
  engine::Queue& queue = file.queue();
  const pid_t pid = fuse_req_ctx(req)->pid;
  const auto bytes = std::as_bytes(std::span(buf, size));

  WriteReply reply(req);
  int status = queue.send(file, bytes, pid, reply);
  if (status == 0) return;
  // Full: an error, or a wait. A framed write may have queued its first
  // messages (status > 0 bytes); it reports them, or waits with the rest.
  const std::size_t consumed = status > 0 ? static_cast<std::size_t>(status) : 0;
  if (fi->flags & O_NONBLOCK) {
    if (consumed > 0) return void(fuse_reply_write(req, consumed));
    return reply_status(req, status);
  }
  if (status < 0 && status != -EAGAIN) return reply_status(req, status);

  auto waiter = std::make_unique<PendingWrite>(req, file, pid);
  ParkedRequest& parked = waiter->request();
  status = queue.send_later(std::move(waiter), bytes.subspan(consumed), engine::Clock::now(), consumed);
  if (status < 0) return consumed > 0 ? void(fuse_reply_write(req, consumed)) : reply_status(req, status);
  parked.listen_for_interrupts();
}

}  // namespace mqfs::fuse
