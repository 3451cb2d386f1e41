// mknod, create, open, release, flush, fsync: queues as open files.
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <memory>

#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

// Queues are pipe-like files: direct I/O so that each write(2) and read(2) is
// one request, and not seekable. Call only when the mount may open one more.
static engine::OpenFile& open_queue(fuse_req_t req, engine::Node& node, fuse_file_info* fi) {
  const int access = fi->flags & O_ACCMODE;
  auto& file = filesystem(req).keep_open(
      std::make_unique<engine::OpenFile>(node.queue, access != O_WRONLY, access != O_RDONLY));
  file.set_nonblocking(fi->flags & O_NONBLOCK);
  fi->fh = reinterpret_cast<uintptr_t>(&file);
  fi->direct_io = 1;
  fi->nonseekable = 1;
  fi->keep_cache = 0;
  return file;
}

void do_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  if (!S_ISREG(mode)) return reply_status(req, -EPERM);  // no FIFOs, devices or sockets
  engine::Node* made;
  make_node(req, parent, name, mode, made);
  if (made) reply_entry(req, *made);
}

void do_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  if (!S_ISREG(mode)) return reply_status(req, -EPERM);
  if (!filesystem(req).budget().may_open_file()) return reply_status(req, -ENFILE);
  engine::Node* made;
  make_node(req, parent, name, mode, made);
  if (!made) return;
  Filesystem& fs = filesystem(req);  // the reply ends the request
  auto& file = open_queue(req, *made, fi);
  const fuse_entry_param entry = entry_of(fs, *made);
  if (fuse_reply_create(req, &entry, fi) != 0) {
    fs.close(file);
    fs.node_ids().forget(entry.ino, 1);
    return;
  }
  fs.node_ids().opened(entry.ino);
}

// O_TRUNC is ignored: `echo b > q` adds a message and never purges.
void do_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  engine::Node* node = node_of(req, ino);
  if (!node) return reply_status(req, -ENOENT);
  if (node->is_directory()) return reply_status(req, -EISDIR);
  Filesystem& fs = filesystem(req);  // the reply ends the request
  if (!fs.budget().may_open_file()) return reply_status(req, -ENFILE);
  auto& file = open_queue(req, *node, fi);
  if (fuse_reply_open(req, fi) != 0) return fs.close(file);
  fs.node_ids().opened(ino);
}

// The last close of an open file. Its unread rest of a message is dropped;
// no request of its own can still be waiting, since a waiting read or write
// keeps the file open.
void do_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  engine::OpenFile& file = open_file_of(fi);
  file.queue().flush(file, fuse_req_ctx(req)->pid, engine::Clock::now());
  filesystem(req).close(file);
  filesystem(req).node_ids().released(ino);
  reply_status(req, 0);
}

// close(2): the unfinished last line of a line-framed writer is sent now, so
// that it is there for the next reader (release comes later, unawaited).
// When the mount's caps leave no room to keep it, close(2) reports that.
void do_flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  engine::OpenFile& file = open_file_of(fi);
  reply_status(req, file.queue().flush(file, fuse_req_ctx(req)->pid, engine::Clock::now()));
}

void do_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { reply_status(req, 0); }

}  // namespace mqfs::fuse
