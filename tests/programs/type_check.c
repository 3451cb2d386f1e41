/*
 * type_check - System V style typed messages (msgsnd/msgrcv) on mqfs queues
 * through the ioctls of mqfs.h (SPEC section 12): MQFS_IOC_SET_TYPE on the
 * writing descriptor, MQFS_IOC_SET_SELECT on the reading one, and
 * MQFS_IOC_GET_DELIVERY for the type of the message read.
 *
 *   type_check --numbers              the request numbers and the layout of struct mqfs_select
 *   type_check send PATH MSG...       one write(2) per MSG on one descriptor; MSG is
 *                                     TYPE[/PRIORITY]:TEXT                -> send OK N
 *   type_check recv [-n] PATH SELECT [COUNT]
 *                                     COUNT (default 1) reads on one stream-mode descriptor
 *                                     selecting SELECT; blocking unless -n (O_NONBLOCK):
 *                                     one line per message                -> TYPE PRIORITY TEXT
 *   type_check poll PATH SELECT MS    one poll(2) for reading, waiting up to MS ms;
 *                                     prints "waiting" just before it     -> poll IN | poll none
 *   type_check seed PATH              the seed's msgrcv examples on an empty queue, one line
 *                                     per message received (the test knows what they must be)
 *   type_check pingpong PATH ROUNDS   a client and a server process on one queue, both
 *                                     reading and writing it: the client sends "ping" as type
 *                                     10 and waits for type 11, the server answers each ping
 *                                     with a "pong" of type 11 until "end" -> pingpong OK ROUNDS
 *
 * SELECT is msgrcv's msgtyp: 0 any type, N > 0 only type N, N < 0 the lowest
 * type <= |N|; ^N is msgtyp N with MSG_EXCEPT: any type but N.
 * A failed call prints "NAME ERR ENAME" (the errno's name) and exits 1.
 * Exit status 0; 1 for a failed call or a wrong message in pingpong; 2 for
 * bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mqfs.h"

#define TEXT_MAX 65536

/* System V's message buffer. */
struct message {
  long mtype;
  char mtext[TEXT_MAX];
};

static const char* ename(int e) {
  const char* name = strerrorname_np(e);
  return name ? name : "E?";
}

static void fail(const char* name) {
  printf("%s ERR %s\n", name, ename(errno));
  exit(1);
}

static int open_queue(const char* path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) fail("open");
  int32_t mode = MQFS_READ_STREAM;
  if ((flags & O_ACCMODE) != O_WRONLY && ioctl(fd, MQFS_IOC_SET_READ_MODE, &mode) < 0) fail("read-mode");
  return fd;
}

/* msgsnd(2) on mqfs: the descriptor's type, then one write of the text. */
static int mq_msgsnd(int fd, const struct message* m, size_t size) {
  int64_t type = m->mtype;
  if (ioctl(fd, MQFS_IOC_SET_TYPE, &type) < 0) return -1;
  ssize_t n = write(fd, m->mtext, size);
  return n < 0 ? -1 : 0;
}

/* msgrcv's msgtyp and MSG_EXCEPT as a selection. */
static struct mqfs_select selection(long msgtyp, int flags) {
  struct mqfs_select s = {.type = msgtyp, .except = (flags & MSG_EXCEPT) ? 1 : 0, .reserved = 0};
  return s;
}

/* The delivery of the last message mq_msgrcv read (its priority, for recv). */
static struct mqfs_delivery last;

/* msgrcv(2) on mqfs: the selection, one read, and the type of what it read.
 * IPC_NOWAIT makes this read non-blocking; MSG_EXCEPT is Linux's. */
static ssize_t mq_msgrcv(int fd, struct message* m, size_t size, long msgtyp, int flags) {
  struct mqfs_select s = selection(msgtyp, flags);
  if (ioctl(fd, MQFS_IOC_SET_SELECT, &s) < 0) return -1;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, (flags & IPC_NOWAIT) ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0) return -1;
  ssize_t n = read(fd, m->mtext, size);
  if (n < 0) return -1;
  if (ioctl(fd, MQFS_IOC_GET_DELIVERY, &last) < 0) return -1;
  m->mtype = (long)last.type;
  return n;
}

/* A SELECT argument: msgtyp and flags. */
static long parse_select(const char* arg, int* flags) {
  *flags = arg[0] == '^' ? MSG_EXCEPT : 0;
  return strtol(arg + (arg[0] == '^'), NULL, 10);
}

static void send_messages(const char* path, char** msgs, int count) {
  static struct message m;
  int fd = open_queue(path, O_WRONLY | O_NONBLOCK);
  for (int i = 0; i < count; ++i) {
    char* text = strchr(msgs[i], ':');
    char* slash = strchr(msgs[i], '/');
    if (!text) {
      fprintf(stderr, "type_check: a message is TYPE[/PRIORITY]:TEXT, not %s\n", msgs[i]);
      exit(2);
    }
    int32_t priority = slash && slash < text ? (int32_t)strtol(slash + 1, NULL, 10) : MQFS_PRIORITY_DEFAULT;
    if (ioctl(fd, MQFS_IOC_SET_PRIORITY, &priority) < 0) fail("priority");
    m.mtype = strtol(msgs[i], NULL, 10);
    size_t n = strlen(text + 1);
    memcpy(m.mtext, text + 1, n);
    if (mq_msgsnd(fd, &m, n) < 0) fail("send");
  }
  printf("send OK %d\n", count);
}

static void receive(const char* path, const char* select, int count, int nowait) {
  static struct message m;
  int flags;
  long msgtyp = parse_select(select, &flags);
  int fd = open_queue(path, O_RDONLY);
  for (int i = 0; i < count; ++i) {
    ssize_t n = mq_msgrcv(fd, &m, sizeof m.mtext, msgtyp, flags | (nowait ? IPC_NOWAIT : 0));
    if (n < 0) fail("recv");
    printf("%ld %" PRId32 " %.*s\n", m.mtype, last.priority, (int)n, m.mtext);
  }
}

static void wait_readable(const char* path, const char* select, int ms) {
  int flags;
  long msgtyp = parse_select(select, &flags);
  struct mqfs_select s = selection(msgtyp, flags);
  int fd = open_queue(path, O_RDONLY | O_NONBLOCK);
  if (ioctl(fd, MQFS_IOC_SET_SELECT, &s) < 0) fail("select");
  printf("waiting\n");
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n = poll(&p, 1, ms);
  if (n < 0) fail("poll");
  printf("poll %s\n", n > 0 && (p.revents & POLLIN) ? "IN" : "none");
}

/* msgsnd of a string with its terminating NUL, as the seed's examples do. */
static void say(int fd, long type, const char* text) {
  static struct message m;
  m.mtype = type;
  snprintf(m.mtext, sizeof m.mtext, "%s", text);
  if (mq_msgsnd(fd, &m, strlen(text) + 1) < 0) fail("msgsnd");
}

/* msgrcv and one line: "what: type T: TEXT", or "what: ENAME". */
static void hear(int fd, const char* what, long msgtyp, int flags) {
  static struct message m;
  if (mq_msgrcv(fd, &m, sizeof m.mtext, msgtyp, flags) < 0)
    printf("%s: %s\n", what, ename(errno));
  else
    printf("%s: type %ld: %s\n", what, m.mtype, m.mtext);
}

static void seed(const char* path) {
  int fd = open_queue(path, O_RDWR);
  /* Sending different types; receiving only type 1, then type 2. */
  say(fd, 1, "Type 1 message");
  say(fd, 2, "Type 2 message");
  say(fd, 1, "Another type 1");
  hear(fd, "msgrcv(1)", 1, 0);
  hear(fd, "msgrcv(1)", 1, 0);
  hear(fd, "msgrcv(2)", 2, 0);
  /* Queue: [Type 1] [Type 5] [Type 3] [Type 10] [Type 2]. */
  const long types[] = {1, 5, 3, 10, 2};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; ++i) {
    char text[32];
    snprintf(text, sizeof text, "message of type %ld", types[i]);
    say(fd, types[i], text);
  }
  hear(fd, "msgrcv(5)", 5, 0);
  hear(fd, "msgrcv(-10)", -10, 0);
  hear(fd, "msgrcv(0)", 0, 0);
  hear(fd, "msgrcv(-10)", -10, 0);
  hear(fd, "msgrcv(-10)", -10, 0);
  hear(fd, "msgrcv(0, IPC_NOWAIT)", 0, IPC_NOWAIT);
  /* Logs, errors and metrics; one consumer of errors, one of types <= 2. */
  say(fd, 1, "Log message");
  say(fd, 2, "Error occurred");
  say(fd, 3, "Metric data");
  int errors = open_queue(path, O_RDONLY), upto2 = open_queue(path, O_RDONLY);
  hear(errors, "msgrcv(2)", 2, 0);
  hear(errors, "msgrcv(2, IPC_NOWAIT)", 2, IPC_NOWAIT);
  hear(upto2, "msgrcv(-2)", -2, 0);
  hear(upto2, "msgrcv(-2, IPC_NOWAIT)", -2, IPC_NOWAIT);
  hear(upto2, "msgrcv(3, MSG_EXCEPT|IPC_NOWAIT)", 3, MSG_EXCEPT | IPC_NOWAIT);
  hear(upto2, "msgrcv(2, MSG_EXCEPT)", 2, MSG_EXCEPT);
}

/* One side of pingpong: answers or asks until done; returns how many messages were wrong. */
static int pingpong_side(const char* path, int rounds, int server) {
  static struct message m;
  int fd = open_queue(path, O_RDWR);
  int wrong = 0, pings = 0;
  alarm(120); /* never outlive a hung daemon */
  if (server) {
    for (;;) {
      ssize_t n = mq_msgrcv(fd, &m, sizeof m.mtext, 10, 0);
      if (n < 0) fail("server msgrcv");
      if (m.mtype != 10) ++wrong;
      if (n == 4 && memcmp(m.mtext, "end", 4) == 0) break;
      if (n != 5 || memcmp(m.mtext, "ping", 5) != 0) ++wrong;
      ++pings;
      say(fd, 11, "pong");
    }
    if (pings != rounds) ++wrong;
    return wrong;
  }
  for (int i = 0; i < rounds; ++i) {
    say(fd, 10, "ping");
    ssize_t n = mq_msgrcv(fd, &m, sizeof m.mtext, 11, 0);
    if (n < 0) fail("client msgrcv");
    if (m.mtype != 11 || n != 5 || memcmp(m.mtext, "pong", 5) != 0) ++wrong;
  }
  say(fd, 10, "end");
  return wrong;
}

static int pingpong(const char* path, int rounds) {
  fflush(stdout);
  pid_t server = fork();
  if (server < 0) fail("fork");
  if (server == 0) _exit(pingpong_side(path, rounds, 1) ? 1 : 0);
  int wrong = pingpong_side(path, rounds, 0);
  int status;
  if (waitpid(server, &status, 0) < 0) fail("waitpid");
  if (wrong || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("pingpong ERR client %d wrong, server status %d\n", wrong, status);
    return 1;
  }
  printf("pingpong OK %d\n", rounds);
  return 0;
}

static void numbers(void) {
  printf("MQFS_IOC_SET_TYPE %lu\n", (unsigned long)MQFS_IOC_SET_TYPE);
  printf("MQFS_IOC_SET_SELECT %lu\n", (unsigned long)MQFS_IOC_SET_SELECT);
  printf("MQFS_TYPE_DEFAULT %d\n", (int)MQFS_TYPE_DEFAULT);
  printf("sizeof(struct mqfs_select) %zu\n", sizeof(struct mqfs_select));
  printf("offsetof(type) %zu\n", offsetof(struct mqfs_select, type));
  printf("offsetof(except) %zu\n", offsetof(struct mqfs_select, except));
  printf("offsetof(reserved) %zu\n", offsetof(struct mqfs_select, reserved));
}

static void usage(void) {
  fprintf(stderr,
          "usage: type_check --numbers | send PATH TYPE[/PRIORITY]:TEXT... | recv [-n] PATH SELECT [COUNT]\n"
          "       | poll PATH SELECT MS | seed PATH | pingpong PATH ROUNDS\n");
  exit(2);
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && !strcmp(argv[1], "--numbers")) {
    numbers();
    return 0;
  }
  if (argc < 3) usage();
  const char* command = argv[1];
  if (!strcmp(command, "send") && argc >= 4) {
    send_messages(argv[2], argv + 3, argc - 3);
  } else if (!strcmp(command, "recv")) {
    int nowait = !strcmp(argv[2], "-n");
    char** args = argv + 2 + nowait;
    int left = argc - 2 - nowait;
    if (left < 2 || left > 3) usage();
    receive(args[0], args[1], left == 3 ? atoi(args[2]) : 1, nowait);
  } else if (!strcmp(command, "poll") && argc == 5) {
    wait_readable(argv[2], argv[3], atoi(argv[4]));
  } else if (!strcmp(command, "seed") && argc == 3) {
    seed(argv[2]);
  } else if (!strcmp(command, "pingpong") && argc == 4) {
    return pingpong(argv[2], atoi(argv[3]));
  } else {
    usage();
  }
  return 0;
}
