/*
 * noop_fs: a FUSE filesystem that does nothing, as fast as libfuse allows.
 * It is the floor under mqfs: what one write(2) or read(2) costs through the
 * FUSE transport on this machine when the daemon does no work at all.
 *
 *   noop_fs [-f] [-d] [-s] [-o msgsize=N] [-o clone_fd,max_threads=N] MOUNTPOINT
 *
 * -s runs libfuse's single-threaded loop (fuse_session_loop); without it the
 * multi-threaded one (fuse_session_loop_mt), as in libfuse's own examples, so
 * the two floors can be compared by measurement.
 *
 * Every name in the root directory exists (a lookup makes it), as a regular
 * file opened like an mqfs queue: direct_io and nonseekable, so that every
 * read(2) and write(2) is one request. A write is answered at once with its
 * size. A read returns min(requested, msgsize) bytes of a fixed buffer, so a
 * reader whose buffer is the message size gets one "message" per read. A name
 * ending in ".N" (say "q.64") gives that file its own message size N. Files
 * whose name starts with "once" behave like an mqfs queue in read_mode=message:
 * an open file delivers one message, then end of file, so `cat once.64` and
 * open+read+close loops make the requests they make on mqfs.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 4096
#define FIRST_FILE_INO 2 /* 1 is the root */

static struct {
	unsigned msgsize;    /* largest read reply */
	char *zeros;         /* what every read returns */
	pthread_mutex_t lock; /* the name table; the multi-threaded loop shares it */
	char *names[MAX_FILES];
	unsigned nfiles;
} fs = { .msgsize = 8192, .lock = PTHREAD_MUTEX_INITIALIZER };

/* What an open file remembers: its message size, and whether it already gave
 * its one message. */
struct open_file {
	size_t msgsize;
	int once;
	int delivered;
};

static int is_file(fuse_ino_t ino)
{
	return ino >= FIRST_FILE_INO && ino < FIRST_FILE_INO + fs.nfiles;
}

static struct stat stat_of(fuse_ino_t ino)
{
	struct stat st;
	memset(&st, 0, sizeof st);
	st.st_ino = ino;
	st.st_uid = getuid();
	st.st_gid = getgid();
	if (ino == FUSE_ROOT_ID) {
		st.st_mode = S_IFDIR | 0755;
		st.st_nlink = 2;
	} else {
		st.st_mode = S_IFREG | 0666;
		st.st_nlink = 1;
		/* As mqfs: stdio-buffered writers size their buffer from this. */
		unsigned blk = 4096;
		while (blk < fs.msgsize)
			blk *= 2;
		st.st_blksize = blk;
	}
	return st;
}

/* The inode of a name, made on first use. */
static fuse_ino_t ino_of(const char *name)
{
	fuse_ino_t ino = 0;
	pthread_mutex_lock(&fs.lock);
	for (unsigned i = 0; i < fs.nfiles && !ino; i++)
		if (strcmp(fs.names[i], name) == 0)
			ino = FIRST_FILE_INO + i;
	if (!ino && fs.nfiles < MAX_FILES) {
		fs.names[fs.nfiles] = strdup(name);
		if (fs.names[fs.nfiles])
			ino = FIRST_FILE_INO + fs.nfiles++;
	}
	pthread_mutex_unlock(&fs.lock);
	return ino;
}

static const char *name_of(fuse_ino_t ino)
{
	pthread_mutex_lock(&fs.lock);
	const char *name = is_file(ino) ? fs.names[ino - FIRST_FILE_INO] : "";
	pthread_mutex_unlock(&fs.lock);
	return name;
}

/* Same choices as mqfs's init, so that the floor is the same transport. */
static void noop_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(FUSE_CAP_ASYNC_DIO | FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ |
			FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_READDIRPLUS |
			FUSE_CAP_POSIX_LOCKS);
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof e);
	e.ino = ino;
	e.attr = stat_of(ino);
	e.attr_timeout = 0; /* as mqfs, whose sizes change with every message */
	e.entry_timeout = 1.0;
	fuse_reply_entry(req, &e);
}

static void noop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_ino_t ino = ino_of(name);
	if (!ino) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	reply_entry(req, ino);
}

static void noop_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	if (ino != FUSE_ROOT_ID && !is_file(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct stat st = stat_of(ino);
	fuse_reply_attr(req, &st, 0);
}

/* Truncation and the rest: accepted, nothing to change. */
static void noop_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			 struct fuse_file_info *fi)
{
	(void)attr;
	(void)to_set;
	noop_getattr(req, ino, fi);
}

/* Pipe-like files, as mqfs opens its queues. */
static int open_file(fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct open_file *of = calloc(1, sizeof *of);
	if (!of)
		return ENOMEM;
	const char *name = name_of(ino);
	of->once = strncmp(name, "once", 4) == 0;
	of->msgsize = fs.msgsize;
	const char *dot = strrchr(name, '.');
	if (dot) {
		char *end;
		unsigned long n = strtoul(dot + 1, &end, 10);
		if (*end == '\0' && n >= 1 && n < fs.msgsize)
			of->msgsize = n;
	}
	fi->fh = (uintptr_t)of;
	fi->direct_io = 1;
	fi->nonseekable = 1;
	fi->keep_cache = 0;
	return 0;
}

static void noop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (!is_file(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	int err = open_file(ino, fi);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		free((void *)(uintptr_t)fi->fh);
}

static void noop_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			struct fuse_file_info *fi)
{
	if (parent != FUSE_ROOT_ID || !S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_ino_t ino = ino_of(name);
	if (!ino) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	int err = open_file(ino, fi);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof e);
	e.ino = ino;
	e.attr = stat_of(ino);
	e.entry_timeout = 1.0;
	if (fuse_reply_create(req, &e, fi) != 0)
		free((void *)(uintptr_t)fi->fh);
}

static void noop_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	(void)ino;
	(void)off;
	struct open_file *of = (struct open_file *)(uintptr_t)fi->fh;
	if (of->once && of->delivered) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	of->delivered = 1;
	fuse_reply_buf(req, fs.zeros, size < of->msgsize ? size : of->msgsize);
}

static void noop_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)off;
	(void)fi;
	fuse_reply_write(req, size);
}

static void noop_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void noop_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	free((void *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void noop_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req); /* names live as long as the mount */
}

static const struct fuse_lowlevel_ops noop_ops = {
	.init = noop_init,
	.lookup = noop_lookup,
	.forget = noop_forget,
	.getattr = noop_getattr,
	.setattr = noop_setattr,
	.open = noop_open,
	.create = noop_create,
	.read = noop_read,
	.write = noop_write,
	.flush = noop_flush,
	.release = noop_release,
};

static const struct fuse_opt noop_opts[] = {
	{ "msgsize=%u", 0, 0 },
	FUSE_OPT_END
};

static void usage(const char *program)
{
	printf("usage: %s [options] MOUNTPOINT\n\n"
	       "A FUSE filesystem that answers every read and write at once.\n\n"
	       "    -s                     single-threaded loop (default: multi-threaded)\n"
	       "    -o msgsize=N           largest read reply in bytes (default 8192)\n\n",
	       program);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	int status = 1;

	if (fuse_opt_parse(&args, &fs.msgsize, noop_opts, NULL) != 0)
		return 1;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		return 1;
	if (opts.show_help) {
		usage(argv[0]);
		status = 0;
		goto out_args;
	}
	if (opts.show_version) {
		fuse_lowlevel_version();
		status = 0;
		goto out_args;
	}
	if (!opts.mountpoint) {
		fprintf(stderr, "noop_fs: no mount point given (see --help)\n");
		goto out_args;
	}
	if (fs.msgsize < 1 || fs.msgsize > (1u << 20)) {
		fprintf(stderr, "noop_fs: msgsize must be 1 to 1048576\n");
		goto out_args;
	}
	fs.zeros = calloc(1, fs.msgsize);
	if (!fs.zeros)
		goto out_args;

	fuse_opt_add_arg(&args, "-ofsname=noop_fs,subtype=noop_fs");
	struct fuse_session *se = fuse_session_new(&args, &noop_ops, sizeof noop_ops, NULL);
	if (!se)
		goto out_args;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(opts.foreground);

	if (opts.singlethread) {
		status = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *config = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(config, opts.clone_fd);
		fuse_loop_cfg_set_idle_threads(config, opts.max_idle_threads);
		fuse_loop_cfg_set_max_threads(config, opts.max_threads);
		status = fuse_session_loop_mt(se, config);
		fuse_loop_cfg_destroy(config);
	}
	status = status != 0;

	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_args:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return status;
}
