/*
 * mqfs.h - per-descriptor control of an mqfs queue.
 *
 * Open a queue file, then:
 *
 *   int32_t prio = 10;
 *   ioctl(fd, MQFS_IOC_SET_PRIORITY, &prio);       // this fd sends at priority 10
 *   int32_t mode = MQFS_READ_STREAM;
 *   ioctl(fd, MQFS_IOC_SET_READ_MODE, &mode);      // this fd reads message after message
 *   struct mqfs_attr attr;
 *   ioctl(fd, MQFS_IOC_GET_ATTR, &attr);           // like mq_getattr(3)
 *
 *   int32_t ack = MQFS_ACK_EXPLICIT;
 *   ioctl(fd, MQFS_IOC_SET_ACK, &ack);             // reads lease their messages
 *   read(fd, buf, sizeof buf);
 *   struct mqfs_delivery d;
 *   ioctl(fd, MQFS_IOC_GET_DELIVERY, &d);          // its id, priority, delivery count
 *   ioctl(fd, MQFS_IOC_ACK, &d.id);                // done: taken for good
 *
 *   int64_t type = 3;
 *   ioctl(fd, MQFS_IOC_SET_TYPE, &type);           // this fd sends messages of type 3
 *   struct mqfs_select sel = { .type = -5 };
 *   ioctl(fd, MQFS_IOC_SET_SELECT, &sel);          // reads take the lowest type <= 5 first
 *
 * Bad arguments fail with EINVAL; other ioctls with ENOTTY.
 */
#ifndef MQFS_H
#define MQFS_H

#include <stdint.h>
#include <sys/ioctl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Highest message priority; 0 is the lowest. */
#define MQFS_PRIORITY_MAX 32767
/* MQFS_IOC_SET_PRIORITY with this value returns to the queue's user.mq.priority. */
#define MQFS_PRIORITY_DEFAULT (-1)

/* Read modes, for MQFS_IOC_SET_READ_MODE. */
#define MQFS_READ_MESSAGE 0 /* one message, then end of file */
#define MQFS_READ_STREAM 1  /* message after message while the file is open */
#define MQFS_READ_PEEK 2    /* the queued messages in order, one per read, none taken; then end of file */
#define MQFS_READ_DEFAULT (-1) /* back to the queue's user.mq.read_mode */

/* Framing modes, as reported in mqfs_attr.framing. */
#define MQFS_FRAMING_NONE 0
#define MQFS_FRAMING_LINE 1
#define MQFS_FRAMING_U32 2
#define MQFS_FRAMING_FILE 3

/* The queue's attributes as seen through one descriptor (MQFS_IOC_GET_ATTR). */
struct mqfs_attr {
	int64_t flags;     /* O_NONBLOCK as of the descriptor's open or last read or write */
	int64_t maxmsg;    /* most messages the queue holds */
	int64_t msgsize;   /* largest message in bytes */
	int64_t curmsgs;   /* messages queued now */
	int64_t curbytes;  /* bytes queued now */
	int64_t priority;  /* priority this descriptor sends at */
	int64_t read_mode; /* MQFS_READ_MESSAGE, MQFS_READ_STREAM or MQFS_READ_PEEK for this descriptor */
	int64_t framing;   /* MQFS_FRAMING_* of the queue */
	int64_t reserved[8];
};

/* Acknowledgement modes, for MQFS_IOC_SET_ACK. */
#define MQFS_ACK_AUTO 0     /* a read takes its messages for good (the default) */
#define MQFS_ACK_EXPLICIT 1 /* a read leases its messages to the descriptor until MQFS_IOC_ACK */

/* MQFS_IOC_SET_TYPE with this value returns to the queue's user.mq.type. */
#define MQFS_TYPE_DEFAULT (-1)

/* Which messages a descriptor's reads take (MQFS_IOC_SET_SELECT), as msgrcv(2)'s msgtyp:
 * type 0 any; type > 0 only that type, or with except = 1 any other;
 * type < 0 the lowest type <= -type first. reserved must be 0. */
struct mqfs_select {
	int64_t type;
	int32_t except;
	int32_t reserved;
};

/* The last message read (or peeked) on a descriptor (MQFS_IOC_GET_DELIVERY). */
struct mqfs_delivery {
	uint64_t id;          /* the message's id in its queue, for MQFS_IOC_ACK and MQFS_IOC_NACK */
	int64_t type;         /* its type (>= 1) */
	int32_t priority;     /* its priority, as mq_receive(3) tells it */
	uint32_t deliveries;  /* how many times it was delivered, this time included */
	int64_t enqueued_ns;  /* when it was sent: CLOCK_REALTIME nanoseconds */
};

#define MQFS_IOC_MAGIC 'M'
#define MQFS_IOC_SET_PRIORITY _IOW(MQFS_IOC_MAGIC, 1, int32_t)
#define MQFS_IOC_SET_READ_MODE _IOW(MQFS_IOC_MAGIC, 2, int32_t)
#define MQFS_IOC_GET_ATTR _IOR(MQFS_IOC_MAGIC, 3, struct mqfs_attr)
#define MQFS_IOC_SET_ACK _IOW(MQFS_IOC_MAGIC, 4, int32_t)
#define MQFS_IOC_ACK _IOW(MQFS_IOC_MAGIC, 5, uint64_t)  /* id, or 0: every message the descriptor holds */
#define MQFS_IOC_NACK _IOW(MQFS_IOC_MAGIC, 6, uint64_t) /* id, or 0: every message the descriptor holds */
#define MQFS_IOC_GET_DELIVERY _IOR(MQFS_IOC_MAGIC, 7, struct mqfs_delivery)
#define MQFS_IOC_SET_TYPE _IOW(MQFS_IOC_MAGIC, 8, int64_t)  /* >= 1, or MQFS_TYPE_DEFAULT */
#define MQFS_IOC_SET_SELECT _IOW(MQFS_IOC_MAGIC, 9, struct mqfs_select)

#ifdef __cplusplus
}
#endif

#endif /* MQFS_H */
