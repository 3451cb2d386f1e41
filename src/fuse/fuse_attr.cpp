// lookup, forget, getattr, setattr, statfs: names and attributes of nodes.
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <vector>

#include "fuse/access.hpp"
#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

struct stat stat_of(const engine::Node& node) {
  struct stat st {};
  st.st_ino = node.ino;
  st.st_mode = node.mode;
  st.st_nlink = node.nlink();
  st.st_uid = node.owner.uid;
  st.st_gid = node.owner.gid;
  st.st_atim = node.times().atime;
  st.st_mtim = node.times().mtime;
  st.st_ctim = node.times().ctime;
  st.st_blksize = 4096;
  if (const auto& queue = node.queue) {
    st.st_size = static_cast<off_t>(queue->curbytes());
    st.st_blocks = static_cast<blkcnt_t>((queue->curbytes() + 511) / 512);
    // stdio sizes its buffer by st_blksize: at least msgsize, so that one
    // flush of a message up to msgsize bytes is one write. The kernel keeps
    // only powers of two.
    st.st_blksize = static_cast<blksize_t>(std::bit_ceil(static_cast<uint64_t>(queue->settings().msgsize)));
  }
  return st;
}

// A queue's size and times change with every message, and fstat(2) of an
// open file must show the queue as it is. The attributes of a lookup or a
// getattr are kept for the kernel's smallest unit of time, one clock tick
// (4 ms at HZ=250): long enough that a path walk's permission checks and the
// open after it use the attributes just fetched, where a timeout of 0 made
// every `echo > q` and `cat q` ask for them twice more; short enough that a
// later fstat asks again. A stale mount fails stat(2) of its root once that
// tick is over.
constexpr double kAttrTimeout = 1e-6;  // seconds

fuse_entry_param entry_of(Filesystem& fs, engine::Node& node) {
  fuse_entry_param entry{};
  entry.attr = stat_of(node);
  entry.attr_timeout = kAttrTimeout;
  // A queue's name is looked up again at every path walk, which gives the
  // walk a node id (and kernel inode) of its own (engine/node_ids.hpp).
  entry.entry_timeout = node.is_directory() ? 1.0 : 0.0;
  entry.ino = fs.node_ids().remember(node);
  return entry;
}

void reply_entry(Reply& reply, engine::Node& node) {
  Filesystem& fs = reply.filesystem();
  const fuse_entry_param entry = entry_of(fs, node);
  if (!reply.entry(entry)) fs.node_ids().forget(entry.ino, 1);
}

void do_lookup(Reply& reply, fuse_ino_t parent, const char* name) {
  engine::Node* dir = node_of(reply, parent);
  if (!dir) return reply.status(-ENOENT);
  if (!dir->is_directory()) return reply.status(-ENOTDIR);
  if (std::strlen(name) > engine::kNameMax) return reply.status(-ENAMETOOLONG);
  engine::Node* node = reply.filesystem().names().lookup(*dir, name);
  if (!node) return reply.status(-ENOENT);
  reply_entry(reply, *node);
}

void do_forget(Reply& reply, fuse_ino_t ino, uint64_t nlookup) {
  reply.filesystem().node_ids().forget(ino, nlookup);
  reply.none();
}

void do_forget_multi(Reply& reply, size_t count, fuse_forget_data* forgets) {
  auto& ids = reply.filesystem().node_ids();
  for (size_t i = 0; i < count; ++i) ids.forget(forgets[i].ino, forgets[i].nlookup);
  reply.none();
}

void do_getattr(Reply& reply, fuse_ino_t ino, fuse_file_info*) {
  engine::Node* node = node_of(reply, ino);
  if (!node) return reply.status(-ENOENT);
  struct stat st = stat_of(*node);
  reply.attr(st, kAttrTimeout);
}

static timespec time_to_set(int to_set, int now_flag, const timespec& value) {
  return (to_set & now_flag) ? engine::now_realtime() : value;
}

void do_setattr(Reply& reply, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  engine::Node* node = node_of(reply, ino);
  if (!node) return reply.status(-ENOENT);
  // Check everything first: a refused request changes nothing.
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (node->is_directory()) return reply.status(-EISDIR);
    if (attr->st_size != 0) return reply.status(-EINVAL);  // only a purge is meaningful
    // A purge takes messages, so it needs read permission as well as the
    // write permission the kernel checked. ftruncate on a descriptor open
    // for reading has it: that descriptor could take them all anyway.
    std::vector<gid_t> groups;
    const bool reads = fi && open_file_of(fi).reads();
    if (!reads && !engine::may_read(*node, caller_of(reply, &groups))) return reply.status(-EACCES);
  }
  if (to_set & FUSE_SET_ATTR_SIZE) node->queue->purge();
  if (to_set & FUSE_SET_ATTR_MODE) node->mode = (node->mode & S_IFMT) | (attr->st_mode & 07777);
  if (to_set & FUSE_SET_ATTR_UID) node->owner.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) node->owner.gid = attr->st_gid;
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) reply.filesystem().names().changed(*node);
  auto& times = node->times();
  if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
    times.atime = time_to_set(to_set, FUSE_SET_ATTR_ATIME_NOW, attr->st_atim);
  if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
    times.mtime = time_to_set(to_set, FUSE_SET_ATTR_MTIME_NOW, attr->st_mtim);
  times.ctime = engine::now_realtime();
  struct stat st = stat_of(*node);
  reply.attr(st, kAttrTimeout);
}

// df shows the byte budget (in 1-byte fragments, so exactly) and the node
// cap as inodes.
void do_statfs(Reply& reply, fuse_ino_t) {
  const engine::Budget& budget = reply.filesystem().budget();
  struct statvfs st {};
  st.f_bsize = 4096;
  st.f_frsize = 1;
  st.f_blocks = budget.max_bytes();
  st.f_bfree = st.f_bavail = budget.max_bytes() - budget.bytes();
  st.f_files = budget.max_nodes();
  st.f_ffree = st.f_favail = budget.max_nodes() - budget.nodes();
  st.f_namemax = engine::kNameMax;
  reply.statfs(st);
}

}  // namespace mqfs::fuse
