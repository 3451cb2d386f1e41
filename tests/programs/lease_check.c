/*
 * lease_check - drives the reliable-consumption ioctls of mqfs.h (SPEC
 * section 11: explicit acknowledgement, deliveries, peeking) from C, step by
 * step, on up to 16 open files, and prints one line per step.
 *
 *   lease_check --numbers      the request numbers and the layout of struct mqfs_delivery
 *   lease_check PATH STEP...   runs the steps, then exits (closing what is open)
 *   lease_check PATH           reads the steps from standard input, one a line, until its end
 *
 * A step acts on slot 0 unless written "K@STEP" (slot K, 0..15):
 *   open:FLAGS[:PATH]  open PATH (default: the one named first); FLAGS r, w or rw,
 *                      plus n for O_NONBLOCK                     -> open OK
 *   close              close(2) the slot                          -> close OK
 *   dup:K              dup(2) the slot into slot K                -> dup OK
 *   ack-mode:N         MQFS_IOC_SET_ACK (0 auto, 1 explicit)      -> ack-mode OK
 *   read-mode:N        MQFS_IOC_SET_READ_MODE (2 peek)            -> read-mode OK
 *   priority:N         MQFS_IOC_SET_PRIORITY                      -> priority OK
 *   read[:N]           one read(2) of at most N bytes (65536)     -> read OK HEX | read EOF
 *   write:HEX          one write(2) of the bytes HEX              -> write OK N
 *   delivery           MQFS_IOC_GET_DELIVERY   -> delivery ID TYPE PRIORITY DELIVERIES ENQUEUED_NS
 *   ack:ID, nack:ID    MQFS_IOC_ACK, MQFS_IOC_NACK; ID a number or "last", the id
 *                      the slot's last delivery step printed       -> ack OK, nack OK
 *   attr               MQFS_IOC_GET_ATTR                          -> attr curmsgs=N curbytes=N maxmsg=N
 *   poll               poll(2) for reading, without waiting        -> poll IN | poll none
 *   fork-read[:N]      a child process reads once from the slot (the same open
 *                      file: its mode and its leases), asks for the delivery and
 *                      exits                                       -> fork-read OK HEX ID
 *   sleep:MS           sleep                                       -> sleep OK
 *   consume:LOG:SEED:SLOW_MS
 *                      the consumer of the kill storm, until a read fails (below)
 * A failed step prints NAME ERR ENAME (the errno's name), e.g. "ack ERR ETIMEDOUT".
 *
 * consume reads message after message (blocking, explicit mode, stream read
 * mode: set them first) and, by a random draw (SEED):
 *   - a message whose bytes start with "poison" is always NACKed;
 *   - 55%: acknowledges it, after SLOW_MS ms about one time in ten (longer than the
 *     lease, for a late ACK); before the ACK it appends "P ID BYTES" to LOG,
 *     after it "A ID BYTES" when it returned 0, else "F ID BYTES ENAME";
 *   - 25%: NACKs it;
 *   - 20%: keeps it without an answer, until its lease runs out or the
 *     process ends.
 * Each LOG line is one write(2) of an O_APPEND file, so a SIGKILL leaves at
 * most a last "P" line without its outcome. When a read fails (the daemon is
 * gone) it prints "consume ERR ENAME" and exits 0.
 *
 * Exit status 0, or 2 for bad usage.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mqfs.h"

#define SLOTS 16
#define BUFFER (1 << 20)

static const char* default_path;
static int fds[SLOTS];
static uint64_t last_id[SLOTS];
static unsigned char data[BUFFER];
static char line[2 * BUFFER + 256];

static const char* ename(int e) {
  const char* name = strerrorname_np(e);
  return name ? name : "E?";
}

static void hex(const unsigned char* in, size_t n, char* out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    *out++ = digits[in[i] >> 4];
    *out++ = digits[in[i] & 15];
  }
  *out = 0;
}

static size_t unhex(const char* in, unsigned char* out, size_t size) {
  size_t n = 0;
  for (; in[0] && in[1] && n < size; in += 2) {
    char pair[3] = {in[0], in[1], 0};
    out[n++] = (unsigned char)strtoul(pair, NULL, 16);
  }
  return n;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Prints "NAME OK" when rc is 0, else "NAME ERR ENAME". */
static void outcome(const char* name, int rc) {
  if (rc == 0)
    printf("%s OK\n", name);
  else
    printf("%s ERR %s\n", name, ename(errno));
}

static int set_int(int fd, unsigned long request, int32_t value) { return ioctl(fd, request, &value); }

static int open_slot(const char* spec) {
  char flags[8] = {0};
  const char* colon = strchr(spec, ':');
  size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
  memcpy(flags, spec, n < sizeof flags - 1 ? n : sizeof flags - 1);
  const char* path = colon ? colon + 1 : default_path;
  int mode = strchr(flags, 'w') ? (strchr(flags, 'r') ? O_RDWR : O_WRONLY) : O_RDONLY;
  return open(path, mode | (strchr(flags, 'n') ? O_NONBLOCK : 0));
}

/* The id an ack or nack step names: a number, or "last". */
static uint64_t id_of(int slot, const char* arg) {
  return strcmp(arg, "last") == 0 ? last_id[slot] : strtoull(arg, NULL, 0);
}

static void log_line(int log, const char* kind, uint64_t id, const unsigned char* bytes, ssize_t n,
                     const char* error) {
  char record[512];
  int len = snprintf(record, sizeof record, "%s %" PRIu64 " %.*s%s%s\n", kind, id, (int)(n > 256 ? 256 : n),
                     (const char*)bytes, error ? " " : "", error ? error : "");
  if (write(log, record, (size_t)len) != len) {
    printf("consume ERR log %s\n", ename(errno));
    exit(3);
  }
}

static void consume(int fd, const char* args) {
  char log_path[4096];
  unsigned seed = 0;
  long slow_ms = 0;
  const char* colon = strrchr(args, ':');
  const char* colon2 = colon ? memrchr(args, ':', (size_t)(colon - args)) : NULL;
  if (!colon || !colon2) {
    printf("consume ERR usage\n");
    exit(2);
  }
  snprintf(log_path, sizeof log_path, "%.*s", (int)(colon2 - args), args);
  seed = (unsigned)strtoul(colon2 + 1, NULL, 10);
  slow_ms = strtol(colon + 1, NULL, 10);
  int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log < 0) {
    printf("consume ERR log %s\n", ename(errno));
    exit(3);
  }
  printf("consume OK\n");
  fflush(stdout);
  for (;;) {
    ssize_t n = read(fd, data, sizeof data);
    if (n <= 0) {
      printf("consume ERR %s\n", n == 0 ? "EOF" : ename(errno));
      exit(0);
    }
    struct mqfs_delivery d;
    if (ioctl(fd, MQFS_IOC_GET_DELIVERY, &d) < 0) {
      printf("consume ERR delivery %s\n", ename(errno));
      exit(0);
    }
    int draw = rand_r(&seed) % 100;
    if (n >= 6 && memcmp(data, "poison", 6) == 0) {
      ioctl(fd, MQFS_IOC_NACK, &d.id);
    } else if (draw < 55) {
      if (draw < 5) sleep_ms(slow_ms);
      log_line(log, "P", d.id, data, n, NULL);
      if (ioctl(fd, MQFS_IOC_ACK, &d.id) == 0)
        log_line(log, "A", d.id, data, n, NULL);
      else
        log_line(log, "F", d.id, data, n, ename(errno));
    } else if (draw < 80) {
      ioctl(fd, MQFS_IOC_NACK, &d.id);
    }
    /* else: no answer; the lease runs out. */
  }
}

static void fork_read(int slot, size_t size) {
  int pipefd[2];
  if (pipe(pipefd) < 0) {
    outcome("fork-read", -1);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    ssize_t n = read(fds[slot], data, size);
    struct mqfs_delivery d = {0};
    int e = n < 0 ? errno : 0;
    if (n >= 0 && ioctl(fds[slot], MQFS_IOC_GET_DELIVERY, &d) < 0) e = errno;
    if (e)
      dprintf(pipefd[1], "fork-read ERR %s\n", ename(e));
    else {
      hex(data, (size_t)n, line);
      dprintf(pipefd[1], "fork-read OK %s %" PRIu64 "\n", line, d.id);
    }
    _exit(0);
  }
  close(pipefd[1]);
  int status;
  waitpid(pid, &status, 0);
  ssize_t n = read(pipefd[0], line, sizeof line - 1);
  close(pipefd[0]);
  line[n > 0 ? n : 0] = 0;
  fputs(n > 0 ? line : "fork-read ERR child\n", stdout);
}

static void step(char* text) {
  int slot = 0;
  char* at = strchr(text, '@');
  if (at && at - text <= 2) {
    slot = atoi(text);
    text = at + 1;
  }
  if (slot < 0 || slot >= SLOTS) {
    printf("bad slot %d\n", slot);
    return;
  }
  char* arg = strchr(text, ':');
  if (arg) *arg++ = 0;
  int fd = fds[slot];
  if (!strcmp(text, "open")) {
    fds[slot] = open_slot(arg ? arg : "r");
    outcome("open", fds[slot] < 0 ? -1 : 0);
  } else if (!strcmp(text, "close")) {
    outcome("close", close(fd));
    fds[slot] = -1;
  } else if (!strcmp(text, "dup")) {
    int to = arg ? atoi(arg) : 1;
    fds[to] = dup(fd);
    outcome("dup", fds[to] < 0 ? -1 : 0);
  } else if (!strcmp(text, "ack-mode")) {
    outcome("ack-mode", set_int(fd, MQFS_IOC_SET_ACK, (int32_t)strtol(arg, NULL, 0)));
  } else if (!strcmp(text, "read-mode")) {
    outcome("read-mode", set_int(fd, MQFS_IOC_SET_READ_MODE, (int32_t)strtol(arg, NULL, 0)));
  } else if (!strcmp(text, "priority")) {
    outcome("priority", set_int(fd, MQFS_IOC_SET_PRIORITY, (int32_t)strtol(arg, NULL, 0)));
  } else if (!strcmp(text, "read")) {
    size_t size = arg ? strtoul(arg, NULL, 10) : 65536;
    ssize_t n = read(fd, data, size < BUFFER ? size : BUFFER);
    if (n < 0) {
      outcome("read", -1);
    } else if (n == 0) {
      printf("read EOF\n");
    } else {
      hex(data, (size_t)n, line);
      printf("read OK %s\n", line);
    }
  } else if (!strcmp(text, "write")) {
    size_t n = unhex(arg ? arg : "", data, sizeof data);
    ssize_t w = write(fd, data, n);
    if (w < 0)
      outcome("write", -1);
    else
      printf("write OK %zd\n", w);
  } else if (!strcmp(text, "delivery")) {
    struct mqfs_delivery d;
    memset(&d, 0x5a, sizeof d);
    if (ioctl(fd, MQFS_IOC_GET_DELIVERY, &d) < 0) {
      outcome("delivery", -1);
    } else {
      last_id[slot] = d.id;
      printf("delivery %" PRIu64 " %" PRId64 " %" PRId32 " %" PRIu32 " %" PRId64 "\n", d.id, d.type, d.priority,
             d.deliveries, d.enqueued_ns);
    }
  } else if (!strcmp(text, "ack") || !strcmp(text, "nack")) {
    uint64_t id = id_of(slot, arg ? arg : "0");
    outcome(text, ioctl(fd, !strcmp(text, "ack") ? MQFS_IOC_ACK : MQFS_IOC_NACK, &id));
  } else if (!strcmp(text, "attr")) {
    struct mqfs_attr a;
    if (ioctl(fd, MQFS_IOC_GET_ATTR, &a) < 0)
      outcome("attr", -1);
    else
      printf("attr curmsgs=%" PRId64 " curbytes=%" PRId64 " maxmsg=%" PRId64 "\n", a.curmsgs, a.curbytes, a.maxmsg);
  } else if (!strcmp(text, "poll")) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    if (n < 0)
      outcome("poll", -1);
    else
      printf("poll %s\n", n > 0 && (p.revents & POLLIN) ? "IN" : "none");
  } else if (!strcmp(text, "fork-read")) {
    fork_read(slot, arg ? strtoul(arg, NULL, 10) : 65536);
  } else if (!strcmp(text, "sleep")) {
    sleep_ms(arg ? atol(arg) : 0);
    printf("sleep OK\n");
  } else if (!strcmp(text, "consume")) {
    consume(fd, arg ? arg : "");
  } else {
    printf("unknown step %s\n", text);
  }
}

static void numbers(void) {
  printf("MQFS_IOC_SET_ACK %lu\n", (unsigned long)MQFS_IOC_SET_ACK);
  printf("MQFS_IOC_ACK %lu\n", (unsigned long)MQFS_IOC_ACK);
  printf("MQFS_IOC_NACK %lu\n", (unsigned long)MQFS_IOC_NACK);
  printf("MQFS_IOC_GET_DELIVERY %lu\n", (unsigned long)MQFS_IOC_GET_DELIVERY);
  printf("MQFS_READ_PEEK %d\n", MQFS_READ_PEEK);
  printf("MQFS_ACK_AUTO %d\n", MQFS_ACK_AUTO);
  printf("MQFS_ACK_EXPLICIT %d\n", MQFS_ACK_EXPLICIT);
  printf("sizeof(struct mqfs_delivery) %zu\n", sizeof(struct mqfs_delivery));
  printf("offsetof(id) %zu\n", offsetof(struct mqfs_delivery, id));
  printf("offsetof(type) %zu\n", offsetof(struct mqfs_delivery, type));
  printf("offsetof(priority) %zu\n", offsetof(struct mqfs_delivery, priority));
  printf("offsetof(deliveries) %zu\n", offsetof(struct mqfs_delivery, deliveries));
  printf("offsetof(enqueued_ns) %zu\n", offsetof(struct mqfs_delivery, enqueued_ns));
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: lease_check --numbers | lease_check PATH [STEP...]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(argv[1], "--numbers")) {
    numbers();
    return 0;
  }
  default_path = argv[1];
  for (int i = 0; i < SLOTS; ++i) fds[i] = -1;
  if (argc > 2) {
    for (int i = 2; i < argc; ++i) step(argv[i]);
    return 0;
  }
  char* text = NULL;
  size_t size = 0;
  ssize_t n;
  while ((n = getline(&text, &size, stdin)) > 0) {
    if (text[n - 1] == '\n') text[n - 1] = 0;
    if (*text) step(text);
  }
  free(text);
  return 0;
}
