// The subcommands of `mq` (SPEC section 15, mq(1)). Each returns its exit
// status, or throws a Failure that main() prints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mqfs.h"

namespace mq {

struct SendOptions {
  std::string queue;
  std::vector<std::string> messages;  // none: standard input is one message
  std::optional<int64_t> priority;
  std::optional<int64_t> type;
  std::optional<double> wait_seconds;
};
int send(const SendOptions& options);

class QueueFile;

// Which messages a reading descriptor takes: msgrcv(2)'s msgtyp.
struct Selection {
  std::optional<int64_t> type;    // -t
  std::optional<int64_t> except;  // -x
  // Makes `file`'s reads take what this selects (any type, if nothing was asked).
  void apply(QueueFile& file) const;
};

struct Output {
  bool verbose = false;  // -v: a line `QUEUE priority=P type=T delivery=D` first
  bool raw = false;      // --raw: the bytes only, no newline added
};

struct RecvOptions {
  std::vector<std::string> queues;
  Selection selection;
  int64_t count = 1;
  std::optional<double> wait_seconds;
  Output output;
};
int recv(const RecvOptions& options);

struct PeekOptions {
  std::string queue;
  Selection selection;
  std::optional<int64_t> count;
  Output output;
};
int peek(const PeekOptions& options);

struct WorkOptions {
  std::string queue;
  std::vector<std::string> command;
  int64_t jobs = 1;
  std::optional<int64_t> count;
};
int work(const WorkOptions& options);

enum class StatFormat { text, json, prometheus };
struct StatOptions {
  std::vector<std::string> paths;
  bool recursive = false;
  StatFormat format = StatFormat::text;
};
int stat(const StatOptions& options);

enum class TopSort { depth, rate, name };
struct TopOptions {
  std::string path;
  TopSort sort = TopSort::depth;
  double delay_seconds = 1.0;
};
int top(const TopOptions& options);

}  // namespace mq
