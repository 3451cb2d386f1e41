/*
 * many_waiters - makes many blocked reads (or writes) on one mqfs queue at
 * once: PROCS processes of THREADS threads, each thread with its own open
 * file and one blocking read(2) (or write(2)) of its own.
 *
 *   many_waiters read PATH PROCS THREADS
 *   many_waiters write PATH PROCS THREADS
 *
 * read:  each thread opens PATH O_RDONLY and reads once; prints "got DATA".
 * write: each thread opens PATH O_WRONLY and writes "w<proc>-<thread>";
 *        prints "sent w<proc>-<thread>".
 * A failure prints "err WHAT ERRNO". Each line is one write(2) to standard
 * output (a pipe: lines never interleave). Threads have 64 KiB stacks.
 * Exit status 0 when every thread succeeded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char* path;
static int writing;
static int proc_index;
static int failed;

static void say(const char* line) {
  size_t n = strlen(line);
  if (write(1, line, n) != (ssize_t)n) failed = 1;
}

static void* run(void* arg) {
  long index = (long)arg;
  char line[128];
  int fd = open(path, writing ? O_WRONLY : O_RDONLY);
  if (fd < 0) {
    snprintf(line, sizeof line, "err open %d\n", errno);
    say(line);
    __atomic_store_n(&failed, 1, __ATOMIC_SEQ_CST);
    return NULL;
  }
  if (writing) {
    char msg[64];
    int n = snprintf(msg, sizeof msg, "w%d-%ld", proc_index, index);
    ssize_t w = write(fd, msg, (size_t)n);
    if (w == n)
      snprintf(line, sizeof line, "sent %s\n", msg);
    else
      snprintf(line, sizeof line, "err write %d\n", errno);
    if (w != n) __atomic_store_n(&failed, 1, __ATOMIC_SEQ_CST);
  } else {
    char buf[64];
    ssize_t r = read(fd, buf, sizeof buf - 1);
    if (r > 0) {
      buf[r] = 0;
      snprintf(line, sizeof line, "got %s\n", buf);
    } else {
      snprintf(line, sizeof line, "err read %zd %d\n", r, errno);
      __atomic_store_n(&failed, 1, __ATOMIC_SEQ_CST);
    }
  }
  say(line);
  close(fd);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 5 || (strcmp(argv[1], "read") && strcmp(argv[1], "write"))) {
    fprintf(stderr, "usage: many_waiters read|write PATH PROCS THREADS\n");
    return 2;
  }
  writing = !strcmp(argv[1], "write");
  path = argv[2];
  int procs = atoi(argv[3]);
  int threads = atoi(argv[4]);
  pid_t* pids = calloc((size_t)procs, sizeof *pids);
  for (int p = 0; p < procs; ++p) {
    pids[p] = fork();
    if (pids[p] < 0) {
      perror("fork");
      return 1;
    }
    if (pids[p] == 0) {
      proc_index = p;
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, 64 * 1024);
      pthread_t* tids = calloc((size_t)threads, sizeof *tids);
      int started = 0;
      for (long t = 0; t < threads; ++t) {
        int e = pthread_create(&tids[t], &attr, run, (void*)t);
        if (e) {
          char line[64];
          snprintf(line, sizeof line, "err pthread_create %d\n", e);
          say(line);
          failed = 1;
          break;
        }
        ++started;
      }
      for (int t = 0; t < started; ++t) pthread_join(tids[t], NULL);
      _exit(failed ? 1 : 0);
    }
  }
  int status = 0;
  for (int p = 0; p < procs; ++p) {
    int s;
    if (waitpid(pids[p], &s, 0) < 0 || !WIFEXITED(s) || WEXITSTATUS(s) != 0) status = 1;
  }
  return status;
}
