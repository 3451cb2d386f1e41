// setxattr, getxattr, listxattr, removexattr: the user.mq.* attributes.
#include <sys/xattr.h>

#include <cerrno>
#include <string>

#include "engine/attributes.hpp"
#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

// The attribute `name` of a queue, or null (a directory, another namespace,
// an unknown name).
static const engine::Attribute* attribute_of(const engine::Node& node, std::string_view name) {
  if (node.is_directory() || !name.starts_with(engine::kAttributePrefix)) return nullptr;
  return engine::find_attribute(name.substr(engine::kAttributePrefix.size()));
}

// Replies to a getxattr/listxattr with `value`, or its size when size is 0.
static void reply_value(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) return void(fuse_reply_xattr(req, value.size()));
  if (size < value.size()) return reply_status(req, -ERANGE);
  fuse_reply_buf(req, value.data(), value.size());
}

void do_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  engine::Node* node = node_of(req, ino);
  if (!node) return reply_status(req, -ENOENT);
  const engine::Attribute* attribute = attribute_of(*node, name);
  if (!attribute) return reply_status(req, -ENOTSUP);
  if (!attribute->writable()) return reply_status(req, -EPERM);
  if (flags & XATTR_CREATE) return reply_status(req, -EEXIST);  // every attribute always exists

  engine::Settings settings = node->queue->settings();
  int status = attribute->parse(settings, std::string_view(value, size));
  if (status < 0) return reply_status(req, status);
  node->queue->configure(settings);
  reply_status(req, 0);
}

void do_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  engine::Node* node = node_of(req, ino);
  if (!node) return reply_status(req, -ENOENT);
  const engine::Attribute* attribute = attribute_of(*node, name);
  if (!attribute) return reply_status(req, -ENODATA);
  reply_value(req, attribute->print(*node->queue), size);
}

void do_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  engine::Node* node = node_of(req, ino);
  if (!node) return reply_status(req, -ENOENT);
  std::string names;
  if (!node->is_directory()) {
    for (const engine::Attribute& attribute : engine::attributes()) {
      names += engine::kAttributePrefix;
      names += attribute.name;
      names += '\0';
    }
  }
  reply_value(req, names, size);
}

// Removing a writable attribute restores the mount's default.
void do_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  engine::Node* node = node_of(req, ino);
  if (!node) return reply_status(req, -ENOENT);
  const engine::Attribute* attribute = attribute_of(*node, name);
  if (!attribute) return reply_status(req, -ENODATA);
  if (!attribute->writable()) return reply_status(req, -EPERM);
  engine::Settings settings = node->queue->settings();
  attribute->copy(settings, filesystem(req).names().defaults());
  node->queue->configure(settings);
  reply_status(req, 0);
}

}  // namespace mqfs::fuse
