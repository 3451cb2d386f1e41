// mkdir, rmdir, unlink, rename, link, symlink, opendir, readdir, releasedir.
#include <sys/stat.h>

#include <cerrno>
#include <vector>

#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

static engine::Owner owner_of(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return engine::Owner{ctx->uid, ctx->gid};
}

void make_node(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, engine::Node*& made) {
  made = nullptr;
  engine::Node* dir = node_of(req, parent);
  if (!dir) return reply_status(req, -ENOENT);
  int status = filesystem(req).names().make(*dir, name, mode, owner_of(req), made);
  if (status < 0) return reply_status(req, status);
}

void do_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  engine::Node* made;
  make_node(req, parent, name, S_IFDIR | (mode & 07777), made);
  if (made) reply_entry(req, *made);
}

void do_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  engine::Node* dir = node_of(req, parent);
  if (!dir) return reply_status(req, -ENOENT);
  reply_status(req, filesystem(req).names().rmdir(*dir, name));
}

void do_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  engine::Node* dir = node_of(req, parent);
  if (!dir) return reply_status(req, -ENOENT);
  reply_status(req, filesystem(req).names().unlink(*dir, name));
}

void do_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned flags) {
  engine::Node* from = node_of(req, parent);
  engine::Node* to = node_of(req, newparent);
  if (!from || !to) return reply_status(req, -ENOENT);
  reply_status(req, filesystem(req).names().rename(*from, name, *to, newname, flags));
}

// A queue has one name: hard links and symlinks are refused.
void do_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { reply_status(req, -EPERM); }
void do_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { reply_status(req, -EPERM); }

void do_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  engine::Node* node = node_of(req, ino);
  if (!node) return reply_status(req, -ENOENT);
  if (!node->is_directory()) return reply_status(req, -ENOTDIR);
  fi->fh = 0;
  fuse_reply_open(req, fi);
}

// Offsets: 1 and 2 follow "." and "..", then one per entry in name order. An
// entry added or removed between two reads may be missed or seen once more,
// as readdir(3) allows.
void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  engine::Node* dir = node_of(req, ino);
  if (!dir) return reply_status(req, -ENOENT);
  if (!dir->is_directory()) return reply_status(req, -ENOTDIR);

  std::vector<char> buf(size);
  size_t used = 0;
  auto add = [&](const char* name, const engine::Node& node, off_t next) {
    struct stat st {};
    st.st_ino = node.ino;
    st.st_mode = node.mode;
    size_t len = fuse_add_direntry(req, buf.data() + used, size - used, name, &st, next);
    if (len > size - used) return false;
    used += len;
    return true;
  };
  off_t index = 0;
  if (off <= index++ && !add(".", *dir, index)) return void(fuse_reply_buf(req, buf.data(), used));
  if (off <= index++ && !add("..", dir->parent ? *dir->parent : *dir, index))
    return void(fuse_reply_buf(req, buf.data(), used));
  for (const auto& [name, child] : dir->children) {
    if (off <= index++ && !add(name.c_str(), *child, index)) break;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void do_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { reply_status(req, 0); }

}  // namespace mqfs::fuse
