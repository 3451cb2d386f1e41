/*
 * topic_check - checks publish/subscribe (SPEC section 13) from C with
 * poll(2): makes DIR/topic a topic, subscribes three descriptors, publishes
 * from a fourth and checks who is readable, who is woken and what each reads.
 *
 *   topic_check DIR    runs the checks; prints "ok NAME" or "FAIL NAME: why"
 *
 * Exit status: 0 when every check passed, 1 otherwise, 2 for bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "mqfs.h"

#define SUBSCRIBERS 3

static int failures;

/* Prints "ok NAME" when `passed`, else "FAIL NAME: " and the reason (printf-style) and counts a failure. */
static void check(const char* name, int passed, const char* why, ...) {
  if (passed) {
    printf("ok %s\n", name);
    return;
  }
  va_list ap;
  va_start(ap, why);
  printf("FAIL %s: ", name);
  vprintf(why, ap);
  printf("\n");
  va_end(ap);
  ++failures;
}

/* NULL when a call returned 0, else its errno as text: the reason for check(), taken before check's
 * arguments are evaluated (in any order). */
static const char* error_of(int rc) { return rc == 0 ? NULL : strerror(errno); }

static int open_or_exit(const char* path, int flags) {
  int fd = open(path, flags, 0644);
  if (fd < 0) {
    printf("FAIL open %s: %s\n", path, strerror(errno));
    exit(1);
  }
  return fd;
}

/* The attribute user.mq.NAME of `path` as text ("<errno>" when it fails). */
static const char* xattr(const char* path, const char* name, char* out, size_t size) {
  char key[64];
  snprintf(key, sizeof key, "user.mq.%s", name);
  ssize_t n = getxattr(path, key, out, size - 1);
  if (n < 0)
    snprintf(out, size, "<%s>", strerror(errno));
  else
    out[n] = 0;
  return out;
}

/* poll(2) of one descriptor without waiting: its revents, or -1. */
static int revents(int fd, short events) {
  struct pollfd p = {.fd = fd, .events = events};
  int n = poll(&p, 1, 0);
  return n < 0 ? -1 : n == 0 ? 0 : p.revents;
}

/* Whether process `pid` sleeps in poll or ppoll (/proc/PID/syscall). */
static int sleeps_in_poll(pid_t pid) {
  char path[64], text[256] = {0};
  snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
  FILE* f = fopen(path, "r");
  if (!f) return 0;
  int got = fgets(text, sizeof text, f) != NULL;
  fclose(f);
  if (!got) return 0;
  long nr = strtol(text, NULL, 10);
#ifdef SYS_poll
  if (nr == SYS_poll) return 1;
#endif
  return nr == SYS_ppoll;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static int publish(int fd, int32_t priority, const char* text) {
  if (ioctl(fd, MQFS_IOC_SET_PRIORITY, &priority) < 0) return -1;
  return write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;
}

/* One read into `out` as text: the message, "<EOF>" or "<errno>". */
static const char* get(int fd, char* out, size_t size) {
  ssize_t n = read(fd, out, size - 1);
  if (n < 0)
    snprintf(out, size, "<%s>", strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
  else if (n == 0)
    snprintf(out, size, "<EOF>");
  else
    out[n] = 0;
  return out;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: topic_check DIR\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  char topic[PATH_MAX], value[256], name[96], buf[256];
  snprintf(topic, sizeof topic, "%s/topic", argv[1]);
  close(open_or_exit(topic, O_WRONLY | O_CREAT));

  check("kind is queue by default", !strcmp(xattr(topic, "kind", value, sizeof value), "queue"), "%s", value);
  const char* e = error_of(setxattr(topic, "user.mq.kind", "topic", 5, 0));
  check("set kind topic", !e, "%s", e);
  check("kind is topic", !strcmp(xattr(topic, "kind", value, sizeof value), "topic"), "%s", value);

  int sub[SUBSCRIBERS];
  for (int i = 0; i < SUBSCRIBERS; ++i) {
    sub[i] = open_or_exit(topic, O_RDONLY | O_NONBLOCK);
    int32_t mode = MQFS_READ_STREAM;
    snprintf(name, sizeof name, "subscriber %d in stream mode", i);
    e = error_of(ioctl(sub[i], MQFS_IOC_SET_READ_MODE, &mode));
    check(name, !e, "%s", e);
  }
  int pub = open_or_exit(topic, O_WRONLY | O_NONBLOCK);
  check("three subscribers", !strcmp(xattr(topic, "subscribers", value, sizeof value), "3"), "%s", value);

  /* Nothing published yet: nobody readable, the publisher writable. */
  for (int i = 0; i < SUBSCRIBERS; ++i) {
    int ev = revents(sub[i], POLLIN);
    snprintf(name, sizeof name, "subscriber %d not readable before a publish", i);
    check(name, ev == 0, "revents %#x", ev);
    snprintf(name, sizeof name, "subscriber %d read before a publish is EAGAIN", i);
    check(name, !strcmp(get(sub[i], buf, sizeof buf), "<EAGAIN>"), "%s", buf);
  }
  int ev = revents(pub, POLLOUT);
  check("publisher POLLOUT", ev > 0 && (ev & POLLOUT), "revents %#x", ev);

  /* A child sleeping in poll on subscriber 0 is woken by the publish. */
  pid_t child = fork();
  if (child == 0) {
    struct pollfd p = {.fd = sub[0], .events = POLLIN};
    int n = poll(&p, 1, 10000);
    _exit(n == 1 && (p.revents & POLLIN) ? 0 : 1);
  }
  int slept = 0;
  for (int waited = 0; waited < 10000 && !(slept = sleeps_in_poll(child)); waited += 2) sleep_ms(2);
  check("child sleeps in poll", slept, "not within 10 s");

  e = error_of(publish(pub, 1, "low"));
  check("publish low", !e, "%s", e);
  e = error_of(publish(pub, 9, "high"));
  check("publish high", !e, "%s", e);
  e = error_of(publish(pub, 5, "mid"));
  check("publish mid", !e, "%s", e);
  int status = -1;
  waitpid(child, &status, 0);
  check("the publish woke the child's poll", WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);

  /* Each subscriber has its own copy of every message, highest priority first. */
  const char* order[] = {"high", "mid", "low"};
  const int32_t priorities[] = {9, 5, 1};
  for (int i = 0; i < SUBSCRIBERS; ++i) {
    ev = revents(sub[i], POLLIN);
    snprintf(name, sizeof name, "subscriber %d readable", i);
    check(name, ev > 0 && (ev & POLLIN), "revents %#x", ev);
    for (int k = 0; k < 3; ++k) {
      snprintf(name, sizeof name, "subscriber %d reads %s", i, order[k]);
      check(name, !strcmp(get(sub[i], buf, sizeof buf), order[k]), "got %s", buf);
      struct mqfs_delivery d;
      memset(&d, 0x5a, sizeof d);
      snprintf(name, sizeof name, "subscriber %d delivery of %s has priority %d", i, order[k], priorities[k]);
      e = error_of(ioctl(sub[i], MQFS_IOC_GET_DELIVERY, &d));
      check(name, !e && d.priority == priorities[k], "%s, priority %d", e ? e : "delivered", d.priority);
    }
    snprintf(name, sizeof name, "subscriber %d drained: EAGAIN", i);
    check(name, !strcmp(get(sub[i], buf, sizeof buf), "<EAGAIN>"), "%s", buf);
    ev = revents(sub[i], POLLIN);
    snprintf(name, sizeof name, "subscriber %d drained: not readable", i);
    check(name, ev == 0, "revents %#x", ev);
  }
  check("the topic keeps nothing", !strcmp(xattr(topic, "curmsgs", value, sizeof value), "0"), "%s", value);
  check("sent counts the publishes", !strcmp(xattr(topic, "sent", value, sizeof value), "3"), "%s", value);
  check("nothing dropped", !strcmp(xattr(topic, "dropped", value, sizeof value), "0"), "%s", value);

  /* A late subscriber gets only what is published after its open; a closed one is gone. */
  int late = open_or_exit(topic, O_RDONLY | O_NONBLOCK);
  check("late subscriber has nothing", !strcmp(get(late, buf, sizeof buf), "<EAGAIN>"), "%s", buf);
  close(sub[2]);
  check("close ends a subscription", !strcmp(xattr(topic, "subscribers", value, sizeof value), "3"), "%s", value);
  e = error_of(publish(pub, 0, "after"));
  check("publish after", !e, "%s", e);
  ev = revents(late, POLLIN);
  check("late subscriber readable", ev > 0 && (ev & POLLIN), "revents %#x", ev);
  check("late subscriber reads it", !strcmp(get(late, buf, sizeof buf), "after"), "got %s", buf);
  check("late subscriber in message mode is then at end of file", !strcmp(get(late, buf, sizeof buf), "<EOF>"),
        "got %s", buf);
  for (int i = 0; i < 2; ++i) {
    snprintf(name, sizeof name, "subscriber %d reads after", i);
    check(name, !strcmp(get(sub[i], buf, sizeof buf), "after"), "got %s", buf);
  }

  close(late);
  close(pub);
  for (int i = 0; i < 2; ++i) close(sub[i]);
  check("no subscriber left", !strcmp(xattr(topic, "subscribers", value, sizeof value), "0"), "%s", value);
  printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
