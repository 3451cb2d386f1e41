// read: dequeue, now or when a message arrives (the rules live in Queue::receive).
#include <fcntl.h>

#include <cerrno>

#include "fuse/waiters.hpp"

namespace mqfs::fuse {

void do_read(Reply& reply, fuse_ino_t, size_t size, off_t, fuse_file_info* fi) {
  // read(2) reaches a direct-I/O file with its caller's lock owner; only the
  // page cache (filling a private mmap) reads without one. A mapping is no
  // way to receive: its pages would take messages no one reads. Refused, the
  // access to the mapping gets SIGBUS and the queue keeps its messages.
  if (fi->lock_owner == 0) return reply.error(ENODEV);
  engine::OpenFile& file = open_file_of(fi);
  file.set_nonblocking(fi->flags & O_NONBLOCK);
  ReadRequest request(reply);
  file.source().receive(file, size, reply.pid(), engine::Clock::now(), request);
}

}  // namespace mqfs::fuse
