// mknod, create, open, release, flush, fsync: queues as open files.
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <memory>

#include "fuse/exit_status.hpp"
#include "fuse/waiters.hpp"

namespace mqfs::fuse {

// Queues are pipe-like files: direct I/O so that each write(2) and read(2) is
// one request, and not seekable. Call only when the mount may open one more.
static engine::OpenFile& open_queue(Reply& reply, engine::Node& node, fuse_file_info* fi) {
  const int access = fi->flags & O_ACCMODE;
  auto& file = reply.filesystem().keep_open(
      std::make_unique<engine::OpenFile>(node.queue, access != O_WRONLY, access != O_RDONLY));
  file.set_nonblocking(fi->flags & O_NONBLOCK);
  fi->fh = reinterpret_cast<uintptr_t>(&file);
  fi->direct_io = 1;
  fi->nonseekable = 1;
  fi->keep_cache = 0;
  // A close ends what its file wrote (framing); a file open only for reading
  // wrote nothing, so its close needs no FLUSH request, which pays for the
  // lookup every path walk of a queue makes (docs/design.md).
  fi->noflush = access == O_RDONLY;
  return file;
}

void do_mknod(Reply& reply, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  if (!S_ISREG(mode)) return reply.status(-EPERM);  // no FIFOs, devices or sockets
  engine::Node* made;
  make_node(reply, parent, name, mode, made);
  if (made) reply_entry(reply, *made);
}

void do_create(Reply& reply, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  if (!S_ISREG(mode)) return reply.status(-EPERM);
  if (!reply.filesystem().budget().may_open_file()) return reply.status(-ENFILE);
  engine::Node* made;
  make_node(reply, parent, name, mode, made);
  if (!made) return;
  Filesystem& fs = reply.filesystem();
  auto& file = open_queue(reply, *made, fi);
  const fuse_entry_param entry = entry_of(fs, *made);
  if (!reply.create(entry, *fi)) {
    fs.close(file);
    fs.node_ids().forget(entry.ino, 1);
    return;
  }
  fs.node_ids().opened(entry.ino);
}

// O_TRUNC is ignored: `echo b > q` adds a message and never purges.
void do_open(Reply& reply, fuse_ino_t ino, fuse_file_info* fi) {
  engine::Node* node = node_of(reply, ino);
  if (!node) return reply.status(-ENOENT);
  if (node->is_directory()) return reply.status(-EISDIR);
  Filesystem& fs = reply.filesystem();
  if (!fs.budget().may_open_file()) return reply.status(-ENFILE);
  auto& file = open_queue(reply, *node, fi);
  if (!reply.open(*fi)) return fs.close(file);
  fs.node_ids().opened(ino);
}

// The last close of an open file. Its unread rest of a message is dropped;
// no request of its own can still be waiting, since a waiting read or write
// keeps the file open.
void do_release(Reply& reply, fuse_ino_t ino, fuse_file_info* fi) {
  engine::OpenFile& file = open_file_of(fi);
  file.queue().flush(file, reply.pid(), engine::Clock::now());
  reply.filesystem().close(file);
  reply.filesystem().node_ids().released(ino);
  reply.status(0);
}

// close(2) ends the message under way; fsync(2) ends a whole-file one.
// Line framing: at close the unfinished last line is sent now, so that it is there for the next reader
// (release comes later, unawaited); when the mount's caps leave no room to
// keep it, close(2) reports that. File framing: the bytes written since the
// last message are sent, and the close waits for room as a write would —
// unless the closing task was killed by a signal: the kernel closes a dying
// writer's files too, and that close must not send half a message.
static void end_message(Reply& reply, fuse_file_info* fi, engine::Queue::Ending ending) {
  engine::OpenFile& file = open_file_of(fi);
  using enum engine::Queue::Ending;
  if (ending == close && file.writing_message() && killed_by_signal(reply.pid())) ending = killed;
  WriteRequest request(reply, ending == fsync ? Sent::synced : Sent::status);
  file.queue().end_message(file, reply.pid(), engine::Clock::now(), ending, request);
}

void do_flush(Reply& reply, fuse_ino_t, fuse_file_info* fi) { end_message(reply, fi, engine::Queue::Ending::close); }

void do_fsync(Reply& reply, fuse_ino_t, int, fuse_file_info* fi) {
  end_message(reply, fi, engine::Queue::Ending::fsync);
}

}  // namespace mqfs::fuse
