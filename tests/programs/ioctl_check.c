/*
 * ioctl_check - checks the ioctls of mqfs.h from C, on one empty queue with
 * the mount's default settings (priority 0, read_mode message, framing none).
 *
 *   ioctl_check PATH        runs the checks; prints "ok NAME" or "FAIL NAME: why"
 *   ioctl_check --numbers   prints the request numbers of mqfs.h
 *
 * Exit status: 0 when every check passed, 1 otherwise, 2 for bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

#include "mqfs.h"

static int failures;

#define CHECK(name, cond, ...)                \
  do {                                        \
    if (cond) {                               \
      printf("ok %s\n", name);                \
    } else {                                  \
      printf("FAIL %s: ", name);              \
      printf(__VA_ARGS__);                    \
      printf("\n");                           \
      ++failures;                             \
    }                                         \
  } while (0)

static int open_or_die(const char* path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) {
    printf("FAIL open %s: %s\n", path, strerror(errno));
    exit(1);
  }
  return fd;
}

static long long xattr_int(int fd, const char* name) {
  char value[64] = {0};
  ssize_t n = fgetxattr(fd, name, value, sizeof value - 1);
  return n > 0 ? atoll(value) : -999;
}

static int get_attr(int fd, struct mqfs_attr* attr) {
  memset(attr, 0x5a, sizeof *attr);
  return ioctl(fd, MQFS_IOC_GET_ATTR, attr);
}

static int set_int(int fd, unsigned long request, int32_t value) {
  return ioctl(fd, request, &value) == 0 ? 0 : errno;
}

static void put(int fd, const char* text) {
  if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
    printf("FAIL write %s: %s\n", text, strerror(errno));
    exit(1);
  }
}

static void get(int fd, char* out, size_t size) {
  ssize_t n = read(fd, out, size - 1);
  out[n > 0 ? n : 0] = 0;
  if (n < 0) snprintf(out, size, "<%s>", strerror(errno));
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(argv[1], "--numbers")) {
    printf("MQFS_IOC_SET_PRIORITY %lu\n", (unsigned long)MQFS_IOC_SET_PRIORITY);
    printf("MQFS_IOC_SET_READ_MODE %lu\n", (unsigned long)MQFS_IOC_SET_READ_MODE);
    printf("MQFS_IOC_GET_ATTR %lu\n", (unsigned long)MQFS_IOC_GET_ATTR);
    printf("sizeof(struct mqfs_attr) %zu\n", sizeof(struct mqfs_attr));
    return 0;
  }
  const char* path = argv[1];
  struct mqfs_attr a;
  char buf[256];

  int w1 = open_or_die(path, O_WRONLY);
  int w2 = open_or_die(path, O_WRONLY);
  int r = open_or_die(path, O_RDONLY | O_NONBLOCK);

  /* GET_ATTR matches the xattrs. */
  CHECK("get_attr", get_attr(w1, &a) == 0, "%s", strerror(errno));
  CHECK("get_attr maxmsg", a.maxmsg == xattr_int(w1, "user.mq.maxmsg"), "%lld", (long long)a.maxmsg);
  CHECK("get_attr msgsize", a.msgsize == xattr_int(w1, "user.mq.msgsize"), "%lld", (long long)a.msgsize);
  CHECK("get_attr curmsgs empty", a.curmsgs == 0, "%lld", (long long)a.curmsgs);
  CHECK("get_attr curbytes empty", a.curbytes == 0, "%lld", (long long)a.curbytes);
  CHECK("get_attr priority is the queue's", a.priority == 0, "%lld", (long long)a.priority);
  CHECK("get_attr read_mode", a.read_mode == MQFS_READ_MESSAGE, "%lld", (long long)a.read_mode);
  CHECK("get_attr framing", a.framing == MQFS_FRAMING_NONE, "%lld", (long long)a.framing);
  CHECK("get_attr flags blocking", a.flags == 0, "%lld", (long long)a.flags);
  CHECK("get_attr on O_NONBLOCK", get_attr(r, &a) == 0 && a.flags == O_NONBLOCK, "flags %lld",
        (long long)a.flags);

  /* Per-descriptor priorities. */
  CHECK("set_priority 7", set_int(w1, MQFS_IOC_SET_PRIORITY, 7) == 0, "%s", strerror(errno));
  CHECK("set_priority 3", set_int(w2, MQFS_IOC_SET_PRIORITY, 3) == 0, "%s", strerror(errno));
  CHECK("priority is per descriptor", get_attr(w1, &a) == 0 && a.priority == 7, "w1 %lld", (long long)a.priority);
  CHECK("other descriptor keeps its own", get_attr(w2, &a) == 0 && a.priority == 3, "w2 %lld",
        (long long)a.priority);
  CHECK("reader unaffected", get_attr(r, &a) == 0 && a.priority == 0, "r %lld", (long long)a.priority);
  CHECK("queue priority unchanged", xattr_int(w1, "user.mq.priority") == 0, "%lld",
        xattr_int(w1, "user.mq.priority"));
  put(w2, "w2-a");
  put(w1, "w1-a");
  put(w2, "w2-b");
  put(w1, "w1-b");
  CHECK("get_attr counts", get_attr(r, &a) == 0 && a.curmsgs == 4 && a.curbytes == 16, "curmsgs %lld curbytes %lld",
        (long long)a.curmsgs, (long long)a.curbytes);
  CHECK("set_read_mode stream", set_int(r, MQFS_IOC_SET_READ_MODE, MQFS_READ_STREAM) == 0, "%s", strerror(errno));
  CHECK("get_attr read_mode stream", get_attr(r, &a) == 0 && a.read_mode == MQFS_READ_STREAM, "%lld",
        (long long)a.read_mode);
  const char* order[] = {"w1-a", "w1-b", "w2-a", "w2-b"};
  for (int i = 0; i < 4; ++i) {
    get(r, buf, sizeof buf);
    char name[64];
    snprintf(name, sizeof name, "priority order %d", i);
    CHECK(name, !strcmp(buf, order[i]), "got %s, want %s", buf, order[i]);
  }

  /* -1: back to the queue's priority, and following it. */
  CHECK("set_priority -1", set_int(w1, MQFS_IOC_SET_PRIORITY, MQFS_PRIORITY_DEFAULT) == 0, "%s", strerror(errno));
  CHECK("back to queue priority", get_attr(w1, &a) == 0 && a.priority == 0, "%lld", (long long)a.priority);
  CHECK("fsetxattr priority 5", fsetxattr(w1, "user.mq.priority", "5", 1, 0) == 0, "%s", strerror(errno));
  CHECK("default follows the queue", get_attr(w1, &a) == 0 && a.priority == 5, "%lld", (long long)a.priority);
  CHECK("own priority stays", get_attr(w2, &a) == 0 && a.priority == 3, "%lld", (long long)a.priority);
  put(w2, "at-3");
  put(w1, "at-5");
  get(r, buf, sizeof buf);
  CHECK("queue priority used after -1", !strcmp(buf, "at-5"), "got %s", buf);
  get(r, buf, sizeof buf);
  CHECK("own priority used", !strcmp(buf, "at-3"), "got %s", buf);

  /* Range. */
  CHECK("set_priority 0", set_int(w1, MQFS_IOC_SET_PRIORITY, 0) == 0, "%s", strerror(errno));
  CHECK("set_priority 32767", set_int(w1, MQFS_IOC_SET_PRIORITY, MQFS_PRIORITY_MAX) == 0, "%s", strerror(errno));
  const int32_t bad_priorities[] = {32768, -2, INT32_MIN, INT32_MAX, 65535, 65536};
  for (size_t i = 0; i < sizeof bad_priorities / sizeof *bad_priorities; ++i) {
    char name[64];
    snprintf(name, sizeof name, "set_priority %d is EINVAL", bad_priorities[i]);
    int e = set_int(w1, MQFS_IOC_SET_PRIORITY, bad_priorities[i]);
    CHECK(name, e == EINVAL, "%s", e ? strerror(e) : "accepted");
  }
  CHECK("refused priority changes nothing", get_attr(w1, &a) == 0 && a.priority == MQFS_PRIORITY_MAX, "%lld",
        (long long)a.priority);

  /* Read modes. */
  const int32_t bad_modes[] = {3, -2, 100, INT32_MIN};  /* 2 is MQFS_READ_PEEK */
  for (size_t i = 0; i < sizeof bad_modes / sizeof *bad_modes; ++i) {
    char name[64];
    snprintf(name, sizeof name, "set_read_mode %d is EINVAL", bad_modes[i]);
    int e = set_int(r, MQFS_IOC_SET_READ_MODE, bad_modes[i]);
    CHECK(name, e == EINVAL, "%s", e ? strerror(e) : "accepted");
  }
  CHECK("refused read mode changes nothing", get_attr(r, &a) == 0 && a.read_mode == MQFS_READ_STREAM, "%lld",
        (long long)a.read_mode);
  CHECK("set_read_mode -1", set_int(r, MQFS_IOC_SET_READ_MODE, MQFS_READ_DEFAULT) == 0, "%s", strerror(errno));
  CHECK("back to queue read mode", get_attr(r, &a) == 0 && a.read_mode == MQFS_READ_MESSAGE, "%lld",
        (long long)a.read_mode);

  /* Unknown requests. */
  struct {
    const char* name;
    unsigned long request;
  } unknown[] = {
      {"_IO('M', 0)", _IO('M', 0)},
      {"_IO('M', 99)", _IO('M', 99)},
      {"_IOW('M', 1, int64_t)", _IOW('M', 1, int64_t)},
      {"_IOR('M', 3, int32_t)", _IOR('M', 3, int32_t)},
      {"_IOWR('M', 2, int32_t)", _IOWR('M', 2, int32_t)},
      {"_IOW('Q', 1, int32_t)", _IOW('Q', 1, int32_t)},
      {"TCGETS", TCGETS},
  };
  for (size_t i = 0; i < sizeof unknown / sizeof *unknown; ++i) {
    unsigned char arg[512] = {0};
    char name[96];
    snprintf(name, sizeof name, "%s is ENOTTY", unknown[i].name);
    int rc = ioctl(w1, unknown[i].request, arg);
    CHECK(name, rc == -1 && errno == ENOTTY, "rc %d %s", rc, strerror(errno));
  }
  CHECK("isatty is false", !isatty(r), "isatty true");

  /* On a directory. */
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  int d = open(dirname(dir), O_RDONLY | O_DIRECTORY);
  int rc = ioctl(d, MQFS_IOC_GET_ATTR, &a);
  CHECK("get_attr on a directory is ENOTTY", d >= 0 && rc == -1 && errno == ENOTTY, "rc %d %s", rc,
        strerror(errno));

  close(d);
  close(w1);
  close(w2);
  close(r);
  printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
