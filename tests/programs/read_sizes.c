/*
 * read_sizes [-n] PATH SIZE...
 *
 * Opens PATH read-only (-n: with O_NONBLOCK) and calls read(2) once per SIZE
 * with a buffer of exactly SIZE bytes, all on the same open file. Prints one
 * line per read: "LEN:HEX" with the bytes read in hex ("0:" at end of file),
 * or "E:ERRNO" when the read failed. Exits 0 unless the open failed.
 * Between reads it writes nothing else, so the caller sees exactly what each
 * read(2) returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  int arg = 1, flags = O_RDONLY;
  if (arg < argc && strcmp(argv[arg], "-n") == 0) {
    flags |= O_NONBLOCK;
    ++arg;
  }
  if (arg >= argc) {
    fprintf(stderr, "usage: read_sizes [-n] PATH SIZE...\n");
    return 2;
  }
  int fd = open(argv[arg++], flags);
  if (fd < 0) {
    printf("open E:%d\n", errno);
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (; arg < argc; ++arg) {
    size_t size = strtoul(argv[arg], NULL, 10);
    unsigned char* buf = malloc(size ? size : 1);
    ssize_t n = read(fd, buf, size);
    if (n < 0) {
      printf("E:%d\n", errno);
    } else {
      printf("%zd:", n);
      for (ssize_t i = 0; i < n; ++i) printf("%02x", buf[i]);
      printf("\n");
    }
    free(buf);
  }
  close(fd);
  return 0;
}
