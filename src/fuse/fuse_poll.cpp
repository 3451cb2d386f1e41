// poll: readiness for poll, select and epoll.
#include <poll.h>

#include <memory>

#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

namespace {

// The kernel's poll handle for one open file, notified once.
class PollWatch final : public engine::Watch {
 public:
  explicit PollWatch(fuse_pollhandle* handle) : handle_(handle) {}
  ~PollWatch() override { fuse_pollhandle_destroy(handle_); }
  void notify() override { fuse_lowlevel_notify_poll(handle_); }

 private:
  fuse_pollhandle* handle_;
};

}  // namespace

// Readable: a read would not block (a message is queued, the file holds the
// rest of one, or it is at end of file). Writable: a write would not block.
void do_poll(Reply& reply, fuse_ino_t, fuse_file_info* fi, fuse_pollhandle* ph) {
  engine::OpenFile& file = open_file_of(fi);
  unsigned events = 0;
  if (file.reads() && file.source().readable(file)) events |= POLLIN | POLLRDNORM;
  if (file.writes() && file.queue().writable()) events |= POLLOUT | POLLWRNORM;
  // On a topic, its subscription tells of both (a topic tells its subscriptions).
  if (ph) file.source().watch(file, std::make_unique<PollWatch>(ph));
  reply.poll(events);
}

}  // namespace mqfs::fuse
