// mq stat: one line per queue, as `ipcs -q` prints them; or JSON, or
// Prometheus's text format for node_exporter's textfile collector.
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mq/commands.hpp"
#include "mq/queue_file.hpp"
#include "mq/stats.hpp"

namespace mq {
namespace {

struct Column {
  const char* title;
  std::string (*text)(const QueueStats&);
};

template <int64_t QueueStats::*value>
std::string integer(const QueueStats& s) {
  return std::to_string(s.*value);
}

constexpr Column kColumns[] = {
    {"QUEUE", [](const QueueStats& s) { return s.path; }},
    {"MSGS", integer<&QueueStats::messages>},
    {"BYTES", integer<&QueueStats::bytes>},
    {"MAXMSG", integer<&QueueStats::maxmsg>},
    {"MSGSIZE", integer<&QueueStats::msgsize>},
    {"READERS", integer<&QueueStats::waiting_readers>},
    {"WRITERS", integer<&QueueStats::waiting_writers>},
    {"INFLIGHT", integer<&QueueStats::inflight>},
    {"SENT", integer<&QueueStats::sent>},
    {"RECEIVED", integer<&QueueStats::received>},
    {"OLDEST", [](const QueueStats& s) { return age(s.oldest_ms); }},
};

void print_text(const std::vector<QueueStats>& queues) {
  constexpr std::size_t n = std::size(kColumns);
  std::vector<std::vector<std::string>> rows(1);
  for (const Column& column : kColumns) rows[0].push_back(column.title);
  for (const QueueStats& s : queues) {
    rows.emplace_back();
    for (const Column& column : kColumns) rows.back().push_back(column.text(s));
  }
  std::size_t width[n] = {};
  for (const auto& row : rows)
    for (std::size_t i = 0; i < n; ++i) width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < n; ++i) {
      const std::string pad(width[i] - row[i].size(), ' ');
      line += i == 0 ? row[i] + pad : "  " + pad + row[i];  // the queue left, numbers right
    }
    std::puts(line.c_str());
  }
}

void print_json(const std::vector<QueueStats>& queues) {
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const QueueStats& s : queues) {
    nlohmann::ordered_json& queue = all.emplace_back(nlohmann::ordered_json{{"queue", s.path}, {"kind", s.kind}});
    for (const StatsField& field : kStatsFields) queue[field.key] = s.*field.value;
  }
  std::puts(all.dump(2).c_str());
}

// A label value in Prometheus's text format: backslash, quote and newline escaped.
std::string label(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

void print_prometheus(const std::vector<QueueStats>& queues) {
  struct Metric {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const QueueStats&);
  };
  static constexpr Metric kMetrics[] = {
      {"mq_messages", "gauge", "Messages queued now.", [](const QueueStats& s) { return double(s.messages); }},
      {"mq_bytes", "gauge", "Bytes queued now.", [](const QueueStats& s) { return double(s.bytes); }},
      {"mq_maxmsg", "gauge", "Most messages the queue holds.", [](const QueueStats& s) { return double(s.maxmsg); }},
      {"mq_msgsize", "gauge", "Largest message in bytes.", [](const QueueStats& s) { return double(s.msgsize); }},
      {"mq_waiting_readers", "gauge", "Readers blocked on the queue.",
       [](const QueueStats& s) { return double(s.waiting_readers); }},
      {"mq_waiting_writers", "gauge", "Writers blocked on the queue.",
       [](const QueueStats& s) { return double(s.waiting_writers); }},
      {"mq_inflight", "gauge", "Messages leased now.", [](const QueueStats& s) { return double(s.inflight); }},
      {"mq_oldest_seconds", "gauge", "Age of the oldest queued message, 0 when empty.",
       [](const QueueStats& s) { return s.oldest_ms / 1000.0; }},
      {"mq_sent_total", "counter", "Messages sent to the queue.", [](const QueueStats& s) { return double(s.sent); }},
      {"mq_received_total", "counter", "Messages delivered from the queue.",
       [](const QueueStats& s) { return double(s.received); }},
      {"mq_dead_lettered_total", "counter", "Messages moved to the dead-letter queue.",
       [](const QueueStats& s) { return double(s.dead_lettered); }},
      {"mq_dropped_total", "counter", "Messages a full subscriber or a topic without subscribers dropped.",
       [](const QueueStats& s) { return double(s.dropped); }},
  };
  for (const Metric& metric : kMetrics) {
    std::printf("# HELP %s %s\n# TYPE %s %s\n", metric.name, metric.help, metric.name, metric.type);
    for (const QueueStats& s : queues)
      std::printf("%s{queue=\"%s\"} %.15g\n", metric.name, label(s.path).c_str(), metric.value(s));
  }
}

}  // namespace

// A path that is not a queue, or a queue that cannot be read, is reported
// and the others are still shown; the exit status tells.
int stat(const StatOptions& options) {
  std::vector<QueueStats> queues;
  int status = kDone;
  const auto attempt = [&status](auto&& step) {
    try {
      step();
    } catch (const Failure& failure) {
      std::fprintf(stderr, "mq: %s: %s\n", failure.where.c_str(), failure.reason.c_str());
      status = kError;
    }
  };
  for (const std::string& path : options.paths) {
    std::vector<std::string> found;
    attempt([&] { found = queues_at(path, options.recursive); });
    for (const std::string& queue : found) attempt([&] { queues.push_back(read_stats(queue)); });
  }
  switch (options.format) {
    case StatFormat::text: print_text(queues); break;
    case StatFormat::json: print_json(queues); break;
    case StatFormat::prometheus: print_prometheus(queues); break;
  }
  return status;
}

}  // namespace mq
