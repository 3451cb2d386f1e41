// write: enqueue, now or when there is room (the rules live in Queue::send).
#include <fcntl.h>

#include "fuse/access.hpp"
#include "fuse/waiters.hpp"

namespace mqfs::fuse {

void do_write(Reply& reply, fuse_ino_t ino, const char* buf, size_t size, off_t, fuse_file_info* fi) {
  clear_setid_bits_for_write(reply, ino);
  engine::OpenFile& file = open_file_of(fi);
  file.set_nonblocking(fi->flags & O_NONBLOCK);
  WriteRequest request(reply);
  file.queue().send(file, std::as_bytes(std::span(buf, size)), reply.pid(), engine::Clock::now(), request);
}

}  // namespace mqfs::fuse
