/*
 * switches: N writer processes on CPU 0 and N reader processes on CPU 1
 * (or, with `free`, wherever the scheduler puts them) moving 64-byte
 * messages, one per write(2) and per read(2), for a given time; prints the
 * messages read per second. Writer and reader i use file i of the
 * comma-separated list (modulo its length): one file for all, or a file
 * per pair.
 * bench/switches.sh runs it under `perf stat -a -A -e context-switches` on
 * mqfs queues and on the no-op floor, to count what a message costs in
 * context switches on each CPU.
 *
 *   switches FILE[,FILE...] PROCS SECONDS [free]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kMaxProcs = 32, kSize = 64 };

static int pinned = 1;

static void pin(int cpu)
{
	if (!pinned)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

static long total(const volatile long *counts, int procs)
{
	long sum = 0;
	for (int i = 0; i < procs; ++i)
		sum += counts[i];
	return sum;
}

int main(int argc, char **argv)
{
	if (argc != 4 && !(argc == 5 && strcmp(argv[4], "free") == 0)) {
		fprintf(stderr, "usage: switches FILE[,FILE...] PROCS SECONDS [free]\n");
		return 2;
	}
	pinned = argc == 4;
	char *files[kMaxProcs];
	int nfiles = 0;
	for (char *file = strtok(argv[1], ","); file && nfiles < kMaxProcs; file = strtok(NULL, ","))
		files[nfiles++] = file;
	if (nfiles == 0)
		return 2;
	const int procs = atoi(argv[2]);
	const double seconds = atof(argv[3]);
	if (procs < 1 || procs > kMaxProcs || seconds <= 0) {
		fprintf(stderr, "switches: PROCS 1..%d, SECONDS > 0\n", kMaxProcs);
		return 2;
	}
	/* Each reader's count, shared with the parent. */
	volatile long *counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED)
		return 1;
	pid_t children[2 * kMaxProcs];
	int n = 0;
	for (int i = 0; i < procs; ++i) {
		if ((children[n++] = fork()) == 0) {
			pin(0);
			const int fd = open(files[i % nfiles], O_WRONLY);
			char message[kSize] = {0};
			while (fd >= 0 && write(fd, message, sizeof message) == sizeof message)
				;
			_exit(1);
		}
		if ((children[n++] = fork()) == 0) {
			pin(1);
			const int fd = open(files[i % nfiles], O_RDONLY);
			char buffer[kSize]; /* the floor answers as many bytes as asked */
			while (fd >= 0 && read(fd, buffer, sizeof buffer) > 0)
				counts[i]++;
			_exit(1);
		}
	}
	usleep(200000); /* warm-up */
	const long before = total(counts, procs);
	usleep((useconds_t)(seconds * 1e6));
	const long after = total(counts, procs);
	printf("%.0f\n", (after - before) / seconds);
	for (int i = 0; i < n; ++i)
		kill(children[i], SIGKILL);
	for (int i = 0; i < n; ++i)
		waitpid(children[i], NULL, 0);
	return 0;
}
