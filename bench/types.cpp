// types_bench: what message types (SPEC section 12: selective receive) and
// topics (section 13: publish/subscribe) cost. bench/types.sh mounts mqfs and
// runs:
//
//   types_bench select --mount DIR [--rounds N] [--types T] [--count N]
//                      [--depths 1000,10000,100000] [--csv FILE] [--targets FILE]
//       COUNT (10,000) messages of 64 B, types 1..T round-robin, drained one
//       message per read(2): unselective ({0,0}), each type in turn ({t,0}),
//       lowest type first ({-T,0}) and all but one type ({T,1}); then the
//       unselective and the exact drain at every depth; then the "needle":
//       1,000 messages of type 2 queued behind DEPTH of type 1, read with
//       {2,0}, next to 1,000 read from the front. Microseconds per message,
//       ratios within a round, medians;
//   types_bench publish --mount DIR [--rounds N] [--subs 1,10,100] [--count N]
//                       [--batched-count N] [--csv FILE] [--targets FILE]
//       a topic with S lasting subscriber queues: COUNT publishes of 64 B, one
//       per write(2), and BATCHED-COUNT in u32 writes of 64 KiB; and with S
//       descriptor subscribers (processes reading while it publishes);
//   types_bench memory --mount DIR --pid PID --subs S [--count N] [--size B]
//                      [--csv FILE]
//       the daemon's memory with COUNT (20,000) messages of SIZE (1 KiB)
//       published to a topic with S lasting subscriber queues (S = 0: written
//       to a plain queue); one S per fresh daemon; values appended to FILE;
//   types_bench memory-report --csv FILE [--targets FILE]
//       the memory section from the values `memory` appended.
//
// Each writes its values (key,round,value) to the CSV file, its markdown
// section to stdout and its rows of the targets' table to the targets file
// (appended). Exit status 3: a check against the rules failed (listed in the
// report).
#include <sys/ioctl.h>
#include <sys/statvfs.h>

#include <filesystem>

#include "harness.hpp"
#include "mqfs.h"


namespace {

using namespace bench;

// ------------------------------------------------------------------ options and checks

struct Options {
  std::string mount, csv, targets;
  pid_t pid = 0;
  int rounds = 3;
  int types = 100;
  uint64_t count = 0;          // per subcommand: select 10,000, publish 5,000, memory 20,000
  uint64_t batched_count = 20000;
  size_t size = 1024;          // memory: the message size
  std::vector<int> depths{1000, 10000, 100000};
  std::vector<int> subs{1, 10, 100};
};

Options parse(int argc, char** argv) {
  Options o;
  const std::string command = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--mount") o.mount = v;
    else if (k == "--csv") o.csv = v;
    else if (k == "--targets") o.targets = v;
    else if (k == "--pid") o.pid = std::stoi(v);
    else if (k == "--rounds") o.rounds = std::stoi(v);
    else if (k == "--types") o.types = std::stoi(v);
    else if (k == "--count") o.count = std::stoull(v);
    else if (k == "--batched-count") o.batched_count = std::stoull(v);
    else if (k == "--size") o.size = std::stoul(v);
    else if (k == "--depths") o.depths = parse_list(v);
    else if (k == "--subs") o.subs = parse_list(v);
    else throw std::runtime_error("unknown option " + k);
  }
  if (o.mount.empty() && command != "memory-report") throw std::runtime_error("--mount is needed");
  if (o.rounds < 1 || o.types < 2) throw std::runtime_error("--rounds: at least 1; --types: at least 2");
  if (!o.count) o.count = command == "select" ? 10000 : command == "publish" ? 5000 : 20000;
  if (command == "select" && o.count % o.types)
    throw std::runtime_error("--count must be a multiple of --types");
  for (int d : o.depths)
    if (command == "select" && d % o.types) throw std::runtime_error("--depths must be multiples of --types");
  return o;
}

// What the run saw that the rules (SPEC sections 12 and 13) say otherwise.
std::vector<std::string> g_surprises;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    g_surprises.push_back(what);
    std::fprintf(stderr, "types_bench: unexpected: %s\n", what.c_str());
  }
}

void print_checks() {
  std::printf("### Checks against the rules\n\n");
  if (g_surprises.empty()) std::printf("Every check held.\n\n");
  for (const std::string& what : g_surprises) std::printf("- unexpected: %s\n", what.c_str());
  if (!g_surprises.empty()) std::printf("\n");
}

double us_per(Ns ns, uint64_t n) { return static_cast<double>(ns) / 1e3 / static_cast<double>(n); }
double seconds(Ns ns) { return static_cast<double>(ns) / 1e9; }
std::string with_commas(uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

// ------------------------------------------------------------------ selective receive

void set_type(int fd, int64_t type) {
  if (ioctl(fd, MQFS_IOC_SET_TYPE, &type) != 0) throw failure("MQFS_IOC_SET_TYPE");
}

void set_select(int fd, int64_t type, int32_t except = 0) {
  const mqfs_select s{type, except, 0};
  if (ioctl(fd, MQFS_IOC_SET_SELECT, &s) != 0) throw failure("MQFS_IOC_SET_SELECT");
}

int64_t delivered_type(int fd) {
  mqfs_delivery d{};
  if (ioctl(fd, MQFS_IOC_GET_DELIVERY, &d) != 0) throw failure("MQFS_IOC_GET_DELIVERY");
  return d.type;
}

// A new queue holding `n` messages of 64 B, message i of type i % types + 1,
// written one per write(2) through one descriptor per type; unframed, or
// `framed` (u32, stream mode).
std::string fill_round_robin(const std::string& path, uint64_t n, int types, bool framed = false) {
  make_queue(path, framed, static_cast<long>(n));
  set_attr(path, "maxmsg", std::to_string(n));
  std::vector<int> fds;
  for (int t = 1; t <= types; ++t) {
    fds.push_back(open_queue(path, O_WRONLY));
    set_type(fds.back(), t);
  }
  const std::string msg = framed ? u32_frames(kSize, 1) : std::string(kSize, 'm');
  for (uint64_t i = 0; i < n; ++i)
    if (write(fds[i % static_cast<uint64_t>(types)], msg.data(), msg.size()) != static_cast<ssize_t>(msg.size()))
      throw failure("write (fill) " + path);
  for (int fd : fds) close(fd);
  return path;
}

// A reader of `path`: stream mode (message after message), O_NONBLOCK.
int reader(const std::string& path) {
  const int fd = open_queue(path, O_RDONLY | O_NONBLOCK);
  int32_t mode = MQFS_READ_STREAM;
  if (ioctl(fd, MQFS_IOC_SET_READ_MODE, &mode) != 0) throw failure("MQFS_IOC_SET_READ_MODE");
  return fd;
}

// Reads `n` messages of `size` bytes, one per read(2); false if one was
// missing (EAGAIN) or of another size.
bool read_n(int fd, uint64_t n, size_t size = kSize) {
  char buf[256];
  for (uint64_t i = 0; i < n; ++i)
    if (read(fd, buf, size) != static_cast<ssize_t>(size)) return false;
  return true;
}

// Takes `n` messages of 64 B: one per read(2), or (`batched`: u32 frames)
// in 64 KiB reads; false if fewer or more came.
bool take(int fd, uint64_t n, bool batched) {
  if (!batched) return read_n(fd, n);
  std::vector<char> buf(kBatch);
  uint64_t got = 0;
  for (ssize_t r; got < n && (r = read(fd, buf.data(), buf.size())) > 0;) got += frames_in(r, kSize);
  return got == n;
}

bool nothing_more(int fd) {
  char buf[256];
  return read(fd, buf, sizeof buf) < 0 && errno == EAGAIN;
}

// Nanoseconds to take what a selection qualifies from a fresh round-robin
// queue of `n` messages (reads only; the fill is not timed). `how`: any,
// exact (each type in turn, its SET_SELECT timed), negative, except.
// `batched`: a u32 queue read 64 KiB at a time.
Ns drain_case(const Options& o, const std::string& how, uint64_t n, bool batched = false) {
  const std::string q = fill_round_robin(o.mount + "/select-" + how, n, o.types, batched);
  const int fd = reader(q);
  const uint64_t per_type = n / static_cast<uint64_t>(o.types);
  const std::string what = how + (batched ? " u32" : "") + " drain of " + std::to_string(n);
  Ns spent = 0;
  if (how == "exact") {
    for (int t = 1; t <= o.types; ++t) {
      const Ns start = clock_ns();
      set_select(fd, t);
      const bool ok = take(fd, per_type, batched);
      spent += clock_ns() - start;
      expect(ok, what + ": type " + std::to_string(t) + " had fewer than " + std::to_string(per_type));
      expect(nothing_more(fd), what + ": type " + std::to_string(t) + " had more than " + std::to_string(per_type));
    }
  } else {
    const uint64_t want = how == "except" ? n - per_type : n;
    if (how == "negative") set_select(fd, -o.types);
    if (how == "except") set_select(fd, o.types, 1);
    const Ns start = clock_ns();
    const bool ok = take(fd, want, batched);
    spent = clock_ns() - start;
    expect(ok, what + ": fewer than " + std::to_string(want) + " qualified");
    expect(nothing_more(fd), what + ": more than " + std::to_string(want) + " qualified");
  }
  if (how == "except") expect(attr(q, "curmsgs") == static_cast<int64_t>(per_type), what + ": curmsgs after it");
  else expect(attr(q, "curmsgs") == 0, what + ": messages left");
  close(fd);
  unlink(q.c_str());
  return spent;
}

// The needle: `depth` messages of type 1, then kNeedles of type 2 (u32
// frames, 64 KiB writes); microseconds per message of reading the kNeedles
// with {2,0} (from behind the others), then of kNeedles with {0,0} (the
// front), one per read.
constexpr uint64_t kNeedles = 1000;

std::pair<double, double> needle_case(const Options& o, uint64_t depth) {
  const std::string q = make_queue(o.mount + "/needle", true, static_cast<long>(depth + kNeedles));
  fill(q, depth, kSize);  // the queue's type: 1, the default
  set_attr(q, "type", "2");
  fill(q, kNeedles, kSize);
  const int fd = reader(q);
  set_select(fd, 2);
  Ns start = clock_ns();
  bool ok = read_n(fd, kNeedles, kSize + 4);
  const Ns needles = clock_ns() - start;
  expect(ok && nothing_more(fd), "needle: {2,0} did not take exactly the " + std::to_string(kNeedles) +
                                     " behind " + std::to_string(depth));
  set_select(fd, 0);
  start = clock_ns();
  ok = read_n(fd, kNeedles, kSize + 4);
  const Ns front = clock_ns() - start;
  expect(ok && attr(q, "curmsgs") == static_cast<int64_t>(depth - kNeedles), "needle: {0,0} from the front");
  close(fd);
  unlink(q.c_str());
  return {us_per(needles, kNeedles), us_per(front, kNeedles)};
}

// The order rules, on a small queue (types 1..3 round-robin, 100 each).
void check_order(const Options& o) {
  const std::string q = fill_round_robin(o.mount + "/order", 300, 3);
  int fd = reader(q);
  set_select(fd, -3);
  int64_t last = 0;
  bool ascending = true;
  char buf[kSize];
  for (int i = 0; i < 150; ++i) {
    if (read(fd, buf, sizeof buf) != static_cast<ssize_t>(kSize)) throw failure("read (order check)");
    const int64_t t = delivered_type(fd);
    ascending = ascending && t >= last && (i < 100 ? t == 1 : t == 2);
    last = t;
  }
  expect(ascending, "{-3,0}: not the lowest type first (100 of type 1, then type 2)");
  set_select(fd, 2, 1);  // any but 2: the 100 of type 3
  bool none_of_2 = true;
  for (int i = 0; i < 100; ++i) {
    if (read(fd, buf, sizeof buf) != static_cast<ssize_t>(kSize)) throw failure("read (except check)");
    none_of_2 = none_of_2 && delivered_type(fd) == 3;
  }
  expect(none_of_2 && nothing_more(fd), "{2,1}: took a message of type 2, or more than the 100 of type 3");
  set_select(fd, 2);
  expect(read_n(fd, 50) && nothing_more(fd), "{2,0}: not the 50 left of type 2");
  close(fd);
  unlink(q.c_str());
}

void select_bench(const Options& o) {
  Series s;
  check_order(o);
  const char* kinds[] = {"any", "exact", "negative", "except"};  // rotated each round
  const uint64_t n = o.count, per_type = n / static_cast<uint64_t>(o.types);
  drain_case(o, "any", n);  // warm-up: the daemon's threads and buffers, not counted
  for (int round = 0; round < o.rounds; ++round) {
    std::rotate(std::begin(kinds), std::begin(kinds) + round % 4, std::end(kinds));  // no case always first
    for (const char* how : kinds) {
      const uint64_t taken = std::string(how) == "except" ? n - per_type : n;
      s[std::string("us_") + how].push_back(us_per(drain_case(o, how, n), taken));
      s[std::string("us_u32_") + how].push_back(us_per(drain_case(o, how, n, true), taken));
    }
    for (int depth : o.depths) {
      const auto d = static_cast<uint64_t>(depth);
      const std::string key = "depth" + std::to_string(depth);
      if (d == n) {  // measured above
        s["us_any_" + key].push_back(s["us_any"].back());
        s["us_exact_" + key].push_back(s["us_exact"].back());
      } else {
        s["us_any_" + key].push_back(us_per(drain_case(o, "any", d), d));
        s["us_exact_" + key].push_back(us_per(drain_case(o, "exact", d), d));
      }
      if (d >= kNeedles) {
        const auto [needle, front] = needle_case(o, d);
        s["us_needle_" + key].push_back(needle);
        s["us_front_" + key].push_back(front);
      }
    }
    std::fprintf(stderr, "select: round %d done\n", round + 1);
  }
  write_csv(o.csv, s);

  auto med = [&](const std::string& key, const char* spec = "%.1f") { return fmt(median(s.at(key)), spec); };
  auto ratio = [&](const std::string& a, const std::string& b) { return median_ratio(s, a, b); };
  std::printf("## Selective receive: %s messages of 64 B, types 1–%d round-robin\n\n", with_commas(n).c_str(),
              o.types);
  std::printf("One message per read(2) (unframed queue, stream mode, O_NONBLOCK), one process, the queue filled "
              "before (not timed); medians of %d rounds, ratios within a round.\n\n",
              o.rounds);
  std::printf("| selection | messages taken | µs/message | × unselective |\n|---|---:|---:|---:|\n");
  std::printf("| unselective `{0,0}` | %s | %s | 1 |\n", with_commas(n).c_str(), med("us_any").c_str());
  std::printf("| each type in turn `{t,0}`, t = 1..%d (its SET_SELECT timed too) | %s | %s | %s |\n", o.types,
              with_commas(n).c_str(), med("us_exact").c_str(), fmt(ratio("us_exact", "us_any"), "%.2f").c_str());
  std::printf("| lowest type first `{-%d,0}` | %s | %s | %s |\n", o.types, with_commas(n).c_str(),
              med("us_negative").c_str(), fmt(ratio("us_negative", "us_any"), "%.2f").c_str());
  std::printf("| all but type %d `{%d,1}` | %s | %s | %s |\n\n", o.types, o.types, with_commas(n - per_type).c_str(),
              med("us_except").c_str(), fmt(ratio("us_except", "us_any"), "%.2f").c_str());
  std::printf("The same batched: a u32 queue (filled the same way, one frame per write), read 64 KiB at a time "
              "(up to %zu messages per read(2)); µs per message show the daemon's own work. Each type in turn takes "
              "%d SET_SELECT and at least %d reads where the others take about %llu reads.\n\n",
              kBatch / (kSize + 4), o.types, o.types,
              static_cast<unsigned long long>((n + kBatch / (kSize + 4) - 1) / (kBatch / (kSize + 4))));
  std::printf("| selection, u32, 64 KiB reads | messages taken | µs/message | × unselective |\n|---|---:|---:|---:|\n");
  std::printf("| unselective `{0,0}` | %s | %s | 1 |\n", with_commas(n).c_str(), med("us_u32_any", "%.3f").c_str());
  for (const auto& [how, label] : {std::pair{"exact", "each type in turn `{t,0}`"},
                                   std::pair{"negative", "lowest type first `{-T,0}`"},
                                   std::pair{"except", "all but type T `{T,1}`"}})
    std::printf("| %s | %s | %s | %s |\n", label,
                with_commas(std::string(how) == "except" ? n - per_type : n).c_str(),
                med(std::string("us_u32_") + how, "%.3f").c_str(),
                fmt(ratio(std::string("us_u32_") + how, "us_u32_any"), "%.2f").c_str());
  std::printf("\n");

  std::printf("### Queue depth\n\n");
  std::printf("Drains as above at each depth (types 1–%d round-robin), and the needle: DEPTH messages of type 1 "
              "queued ahead of %llu of type 2 (u32 frames, read one per read(2)); the %llu read with `{2,0}` from "
              "behind the others, then %llu with `{0,0}` from the front.\n\n",
              o.types, static_cast<unsigned long long>(kNeedles), static_cast<unsigned long long>(kNeedles),
              static_cast<unsigned long long>(kNeedles));
  std::printf("| queued | unselective µs/msg | each type in turn µs/msg | × unselective | needle `{2,0}` µs/msg | "
              "front `{0,0}` µs/msg | × front |\n|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int depth : o.depths) {
    const std::string key = "depth" + std::to_string(depth);
    const bool needle = s.contains("us_needle_" + key);
    std::printf("| %s | %s | %s | %s | %s | %s | %s |\n", with_commas(static_cast<uint64_t>(depth)).c_str(),
                med("us_any_" + key).c_str(), med("us_exact_" + key).c_str(),
                fmt(ratio("us_exact_" + key, "us_any_" + key), "%.2f").c_str(),
                needle ? med("us_needle_" + key).c_str() : "—", needle ? med("us_front_" + key).c_str() : "—",
                needle ? fmt(ratio("us_needle_" + key, "us_front_" + key), "%.2f").c_str() : "—");
  }
  std::printf("\n");
  print_checks();

  std::ostringstream rows;
  for (const char* how : {"exact", "negative", "except"}) {
    const double x = ratio(std::string("us_") + how, "us_any");
    rows << "| 1. selective receive (" << how << "), " << with_commas(n) << " queued, µs/message ≤ 1.2 × "
         << "unselective | " << fmt(x, "%.2f") << " × | " << verdict_at_most(x, 1.2) << " |\n";
  }
  const std::string lo = "depth" + std::to_string(o.depths.front()), hi = "depth" + std::to_string(o.depths.back());
  const double deep = ratio("us_exact_" + hi, "us_any_" + hi);
  rows << "| 1. selective receive (exact), " << with_commas(o.depths.back()) << " queued, µs/message ≤ 1.2 × "
       << "unselective | " << fmt(deep, "%.2f") << " × | " << verdict_at_most(deep, 1.2) << " |\n";
  const double growth = ratio("us_exact_" + hi, "us_exact_" + lo);
  rows << "| 1. selective receive does not grow with depth: µs/message at " << with_commas(o.depths.back())
       << " ≤ 1.2 × at " << with_commas(o.depths.front()) << " (each type in turn) | " << fmt(growth, "%.2f")
       << " × | " << verdict_at_most(growth, 1.2) << " |\n";
  if (s.contains("us_needle_" + hi)) {
    const double g = ratio("us_needle_" + hi, "us_front_" + hi);
    rows << "| 1. the needle: `{2,0}` behind " << with_commas(o.depths.back()) << " others ≤ 1.2 × `{0,0}` from the "
         << "front | " << fmt(g, "%.2f") << " × | " << verdict_at_most(g, 1.2) << " |\n";
  }
  append_targets(o.targets, rows.str());
}

// ------------------------------------------------------------------ topics

constexpr int kMaxSubs = 100;  // descriptor subscribers, processes

std::string make_topic(const std::string& path, bool framed, long maxmsg) {
  make_queue(path, framed, maxmsg);
  set_attr(path, "kind", "topic");
  set_attr(path, "overflow", "drop");
  if (!framed) set_attr(path, "maxmsg", std::to_string(maxmsg));
  return path;
}

// `subs` queues subscribing to `topic` (its path from the mount root), each
// u32, stream mode, room for `room` messages.
std::vector<std::string> make_subscribers(const std::string& mount, const std::string& topic, int subs, long room) {
  std::vector<std::string> queues;
  for (int i = 0; i < subs; ++i) {
    queues.push_back(make_queue(mount + "/sub-" + std::to_string(i), true, room));
    set_attr(queues.back(), "subscribe", "/" + topic);
  }
  return queues;
}

// Publishes `n` messages of `size` bytes to `topic`: one per write(2) (its
// framing none or u32 with one frame), or in 64 KiB u32 writes (`batched`).
Ns publish(const std::string& topic, uint64_t n, size_t size, bool framed, bool batched) {
  const int fd = open_queue(topic, O_WRONLY);
  const std::string one = framed ? u32_frames(size, 1) : std::string(size, 'm');
  const uint64_t per_write = batched ? std::max<uint64_t>(1, kBatch / (size + 4)) : 1;
  const std::string batch = batched ? u32_frames(size, per_write) : one;
  const Ns start = clock_ns();
  for (uint64_t done = 0; done < n; done += per_write) {
    if (!batched) {
      if (write(fd, one.data(), one.size()) != static_cast<ssize_t>(one.size())) throw failure("publish");
    } else {
      write_all(fd, n - done >= per_write ? batch : u32_frames(size, n - done));
    }
  }
  const Ns took = clock_ns() - start;
  close(fd);
  return took;
}

// Takes everything queued in a u32 queue, 64 KiB per read; the messages.
uint64_t drain_framed(const std::string& path, size_t size) {
  const int fd = reader(path);
  std::vector<char> buf(kBatch + 4 + size);
  uint64_t got = 0;
  for (ssize_t r; (r = read(fd, buf.data(), buf.size())) > 0 || (r < 0 && errno == EINTR);)
    if (r > 0) got += frames_in(r, size);
  close(fd);
  return got;
}

struct Delivery {
  Ns publish, deliver;  // publishing all; from the first publish until every subscriber has them all
};

// Lasting subscriber queues: publish, then drain each queue (timed apart).
Delivery queue_subscribers(const Options& o, int subs, uint64_t n, bool batched) {
  const std::string name = "topic-q" + std::to_string(subs);
  const std::string topic = make_topic(o.mount + "/" + name, true, 10);
  const auto queues = make_subscribers(o.mount, name, subs, static_cast<long>(n));
  const std::string what = std::to_string(subs) + " subscriber queues, " + std::to_string(n) + " published" +
                           (batched ? " (batched)" : "");
  expect(attr(topic, "subscribers") == subs, what + ": user.mq.subscribers is not " + std::to_string(subs));
  Delivery d{};
  d.publish = publish(topic, n, kSize, true, batched);
  const Ns start = clock_ns();
  bool all = true;
  for (const std::string& q : queues) {
    all = all && attr(q, "curmsgs") == static_cast<int64_t>(n) && attr(q, "dropped") == 0;
    all = drain_framed(q, kSize) == n && all;
  }
  d.deliver = clock_ns() - start;  // here: the drain alone
  expect(all, what + ": a queue did not get every message (curmsgs, dropped, or what it read)");
  expect(attr(topic, "curmsgs") == 0 && attr(topic, "dropped") == 0, what + ": the topic kept or dropped messages");
  for (const std::string& q : queues) unlink(q.c_str());
  unlink(topic.c_str());
  return d;
}

// Descriptor subscribers: `subs` processes each open the topic (u32, stream,
// maxmsg n) and read 64 KiB at a time until they have n messages, while this
// process publishes. Their end times come back through shared memory.
Delivery descriptor_subscribers(const Options& o, int subs, uint64_t n, bool batched) {
  const std::string topic = make_topic(o.mount + "/topic-d" + std::to_string(subs), true, static_cast<long>(n));
  const std::string what = std::to_string(subs) + " descriptor subscribers, " + std::to_string(n) + " published" +
                           (batched ? " (batched)" : "");
  struct Shared {
    Ns done[kMaxSubs];
    uint64_t got[kMaxSubs];
  };
  auto* shared = static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (shared == MAP_FAILED) throw failure("mmap");
  std::memset(shared, 0, sizeof(Shared));
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) throw failure("pipe");
  std::vector<pid_t> pids;
  for (int i = 0; i < subs; ++i) {
    pids.push_back(fork_child([&] {
      close(ready[0]);
      const int fd = open(topic.c_str(), O_RDONLY | O_CLOEXEC);
      int32_t mode = MQFS_READ_STREAM;
      if (fd < 0 || ioctl(fd, MQFS_IOC_SET_READ_MODE, &mode) != 0 || write(ready[1], "r", 1) != 1) _exit(2);
      close(ready[1]);  // the parent's count ends when every child has written or ended
      std::vector<char> buf(kBatch);
      uint64_t got = 0;
      while (got < n && !g_stopped) {
        const ssize_t r = read(fd, buf.data(), buf.size());
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0 || r % static_cast<ssize_t>(kSize + 4)) break;
        got += static_cast<uint64_t>(r) / (kSize + 4);
      }
      shared->got[i] = got;
      shared->done[i] = clock_ns();
    }));
  }
  close(ready[1]);
  char c;
  int opened = 0;
  while (opened < subs && read(ready[0], &c, 1) == 1) ++opened;
  close(ready[0]);
  Delivery d{};
  if (opened == subs) {
    expect(attr(topic, "subscribers") == subs, what + ": user.mq.subscribers is not " + std::to_string(subs));
    const Ns start = clock_ns();
    d.publish = publish(topic, n, kSize, true, batched);
    // Every subscriber has them all, or 30 s more: then they are stopped.
    for (const Ns give_up = clock_ns() + 30000 * kMs; !pids.empty(); usleep(500)) {
      std::erase_if(pids, [](pid_t pid) { return waitpid(pid, nullptr, WNOHANG) == pid; });
      if (clock_ns() > give_up)
        for (pid_t pid : pids) kill(pid, SIGUSR1);
    }
    Ns last = start;
    bool all = true;
    for (int i = 0; i < subs; ++i) {
      last = std::max(last, shared->done[i]);
      all = all && shared->got[i] == n;
    }
    d.deliver = last - start;
    expect(all, what + ": a subscriber did not get every message");
    expect(attr(topic, "dropped") == 0, what + ": the topic's dropped is not 0");
  } else {
    for (pid_t pid : pids) kill(pid, SIGKILL);
    for (pid_t pid : pids) waitpid(pid, nullptr, 0);
    expect(false, what + ": " + std::to_string(subs - opened) + " subscribers could not open the topic");
    d.publish = d.deliver = 0;
  }
  munmap(shared, sizeof(Shared));
  unlink(topic.c_str());
  return d;
}

void publish_bench(const Options& o) {
  for (int subs : o.subs)
    if (subs < 1 || subs > kMaxSubs) throw std::runtime_error("--subs: 1 to " + std::to_string(kMaxSubs));
  Series s;
  const uint64_t n = o.count, nb = o.batched_count;
  auto rate = [](uint64_t messages, Ns ns) { return ns > 0 ? static_cast<double>(messages) / seconds(ns) : NAN; };
  for (int round = 0; round < o.rounds; ++round) {
    for (int subs : o.subs) {
      const std::string k = std::to_string(subs);
      const auto m = static_cast<uint64_t>(subs);
      Delivery d = queue_subscribers(o, subs, n, false);
      s["queues_publish_per_s_" + k].push_back(rate(n, d.publish));
      s["queues_deliveries_per_s_" + k].push_back(rate(n * m, d.publish));
      s["queues_drain_per_s_" + k].push_back(rate(n * m, d.deliver));
      d = queue_subscribers(o, subs, nb, true);
      s["queues_batched_publish_per_s_" + k].push_back(rate(nb, d.publish));
      s["queues_batched_deliveries_per_s_" + k].push_back(rate(nb * m, d.publish));
      d = descriptor_subscribers(o, subs, n, false);
      s["fds_publish_per_s_" + k].push_back(rate(n, d.publish));
      s["fds_deliveries_per_s_" + k].push_back(rate(n * m, d.deliver));
      d = descriptor_subscribers(o, subs, nb, true);
      s["fds_batched_publish_per_s_" + k].push_back(rate(nb, d.publish));
      s["fds_batched_deliveries_per_s_" + k].push_back(rate(nb * m, d.deliver));
    }
    std::fprintf(stderr, "publish: round %d done\n", round + 1);
  }
  write_csv(o.csv, s);

  auto med = [&](const std::string& key) { return fmt(median(s.at(key))); };
  auto ratio = [&](const std::string& a, const std::string& b) { return median_ratio(s, a, b); };
  std::printf("## Publishing to a topic: 64 B messages, 1 publisher\n\n");
  std::printf("The topic: `overflow=drop`, u32 framing; every subscriber has room for all the messages of a case "
              "(a subscriber queue's `maxmsg`, or the topic's for descriptor subscribers), so the publisher never "
              "waits and nothing is dropped (checked). Medians of %d rounds; deliveries = messages × subscribers.\n\n",
              o.rounds);
  std::printf("- **queues**: S lasting subscriber queues (`user.mq.subscribe`); the publisher alone, timed from its "
              "first write to its last; the queues drained afterwards (64 KiB reads, timed apart: drain);\n"
              "- **descriptors**: S processes with the topic open for reading (stream mode, 64 KiB reads) while it "
              "publishes; deliveries/s from the first publish until the last subscriber has every message.\n\n");
  // A table: a row per subscriber count, a column per (heading, key prefix).
  auto table = [&](const std::vector<std::pair<std::string, std::string>>& columns) {
    std::string head = "| subscribers |", rule = "|---:|";
    for (const auto& [heading, key] : columns) head += " " + heading + " |", rule += "---:|";
    std::printf("%s\n%s\n", head.c_str(), rule.c_str());
    for (int subs : o.subs) {
      std::printf("| %d |", subs);
      for (const auto& column : columns) std::printf(" %s |", med(column.second + std::to_string(subs)).c_str());
      std::printf("\n");
    }
    std::printf("\n");
  };
  std::printf("One message per write(2), %s published per case:\n\n", with_commas(n).c_str());
  table({{"queues: published/s", "queues_publish_per_s_"}, {"deliveries/s", "queues_deliveries_per_s_"},
         {"drain deliveries/s", "queues_drain_per_s_"}, {"descriptors: published/s", "fds_publish_per_s_"},
         {"deliveries/s", "fds_deliveries_per_s_"}});
  std::printf("Batched: u32 writes of 64 KiB (%zu messages each), %s published per case:\n\n", kBatch / (kSize + 4),
              with_commas(nb).c_str());
  table({{"queues: published/s", "queues_batched_publish_per_s_"}, {"deliveries/s", "queues_batched_deliveries_per_s_"},
         {"descriptors: published/s", "fds_batched_publish_per_s_"}, {"deliveries/s", "fds_batched_deliveries_per_s_"}});
  const std::string first = std::to_string(o.subs.front()), last = std::to_string(o.subs.back());
  std::printf("Published/s with %s subscriber queues / with %s: %s one per write, %s batched.\n\n", last.c_str(),
              first.c_str(), fmt(ratio("queues_publish_per_s_" + last, "queues_publish_per_s_" + first), "%.2f").c_str(),
              fmt(ratio("queues_batched_publish_per_s_" + last, "queues_batched_publish_per_s_" + first), "%.2f").c_str());
  print_checks();
}

// ------------------------------------------------------------------ memory per topic message

// The bytes the mount's budget (max_bytes) counts as used, from statvfs.
double budget_used(const std::string& mount) {
  struct statvfs v {};
  if (statvfs(mount.c_str(), &v) != 0) throw failure("statvfs " + mount);
  return static_cast<double>(v.f_blocks - v.f_bfree) * static_cast<double>(v.f_frsize);
}

void memory_bench(const Options& o) {
  if (o.pid <= 0) throw std::runtime_error("memory needs --pid (the daemon's)");
  if (o.subs.size() != 1) throw std::runtime_error("memory: one --subs count per daemon");
  const int subs = o.subs.front();
  const uint64_t n = o.count;
  const std::string k = std::to_string(subs);
  // S = 0: a plain queue. Else a topic and S subscriber queues.
  const std::string target = subs ? make_topic(o.mount + "/topic", true, 10)
                                   : make_queue(o.mount + "/plain", true, static_cast<long>(n));
  const auto queues = subs ? make_subscribers(o.mount, "topic", subs, static_cast<long>(n))
                           : std::vector<std::string>{target};
  // Warm up: the daemon's threads and buffers exist before the baseline.
  publish(target, std::min<uint64_t>(n, 1000), o.size, true, true);
  for (const std::string& q : queues) drain_framed(q, o.size);
  usleep(300000);
  const Memory base = daemon_memory(o.pid);
  const double budget0 = budget_used(o.mount);
  const Ns took = publish(target, n, o.size, true, true);
  usleep(300000);
  const Memory full = daemon_memory(o.pid);
  const double budget1 = budget_used(o.mount);
  bool all = true;
  for (const std::string& q : queues)
    all = all && attr(q, "curmsgs") == static_cast<int64_t>(n) && attr(q, "dropped") == 0 &&
          attr(q, "curbytes") == static_cast<int64_t>(n * o.size);
  expect(all, k + " subscriber queues: one does not hold every message with its full size (curmsgs, curbytes, "
                  "dropped)");
  for (const std::string& q : queues) unlink(q.c_str());
  if (subs) unlink(target.c_str());
  usleep(300000);
  const Memory after = daemon_memory(o.pid);
  if (o.csv.empty()) return;
  std::ofstream csv(o.csv, std::ios::app);
  if (csv.tellp() == 0) csv << "key,round,value\n";
  auto row = [&](const std::string& key, double v) { csv << "mem_s" << k << "_" << key << ",1," << v << '\n'; };
  row("count", static_cast<double>(n));
  row("size", static_cast<double>(o.size));
  row("publish_s", seconds(took));
  row("base_rss_kib", base.rss);
  row("base_private_kib", base.priv);
  row("full_rss_kib", full.rss);
  row("full_private_kib", full.priv);
  row("after_private_kib", after.priv);
  row("budget_growth_bytes", budget1 - budget0);
  row("checks_failed", static_cast<double>(g_surprises.size()));
}

// Reads back what `memory` appended: key -> value.
std::map<std::string, double> read_values(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw failure("open " + path);
  std::map<std::string, double> v;
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    const size_t a = line.find(','), b = line.rfind(',');
    if (a == std::string::npos || b == a) continue;
    v[line.substr(0, a)] = std::stod(line.substr(b + 1));
  }
  return v;
}

void memory_report(const Options& o) {
  const auto v = read_values(o.csv);
  std::vector<int> counts;
  for (const auto& [key, value] : v)
    if (key.ends_with("_count")) counts.push_back(std::stoi(key.substr(5)));
  std::sort(counts.begin(), counts.end());
  if (counts.empty()) throw std::runtime_error("no memory values in " + o.csv);
  auto get = [&](int subs, const std::string& key) {
    const auto it = v.find("mem_s" + std::to_string(subs) + "_" + key);
    return it == v.end() ? NAN : it->second;
  };
  const double n = get(counts.front(), "count"), size = get(counts.front(), "size");
  std::printf("## Memory per topic message: %s messages of %.0f B\n\n", with_commas(static_cast<uint64_t>(n)).c_str(),
              size);
  std::printf("A fresh daemon per row; the messages published to a topic (u32 frames, 64 KiB writes) with S lasting "
              "subscriber queues (S = 0: written to a plain queue), all of them left queued. Growth of the daemon's "
              "Private memory (/proc/PID/smaps_rollup, Private_Clean + Private_Dirty) over a baseline taken after "
              "1,000 messages went through; the budget: what `df` (statvfs) shows used of `max_bytes`.\n\n");
  std::printf("| S | Private growth, MiB | bytes/message | (bytes/message − body) / S | body × S (unshared) | "
              "budget bytes/message | Rss, MiB | Private growth after removing all, MiB |\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::ostringstream rows;
  for (int subs : counts) {
    const double growth = (get(subs, "full_private_kib") - get(subs, "base_private_kib")) * 1024;
    const double per = growth / n, per_sub = subs ? (per - size) / subs : NAN;
    std::printf("| %d | %.1f | %.0f | %s | %.0f | %.0f | %.1f | %.1f |\n", subs, growth / 1048576, per,
                fmt(per_sub).c_str(), size * std::max(subs, 1), get(subs, "budget_growth_bytes") / n,
                get(subs, "full_rss_kib") / 1024,
                (get(subs, "after_private_kib") - get(subs, "base_private_kib")) / 1024);
    if (subs >= 10)
      rows << "| 2. memory per topic message with " << subs << " subscribers ≤ body + 256 B × S (shared body) | "
           << fmt(per) << " B (" << fmt(per_sub) << " B per subscriber beyond the body) | "
           << verdict_at_most(per, size + 256.0 * subs) << " |\n";
  }
  std::printf("\nThe body is shared if bytes/message stays near body + a small copy per subscriber: the column "
              "(bytes/message − body) / S is that copy's size; unshared bodies would need at least body × S.\n\n");
  double failed = 0;
  for (int subs : counts) failed += get(subs, "checks_failed");
  if (failed > 0) std::printf("Some checks failed (types_bench memory printed them on stderr).\n\n");
  append_targets(o.targets, rows.str());
}

const char kUsage[] =
    "usage: types_bench select --mount DIR [--rounds N] [--types T] [--count N] [--depths 1000,10000,100000]\n"
    "                          [--csv FILE] [--targets FILE]\n"
    "       types_bench publish --mount DIR [--rounds N] [--subs 1,10,100] [--count N] [--batched-count N]\n"
    "                           [--csv FILE] [--targets FILE]\n"
    "       types_bench memory --mount DIR --pid PID --subs S [--count N] [--size B] [--csv FILE]\n"
    "       types_bench memory-report --csv FILE [--targets FILE]\n";

}  // namespace

int main(int argc, char** argv) {
  auto run = [](void (*f)(const Options&)) {
    return [f](int argc, char** argv) {
      f(parse(argc, argv));
      return g_surprises.empty() ? 0 : 3;
    };
  };
  return run_command(argc, argv,
                     {{"select", run(select_bench)},
                      {"publish", run(publish_bench)},
                      {"memory", run(memory_bench)},
                      {"memory-report", run(memory_report)}},
                     kUsage);
}
