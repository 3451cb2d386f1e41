/*
 * readiness - waits for readiness of mqfs queues with poll, select or epoll
 * (level- or edge-triggered), driven line by line from standard input.
 *
 *   readiness MECH SPEC...
 *     MECH  poll | select | epoll | epollet
 *     SPEC  r:PATH | w:PATH | rw:PATH   (opened with O_NONBLOCK; index = position)
 *
 * Every descriptor is watched for both reading and writing, whatever its
 * access mode, so that the test sees what the filesystem reports.
 * Prints "ok" once everything is open (and registered with epoll), then
 * answers each command with one line:
 *   wait MS        one poll/select/epoll_wait: "events I:IN,OUT ..." or "none"
 *   read I [N]     one read (buffer N, default 65536): "read I OK DATA", "read I EOF", "read I ERR ENAME"
 *   write I TEXT   one write: "write I OK N" or "write I ERR ENAME"
 *   mode I M       MQFS_IOC_SET_READ_MODE: "mode I OK" or "mode I ERR ENAME"
 *   quit
 * DATA has \n escaped. Exit status 0, 2 for bad usage, 1 if setup failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <unistd.h>

#include "mqfs.h"

#define MAX_FDS 64

static int fds[MAX_FDS];
static int nfds;

static const char* ename(int e) {
  switch (e) {
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: {
      static char buf[32];
      snprintf(buf, sizeof buf, "E%d", e);
      return buf;
    }
  }
}

static void append_flags(char* out, unsigned ev, unsigned in, unsigned out_flag, unsigned err, unsigned hup) {
  int first = 1;
#define ADD(cond, name)             \
  if (cond) {                       \
    if (!first) strcat(out, ",");   \
    strcat(out, name);              \
    first = 0;                      \
  }
  ADD(ev & in, "IN");
  ADD(ev & out_flag, "OUT");
  ADD(ev & err, "ERR");
  ADD(ev & hup, "HUP");
#undef ADD
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: readiness poll|select|epoll|epollet SPEC...\n");
    return 2;
  }
  const char* mech = argv[1];
  int use_epoll = !strncmp(mech, "epoll", 5);
  int et = !strcmp(mech, "epollet");
  if (strcmp(mech, "poll") && strcmp(mech, "select") && !use_epoll) return 2;

  for (int i = 2; i < argc && nfds < MAX_FDS; ++i) {
    const char* colon = strchr(argv[i], ':');
    if (!colon) return 2;
    int flags = O_NONBLOCK;
    if (!strncmp(argv[i], "rw:", 3))
      flags |= O_RDWR;
    else if (!strncmp(argv[i], "w:", 2))
      flags |= O_WRONLY;
    else
      flags |= O_RDONLY;
    int fd = open(colon + 1, flags);
    if (fd < 0) {
      printf("open %s: %s\n", colon + 1, ename(errno));
      return 1;
    }
    fds[nfds++] = fd;
  }

  int ep = -1;
  if (use_epoll) {
    ep = epoll_create1(0);
    for (int i = 0; i < nfds; ++i) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | (et ? EPOLLET : 0), .data.u32 = (uint32_t)i};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) {
        printf("epoll_ctl: %s\n", ename(errno));
        return 1;
      }
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ok\n");

  char line[1 << 16];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    char reply[8192] = "";
    if (!strncmp(line, "wait ", 5)) {
      int ms = atoi(line + 5);
      char events[MAX_FDS][32];
      int ready[MAX_FDS] = {0};
      int n = 0;
      if (!strcmp(mech, "poll")) {
        struct pollfd p[MAX_FDS];
        for (int i = 0; i < nfds; ++i) p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN | POLLOUT};
        n = poll(p, nfds, ms);
        for (int i = 0; n > 0 && i < nfds; ++i) {
          events[i][0] = 0;
          append_flags(events[i], p[i].revents, POLLIN, POLLOUT, POLLERR, POLLHUP);
          ready[i] = p[i].revents != 0;
        }
      } else if (!strcmp(mech, "select")) {
        fd_set rd, wr;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        int maxfd = 0;
        for (int i = 0; i < nfds; ++i) {
          FD_SET(fds[i], &rd);
          FD_SET(fds[i], &wr);
          if (fds[i] > maxfd) maxfd = fds[i];
        }
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        n = select(maxfd + 1, &rd, &wr, NULL, &tv);
        for (int i = 0; n > 0 && i < nfds; ++i) {
          unsigned ev = (FD_ISSET(fds[i], &rd) ? 1u : 0u) | (FD_ISSET(fds[i], &wr) ? 2u : 0u);
          events[i][0] = 0;
          append_flags(events[i], ev, 1, 2, 0, 0);
          ready[i] = ev != 0;
        }
      } else {
        struct epoll_event evs[MAX_FDS];
        n = epoll_wait(ep, evs, MAX_FDS, ms);
        for (int k = 0; k < n; ++k) {
          int i = (int)evs[k].data.u32;
          events[i][0] = 0;
          append_flags(events[i], evs[k].events, EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP);
          ready[i] = 1;
        }
      }
      if (n < 0) {
        snprintf(reply, sizeof reply, "wait ERR %s", ename(errno));
      } else if (n == 0) {
        strcpy(reply, "none");
      } else {
        strcpy(reply, "events");
        for (int i = 0; i < nfds; ++i)
          if (ready[i]) {
            char item[64];
            snprintf(item, sizeof item, " %d:%.31s", i, events[i]);
            strcat(reply, item);
          }
      }
    } else if (!strncmp(line, "read ", 5)) {
      int i = 0;
      size_t size = 65536;
      sscanf(line + 5, "%d %zu", &i, &size);
      static char buf[1 << 20];
      if (size > sizeof buf) size = sizeof buf;
      ssize_t r = read(fds[i], buf, size);
      if (r > 0) {
        int off = snprintf(reply, sizeof reply, "read %d OK ", i);
        for (ssize_t k = 0; k < r && off < (int)sizeof reply - 4; ++k) {
          if (buf[k] == '\n') {
            reply[off++] = '\\';
            reply[off++] = 'n';
          } else {
            reply[off++] = buf[k];
          }
        }
        reply[off] = 0;
      } else if (r == 0) {
        snprintf(reply, sizeof reply, "read %d EOF", i);
      } else {
        snprintf(reply, sizeof reply, "read %d ERR %s", i, ename(errno));
      }
    } else if (!strncmp(line, "write ", 6)) {
      int i = atoi(line + 6);
      const char* text = strchr(line + 6, ' ');
      text = text ? text + 1 : "";
      ssize_t w = write(fds[i], text, strlen(text));
      if (w >= 0)
        snprintf(reply, sizeof reply, "write %d OK %zd", i, w);
      else
        snprintf(reply, sizeof reply, "write %d ERR %s", i, ename(errno));
    } else if (!strncmp(line, "mode ", 5)) {
      int i = 0, m = 0;
      sscanf(line + 5, "%d %d", &i, &m);
      int32_t mode = m;
      if (ioctl(fds[i], MQFS_IOC_SET_READ_MODE, &mode) == 0)
        snprintf(reply, sizeof reply, "mode %d OK", i);
      else
        snprintf(reply, sizeof reply, "mode %d ERR %s", i, ename(errno));
    } else if (!strcmp(line, "quit")) {
      break;
    } else {
      snprintf(reply, sizeof reply, "unknown command");
    }
    printf("%s\n", reply);
  }
  return 0;
}
