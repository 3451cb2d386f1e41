// A mount's engine (Budget, Namespace, Queues) over a Journal, as the FUSE
// adapter's Filesystem builds it, and the state a test compares after a
// restart: names, owners, modes, settings, counters, and every queue's
// messages in order.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "doubles.hpp"
#include "engine/budget.hpp"
#include "engine/namespace.hpp"
#include "engine/open_file.hpp"
#include "faulty_disk.hpp"
#include "store/journal.hpp"

namespace mqfs::store::testing {

using engine::Node;
using engine::Owner;
using engine::Settings;

// What segment_size the tests use: each segment keeps 64 KiB for records
// that cannot be refused, so this leaves 64 KiB for the others.
inline constexpr uint64_t kSegment = 128 << 10;

inline JournalOptions options(bool sync_disk = false, uint64_t segment_size = kSegment) {
  return JournalOptions{.sync_disk = sync_disk, .segment_size = segment_size, .sync_thread = false};
}

// Queues hold many messages unless a test says otherwise.
inline Settings roomy() {
  Settings s;
  s.maxmsg = 100000;
  return s;
}

struct Mount {
  Mount(Disk& disk, JournalOptions options, uint64_t max_bytes = 256 << 20, Settings defaults = roomy())
      : budget(engine::Limits{.max_nodes = 10000, .max_bytes = max_bytes,
                              .message_overhead = engine::kMessageOverhead}),
        journal(disk, options),
        names(budget, timeouts, defaults, 0755, Owner{0, 0}, &journal) {
    journal.set_source(names);
  }

  // Filesystem::restore: 0 or -errno.
  int load() {
    Contents contents;
    if (int status = journal.load(budget, contents); status < 0) return status;
    return names.restore(contents);
  }

  Node* make(std::string_view path_name, mode_t mode, Node* dir = nullptr, Owner owner = {1000, 1000}) {
    Node* made = nullptr;
    if (names.make(dir ? *dir : names.root(), path_name, mode, owner, made) < 0) return nullptr;
    return made;
  }
  Node* queue(std::string_view name, Node* dir = nullptr) { return make(name, S_IFREG | 0640, dir); }
  Node* find(std::string_view name) { return names.lookup(names.root(), name); }

  // A write of `text` at `priority` that does not wait, answered with the
  // journal written out first (as Reply::take does): 0 or -errno.
  int send(Node& node, std::string_view text, engine::Priority priority = 0, bool refuse = false) {
    engine::OpenFile file(node.queue, false, true);
    file.set_priority(priority);
    engine::FakeSender to;
    to.refuse = refuse;
    const int status = engine::send_now(*node.queue, file, engine::bytes_of(text), engine::kWriterPid, to);
    journal.write_out();
    return status;
  }
  // A read that does not wait: the message, or nothing.
  std::optional<std::string> receive(Node& node, bool refuse = false) {
    engine::OpenFile file(node.queue, true, false);
    engine::FakeReceiver to;
    to.refuse = refuse;
    const int status = engine::receive_now(*node.queue, file, 1 << 20, engine::kReaderPid, to);
    journal.write_out();
    if (status != 1 || refuse) return std::nullopt;
    return to.got;
  }

  engine::Budget budget;
  engine::Timeouts timeouts;
  Journal journal;
  engine::Namespace names;
};

inline std::string text_of(const engine::Message& m) {
  return std::string(reinterpret_cast<const char*>(m.bytes().data()), m.size());
}

// A message as the state shows it.
struct Held {
  uint64_t queue;
  uint64_t id;
  engine::Priority priority;
  std::string bytes;
  uint32_t deliveries = 0;
  engine::Type type = 1;
  bool operator==(const Held&) const = default;
};

// The messages of every named queue, each queue's in queue order; those in
// flight (leased, or waiting for their retry delay) at their place, as a
// restart queues them.
inline std::map<uint64_t, std::vector<Held>> messages_of(engine::Namespace& names) {
  std::map<uint64_t, std::vector<Held>> all;
  struct Nodes final : Source::NodeVisitor {
    std::vector<uint64_t> queues;
    void node(const NodeState& node, const QueueState* queue) override {
      if (queue) queues.push_back(node.ino);
    }
  } nodes;
  names.visit_nodes(nodes);
  for (uint64_t ino : nodes.queues) {
    auto& list = all[ino];
    names.find(ino)->queue->for_each_message(
        [&](engine::Message& m) { list.push_back(Held{ino, m.id(), m.priority(), text_of(m), m.deliveries(), m.type()}); });
    std::sort(list.begin(), list.end(), [](const Held& a, const Held& b) {
      return a.priority != b.priority ? a.priority > b.priority : a.id < b.id;
    });
  }
  return all;
}

// The names, their attributes, each queue's settings and counters, one line
// each, by inode number.
inline std::string names_of(const engine::Namespace& names, bool counters = true) {
  struct Lines final : Source::NodeVisitor {
    bool counters;
    std::map<uint64_t, std::string> lines;
    void node(const NodeState& n, const QueueState* q) override {
      std::string line = std::to_string(n.ino) + " in " + std::to_string(n.parent) + " '" + n.name + "' mode " +
                         std::to_string(n.mode) + " owner " + std::to_string(n.uid) + ":" + std::to_string(n.gid);
      if (q) {
        const Settings& s = q->settings;
        line += " priority " + std::to_string(s.priority) + " maxmsg " + std::to_string(s.maxmsg) + " msgsize " +
                std::to_string(s.msgsize) + " read_mode " + std::string(engine::to_string(s.read_mode)) +
                " timeouts " + std::to_string(s.recv_timeout_ms) + "/" + std::to_string(s.send_timeout_ms) +
                " framing " + std::string(engine::to_string(s.framing)) + " lease " + std::to_string(s.lease_ms) +
                "/" + std::to_string(s.retry_delay_ms) + "/" + std::to_string(s.max_deliveries) + " dead_letter '" +
                s.dead_letter + "' type " + std::to_string(s.type) + " kind " +
                std::string(engine::to_string(s.kind)) + " overflow " + std::string(engine::to_string(s.overflow)) +
                " subscribe";
        for (const std::string& topic : s.subscribe) line += " '" + topic + "'";
        if (counters)
          line += " sent " + std::to_string(q->sent) + " received " + std::to_string(q->received) + " dead_lettered " +
                  std::to_string(q->dead_lettered) + " dropped " + std::to_string(q->dropped);
      }
      lines[n.ino] = line;
    }
  } visitor;
  visitor.counters = counters;
  names.visit_nodes(visitor);
  std::string all;
  for (const auto& [ino, line] : visitor.lines) all += line + "\n";
  return all;
}

inline std::string describe(const std::map<uint64_t, std::vector<Held>>& messages) {
  std::string all;
  for (const auto& [queue, list] : messages) {
    all += "queue " + std::to_string(queue) + ":";
    for (const Held& m : list)
      all += " #" + std::to_string(m.id) + "/p" + std::to_string(m.priority) + "/" + std::to_string(m.bytes.size()) +
             "B/d" + std::to_string(m.deliveries) + "/t" + std::to_string(m.type);
    all += "\n";
  }
  return all;
}

// The whole state, for an exact comparison.
inline std::string state_of(engine::Namespace& names) { return names_of(names) + describe(messages_of(names)); }

}  // namespace mqfs::store::testing
