/*
 * sysv_types - the seed's "Example 6: System V Message Queue" with mqfs:
 * three messages of types 1 and 2 on one queue, then msgrcv() by type.
 *
 * usage: sysv_types [MOUNT]
 *
 * Each System V call has its mqfs counterpart:
 *
 *   msgget(ftok(...), IPC_CREAT)     open(MOUNT/sysv/queue, O_RDWR | O_CREAT)
 *   msgsnd() with msg.mtype = t      ioctl(MQFS_IOC_SET_TYPE, &t), then write()
 *   msgrcv(..., msgtyp = t, 0)       ioctl(MQFS_IOC_SET_SELECT, {t}), then read()
 *   msgctl(IPC_RMID)                 unlink()
 *
 * The descriptor reads in stream mode, so that it can receive message after
 * message, as a msqid can. It prints exactly what the seed's program prints:
 *
 *   Messages sent
 *   Type 1: Type 1 message
 *   Type 1: Another type 1
 *   Type 2: Type 2 message
 *
 * (nothing in it depends on pids or timing).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mqfs.h"

struct msgbuf {
	long mtype;
	char mtext[100];
};

static void die(const char *what)
{
	fprintf(stderr, "sysv_types: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* msgsnd(): the descriptor's type goes with each later write. */
static void send_message(int fd, const struct msgbuf *msg)
{
	int64_t type = msg->mtype;
	if (ioctl(fd, MQFS_IOC_SET_TYPE, &type) != 0)
		die("MQFS_IOC_SET_TYPE");
	if (write(fd, msg->mtext, strlen(msg->mtext)) < 0) /* one write, one message */
		die("write");
}

/* msgrcv() with msgtyp: the oldest message of the selected type (the
 * highest priority first, but every message here has the queue's). The read
 * waits, as msgrcv without IPC_NOWAIT does, until such a message comes. */
static void receive_message(int fd, struct msgbuf *msg, long msgtyp)
{
	struct mqfs_select select = { .type = msgtyp };
	if (ioctl(fd, MQFS_IOC_SET_SELECT, &select) != 0)
		die("MQFS_IOC_SET_SELECT");
	ssize_t n = read(fd, msg->mtext, sizeof msg->mtext - 1);
	if (n < 0)
		die("read");
	msg->mtext[n] = '\0';

	struct mqfs_delivery delivery; /* the message's type, as msgrcv() stores it in mtype */
	if (ioctl(fd, MQFS_IOC_GET_DELIVERY, &delivery) != 0)
		die("MQFS_IOC_GET_DELIVERY");
	msg->mtype = (long)delivery.type;
}

int main(int argc, char **argv)
{
	const char *mount = argc > 1 ? argv[1] : "/mnt/mq";
	char dir[4096], path[4096];
	if ((size_t)snprintf(dir, sizeof dir, "%s/sysv", mount) >= sizeof dir ||
	    (size_t)snprintf(path, sizeof path, "%s/queue", dir) >= sizeof path) {
		errno = ENAMETOOLONG;
		die(mount);
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		die(dir);
	/* msgget(key, 0666 | IPC_CREAT): a path instead of a key. */
	int msgid = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (msgid < 0)
		die(path);
	if (ftruncate(msgid, 0) != 0) /* purges what an earlier run left */
		die("ftruncate");
	int32_t mode = MQFS_READ_STREAM;
	if (ioctl(msgid, MQFS_IOC_SET_READ_MODE, &mode) != 0)
		die("MQFS_IOC_SET_READ_MODE");

	struct msgbuf msg;

	// Send different types
	msg.mtype = 1;
	strcpy(msg.mtext, "Type 1 message");
	send_message(msgid, &msg);

	msg.mtype = 2;
	strcpy(msg.mtext, "Type 2 message");
	send_message(msgid, &msg);

	msg.mtype = 1;
	strcpy(msg.mtext, "Another type 1");
	send_message(msgid, &msg);

	printf("Messages sent\n");

	// Receive only type 1
	receive_message(msgid, &msg, 1);
	printf("Type %ld: %s\n", msg.mtype, msg.mtext);

	receive_message(msgid, &msg, 1);
	printf("Type %ld: %s\n", msg.mtype, msg.mtext);

	// Receive type 2
	receive_message(msgid, &msg, 2);
	printf("Type %ld: %s\n", msg.mtype, msg.mtext);

	// Delete queue
	if (unlink(path) != 0)
		die("unlink");
	close(msgid);
	return 0;
}
