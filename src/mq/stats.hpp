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
