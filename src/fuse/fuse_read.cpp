// read: dequeue, now or when a message arrives.
#include <fcntl.h>

#include <cerrno>
#include <memory>

#include "fuse/waiters.hpp"

namespace mqfs::fuse {

void do_read(fuse_req_t req, fuse_ino_t, size_t size, off_t, fuse_file_info* fi) {
  // read(2) reaches a direct-I/O file with its caller's lock owner; only the
  // page cache (filling a private mmap) reads without one. A mapping is no
  // way to receive: its pages would take messages no one reads. Refused, the
  // access to the mapping gets SIGBUS and the queue keeps its messages.
  if (fi->lock_owner == 0) return reply_status(req, -ENODEV);
  engine::OpenFile& file = open_file_of(fi);
  file.set_nonblocking(fi->flags & O_NONBLOCK);
  engine::Queue& queue = file.queue();
  const pid_t pid = fuse_req_ctx(req)->pid;

  ReadReply reply(req);
  const int status = queue.receive(file, size, pid, reply);
  if (status > 0) return;
  if (status < 0) return reply_status(req, status);
  if (fi->flags & O_NONBLOCK) return reply_status(req, -EAGAIN);

  auto waiter = std::make_unique<PendingRead>(req, file, pid, size);
  ParkedRequest& parked = waiter->request();
  if (int error = queue.receive_later(std::move(waiter), engine::Clock::now()); error < 0)
    return reply_status(req, error);
  parked.listen_for_interrupts();
}

}  // namespace mqfs::fuse
