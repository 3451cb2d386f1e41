// What `mq stat` and `mq top` show of a queue: its user.mq.* counters and
// limits, read as any program can.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mq {

struct QueueStats {
  std::string path;
  std::string kind;  // queue or topic
  int64_t messages = 0;
  int64_t bytes = 0;
  int64_t maxmsg = 0;
  int64_t msgsize = 0;
  int64_t waiting_readers = 0;
  int64_t waiting_writers = 0;
  int64_t inflight = 0;
  int64_t sent = 0;
  int64_t received = 0;
  int64_t dead_lettered = 0;
  int64_t dropped = 0;
  int64_t subscribers = 0;
  int64_t oldest_ms = 0;
};

// The numbers of QueueStats: the attribute each is read from, and its name
// in `mq stat --json`.
struct StatsField {
  const char* attribute;  // user.mq.ATTRIBUTE
  const char* key;
  int64_t QueueStats::*value;
};
inline constexpr StatsField kStatsFields[] = {
    {"curmsgs", "messages", &QueueStats::messages},
    {"curbytes", "bytes", &QueueStats::bytes},
    {"maxmsg", "maxmsg", &QueueStats::maxmsg},
    {"msgsize", "msgsize", &QueueStats::msgsize},
    {"waiting_readers", "waiting_readers", &QueueStats::waiting_readers},
    {"waiting_writers", "waiting_writers", &QueueStats::waiting_writers},
    {"inflight", "inflight", &QueueStats::inflight},
    {"sent", "sent", &QueueStats::sent},
    {"received", "received", &QueueStats::received},
    {"dead_lettered", "dead_lettered", &QueueStats::dead_lettered},
    {"dropped", "dropped", &QueueStats::dropped},
    {"subscribers", "subscribers", &QueueStats::subscribers},
    {"oldest_ms", "oldest_ms", &QueueStats::oldest_ms},
};

// Throws a Failure naming `path` when it is not an mqfs queue.
QueueStats read_stats(const std::string& path);

// The queues at `path`: itself if it is a queue, else the queues in that
// directory, and with `recursive` those of its subdirectories too; by name,
// depth first.
std::vector<std::string> queues_at(const std::string& path, bool recursive);

// The age of a queue's oldest message, as `mq stat` prints it: `-` for an
// empty queue, else `850ms`, `12s`, `3m`, `2h`, `4d`.
std::string age(int64_t ms);

}  // namespace mq
