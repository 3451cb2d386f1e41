// durability_bench: what mqfs's durable store (-o store=DIR) costs. Next to
// an in-memory mount, the kernel's POSIX queue, the disk's own fdatasync rate
// and Redis's append-only file, all measured in the same rounds.
// bench/durability.sh mounts the filesystems and starts Redis, then runs:
//
//   durability_bench rates --memory DIR --store DIR --disk DIR --sync-dir DIR
//                          [--redis PORT] [--rounds N] [--window-ms MS]
//                          [--warmup-ms MS] [--writers 1,4,16] [--csv FILE]
//       messages/s of every case per round into FILE (key,round,value) and,
//       on stdout, the markdown table of medians and the targets;
//   durability_bench queue QUEUE MAXMSG         a new u32, stream queue
//   durability_bench fill QUEUE COUNT SIZE      COUNT u32 frames of SIZE bytes
//   durability_bench churn QUEUE BYTES KEEP SIZE  push BYTES through a u32
//       queue while a reader takes all but KEEP of them
//   durability_bench curmsgs QUEUE              the messages queued (xattr)
//   durability_bench evict DIR                  drop DIR's files from the page cache
//
// A case forks its workers, which open their queues and wait at a pipe; all
// are released together, run `warmup` uncounted and `window` counted, then
// stop. A worker still blocked after the window is interrupted (SIGUSR1, no
// SA_RESTART) and, 5 s later, killed.
#include <arpa/inet.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>

#include "harness.hpp"

namespace {

using namespace bench;

// ------------------------------------------------------------------ transports

Worker mq_writer(const std::string& name, const Tally& t) {
  return {[&t, name](auto ready, uint64_t& count) {
            const mqd_t q = mq_open(name.c_str(), O_WRONLY);
            if (q == static_cast<mqd_t>(-1)) throw failure("mq_open " + name);
            const std::string msg(kSize, 'm');
            ready();
            while (mq_send(q, msg.data(), msg.size(), 0) == 0 && in_window(t, count)) {
            }
          },
          false};
}

Worker mq_reader(const std::string& name, const Tally& t) {
  return {[&t, name](auto ready, uint64_t& count) {
            const mqd_t q = mq_open(name.c_str(), O_RDONLY);
            if (q == static_cast<mqd_t>(-1)) throw failure("mq_open " + name);
            char buf[kSize];
            ready();
            while (mq_receive(q, buf, sizeof buf, nullptr) == static_cast<ssize_t>(kSize) && in_window(t, count)) {
            }
          },
          true};
}

// One client of Redis: LPUSH of a 64-byte value, waiting for each reply.
Worker redis_writer(int port, const Tally& t) {
  return {[&t, port](auto ready, uint64_t& count) {
            const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in addr{};
            addr.sin_family = AF_INET;
            addr.sin_port = htons(static_cast<uint16_t>(port));
            addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
              throw failure("connect to redis");
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            const std::string command =
                "*3\r\n$5\r\nLPUSH\r\n$10\r\nmqfs-bench\r\n$" + std::to_string(kSize) + "\r\n" + std::string(kSize, 'm') + "\r\n";
            char reply[64];
            ready();
            for (;;) {
              if (write(fd, command.data(), command.size()) != static_cast<ssize_t>(command.size())) break;
              size_t got = 0;  // an integer reply, ":N\r\n"
              while (got == 0 || reply[got - 1] != '\n') {
                const ssize_t n = read(fd, reply + got, sizeof reply - got);
                if (n <= 0) return;
                got += static_cast<size_t>(n);
              }
              if (reply[0] != ':') throw std::runtime_error("redis: " + std::string(reply, got - 2));
              if (!in_window(t, count)) break;
            }
          },
          true};
}

// The disk's rate of small synchronous writes: 4 KiB pwrite + fdatasync in a
// loop. `append`: each write to the next block of a preallocated file, as a
// fresh segment of the journal is written (every block's first write also
// converts its extent: a filesystem journal commit); otherwise the same block
// again and again, a flush of data alone.
Worker disk_syncer(const std::string& dir, bool append, const Tally& t) {
  return {[&t, dir, append](auto ready, uint64_t& count) {
            const std::string path = dir + "/fdatasync-probe";
            const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
            constexpr off_t kFile = off_t{64} << 20;
            if (fd < 0 || posix_fallocate(fd, 0, kFile) != 0) throw failure("create " + path);
            unlink(path.c_str());
            const std::string block(4096, 'd');
            off_t at = 0;
            if (!append && (pwrite(fd, block.data(), block.size(), 0) != 4096 || fdatasync(fd) != 0))
              throw failure("write " + path);
            ready();
            for (;;) {
              if (pwrite(fd, block.data(), block.size(), at) != 4096 || fdatasync(fd) != 0) break;
              if (append) at = (at + 4096) % kFile;
              if (!in_window(t, count)) break;
            }
          },
          true};
}

// MB/s of writing `mib` MiB in 1 MiB pwrites, then one fdatasync (10^6 B).
double disk_bandwidth(const std::string& dir, int mib) {
  const std::string path = dir + "/bandwidth-probe";
  const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) throw failure("create " + path);
  unlink(path.c_str());
  const std::string chunk(1 << 20, 'b');
  const Ns start = clock_ns();
  for (int i = 0; i < mib; ++i)
    if (pwrite(fd, chunk.data(), chunk.size(), off_t{i} << 20) != static_cast<ssize_t>(chunk.size()))
      throw failure("write " + path);
  if (fdatasync(fd) != 0) throw failure("fdatasync " + path);
  const double s = static_cast<double>(clock_ns() - start) / 1e9;
  close(fd);
  return mib * 1.048576 / s;
}

// ------------------------------------------------------------------ rates

struct RatesOptions {
  std::string memory, store, disk, sync_dir, csv;
  int redis = 0, rounds = 5;
  Ns warmup = 200 * kMs, window = 1000 * kMs;
  std::vector<int> writers{1, 4, 16};
};

void measure_round(const RatesOptions& o, Round& r, int round, Series& s) {
  const Tally& t = r.tally();
  auto pair = [&](const std::string& key, Worker w, Worker rd) { s[key].push_back(r.run(key, {w, rd})); };
  std::string q = make_queue(o.memory + "/rate", false);
  pair("memory", file_writer(q, t), file_reader(q, t));
  unlink(q.c_str());
  q = make_queue(o.store + "/rate", false);
  pair("store-os", file_writer(q, t), file_reader(q, t));
  unlink(q.c_str());

  const std::string mq = "/mqfs-durability-" + std::to_string(getpid());
  mq_attr attr{};
  attr.mq_maxmsg = 10;
  attr.mq_msgsize = kSize;
  mq_unlink(mq.c_str());
  const mqd_t m = mq_open(mq.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
  if (m == static_cast<mqd_t>(-1)) throw failure("mq_open " + mq);
  pair("posix", mq_writer(mq, t), mq_reader(mq, t));
  mq_close(m);
  mq_unlink(mq.c_str());

  q = make_queue(o.memory + "/rate-u32", true);
  pair("memory-u32", batch_writer(q, t), batch_reader(q, t));
  unlink(q.c_str());
  q = make_queue(o.store + "/rate-u32", true);
  pair("store-os-u32", batch_writer(q, t), batch_reader(q, t));
  unlink(q.c_str());

  s["fdatasync"].push_back(r.run("fdatasync", {disk_syncer(o.sync_dir, false, t)}));
  s["fdatasync-append"].push_back(r.run("fdatasync", {disk_syncer(o.sync_dir, true, t)}));
  // N writers + 1 reader on a mount: with sync=disk, and with sync=os for
  // what mqfs itself can do at that N (group commit's ceiling).
  auto writers = [&](const std::string& mount, const std::string& key, int n) {
    const std::string path = make_queue(mount + "/rate", false);
    std::vector<Worker> w(static_cast<size_t>(n), file_writer(path, t));
    w.push_back(file_reader(path, t));
    s[key + "-" + std::to_string(n)].push_back(r.run(key, w));
    unlink(path.c_str());
  };
  for (int n : o.writers) {
    writers(o.disk, "disk", n);
    writers(o.store, "os", n);
    if (o.redis) {
      std::vector<Worker> c(static_cast<size_t>(n), redis_writer(o.redis, t));
      s["redis-" + std::to_string(n)].push_back(r.run("redis", c));
    }
  }
  std::fprintf(stderr, "round %d done\n", round + 1);
}

void rates(const RatesOptions& o) {
  Round r(o.warmup, o.window);
  Series s;
  const double bandwidth = disk_bandwidth(o.sync_dir, 64);
  for (int i = 0; i < o.rounds; ++i) measure_round(o, r, i, s);

  if (!o.csv.empty()) {
    std::ofstream csv(o.csv);
    csv << "key,round,value\n";
    for (const auto& [key, values] : s)
      for (size_t i = 0; i < values.size(); ++i) csv << key << ',' << i + 1 << ',' << values[i] << '\n';
    csv << "bandwidth_mb_s,1," << bandwidth << '\n';
  }
  auto med = [&](const std::string& key) { return median(s.at(key)); };
  std::printf("## Messages/s (64 B), medians of %d rounds of %.0f ms\n\n", o.rounds, r.window_s() * 1000);
  std::printf("| case | messages/s |\n|---|---:|\n");
  const std::pair<const char*, const char*> rows[] = {
      {"memory", "mqfs in memory, 1 writer + 1 reader, one message per call"},
      {"store-os", "mqfs store, sync=os, 1 + 1, one message per call"},
      {"posix", "POSIX mq, 1 + 1"},
      {"memory-u32", "mqfs in memory, u32 framing (64 KiB writes and reads), 1 + 1"},
      {"store-os-u32", "mqfs store, sync=os, u32 framing, 1 + 1"},
      {"fdatasync", "the disk: 4 KiB pwrite + fdatasync per second, one block rewritten"},
      {"fdatasync-append", "the disk: 4 KiB pwrite + fdatasync per second, appending in a preallocated file"}};
  for (const auto& [key, what] : rows) std::printf("| %s | %s |\n", what, fmt(med(key)).c_str());
  for (int n : o.writers) {
    const std::string k = std::to_string(n);
    std::printf("| mqfs store, sync=disk, %d writer%s + 1 reader | %s |\n", n, n > 1 ? "s" : "",
                fmt(med("disk-" + k)).c_str());
    std::printf("| mqfs store, sync=os, %d writer%s + 1 reader (no fdatasync: the ceiling) | %s |\n", n,
                n > 1 ? "s" : "", fmt(med("os-" + k)).c_str());
    if (o.redis)
      std::printf("| Redis LPUSH, appendfsync always, %d client%s | %s |\n", n, n > 1 ? "s" : "",
                  fmt(med("redis-" + k)).c_str());
  }
  // A message costs the journal its record (64 B + 27) and the record of its taking.
  const double bandwidth_cap = bandwidth * 1e6 / 128;
  std::printf("\nDisk bandwidth (64 MiB in 1 MiB writes, one fdatasync): %.0f MB/s, about %.0f messages/s "
              "of journal at ~128 B each.\n\n",
              bandwidth, bandwidth_cap);

  std::printf("## Targets (ratios within a round, then the median)\n\n| target | measured | |\n|---|---:|---|\n");
  double x = median_ratio(s, "store-os", "memory");
  std::printf("| 1. store sync=os, 1+1 ≥ 0.8 × in memory | %s × | %s |\n", fmt(x, "%.2f").c_str(), verdict(x, 0.8));
  x = median_ratio(s, "store-os-u32", "posix");
  std::printf("| 2. store sync=os, u32 ≥ 1.0 × POSIX mq | %s × | %s |\n", fmt(x, "%.2f").c_str(), verdict(x, 1.0));
  for (int n : o.writers) {
    const std::string k = std::to_string(n);
    x = median_ratio(s, "disk-" + k, "fdatasync", n);
    const double ceiling = median_ratio(s, "disk-" + k, "os-" + k);
    const char* met = med("disk-" + k) >= 0.8 * bandwidth_cap ? "**met** (bandwidth)"
                      : x >= 0.8                              ? "**met**"
                      : ceiling >= 0.8                        ? "**not met**: at mqfs's ceiling (≥ 0.8 × sync=os)"
                                                              : verdict(x, 0.8);
    std::printf("| 3. sync=disk, %d writer%s ≥ 0.8 × %d × fdatasync/s | %s × (%s × sync=os%s) | %s |\n", n,
                n > 1 ? "s" : "", n, fmt(x, "%.2f").c_str(), fmt(ceiling, "%.2f").c_str(),
                o.redis ? ("; Redis " + fmt(median_ratio(s, "redis-" + k, "fdatasync", n), "%.2f") + " ×").c_str() : "",
                met);
  }
}

RatesOptions parse_rates(int argc, char** argv) {
  RatesOptions o;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--memory") o.memory = v;
    else if (k == "--store") o.store = v;
    else if (k == "--disk") o.disk = v;
    else if (k == "--sync-dir") o.sync_dir = v;
    else if (k == "--csv") o.csv = v;
    else if (k == "--redis") o.redis = std::stoi(v);
    else if (k == "--rounds") o.rounds = std::stoi(v);
    else if (k == "--window-ms") o.window = std::stoll(v) * kMs;
    else if (k == "--warmup-ms") o.warmup = std::stoll(v) * kMs;
    else if (k == "--writers") o.writers = parse_list(v);
    else throw std::runtime_error("unknown option " + k);
  }
  if (o.memory.empty() || o.store.empty() || o.disk.empty() || o.sync_dir.empty())
    throw std::runtime_error("rates needs --memory, --store, --disk and --sync-dir");
  for (int n : o.writers)
    if (n < 1 || n + 1 > kMaxProcs) throw std::runtime_error("--writers: 1 to " + std::to_string(kMaxProcs - 1));
  return o;
}

// ------------------------------------------------------------------ churn, curmsgs, evict

// A writer pushes `bytes` of payload in batches; a reader takes all but `keep`.
void churn(const std::string& path, uint64_t bytes, uint64_t keep, size_t size) {
  const uint64_t total = bytes / size, left = keep / size;
  const pid_t writer = fork();
  if (writer < 0) throw failure("fork");
  if (writer == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    try {
      fill(path, total, size);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "durability_bench: churn writer: %s\n", e.what());
      _exit(1);
    }
    _exit(0);
  }
  const int fd = open_queue(path, O_RDONLY);
  std::vector<char> buf(std::max(kBatch, size + 4));
  for (uint64_t taken = 0; taken < total - left;) {
    const size_t want = std::min<uint64_t>(buf.size() / (size + 4), total - left - taken) * (size + 4);
    const ssize_t n = read(fd, buf.data(), want);
    if (n < 0 && errno == EINTR) continue;
    taken += frames_in(n, size);
  }
  int status = 0;
  if (waitpid(writer, &status, 0) != writer || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("churn: the writer failed");
}

void curmsgs(const std::string& path) {
  char buf[64];
  const ssize_t n = getxattr(path.c_str(), "user.mq.curmsgs", buf, sizeof buf - 1);
  if (n < 0) throw failure("getxattr " + path);
  std::printf("%.*s\n", static_cast<int>(n), buf);
}

// The store's files, written back and dropped from the page cache, so that a
// recovery reads them from the disk (only these files: nothing global).
void evict(const std::string& dir) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const int fd = open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

const char kUsage[] =
    "usage: durability_bench rates --memory DIR --store DIR --disk DIR --sync-dir DIR [--redis PORT]\n"
    "                        [--rounds N] [--window-ms MS] [--warmup-ms MS] [--writers 1,4,16] [--csv FILE]\n"
    "       durability_bench queue QUEUE MAXMSG\n"
    "       durability_bench fill QUEUE COUNT SIZE\n"
    "       durability_bench churn QUEUE BYTES KEEP SIZE\n"
    "       durability_bench curmsgs QUEUE\n"
    "       durability_bench evict DIR\n";

// A subcommand of `n` arguments after its name.
Command with(int n, std::function<void(char** args)> run) {
  return [n, run](int argc, char** argv) {
    if (argc != n + 2) return kBadArguments;
    run(argv + 2);
    return 0;
  };
}

}  // namespace

int main(int argc, char** argv) {
  return run_command(
      argc, argv,
      {{"rates", [](int argc, char** argv) { rates(parse_rates(argc, argv)); return 0; }},
       {"queue", with(2, [](char** a) { make_queue(a[0], true, std::stol(a[1])); })},
       {"fill", with(3, [](char** a) { fill(a[0], std::stoull(a[1]), std::stoul(a[2])); })},
       {"churn", with(4, [](char** a) { churn(a[0], std::stoull(a[1]), std::stoull(a[2]), std::stoul(a[3])); })},
       {"curmsgs", with(1, [](char** a) { curmsgs(a[0]); })},
       {"evict", with(1, [](char** a) { evict(a[0]); })}},
      kUsage);
}
