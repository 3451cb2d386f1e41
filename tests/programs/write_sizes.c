/*
 * write_sizes [-n] [-a ALIGN] PATH MESSAGE...
 *
 * Opens PATH write-only (-n: with O_NONBLOCK) and calls write(2) once per
 * MESSAGE, all on the same open file. A MESSAGE "#N" is N bytes of the
 * pattern byte i = 'a' + i % 26; anything else is written as it is. With
 * -a ALIGN the bytes are written from a buffer that starts ALIGN bytes into a
 * page (to check that one write is one message whatever the alignment).
 * Prints one line per write: the count returned, or "E:ERRNO".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  int arg = 1, flags = O_WRONLY;
  size_t align = 0;
  for (; arg < argc && argv[arg][0] == '-'; ++arg) {
    if (strcmp(argv[arg], "-n") == 0) {
      flags |= O_NONBLOCK;
    } else if (strcmp(argv[arg], "-a") == 0 && arg + 1 < argc) {
      align = strtoul(argv[++arg], NULL, 10) % 4096;
    } else {
      break;
    }
  }
  if (arg >= argc) {
    fprintf(stderr, "usage: write_sizes [-n] [-a ALIGN] PATH MESSAGE...\n");
    return 2;
  }
  int fd = open(argv[arg++], flags);
  if (fd < 0) {
    printf("open E:%d\n", errno);
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (; arg < argc; ++arg) {
    const char* text = argv[arg];
    size_t size = strlen(text);
    char* page = NULL;
    if (text[0] == '#') size = strtoul(text + 1, NULL, 10);
    if (posix_memalign((void**)&page, 4096, size + align + 4096) != 0) return 3;
    char* buf = page + align;
    if (text[0] == '#') {
      for (size_t i = 0; i < size; ++i) buf[i] = (char)('a' + i % 26);
    } else {
      memcpy(buf, text, size);
    }
    ssize_t n = write(fd, buf, size);
    if (n < 0)
      printf("E:%d\n", errno);
    else
      printf("%zd\n", n);
    free(page);
  }
  close(fd);
  return 0;
}
