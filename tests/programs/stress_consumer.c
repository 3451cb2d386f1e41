/*
 * stress_consumer - receives messages from an mqfs queue in stream mode and
 * records each one in OUTFILE with one write(2) right after its read(2)
 * returned, so that a SIGKILL leaves at most the one message whose read had
 * returned unrecorded.
 *
 *   stress_consumer PATH OUTFILE [catch|drain]
 *
 * catch: SIGTERM and SIGINT are caught (no SA_RESTART); a read they
 *        interrupt fails with EINTR and the consumer stops: it prints
 *        "stopped N" (messages recorded) and exits 0. A message whose read
 *        returned is always recorded first.
 * drain: non-blocking; stops at the first EAGAIN and prints "drained N".
 * Exit status 3 on an unexpected error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "mqfs.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: stress_consumer PATH OUTFILE [catch|drain]\n");
    return 2;
  }
  const char* mode = argc > 3 ? argv[3] : "";
  int drain = !strcmp(mode, "drain");
  if (!strcmp(mode, "catch")) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
  }
  int out = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
  int fd = open(argv[1], O_RDONLY | (drain ? O_NONBLOCK : 0));
  int32_t stream = MQFS_READ_STREAM;
  if (out < 0 || fd < 0 || ioctl(fd, MQFS_IOC_SET_READ_MODE, &stream) != 0) {
    fprintf(stderr, "consumer: setup: %s\n", strerror(errno));
    return 3;
  }
  printf("ready\n");
  fflush(stdout);
  char buf[8192];
  long recorded = 0;
  while (!stop) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      if (write(out, buf, (size_t)n) != n) {
        fprintf(stderr, "consumer: record: %s\n", strerror(errno));
        return 3;
      }
      ++recorded;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN && drain) {
      break;
    } else {
      fprintf(stderr, "consumer: read returned %zd: %s\n", n, n < 0 ? strerror(errno) : "end of file");
      return 3;
    }
  }
  printf("%s %ld\n", drain ? "drained" : "stopped", recorded);
  return 0;
}
