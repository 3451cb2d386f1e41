/*
 * stress_producer - writes COUNT uniquely numbered messages of mixed
 * priorities to an mqfs queue, through one descriptor per priority (each
 * with its own MQFS_IOC_SET_PRIORITY), with blocking writes.
 *
 *   stress_producer PATH ID COUNT SEED
 *
 * Message: "P<id> R<priority> S<seq> <padding>\n", seq = 0..COUNT-1 for this
 * producer, padding 0..63 'x' (so sizes vary). Priorities: 0, 1, 5, 9.
 * Prints "done COUNT" and exits 0, or exits 1 on an error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "mqfs.h"

static const int32_t kPriorities[] = {0, 1, 5, 9};

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: stress_producer PATH ID COUNT SEED\n");
    return 2;
  }
  const char* path = argv[1];
  int id = atoi(argv[2]);
  long count = atol(argv[3]);
  unsigned seed = (unsigned)strtoul(argv[4], NULL, 10);
  int fds[4];
  for (int i = 0; i < 4; ++i) {
    fds[i] = open(path, O_WRONLY);
    if (fds[i] < 0 || ioctl(fds[i], MQFS_IOC_SET_PRIORITY, &kPriorities[i]) != 0) {
      fprintf(stderr, "producer %d: open/ioctl: %s\n", id, strerror(errno));
      return 1;
    }
  }
  char msg[256];
  for (long seq = 0; seq < count; ++seq) {
    int p = rand_r(&seed) % 4;
    int pad = rand_r(&seed) % 64;
    int n = snprintf(msg, sizeof msg, "P%d R%d S%ld ", id, kPriorities[p], seq);
    memset(msg + n, 'x', pad);
    n += pad;
    msg[n++] = '\n';
    ssize_t w;
    do {
      w = write(fds[p], msg, n);
    } while (w < 0 && errno == EINTR);
    if (w != n) {
      fprintf(stderr, "producer %d: write of message %ld: %zd %s\n", id, seq, w, strerror(errno));
      return 1;
    }
  }
  printf("done %ld\n", count);
  return 0;
}
