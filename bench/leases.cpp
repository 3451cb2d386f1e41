// leases_bench: what explicit acknowledgement (SPEC section 11) costs.
// bench/leases.sh mounts mqfs twice and runs:
//
//   leases_bench rates --mount DIR [--rounds N] [--window-ms MS] [--warmup-ms MS]
//                      [--csv FILE] [--targets FILE]
//       1 writer + 1 reader on one queue, 64 B: a plain read (auto ack),
//       read + MQFS_IOC_GET_DELIVERY + MQFS_IOC_ACK(id), read + ACK(0); and
//       batched u32 reads, auto and with ACK(0) after each read. Every case
//       once per round, ratios within a round, then the median;
//   leases_bench inflight --mount DIR --pid PID [--count N] [--lease-ms MS]
//                         [--rounds N] [--csv FILE] [--targets FILE]
//       the daemon's memory (PID's /proc/PID/smaps_rollup) with N messages
//       queued, then with all N leased to one descriptor; then, per round,
//       N messages leased with user.mq.lease_ms=MS and the time until all of
//       them are queued again, the descriptor still open.
//
// Each writes every value (key,round,value) to the CSV file, its markdown
// section to stdout and its rows of the targets' table to the targets file
// (appended).
#include <sys/ioctl.h>

#include <fstream>
#include <sstream>

#include "harness.hpp"
#include "mqfs.h"

namespace {

using namespace bench;

// ------------------------------------------------------------------ explicit acknowledgement

void set_ack(int fd, int32_t mode) {
  if (ioctl(fd, MQFS_IOC_SET_ACK, &mode) != 0) throw failure("MQFS_IOC_SET_ACK");
}

void set_read_mode(int fd, int32_t mode) {
  if (ioctl(fd, MQFS_IOC_SET_READ_MODE, &mode) != 0) throw failure("MQFS_IOC_SET_READ_MODE");
}

// ACK of `id` (0: all the descriptor holds). A stop signal may cut it short.
void ack(int fd, uint64_t id) {
  if (ioctl(fd, MQFS_IOC_ACK, &id) != 0 && !(errno == EINTR && g_stopped)) throw failure("MQFS_IOC_ACK");
}

mqfs_delivery last_delivery(int fd) {
  mqfs_delivery d{};
  if (ioctl(fd, MQFS_IOC_GET_DELIVERY, &d) != 0 && !(errno == EINTR && g_stopped))
    throw failure("MQFS_IOC_GET_DELIVERY");
  return d;
}

// A reader in explicit mode that acknowledges each message by its id.
const ReaderHooks kAckById{
    .opened = [](int fd) { set_ack(fd, MQFS_ACK_EXPLICIT); },
    .after_read = [](int fd) { ack(fd, last_delivery(fd).id); },
};

// A reader in explicit mode that acknowledges all it holds after each read.
const ReaderHooks kAckAll{
    .opened = [](int fd) { set_ack(fd, MQFS_ACK_EXPLICIT); },
    .after_read = [](int fd) { ack(fd, 0); },
};

// ------------------------------------------------------------------ options and output

struct Options {
  std::string mount, csv, targets;
  pid_t pid = 0;
  int rounds = 5;
  Ns warmup = 200 * kMs, window = 1000 * kMs;
  uint64_t count = 100000;
  int64_t lease_ms = 2000;
};

Options parse(int argc, char** argv) {
  Options o;
  bool rounds_given = false;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--mount") o.mount = v;
    else if (k == "--csv") o.csv = v;
    else if (k == "--targets") o.targets = v;
    else if (k == "--pid") o.pid = std::stoi(v);
    else if (k == "--rounds") o.rounds = std::stoi(v), rounds_given = true;
    else if (k == "--window-ms") o.window = std::stoll(v) * kMs;
    else if (k == "--warmup-ms") o.warmup = std::stoll(v) * kMs;
    else if (k == "--count") o.count = std::stoull(v);
    else if (k == "--lease-ms") o.lease_ms = std::stoll(v);
    else throw std::runtime_error("unknown option " + k);
  }
  if (o.mount.empty()) throw std::runtime_error("--mount is needed");
  if (!rounds_given && std::string(argv[1]) == "inflight") o.rounds = 3;
  if (o.rounds < 1) throw std::runtime_error("--rounds: at least 1");
  return o;
}

// ------------------------------------------------------------------ rates

constexpr int kCalls = 5000;   // of each kind, per round, in call_costs
constexpr int kLookups = 200;  // ACKs of an unknown id, timed in the memory phase

// The calls the cases make, each timed alone: one process, nothing else on
// the queue, `n` of each; microseconds per call into s["us-KEY"]. Shows what
// a request of each kind costs next to the read it is added to.
void call_costs(const std::string& mount, int n, Series& s) {
  const std::string q = make_queue(mount + "/calls", false);
  set_attr(q, "maxmsg", std::to_string(n));
  std::map<std::string, Ns> spent;
  auto timed = [&](const char* key, const char* what, auto call) {
    const Ns start = clock_ns();
    if (!call()) throw failure(what);
    spent[key] += clock_ns() - start;
  };
  const int writer = open_queue(q, O_WRONLY);
  const std::string msg(kSize, 'm');
  auto fill_queue = [&] {
    for (int i = 0; i < n; ++i) timed("write", "write", [&] { return write(writer, msg.data(), kSize) == kSize; });
  };
  char buf[kSize];
  auto read_one = [&](int fd, const char* key) { timed(key, "read", [&] { return read(fd, buf, kSize) == kSize; }); };

  fill_queue();
  const int plain = open_queue(q, O_RDONLY);
  for (int i = 0; i < n; ++i) read_one(plain, "read-auto");
  mqfs_attr attr;
  for (int i = 0; i < n; ++i)
    timed("get-attr", "MQFS_IOC_GET_ATTR", [&] { return ioctl(plain, MQFS_IOC_GET_ATTR, &attr) == 0; });
  close(plain);

  const int leasing = open_queue(q, O_RDONLY);
  set_ack(leasing, MQFS_ACK_EXPLICIT);
  fill_queue();
  mqfs_delivery d{};
  for (int i = 0; i < n; ++i) {
    read_one(leasing, "read-explicit");
    timed("get-delivery", "MQFS_IOC_GET_DELIVERY", [&] { return ioctl(leasing, MQFS_IOC_GET_DELIVERY, &d) == 0; });
    timed("ack-id", "MQFS_IOC_ACK", [&] { return ioctl(leasing, MQFS_IOC_ACK, &d.id) == 0; });
  }
  fill_queue();
  const uint64_t all = 0;
  for (int i = 0; i < n; ++i) {
    read_one(leasing, "read-explicit");
    timed("ack-0", "MQFS_IOC_ACK", [&] { return ioctl(leasing, MQFS_IOC_ACK, &all) == 0; });
  }
  close(leasing);
  close(writer);
  unlink(q.c_str());
  const std::map<std::string, int> calls{{"write", 3 * n}, {"read-explicit", 2 * n}};
  for (const auto& [key, ns] : spent)
    s["us-" + key].push_back(static_cast<double>(ns) / 1e3 / (calls.contains(key) ? calls.at(key) : n));
}

void rates(const Options& o) {
  Round r(o.warmup, o.window);
  const Tally& t = r.tally();
  Series s;
  for (int round = 0; round < o.rounds; ++round) {
    auto pair = [&](const std::string& key, Worker writer, Worker reader) {
      s[key].push_back(r.run(key, {std::move(writer), std::move(reader)}));
    };
    std::string q = make_queue(o.mount + "/rate", false);
    pair("auto", file_writer(q, t), file_reader(q, t));
    pair("explicit-id", file_writer(q, t), file_reader(q, t, kAckById));
    pair("explicit-0", file_writer(q, t), file_reader(q, t, kAckAll));
    unlink(q.c_str());
    q = make_queue(o.mount + "/rate-u32", true);
    pair("u32-auto", batch_writer(q, t), batch_reader(q, t));
    pair("u32-explicit-0", batch_writer(q, t), batch_reader(q, t, kAckAll));
    unlink(q.c_str());
    call_costs(o.mount, kCalls, s);
    std::fprintf(stderr, "rates: round %d done\n", round + 1);
  }
  write_csv(o.csv, s);

  auto med = [&](const std::string& key) { return fmt(median(s.at(key))); };
  auto ratio = [&](const std::string& a, const std::string& b) { return median_ratio(s, a, b); };
  std::printf("## Messages/s (64 B, 1 writer + 1 reader), medians of %d rounds of %.0f ms\n\n", o.rounds,
              r.window_s() * 1000);
  std::printf("| case | messages/s | × auto |\n|---|---:|---:|\n");
  std::printf("| auto ack: read, one message per read | %s | 1 |\n", med("auto").c_str());
  std::printf("| explicit: read + GET_DELIVERY + ACK(id) | %s | %s |\n", med("explicit-id").c_str(),
              fmt(ratio("explicit-id", "auto"), "%.2f").c_str());
  std::printf("| explicit: read + ACK(0) | %s | %s |\n", med("explicit-0").c_str(),
              fmt(ratio("explicit-0", "auto"), "%.2f").c_str());
  std::printf("| u32 framing, 64 KiB reads (%zu messages each), auto ack | %s | 1 |\n", kBatch / (kSize + 4),
              med("u32-auto").c_str());
  std::printf("| u32 framing, 64 KiB reads, explicit: read + ACK(0) | %s | %s |\n\n", med("u32-explicit-0").c_str(),
              fmt(ratio("u32-explicit-0", "u32-auto"), "%.2f").c_str());

  std::ostringstream rows;
  for (const auto& [key, what] : {std::pair{"explicit-id", "read + GET_DELIVERY + ACK(id)"},
                                  std::pair{"explicit-0", "read + ACK(0)"}}) {
    const double x = ratio(key, "auto");
    rows << "| 1. explicit ack (" << what << "), 64 B, 1+1 ≥ 0.7 × auto | " << fmt(x, "%.2f") << " × | "
         << verdict(x, 0.7) << " |\n";
  }
  append_targets(o.targets, rows.str());

  std::printf("## Microseconds per call, each timed alone (one process, %d calls of each per round), medians\n\n"
              "| call | µs |\n|---|---:|\n",
              kCalls);
  for (const auto& [key, what] : {std::pair{"write", "write(2) of 64 B"}, std::pair{"read-auto", "read(2), auto ack"},
                                  std::pair{"read-explicit", "read(2), explicit ack (leases the message)"},
                                  std::pair{"get-delivery", "ioctl(MQFS_IOC_GET_DELIVERY)"},
                                  std::pair{"ack-id", "ioctl(MQFS_IOC_ACK, &id)"},
                                  std::pair{"ack-0", "ioctl(MQFS_IOC_ACK, &0), one message held"},
                                  std::pair{"get-attr", "ioctl(MQFS_IOC_GET_ATTR): an ioctl that changes nothing"}})
    std::printf("| %s | %s |\n", what, fmt(median(s.at("us-" + std::string(key))), "%.1f").c_str());
  std::printf("\n");
}

// ------------------------------------------------------------------ the daemon's memory and CPU

// User + system CPU seconds the daemon (all its threads) has used.
double daemon_cpu_s(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i)  // utime and stime are fields 14 and 15
    if (i >= 14) ticks += std::stod(field);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void settle() { usleep(300000); }

// ------------------------------------------------------------------ in flight

// What the run saw that the rules (leases-semantics.md) say otherwise.
std::vector<std::string> g_surprises;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    g_surprises.push_back(what);
    std::fprintf(stderr, "leases_bench: unexpected: %s\n", what.c_str());
  }
}

// A descriptor holding leases, and the ids of two it holds.
struct Held {
  int fd;
  uint64_t early_id;  // the last message of the first read: near the oldest held
  uint64_t last_id;   // the last message read: the newest held
};

// Opens `path` and leases every message queued there (u32 frames of kSize)
// to the new descriptor, in 64 KiB stream reads.
Held lease_all(const std::string& path, uint64_t count) {
  Held h{open_queue(path, O_RDONLY | O_NONBLOCK), 0, 0};
  set_ack(h.fd, MQFS_ACK_EXPLICIT);
  set_read_mode(h.fd, MQFS_READ_STREAM);
  std::vector<char> buf(kBatch);
  for (uint64_t held = 0; held < count;) {
    const ssize_t n = read(h.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN)
      throw std::runtime_error("leased " + std::to_string(held) + " of " + std::to_string(count) + ", then EAGAIN");
    if (n < 0) throw failure("read " + path);
    held += frames_in(n, kSize);
    if (!h.early_id) h.early_id = last_delivery(h.fd).id;
  }
  h.last_id = last_delivery(h.fd).id;
  return h;
}

// Microseconds of one ACK(id) on `fd`; `expect_errno` 0: it must succeed.
double timed_ack(int fd, uint64_t id, int expect_errno) {
  const Ns start = clock_ns();
  const int result = ioctl(fd, MQFS_IOC_ACK, &id);
  const Ns took = clock_ns() - start;
  if (expect_errno ? result == 0 || errno != expect_errno : result != 0) throw failure("MQFS_IOC_ACK (timed)");
  return static_cast<double>(took) / 1e3;
}

// Microseconds of ACK of an id the descriptor does not hold (ENOENT), the
// median of `n`: what looking an id up among its leases costs.
double unknown_ack_us(int fd, int n) {
  std::vector<double> us;
  for (int i = 0; i < n; ++i) us.push_back(timed_ack(fd, uint64_t{1} << 62, ENOENT));
  return median(us);
}

// Takes everything queued in `path` (auto ack), without waiting.
void drain(const std::string& path) {
  const int fd = open_queue(path, O_RDONLY | O_NONBLOCK);
  set_read_mode(fd, MQFS_READ_STREAM);
  std::vector<char> buf(kBatch);
  while (read(fd, buf.data(), buf.size()) > 0 || errno == EINTR) {
  }
  close(fd);
}

double seconds(Ns from, Ns to) { return static_cast<double>(to - from) / 1e9; }
double mib(double kib) { return kib / 1024; }

struct MemoryResult {
  Memory base, queued, inflight, acked;
};

// The daemon's memory before, with `count` queued, with them all leased and
// after ACK(0).
MemoryResult measure_memory(const Options& o, Series& s) {
  const std::string q = make_queue(o.mount + "/inflight", true, static_cast<long>(o.count));
  set_attr(q, "lease_ms", "3600000");  // nothing runs out while it is measured
  // Warm up: the daemon's threads and their buffers exist before the baseline.
  fill(q, std::min<uint64_t>(o.count, 10000), kSize);
  drain(q);
  settle();
  MemoryResult m;
  m.base = daemon_memory(o.pid);

  Ns t0 = clock_ns();
  fill(q, o.count, kSize);
  s["fill_s"].push_back(seconds(t0, clock_ns()));
  expect(attr(q, "curmsgs") == static_cast<int64_t>(o.count), "curmsgs after the fill is not the count");
  settle();
  m.queued = daemon_memory(o.pid);

  t0 = clock_ns();
  const Held held = lease_all(q, o.count);
  const int fd = held.fd;
  s["lease_all_s"].push_back(seconds(t0, clock_ns()));
  expect(attr(q, "curmsgs") == 0, "curmsgs with all leased is not 0");
  expect(attr(q, "inflight") == static_cast<int64_t>(o.count), "inflight with all leased is not the count");
  settle();
  m.inflight = daemon_memory(o.pid);

  // What finding one lease among all of them costs.
  s["us_ack_unknown_all_held"].push_back(unknown_ack_us(fd, kLookups));
  s["us_ack_newest"].push_back(timed_ack(fd, held.last_id, 0));
  s["us_ack_early"].push_back(timed_ack(fd, held.early_id, 0));
  t0 = clock_ns();
  ack(fd, 0);
  s["ack_all_s"].push_back(seconds(t0, clock_ns()));
  s["us_ack_unknown_none_held"].push_back(unknown_ack_us(fd, kLookups));
  expect(attr(q, "inflight") == 0 && attr(q, "curmsgs") == 0, "messages left after ACK(0) of all");
  expect(attr(q, "received") >= static_cast<int64_t>(o.count), "received does not count the ACKed messages");
  settle();
  m.acked = daemon_memory(o.pid);
  close(fd);
  unlink(q.c_str());

  for (const auto& [name, at] : {std::pair{"base", m.base}, std::pair{"queued", m.queued},
                                 std::pair{"inflight", m.inflight}, std::pair{"acked", m.acked}}) {
    s[std::string("mem_") + name + "_rss_kib"].push_back(at.rss);
    s[std::string("mem_") + name + "_pss_kib"].push_back(at.pss);
    s[std::string("mem_") + name + "_private_kib"].push_back(at.priv);
  }
  return m;
}

struct Expiry {
  double read_s, first_s, half_s, all_s, cpu_s;  // first/half/all: after the first/-/last deadline
};

// One round: `count` messages leased with lease_ms, the descriptor kept
// open; how long until curmsgs is back to `count`.
Expiry measure_expiry(const Options& o, int round) {
  const std::string q = make_queue(o.mount + "/expiry-" + std::to_string(round), true, static_cast<long>(o.count));
  set_attr(q, "lease_ms", std::to_string(o.lease_ms));
  fill(q, o.count, kSize);
  const Ns read_start = clock_ns();
  const int fd = lease_all(q, o.count).fd;
  const Ns read_end = clock_ns();
  const Ns lease = o.lease_ms * kMs;
  const Ns first_deadline = read_start + lease, last_deadline = read_end + lease;
  // The daemon's CPU from just before the first lease runs out.
  while (clock_ns() < first_deadline - 100 * kMs) usleep(10000);
  const double cpu0 = daemon_cpu_s(o.pid);
  Ns first = 0, half = 0, all = 0;
  const auto want = static_cast<int64_t>(o.count);
  for (const Ns give_up = last_deadline + 60000 * kMs; clock_ns() < give_up; usleep(1000)) {
    const int64_t back = attr(q, "curmsgs");
    const Ns now = clock_ns();
    if (back > 0 && !first) first = now;
    if (back >= want / 2 && !half) half = now;
    if (back >= want) {
      all = now;
      break;
    }
  }
  const double cpu = daemon_cpu_s(o.pid) - cpu0;
  expect(all != 0, "not all messages back 60 s after their leases ran out (curmsgs " +
                       std::to_string(attr(q, "curmsgs")) + ", inflight " + std::to_string(attr(q, "inflight")) + ")");
  expect(attr(q, "inflight") == 0, "inflight is not 0 once all are back");
  // The holder's leases ran out: ACK(0) says so.
  uint64_t zero = 0;
  const int acked = ioctl(fd, MQFS_IOC_ACK, &zero);
  expect(acked != 0 && errno == ETIMEDOUT,
         std::string("ACK(0) after the leases ran out: ") + (acked == 0 ? "0" : std::strerror(errno)) +
             ", not ETIMEDOUT");
  // A returned message's next delivery counts one more.
  const int again = open_queue(q, O_RDONLY | O_NONBLOCK);
  char frame[kSize + 4];
  if (read(again, frame, sizeof frame) == static_cast<ssize_t>(sizeof frame)) {
    const mqfs_delivery d = last_delivery(again);
    expect(d.deliveries == 2, "a returned message read again reports " + std::to_string(d.deliveries) +
                                  " deliveries, not 2");
  } else {
    expect(false, std::string("reading a returned message: ") + std::strerror(errno));
  }
  close(again);
  close(fd);
  unlink(q.c_str());
  auto after = [](Ns at, Ns deadline) { return at ? seconds(deadline, at) : NAN; };
  return {seconds(read_start, read_end), after(first, first_deadline), after(half, last_deadline),
          after(all, last_deadline), cpu};
}

void inflight(const Options& o) {
  if (o.pid <= 0) throw std::runtime_error("inflight needs --pid (the daemon's)");
  Series s;
  const MemoryResult m = measure_memory(o, s);
  std::vector<Expiry> rounds;
  for (int i = 0; i < o.rounds; ++i) {
    const Expiry e = measure_expiry(o, i);
    rounds.push_back(e);
    s["expiry_read_s"].push_back(e.read_s);
    s["expiry_first_after_first_deadline_s"].push_back(e.first_s);
    s["expiry_half_after_last_deadline_s"].push_back(e.half_s);
    s["expiry_all_after_last_deadline_s"].push_back(e.all_s);
    s["expiry_daemon_cpu_s"].push_back(e.cpu_s);
    std::fprintf(stderr, "inflight: expiry round %d done\n", i + 1);
  }
  const double growth_queued = m.queued.priv - m.base.priv, growth_inflight = m.inflight.priv - m.base.priv;
  const double ratio = growth_inflight / growth_queued;
  s["mem_ratio_private_growth"].push_back(ratio);
  write_csv(o.csv, s);

  const double n = static_cast<double>(o.count);
  std::printf("## %llu messages (64 B) in flight\n\n", static_cast<unsigned long long>(o.count));
  std::printf("The daemon's memory (/proc/%d/smaps_rollup), MiB; growth: over the baseline, and per message.\n\n",
              o.pid);
  std::printf("| state | Rss | Pss | Private | Private growth | bytes/message |\n|---|---:|---:|---:|---:|---:|\n");
  for (const auto& [what, at] : {std::pair{"baseline (queue made, 10,000 messages through it)", m.base},
                                 std::pair{"all queued", m.queued}, std::pair{"all leased to one descriptor", m.inflight},
                                 std::pair{"after ACK(0) of all", m.acked}}) {
    const double growth = at.priv - m.base.priv;
    std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %.0f |\n", what, mib(at.rss), mib(at.pss), mib(at.priv),
                mib(growth), growth * 1024 / n);
  }
  auto med = [&](const std::string& key, const char* spec = "%.3f") { return fmt(median(s.at(key)), spec); };
  std::printf("\nIn flight / queued (Private growth): %.2f; Rss totals: %.2f. Fill (u32, 64 KiB writes): %s s; "
              "leasing all (64 KiB stream reads, explicit): %s s; ACK(0) of all: %s s.\n\n",
              ratio, m.inflight.rss / m.queued.rss, med("fill_s").c_str(), med("lease_all_s").c_str(),
              med("ack_all_s").c_str());
  std::printf("One ACK(id) with all %llu held (a lookup among the descriptor's leases), µs: of the newest %s, of one "
              "%zu from the oldest %s; of an id it does not hold (ENOENT, median of %d) %s, and with none held %s.\n\n",
              static_cast<unsigned long long>(o.count), med("us_ack_newest", "%.0f").c_str(), kBatch / (kSize + 4),
              med("us_ack_early", "%.0f").c_str(), kLookups, med("us_ack_unknown_all_held", "%.0f").c_str(),
              med("us_ack_unknown_none_held", "%.0f").c_str());

  std::printf("## Leases running out: %llu messages, lease_ms=%lld, %d round%s\n\n",
              static_cast<unsigned long long>(o.count), static_cast<long long>(o.lease_ms), o.rounds,
              o.rounds > 1 ? "s" : "");
  std::printf("Times in seconds; a message's deadline is lease_ms after the read that leased it: the first\n"
              "deadline is lease_ms after the first read began, the last lease_ms after the last read returned.\n"
              "curmsgs polled every 1 ms (getxattr); the holder's descriptor stays open.\n\n");
  std::printf("| round | leasing all took | first back, after the first deadline | half back, after the last "
              "deadline | all back, after the last deadline | daemon CPU meanwhile |\n|---|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < rounds.size(); ++i)
    std::printf("| %zu | %s | %s | %s | %s | %s |\n", i + 1, fmt(rounds[i].read_s, "%.3f").c_str(),
                fmt(rounds[i].first_s, "%.3f").c_str(), fmt(rounds[i].half_s, "%.3f").c_str(),
                fmt(rounds[i].all_s, "%.3f").c_str(), fmt(rounds[i].cpu_s, "%.2f").c_str());
  std::printf("| median | %s | %s | %s | %s | %s |\n\n", med("expiry_read_s").c_str(),
              med("expiry_first_after_first_deadline_s").c_str(), med("expiry_half_after_last_deadline_s").c_str(),
              med("expiry_all_after_last_deadline_s").c_str(), med("expiry_daemon_cpu_s", "%.2f").c_str());
  std::printf("## Checks against the rules\n\n");
  if (g_surprises.empty()) std::printf("Every check held (counters, ACK(0) after expiry: ETIMEDOUT, redelivery count).\n\n");
  for (const std::string& what : g_surprises) std::printf("- unexpected: %s\n", what.c_str());
  if (!g_surprises.empty()) std::printf("\n");

  const double all = median(s.at("expiry_all_after_last_deadline_s"));
  std::ostringstream rows;
  rows << "| 2. " << o.count << " messages in flight: daemon memory ≤ 1.5 × queued (growth over the baseline, "
       << "Private) | " << fmt(ratio, "%.2f") << " × (" << fmt(mib(growth_inflight), "%.1f") << " / "
       << fmt(mib(growth_queued), "%.1f") << " MiB) | " << verdict_at_most(ratio, 1.5) << " |\n";
  rows << "| 3. lease_ms=" << o.lease_ms << ": all " << o.count << " back ≤ 1 s after the last deadline | "
       << fmt(all, "%.3f") << " s | " << verdict_at_most(all, 1.0) << " |\n";
  append_targets(o.targets, rows.str());
}

const char kUsage[] =
    "usage: leases_bench rates --mount DIR [--rounds N] [--window-ms MS] [--warmup-ms MS]\n"
    "                          [--csv FILE] [--targets FILE]\n"
    "       leases_bench inflight --mount DIR --pid PID [--count N] [--lease-ms MS] [--rounds N]\n"
    "                             [--csv FILE] [--targets FILE]\n";

}  // namespace

// Exit status 3: a check against the rules failed (listed in the report).
int main(int argc, char** argv) {
  return run_command(argc, argv,
                     {{"rates", [](int argc, char** argv) { rates(parse(argc, argv)); return 0; }},
                      {"inflight", [](int argc, char** argv) { inflight(parse(argc, argv)); return g_surprises.empty() ? 0 : 3; }}},
                     kUsage);
}
