// mqfs [-f] [-d] [-o OPTIONS] MOUNTPOINT: a filesystem in which every file is
// a message queue.
#include <fuse_lowlevel.h>
#include <spdlog/spdlog.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "daemon/logging.hpp"
#include "daemon/mountpoint.hpp"
#include "daemon/options.hpp"
#include "fuse/filesystem.hpp"
#include "store/disk.hpp"
#include "store/journal.hpp"
#ifdef MQFS_WITH_REDIS
#include "store/redis_store.hpp"
#endif

namespace {

// RAII owners of libfuse's objects.
struct Args {
  fuse_args args;
  Args(int argc, char** argv) : args(FUSE_ARGS_INIT(argc, argv)) {}
  ~Args() { fuse_opt_free_args(&args); }
};

struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};

void print_usage() {
  std::printf(
      "usage: mqfs [-f] [-d] [-o OPTION[,OPTION...]] MOUNTPOINT\n"
      "       mqfs SOURCE MOUNTPOINT -o OPTIONS  (the form mount -t fuse.mqfs and fstab use)\n\n"
      "Mounts a filesystem in which every file is a message queue. The mount\n"
      "point must be a directory that is not already a mount.\n\n"
      "general options:\n"
      "    -h, --help           print this help and exit\n"
      "    -V, --version        print the versions of mqfs and libfuse and exit\n"
      "    -f                   stay in the foreground, logging to stderr\n"
      "    -d, -o debug         log every request (implies -f)\n"
      "    -o OPTION,...        the options below\n\n");
  std::fputs(mqfs::daemon::option_help().c_str(), stdout);
  std::printf(
      "\nFUSE options:\n"
      "    allow_other          let users other than the one who mounted reach the queues\n"
      "    allow_root           let root reach them too\n"
      "    auto_unmount         unmount when the daemon ends, even if it is killed\n"
      "File modes and owners are always enforced (default_permissions is always on).\n");
}

// mqfs's own version first; libfuse's and the kernel interface's after it.
void print_version() {
  std::printf("mqfs version %s\nlibfuse version %s\n", MQFS_VERSION, fuse_pkgversion());
  std::fflush(stdout);  // fuse_lowlevel_version runs fusermount3, which writes directly
  fuse_lowlevel_version();
  std::fflush(stdout);
}

// SPEC section 10: the Redis store the options name, or null after one line
// that says why not.
std::unique_ptr<mqfs::store::Store> open_redis(const mqfs::daemon::Options& options) {
#ifdef MQFS_WITH_REDIS
  namespace redis = mqfs::store::redis;
  std::string error;
  auto address = redis::parse_url(options.redis_url, &error);
  if (!address) {
    spdlog::error("bad option 'redis={}': {}", options.redis_url, error);
    return nullptr;
  }
  // Anyone who reaches an unprotected Redis can read and change every queue.
  bool local = address->sentinels.empty() ? redis::is_loopback(address->host) : true;
  for (const auto& sentinel : address->sentinels) local = local && redis::is_loopback(sentinel.host);
  if (address->password.empty() && !local) {
    spdlog::error("bad option 'redis': Redis on another host needs a password (redis://:PASSWORD@HOST...); "
                  "set requirepass in redis.conf");
    return nullptr;
  }
  return std::make_unique<redis::RedisStore>(redis::Options{
      .address = *address,
      .prefix = options.redis_prefix,
      .lease = std::chrono::milliseconds(options.redis_lease_ms),
      .timeout = std::chrono::milliseconds(options.redis_timeout_ms),
  });
#else
  (void)options;
  spdlog::error("bad option 'redis': this mqfs was built without Redis (libhiredis-dev)");
  return nullptr;
#endif
}

bool fuse_device_present() {
  if (access("/dev/fuse", F_OK) == 0) return true;
  spdlog::error("/dev/fuse: {} (is the fuse module loaded?)", std::strerror(errno));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv);
  mqfs::daemon::log_to_stderr("info");
  signal(SIGPIPE, SIG_IGN);  // a closed log pipe must not end the daemon

  auto options = mqfs::daemon::parse_options(args.args);
  if (!options) return 1;
  fuse_cmdline_opts cmdline{};
  if (fuse_parse_cmdline(&args.args, &cmdline) != 0) return 1;
  std::free(cmdline.mountpoint);  // positional arguments were taken above
  if (cmdline.show_help) {
    print_usage();
    return 0;
  }
  if (cmdline.show_version) {
    print_version();
    return 0;
  }
  if (options->mountpoint.empty()) {
    spdlog::error("no mount point given (see --help)");
    return 1;
  }
  const std::string level = cmdline.debug ? "debug" : options->log_level;
  mqfs::daemon::log_to_stderr(level);
  if (!mqfs::daemon::usable_mountpoint(options->mountpoint) || !fuse_device_present()) return 1;

  // Modes and owners are always enforced by the kernel; the names show in mount(8).
  fuse_opt_insert_arg(&args.args, 1, "-odefault_permissions,fsname=mqfs,subtype=mqfs");

  // The store is opened, locked and read before the mount, so that its
  // errors reach the terminal and a refused store leaves nothing mounted.
  std::unique_ptr<mqfs::store::PosixDisk> disk;
  std::unique_ptr<mqfs::store::Store> store;
  if (!options->redis_url.empty()) {
    if (!(store = open_redis(*options))) return 1;
  } else if (options->store_dir.empty()) {
    store = std::make_unique<mqfs::store::MemoryStore>();
  } else {
    disk = mqfs::store::PosixDisk::open_directory(options->store_dir);
    if (!disk) return 1;
    store = std::make_unique<mqfs::store::Journal>(*disk, mqfs::store::JournalOptions{.sync_disk = options->sync_disk});
  }
  mqfs::fuse::Filesystem fs(options->config, *store);
  if (fs.restore() < 0) return 1;
  std::unique_ptr<fuse_session, SessionDeleter> session(
      fuse_session_new(&args.args, &mqfs::fuse::Filesystem::operations(), sizeof(fuse_lowlevel_ops), &fs));
  if (!session) return 1;
  if (fuse_session_mount(session.get(), options->mountpoint.c_str()) != 0) return 1;
  if (fuse_daemonize(cmdline.foreground) != 0) {
    fuse_session_unmount(session.get());
    return 1;
  }
  if (!cmdline.foreground) mqfs::daemon::log_in_background(level, options->log_file);
  if (disk) disk->write_owner();  // the daemon's pid after the fork
  spdlog::info("mounted at {}", options->mountpoint);

  int status = mqfs::fuse::run_loop(session.get(), fs);

  fuse_session_unmount(session.get());
  // statfs, not stat: the kernel may answer a stat from the attributes it
  // kept for the last clock tick, and asks for statfs every time.
  struct statfs st;
  if (statfs(options->mountpoint.c_str(), &st) != 0 && errno == ENOTCONN) {
    // The kernel aborted the connection (/sys/fs/fuse/connections/N/abort):
    // the mount stays behind, failing every access, until someone unmounts it.
    spdlog::warn("connection to the kernel aborted; {} stays mounted until `fusermount3 -u {}`",
                 options->mountpoint, options->mountpoint);
  } else {
    spdlog::info("unmounted {}", options->mountpoint);
  }
  return status;
}
