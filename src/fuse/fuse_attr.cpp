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

fuse_entry_param entry_of(Filesystem& fs, engine::Node& node) {
  fuse_entry_param entry{};
  entry.attr = stat_of(node);
  entry.attr_timeout = 0;  // sizes and times change with every message
  // A queue's name is looked up again at every path walk, which gives the
  // walk a node id (and kernel inode) of its own (engine/node_ids.hpp).
  entry.entry_timeout = node.is_directory() ? 1.0 : 0.0;
  entry.ino = fs.node_ids().remember(node);
  return entry;
}

void reply_entry(fuse_req_t req, engine::Node& node) {
  Filesystem& fs = filesystem(req);  // the reply ends the request
  const fuse_entry_param entry = entry_of(fs, node);
  if (fuse_reply_entry(req, &entry) != 0) fs.node_ids().forget(entry.ino, 1);
}

void do_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  engine::Node* dir = node_of(req, parent);
  if (!dir) return reply_status(req, -ENOENT);
  if (!dir->is_directory()) return reply_status(req, -ENOTDIR);
  if (std::strlen(name) > engine::kNameMax) return reply_status(req, -ENAMETOOLONG);
  engine::Node* node = filesystem(req).names().lookup(*dir, name);
  if (!node) return reply_status(req, -ENOENT);
  reply_entry(req, *node);
}

void do_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  filesystem(req).node_ids().forget(ino, nlookup);
  fuse_reply_none(req);
}

void do_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  auto& ids = filesystem(req).node_ids();
  for (size_t i = 0; i < count; ++i) ids.forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void do_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  engine::Node* node = node_of(req, ino);
  if (!node) return reply_status(req, -ENOENT);
  struct stat st = stat_of(*node);
  fuse_reply_attr(req, &st, 0);
}

static timespec time_to_set(int to_set, int now_flag, const timespec& value) {
  return (to_set & now_flag) ? engine::now_realtime() : value;
}

void do_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  engine::Node* node = node_of(req, ino);
  if (!node) return reply_status(req, -ENOENT);
  // Check everything first: a refused request changes nothing.
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (node->is_directory()) return reply_status(req, -EISDIR);
    if (attr->st_size != 0) return reply_status(req, -EINVAL);  // only a purge is meaningful
    // A purge takes messages, so it needs read permission as well as the
    // write permission the kernel checked. ftruncate on a descriptor open
    // for reading has it: that descriptor could take them all anyway.
    std::vector<gid_t> groups;
    const bool reads = fi && open_file_of(fi).reads();
    if (!reads && !engine::may_read(*node, caller_of(req, &groups))) return reply_status(req, -EACCES);
  }
  if (to_set & FUSE_SET_ATTR_SIZE) node->queue->purge();
  if (to_set & FUSE_SET_ATTR_MODE) node->mode = (node->mode & S_IFMT) | (attr->st_mode & 07777);
  if (to_set & FUSE_SET_ATTR_UID) node->owner.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) node->owner.gid = attr->st_gid;
  auto& times = node->times();
  if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
    times.atime = time_to_set(to_set, FUSE_SET_ATTR_ATIME_NOW, attr->st_atim);
  if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
    times.mtime = time_to_set(to_set, FUSE_SET_ATTR_MTIME_NOW, attr->st_mtim);
  times.ctime = engine::now_realtime();
  struct stat st = stat_of(*node);
  fuse_reply_attr(req, &st, 0);
}

// df shows the byte budget (in 1-byte fragments, so exactly) and the node
// cap as inodes.
void do_statfs(fuse_req_t req, fuse_ino_t) {
  const engine::Budget& budget = filesystem(req).budget();
  struct statvfs st {};
  st.f_bsize = 4096;
  st.f_frsize = 1;
  st.f_blocks = budget.max_bytes();
  st.f_bfree = st.f_bavail = budget.max_bytes() - budget.bytes();
  st.f_files = budget.max_nodes();
  st.f_ffree = st.f_favail = budget.max_nodes() - budget.nodes();
  st.f_namemax = engine::kNameMax;
  fuse_reply_statfs(req, &st);
}

}  // namespace mqfs::fuse
