#include "fuse/access.hpp"

#include <algorithm>

#include "engine/queue.hpp"
#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

engine::Caller caller_of(fuse_req_t req, std::vector<gid_t>* groups) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  engine::Caller caller{ctx->uid, ctx->gid, {}};
  if (!groups) return caller;
  groups->resize(32);
  int count = fuse_req_getgroups(req, static_cast<int>(groups->size()), groups->data());
  if (count > static_cast<int>(groups->size())) {
    groups->resize(static_cast<std::size_t>(count));
    count = fuse_req_getgroups(req, count, groups->data());
  }
  // Unknown (no /proc, or the process is gone): the primary group alone.
  groups->resize(count > 0 ? std::min(static_cast<std::size_t>(count), groups->size()) : 0);
  caller.groups = *groups;
  return caller;
}

void clear_setid_bits_for_write(fuse_req_t req, fuse_ino_t ino) {
  engine::Node* node = node_of(req, ino);
  if (!node) return;
  const mode_t mode = engine::mode_after_write(node->mode, caller_of(req));
  if (mode == node->mode) return;
  node->mode = mode;
  node->times().ctime = engine::now_realtime();
}

}  // namespace mqfs::fuse
