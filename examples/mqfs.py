"""The ioctls of include/mqfs.h for Python examples: `import mqfs` from a
script in this directory, then e.g.

    fcntl.ioctl(fd, mqfs.IOC_SET_TYPE, struct.pack("q", 2))
    mqfs.set_select(fd, -2)            # types <= 2, lowest first
    message_type = mqfs.delivery(fd).type

The numbers are _IOW/_IOR of the C header (x86_64 and aarch64): for example
MQFS_IOC_SET_TYPE is 0x40084d08 and MQFS_IOC_SET_SELECT 0x40104d09.
"""
import collections
import fcntl
import struct


def _ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (ord("M") << 8) | nr


_WRITE, _READ = 1, 2

IOC_SET_PRIORITY = _ioc(_WRITE, 1, 4)   # int32_t
IOC_SET_READ_MODE = _ioc(_WRITE, 2, 4)  # int32_t
IOC_SET_ACK = _ioc(_WRITE, 4, 4)        # int32_t
IOC_ACK = _ioc(_WRITE, 5, 8)            # uint64_t id, or 0
IOC_NACK = _ioc(_WRITE, 6, 8)           # uint64_t id, or 0
DELIVERY = struct.Struct("QqiIq")       # struct mqfs_delivery
IOC_GET_DELIVERY = _ioc(_READ, 7, DELIVERY.size)
IOC_SET_TYPE = _ioc(_WRITE, 8, 8)       # int64_t
SELECT = struct.Struct("qii")           # struct mqfs_select: type, except, reserved (0)
IOC_SET_SELECT = _ioc(_WRITE, 9, SELECT.size)

READ_MESSAGE, READ_STREAM, READ_PEEK = 0, 1, 2
ACK_AUTO, ACK_EXPLICIT = 0, 1
TYPE_DEFAULT = -1

Delivery = collections.namedtuple("Delivery", "id type priority deliveries enqueued_ns")


def set_read_mode(fd, mode):
    fcntl.ioctl(fd, IOC_SET_READ_MODE, struct.pack("i", mode))


def set_type(fd, message_type):
    """The type of the messages fd writes from now on (TYPE_DEFAULT: the queue's user.mq.type)."""
    fcntl.ioctl(fd, IOC_SET_TYPE, struct.pack("q", message_type))


def set_select(fd, message_type, except_=0):
    """What fd's reads take, as msgrcv's msgtyp: 0 any type, t > 0 type t
    (with except_ 1: any type but t), t < 0 the lowest type up to -t."""
    fcntl.ioctl(fd, IOC_SET_SELECT, SELECT.pack(message_type, except_, 0))


def delivery(fd):
    """The last message read (or peeked) on fd: its id, type, priority, delivery count, send time."""
    return Delivery(*DELIVERY.unpack(fcntl.ioctl(fd, IOC_GET_DELIVERY, bytes(DELIVERY.size))))
