#!/usr/bin/env python3
"""The seed's "Example 6: System V Message Queue" with mqfs, in Python:
three messages of types 1 and 2 on one queue, then msgrcv() by type.

Each System V call has its mqfs counterpart:

    msgget(ftok(...), IPC_CREAT)   os.open(MOUNT/sysv/queue, O_RDWR | O_CREAT)
    msgsnd() with mtype = t        fcntl.ioctl(MQFS_IOC_SET_TYPE, t), then os.write()
    msgrcv(..., msgtyp = t, 0)     fcntl.ioctl(MQFS_IOC_SET_SELECT, (t, 0)), then os.read()
    msgctl(IPC_RMID)               os.unlink()

The descriptor reads in stream mode, so that it can receive message after
message, as a msqid can. It prints exactly what the seed's program prints
(nothing in it depends on pids or timing):

    Messages sent
    Type 1: Type 1 message
    Type 1: Another type 1
    Type 2: Type 2 message

usage: sysv_types.py [MOUNT]
"""
import fcntl
import os
import struct
import sys

import mqfs  # the ioctls of include/mqfs.h (examples/mqfs.py)


def msgsnd(msgid, mtype, mtext):
    """Sends one message of type mtype: the descriptor's type goes with each later write."""
    fcntl.ioctl(msgid, mqfs.IOC_SET_TYPE, struct.pack("q", mtype))  # 0x40084d08, an int64_t
    os.write(msgid, mtext.encode())  # one write(2), one message


def msgrcv(msgid, msgtyp):
    """(mtype, mtext) of the oldest message msgtyp selects; waits, as msgrcv
    without IPC_NOWAIT does, until there is one."""
    # 0x40104d09, a struct mqfs_select: type, except, reserved
    fcntl.ioctl(msgid, mqfs.IOC_SET_SELECT, struct.pack("qii", msgtyp, 0, 0))
    mtext = os.read(msgid, 100).decode()
    return mqfs.delivery(msgid).type, mtext  # the type, as msgrcv stores it in mtype


def main():
    mount = sys.argv[1] if len(sys.argv) > 1 else "/mnt/mq"
    directory = os.path.join(mount, "sysv")
    path = os.path.join(directory, "queue")
    os.makedirs(directory, exist_ok=True)
    msgid = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # msgget: a path instead of a key
    os.ftruncate(msgid, 0)  # purges what an earlier run left
    mqfs.set_read_mode(msgid, mqfs.READ_STREAM)

    # Send different types
    msgsnd(msgid, 1, "Type 1 message")
    msgsnd(msgid, 2, "Type 2 message")
    msgsnd(msgid, 1, "Another type 1")
    print("Messages sent")

    # Receive only type 1
    print("Type %d: %s" % msgrcv(msgid, 1))
    print("Type %d: %s" % msgrcv(msgid, 1))

    # Receive type 2
    print("Type %d: %s" % msgrcv(msgid, 2))

    # Delete queue
    os.unlink(path)
    os.close(msgid)


if __name__ == "__main__":
    main()
