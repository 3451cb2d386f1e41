// ioctl: per-descriptor control (mqfs.h).
#include <fcntl.h>

#include <cerrno>
#include <cstring>

#include "fuse/filesystem.hpp"
#include "mqfs.h"

namespace mqfs::fuse {

template <class T>
static bool read_value(const void* in_buf, size_t in_bufsz, T& value) {
  if (!in_buf || in_bufsz < sizeof value) return false;
  std::memcpy(&value, in_buf, sizeof value);
  return true;
}

void do_ioctl(Reply& reply, fuse_ino_t, unsigned int cmd, void*, fuse_file_info* fi, unsigned flags,
              const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
  if (flags & FUSE_IOCTL_DIR) return reply.status(-ENOTTY);
  engine::OpenFile& file = open_file_of(fi);
  int32_t value = 0;
  uint64_t id = 0;

  switch (cmd) {
    case MQFS_IOC_SET_PRIORITY:
      if (!read_value(in_buf, in_bufsz, value)) return reply.status(-EINVAL);
      if (value == MQFS_PRIORITY_DEFAULT)
        file.set_priority(std::nullopt);
      else if (value >= 0 && value <= MQFS_PRIORITY_MAX)
        file.set_priority(static_cast<engine::Priority>(value));
      else
        return reply.status(-EINVAL);
      reply.ioctl(nullptr, 0);
      return;

    case MQFS_IOC_SET_READ_MODE:
      if (!read_value(in_buf, in_bufsz, value)) return reply.status(-EINVAL);
      if (value == MQFS_READ_DEFAULT)
        file.set_read_mode(std::nullopt);
      else if (value == MQFS_READ_MESSAGE)
        file.set_read_mode(engine::ReadMode::message);
      else if (value == MQFS_READ_STREAM)
        file.set_read_mode(engine::ReadMode::stream);
      else if (value == MQFS_READ_PEEK)
        file.set_read_mode(engine::ReadMode::peek);
      else
        return reply.status(-EINVAL);
      reply.ioctl(nullptr, 0);
      return;

    case MQFS_IOC_SET_TYPE: {
      int64_t type = 0;
      if (!read_value(in_buf, in_bufsz, type)) return reply.status(-EINVAL);
      if (type == MQFS_TYPE_DEFAULT)
        file.set_type(std::nullopt);
      else if (type >= 1)
        file.set_type(type);
      else
        return reply.status(-EINVAL);
      reply.ioctl(nullptr, 0);
      return;
    }

    case MQFS_IOC_SET_SELECT: {
      mqfs_select select{};
      if (!read_value(in_buf, in_bufsz, select)) return reply.status(-EINVAL);
      if (select.reserved != 0 || (select.except != 0 && select.except != 1) || (select.except && select.type <= 0))
        return reply.status(-EINVAL);
      file.source().select(file, engine::Selection{.type = select.type, .except = select.except == 1});
      reply.ioctl(nullptr, 0);
      return;
    }

    case MQFS_IOC_SET_ACK:
      if (!read_value(in_buf, in_bufsz, value)) return reply.status(-EINVAL);
      if (value == MQFS_ACK_AUTO)
        file.set_ack_mode(engine::AckMode::automatic);
      else if (value == MQFS_ACK_EXPLICIT)
        file.set_ack_mode(engine::AckMode::explicit_ack);
      else
        return reply.status(-EINVAL);
      reply.ioctl(nullptr, 0);
      return;

    case MQFS_IOC_ACK:
    case MQFS_IOC_NACK: {
      if (!read_value(in_buf, in_bufsz, id)) return reply.status(-EINVAL);
      const int status = cmd == MQFS_IOC_ACK ? file.source().ack(file, id)
                                             : file.source().nack(file, id, engine::Clock::now());
      if (status < 0) return reply.status(status);
      reply.ioctl(nullptr, 0);
      return;
    }

    case MQFS_IOC_GET_DELIVERY: {
      if (out_bufsz < sizeof(mqfs_delivery)) return reply.status(-EINVAL);
      const auto& last = file.last_delivery();
      if (!last) return reply.status(-ENOMSG);
      mqfs_delivery delivery{};
      delivery.id = last->id;
      delivery.type = last->type;
      delivery.priority = last->priority;
      delivery.deliveries = last->deliveries;
      delivery.enqueued_ns = last->enqueued_ns;
      reply.ioctl(&delivery, sizeof delivery);
      return;
    }

    case MQFS_IOC_GET_ATTR: {
      if (out_bufsz < sizeof(mqfs_attr)) return reply.status(-EINVAL);
      const engine::Queue& queue = file.queue();
      mqfs_attr attr{};
      // The ioctl request carries no file flags: O_NONBLOCK as of the file's
      // open or last read or write (fcntl(F_SETFL) shows after the next one).
      attr.flags = file.nonblocking() ? O_NONBLOCK : 0;
      attr.maxmsg = queue.settings().maxmsg;
      attr.msgsize = queue.settings().msgsize;
      attr.curmsgs = static_cast<int64_t>(file.source().curmsgs());  // on a topic: the file's subscription
      attr.curbytes = static_cast<int64_t>(file.source().curbytes());
      attr.priority = file.priority();
      attr.read_mode = static_cast<int64_t>(file.read_mode());  // MQFS_READ_* in the same order
      attr.framing = static_cast<int64_t>(queue.settings().framing);
      reply.ioctl(&attr, sizeof attr);
      return;
    }
  }
  reply.status(-ENOTTY);
}

}  // namespace mqfs::fuse
