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
static void reply_value(Reply& reply, const std::string& value, size_t size) {
  if (size == 0) return void(reply.xattr_size(value.size()));
  if (size < value.size()) return reply.status(-ERANGE);
  reply.buf(value.data(), value.size());
}

void do_setxattr(Reply& reply, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  engine::Node* node = node_of(reply, ino);
  if (!node) return reply.status(-ENOENT);
  const engine::Attribute* attribute = attribute_of(*node, name);
  if (!attribute) return reply.status(-ENOTSUP);
  if (!attribute->writable()) return reply.status(-EPERM);
  if (flags & XATTR_CREATE) return reply.status(-EEXIST);  // every attribute always exists

  engine::Settings settings = node->queue->settings();
  int status = attribute->parse(settings, std::string_view(value, size));
  if (status == 0) status = reply.filesystem().names().configure(*node, settings);
  reply.status(status);
}

void do_getxattr(Reply& reply, fuse_ino_t ino, const char* name, size_t size) {
  engine::Node* node = node_of(reply, ino);
  if (!node) return reply.status(-ENOENT);
  const engine::Attribute* attribute = attribute_of(*node, name);
  if (!attribute) return reply.status(-ENODATA);
  reply_value(reply, attribute->print(*node->queue), size);
}

void do_listxattr(Reply& reply, fuse_ino_t ino, size_t size) {
  engine::Node* node = node_of(reply, ino);
  if (!node) return reply.status(-ENOENT);
  std::string names;
  if (!node->is_directory()) {
    for (const engine::Attribute& attribute : engine::attributes()) {
      names += engine::kAttributePrefix;
      names += attribute.name;
      names += '\0';
    }
  }
  reply_value(reply, names, size);
}

// Removing a writable attribute restores the mount's default.
void do_removexattr(Reply& reply, fuse_ino_t ino, const char* name) {
  engine::Node* node = node_of(reply, ino);
  if (!node) return reply.status(-ENOENT);
  const engine::Attribute* attribute = attribute_of(*node, name);
  if (!attribute) return reply.status(-ENODATA);
  if (!attribute->writable()) return reply.status(-EPERM);
  engine::Settings settings = node->queue->settings();
  attribute->copy(settings, reply.filesystem().names().defaults());
  reply.status(reply.filesystem().names().configure(*node, settings));
}

}  // namespace mqfs::fuse
