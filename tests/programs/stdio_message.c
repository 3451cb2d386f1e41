/*
 * stdio_message PATH N
 *
 * A stdio-buffered writer that sizes its buffer for the file: fopen(PATH, "w"),
 * fputc N times 'x' and then '\n', fclose. glibc sizes the FILE buffer by
 * st_blksize, so with st_blksize >= msgsize the whole line is one flush, one
 * write(2), one message. Exits 0 when fclose succeeded.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: stdio_message PATH N\n");
    return 2;
  }
  FILE* f = fopen(argv[1], "w");
  if (!f) {
    perror("fopen");
    return 1;
  }
  long n = strtol(argv[2], NULL, 10);
  for (long i = 0; i < n; ++i) fputc('x', f);
  fputc('\n', f);
  if (fclose(f) != 0) {
    perror("fclose");
    return 1;
  }
  return 0;
}
