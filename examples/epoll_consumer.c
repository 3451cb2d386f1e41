/*
 * epoll_consumer - waits on several mqfs queues at once with epoll (the
 * seed's Exercise 6 does this with select()).
 *
 * usage: epoll_consumer [MOUNT] [QUEUE...]
 *
 * Watches MOUNT/epoll/QUEUE for each QUEUE (default: orders alerts logs),
 * creating the queues that are missing, and prints "QUEUE: MESSAGE" for every
 * message. A queue that delivers "stop" is closed; when every queue is
 * closed it prints how many messages each queue delivered and exits.
 *
 * Each descriptor is non-blocking, edge-triggered and in stream read mode
 * (ioctl MQFS_IOC_SET_READ_MODE): one open file delivers message after
 * message, and on each readiness edge the consumer reads until EAGAIN.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mqfs.h"

struct watched {
	const char *name;
	int fd;          /* -1 once the queue delivered "stop" */
	long received;
	char *buffer;    /* msgsize bytes: room for any one message */
	size_t size;
};

static void die(const char *what, const char *name)
{
	fprintf(stderr, "epoll_consumer: %s %s: %s\n", what, name, strerror(errno));
	exit(1);
}

static void open_queue(struct watched *q, const char *dir, int epoll_fd)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, q->name) >= sizeof path) {
		errno = ENAMETOOLONG;
		die("open", q->name);
	}
	q->fd = open(path, O_RDONLY | O_NONBLOCK | O_CREAT | O_CLOEXEC, 0644);
	if (q->fd < 0)
		die("open", path);

	int32_t mode = MQFS_READ_STREAM;
	if (ioctl(q->fd, MQFS_IOC_SET_READ_MODE, &mode) != 0)
		die("MQFS_IOC_SET_READ_MODE", path);

	struct mqfs_attr attr;
	if (ioctl(q->fd, MQFS_IOC_GET_ATTR, &attr) != 0) /* like mq_getattr() */
		die("MQFS_IOC_GET_ATTR", path);
	q->size = (size_t)attr.msgsize;
	q->buffer = malloc(q->size);
	if (!q->buffer)
		die("malloc for", path);

	struct epoll_event event = { .events = EPOLLIN | EPOLLET, .data.ptr = q };
	if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, q->fd, &event) != 0)
		die("epoll_ctl", path);
}

/* Reads until EAGAIN, as edge-triggered epoll requires. Returns 0 once the
 * queue delivered "stop" and was closed. */
static int drain(struct watched *q)
{
	for (;;) {
		ssize_t n = read(q->fd, q->buffer, q->size);
		if (n < 0) {
			if (errno == EAGAIN)
				return 1;
			if (errno == EINTR)
				continue;
			die("read", q->name);
		}
		if (n > 0 && q->buffer[n - 1] == '\n') /* as sent by echo */
			n--;
		if (n == 4 && memcmp(q->buffer, "stop", 4) == 0) {
			close(q->fd); /* also takes it out of the epoll set */
			q->fd = -1;
			return 0;
		}
		q->received++;
		printf("%s: %.*s\n", q->name, (int)n, q->buffer);
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	static const char *const defaults[] = { "orders", "alerts", "logs" };
	const char *mount = argc > 1 ? argv[1] : "/mnt/mq";
	int count = argc > 2 ? argc - 2 : 3;

	char dir[4096];
	if ((size_t)snprintf(dir, sizeof dir, "%s/epoll", mount) >= sizeof dir) {
		errno = ENAMETOOLONG;
		die("mkdir", mount);
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		die("mkdir", dir);

	int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd < 0)
		die("epoll_create1", "");
	struct watched *queues = calloc((size_t)count, sizeof *queues);
	if (!queues)
		die("calloc", "");
	for (int i = 0; i < count; i++) {
		queues[i].name = argc > 2 ? argv[i + 2] : defaults[i];
		open_queue(&queues[i], dir, epoll_fd);
	}

	printf("watching");
	for (int i = 0; i < count; i++)
		printf(" %s", queues[i].name);
	printf("\n");
	fflush(stdout);

	int open_queues = count;
	while (open_queues > 0) {
		struct epoll_event events[16];
		int ready = epoll_wait(epoll_fd, events, 16, -1);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait", "");
		}
		for (int i = 0; i < ready; i++)
			if (!drain(events[i].data.ptr))
				open_queues--;
	}

	for (int i = 0; i < count; i++) {
		printf("%s: %ld messages\n", queues[i].name, queues[i].received);
		free(queues[i].buffer);
	}
	free(queues);
	close(epoll_fd);
	return 0;
}
