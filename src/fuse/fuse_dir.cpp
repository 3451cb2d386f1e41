// mkdir, rmdir, unlink, rename, link, symlink, opendir, readdir, releasedir.
#include <sys/stat.h>

#include <cerrno>
#include <vector>

#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

static engine::Owner owner_of(const Reply& reply) { return engine::Owner{reply.uid(), reply.gid()}; }

void make_node(Reply& reply, fuse_ino_t parent, const char* name, mode_t mode, engine::Node*& made) {
  made = nullptr;
  engine::Node* dir = node_of(reply, parent);
  if (!dir) return reply.status(-ENOENT);
  int status = reply.filesystem().names().make(*dir, name, mode, owner_of(reply), made);
  if (status < 0) return reply.status(status);
}

void do_mkdir(Reply& reply, fuse_ino_t parent, const char* name, mode_t mode) {
  engine::Node* made;
  make_node(reply, parent, name, S_IFDIR | (mode & 07777), made);
  if (made) reply_entry(reply, *made);
}

void do_rmdir(Reply& reply, fuse_ino_t parent, const char* name) {
  engine::Node* dir = node_of(reply, parent);
  if (!dir) return reply.status(-ENOENT);
  reply.status(reply.filesystem().names().rmdir(*dir, name));
}

void do_unlink(Reply& reply, fuse_ino_t parent, const char* name) {
  engine::Node* dir = node_of(reply, parent);
  if (!dir) return reply.status(-ENOENT);
  reply.status(reply.filesystem().names().unlink(*dir, name));
}

void do_rename(Reply& reply, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned flags) {
  engine::Node* from = node_of(reply, parent);
  engine::Node* to = node_of(reply, newparent);
  if (!from || !to) return reply.status(-ENOENT);
  reply.status(reply.filesystem().names().rename(*from, name, *to, newname, flags));
}

// A queue has one name: hard links and symlinks are refused.
void do_link(Reply& reply, fuse_ino_t, fuse_ino_t, const char*) { reply.status(-EPERM); }
void do_symlink(Reply& reply, const char*, fuse_ino_t, const char*) { reply.status(-EPERM); }

void do_opendir(Reply& reply, fuse_ino_t ino, fuse_file_info* fi) {
  engine::Node* node = node_of(reply, ino);
  if (!node) return reply.status(-ENOENT);
  if (!node->is_directory()) return reply.status(-ENOTDIR);
  fi->fh = 0;
  reply.open(*fi);
}

// Offsets: 1 and 2 follow "." and "..", then one per entry in name order. An
// entry added or removed between two reads may be missed or seen once more,
// as readdir(3) allows.
void do_readdir(Reply& reply, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  engine::Node* dir = node_of(reply, ino);
  if (!dir) return reply.status(-ENOENT);
  if (!dir->is_directory()) return reply.status(-ENOTDIR);

  std::vector<char> buf(size);
  size_t used = 0;
  auto add = [&](const char* name, const engine::Node& node, off_t next) {
    struct stat st {};
    st.st_ino = node.ino;
    st.st_mode = node.mode;
    size_t len = fuse_add_direntry(reply.request(), buf.data() + used, size - used, name, &st, next);
    if (len > size - used) return false;
    used += len;
    return true;
  };
  off_t index = 0;
  if (off <= index++ && !add(".", *dir, index)) return void(reply.buf(buf.data(), used));
  if (off <= index++ && !add("..", dir->parent ? *dir->parent : *dir, index))
    return void(reply.buf(buf.data(), used));
  for (const auto& [name, child] : dir->children) {
    if (off <= index++ && !add(name.c_str(), *child, index)) break;
  }
  reply.buf(buf.data(), used);
}

void do_releasedir(Reply& reply, fuse_ino_t, fuse_file_info*) { reply.status(0); }

}  // namespace mqfs::fuse
