#include "fuse/access.hpp"

#include <algorithm>

#include "engine/queue.hpp"
#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

engine::Caller caller_of(const Reply& reply, std::vector<gid_t>* groups) {
  engine::Caller caller{reply.uid(), reply.gid(), {}};
  fuse_req_t req = reply.request();
  if (!groups || !req) return caller;
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

void clear_setid_bits_for_write(const Reply& reply, fuse_ino_t ino) {
  engine::Node* node = node_of(reply, ino);
  if (!node) return;
  const mode_t mode = engine::mode_after_write(node->mode, caller_of(reply));
  if (mode == node->mode) return;
  node->mode = mode;
  node->times().ctime = engine::now_realtime();
  reply.filesystem().names().changed(*node);
}

}  // namespace mqfs::fuse
