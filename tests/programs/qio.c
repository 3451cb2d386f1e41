/*
 * qio - drives one or more open files of an mqfs queue, step by step, and
 * prints one line per step, so that tests see exact return values, errno
 * names and how long each call took.
 *
 *   qio PATH STEP...
 *
 * A step acts on descriptor slot 0 unless written "K@STEP" (slot K, 0..15):
 *   open:FLAGS     open PATH; FLAGS: r, w or rw, plus n for O_NONBLOCK
 *   read[:N]       one read(2) with an N-byte buffer (default 65536)
 *   write:TEXT     one write(2) of TEXT (\n and \xHH escapes allowed)
 *   drain          read until EAGAIN or end of file (use with open:rn)
 *   prio:N         ioctl MQFS_IOC_SET_PRIORITY
 *   mode:N         ioctl MQFS_IOC_SET_READ_MODE
 *   attr           ioctl MQFS_IOC_GET_ATTR
 *   ioctl:HEX      ioctl with an unknown request number, a zeroed 256-byte argument
 *   nonblock:0|1   fcntl(F_SETFL) O_NONBLOCK off or on
 *   catch:SIG      install a handler for SIG (a number) without SA_RESTART
 *   sleep:MS       sleep
 *   close          close the slot (output: close OK or close ENAME)
 *   fsync          fsync(2) the slot
 *   dup:K          dup(2) the slot into slot K
 *   ready          print "ready" (to tell the test a point was reached)
 *   stdin          wait for a line on standard input
 *   kill:PID:SIG   send signal SIG to PID (no output)
 *
 * Output, one line per step:
 *   read OK N DATA ms=T | read EOF ms=T | read ERR ENAME ms=T
 *   write OK N ms=T | write ERR ENAME ms=T
 *   attr flags=.. maxmsg=.. msgsize=.. curmsgs=.. curbytes=.. priority=.. read_mode=.. framing=..
 *   open OK | prio OK | mode OK | ioctl OK | ... or NAME ERR ENAME
 * DATA is escaped: \n, \\, \xHH for bytes outside printable ASCII.
 * A caught signal prints "signal SIG" when the step that saw it returns.
 * Exit status 0, or 2 for bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "mqfs.h"

#define SLOTS 16

static const char* path;
static int fds[SLOTS];
static volatile sig_atomic_t caught;

static void say(const char* format, ...) {
  char line[1 << 17];
  va_list ap;
  va_start(ap, format);
  int n = vsnprintf(line, sizeof line - 1, format, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  for (int off = 0; off < n;) {
    ssize_t w = write(1, line + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += w;
  }
}

static const char* ename(int e) {
  switch (e) {
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case EMSGSIZE: return "EMSGSIZE";
    case EBADF: return "EBADF";
    case ENOSPC: return "ENOSPC";
    case EFAULT: return "EFAULT";
    case ENOTCONN: return "ENOTCONN";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ESPIPE: return "ESPIPE";
    case EIO: return "EIO";
    default: {
      static char buf[32];
      snprintf(buf, sizeof buf, "E%d", e);
      return buf;
    }
  }
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_signal(int sig) { caught = sig; }

static void report_signal(void) {
  if (caught) {
    say("signal %d", (int)caught);
    caught = 0;
  }
}

static size_t unescape(const char* in, char* out) {
  size_t n = 0;
  for (const char* p = in; *p; ++p) {
    if (*p == '\\' && p[1] == 'n') {
      out[n++] = '\n';
      ++p;
    } else if (*p == '\\' && p[1] == '\\') {
      out[n++] = '\\';
      ++p;
    } else if (*p == '\\' && p[1] == 'x' && p[2] && p[3]) {
      char hex[3] = {p[2], p[3], 0};
      out[n++] = (char)strtol(hex, NULL, 16);
      p += 3;
    } else {
      out[n++] = *p;
    }
  }
  return n;
}

static void escape(const unsigned char* in, size_t n, char* out) {
  char* o = out;
  for (size_t i = 0; i < n; ++i) {
    if (in[i] == '\n') {
      *o++ = '\\';
      *o++ = 'n';
    } else if (in[i] == '\\') {
      *o++ = '\\';
      *o++ = '\\';
    } else if (in[i] < 0x20 || in[i] >= 0x7f) {
      o += sprintf(o, "\\x%02x", in[i]);
    } else {
      *o++ = (char)in[i];
    }
  }
  *o = 0;
}

static int do_read(int fd, size_t size, int print_ok_as_msg) {
  static unsigned char buf[1 << 20];
  static char text[(1 << 20) * 4 + 1];
  if (size > sizeof buf) size = sizeof buf;
  double t0 = now_ms();
  ssize_t n = read(fd, buf, size);
  int e = errno;
  double ms = now_ms() - t0;
  if (n > 0) {
    escape(buf, (size_t)n, text);
    if (print_ok_as_msg)
      say("msg %s", text);
    else
      say("read OK %zd %s ms=%.1f", n, text, ms);
  } else if (n == 0) {
    say("read EOF ms=%.1f", ms);
  } else {
    say("read ERR %s ms=%.1f", ename(e), ms);
  }
  report_signal();
  return n > 0 ? 1 : (n == 0 ? 0 : -e);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: qio PATH STEP...\n");
    return 2;
  }
  path = argv[1];
  for (int i = 0; i < SLOTS; ++i) fds[i] = -1;

  for (int a = 2; a < argc; ++a) {
    const char* step = argv[a];
    int slot = 0;
    const char* at = strchr(step, '@');
    const char* colon = strchr(step, ':');
    if (at && (!colon || at < colon)) {
      slot = atoi(step);
      step = at + 1;
      if (slot < 0 || slot >= SLOTS) return 2;
    }
    const char* arg = strchr(step, ':');
    arg = arg ? arg + 1 : NULL;
    int fd = fds[slot];

    if (!strncmp(step, "open:", 5)) {
      int flags = O_RDONLY;
      if (strchr(arg, 'r') && strchr(arg, 'w'))
        flags = O_RDWR;
      else if (strchr(arg, 'w'))
        flags = O_WRONLY;
      if (strchr(arg, 'n')) flags |= O_NONBLOCK;
      fds[slot] = open(path, flags);
      if (fds[slot] < 0)
        say("open ERR %s", ename(errno));
      else
        say("open OK");
    } else if (!strcmp(step, "ready")) {
      say("ready");
    } else if (!strcmp(step, "read") || !strncmp(step, "read:", 5)) {
      do_read(fd, arg ? strtoul(arg, NULL, 10) : 65536, 0);
    } else if (!strncmp(step, "drain", 5)) {
      for (;;) {
        int r = do_read(fd, 1 << 20, 1);
        if (r <= 0) break;
      }
    } else if (!strncmp(step, "write:", 6)) {
      static char data[(1 << 20) + 1];
      size_t n = unescape(arg, data);
      double t0 = now_ms();
      ssize_t w = write(fd, data, n);
      int e = errno;
      double ms = now_ms() - t0;
      if (w >= 0)
        say("write OK %zd ms=%.1f", w, ms);
      else
        say("write ERR %s ms=%.1f", ename(e), ms);
      report_signal();
    } else if (!strncmp(step, "prio:", 5) || !strncmp(step, "mode:", 5)) {
      int32_t value = (int32_t)strtol(arg, NULL, 10);
      unsigned long request = step[0] == 'p' ? MQFS_IOC_SET_PRIORITY : MQFS_IOC_SET_READ_MODE;
      if (ioctl(fd, request, &value) == 0)
        say("%.4s OK", step);
      else
        say("%.4s ERR %s", step, ename(errno));
    } else if (!strcmp(step, "attr")) {
      struct mqfs_attr attr;
      memset(&attr, 0x5a, sizeof attr);
      if (ioctl(fd, MQFS_IOC_GET_ATTR, &attr) == 0)
        say("attr flags=%lld maxmsg=%lld msgsize=%lld curmsgs=%lld curbytes=%lld priority=%lld read_mode=%lld "
            "framing=%lld",
            (long long)attr.flags, (long long)attr.maxmsg, (long long)attr.msgsize, (long long)attr.curmsgs,
            (long long)attr.curbytes, (long long)attr.priority, (long long)attr.read_mode,
            (long long)attr.framing);
      else
        say("attr ERR %s", ename(errno));
    } else if (!strncmp(step, "ioctl:", 6)) {
      unsigned char arg_buf[256] = {0};
      unsigned long request = strtoul(arg, NULL, 16);
      if (ioctl(fd, request, arg_buf) == 0)
        say("ioctl OK");
      else
        say("ioctl ERR %s", ename(errno));
    } else if (!strncmp(step, "nonblock:", 9)) {
      int flags = fcntl(fd, F_GETFL);
      flags = atoi(arg) ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
      if (fcntl(fd, F_SETFL, flags) == 0)
        say("nonblock OK");
      else
        say("nonblock ERR %s", ename(errno));
    } else if (!strncmp(step, "catch:", 6)) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_signal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = 0;  // no SA_RESTART: a blocked call returns EINTR
      sigaction(atoi(arg), &sa, NULL);
      say("catch OK");
    } else if (!strncmp(step, "sleep:", 6)) {
      usleep((useconds_t)atoi(arg) * 1000);
    } else if (!strcmp(step, "stdin")) {
      char c;
      while (read(0, &c, 1) == 1 && c != '\n') {
      }
    } else if (!strncmp(step, "kill:", 5)) {
      int pid = atoi(arg);
      const char* sig = strchr(arg, ':');
      kill(pid, sig ? atoi(sig + 1) : SIGTERM);
    } else if (!strcmp(step, "fsync")) {
      if (fsync(fd) == 0)
        say("fsync OK");
      else
        say("fsync ERR %s", ename(errno));
      report_signal();
    } else if (!strncmp(step, "dup:", 4)) {
      int k = atoi(arg);
      if (k < 0 || k >= SLOTS) return 2;
      fds[k] = dup(fd);
      if (fds[k] < 0)
        say("dup ERR %s", ename(errno));
      else
        say("dup OK");
    } else if (!strcmp(step, "close")) {
      say("close %s", close(fd) == 0 ? "OK" : ename(errno));
      report_signal();
      fds[slot] = -1;
    } else {
      fprintf(stderr, "qio: unknown step %s\n", step);
      return 2;
    }
  }
  return 0;
}
