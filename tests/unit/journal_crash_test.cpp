// Crash at every step: random operations on a mount over a Journal on a
// FaultyDisk, and after every one of them — and at every answer, where the
// FUSE adapter writes the journal out (Reply::take) — a restart from a copy
// of the disk as a crash leaves it, compared with what was acknowledged:
//
//   process crash (SIGKILL), sync=os or disk: exactly the engine's state —
//     names, modes, owners, settings, counters, each queue's messages in
//     order with their bytes. At an answer, the message whose writer is
//     being answered may be there already (its record precedes the answer);
//   power cut, sync=disk: when everything was synced, exactly the state;
//     otherwise every message whose write was answered before the last
//     completed sync is there, nothing comes back whose removal was synced,
//     and nothing is there that was never queued.
//
// The run also fills the disk now and then (writes fail with ENOSPC, and
// nothing changes) and carries on from a restarted mount. Readers in
// explicit acknowledgement mode lease messages and ack, nack or close over
// them, leases run out, and messages past max_deliveries move to a
// dead-letter queue: a restart queues every message in flight again, at its
// place, with its delivery count. Messages have types (SPEC section 12);
// queues become topics and subscribe to them (SPEC section 13), so that one
// write queues a copy in each subscriber, and the counters of publishes and
// misses are kept without messages.
//
// MQFS_JOURNAL_CRASH_STEPS (default 1000) and MQFS_JOURNAL_CRASH_SEED
// (default fixed) make a longer run, e.g. MQFS_JOURNAL_CRASH_STEPS=100000.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/framing.hpp"
#include "journal_rig.hpp"

namespace mqfs::store::testing {
namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::strtoull(value, nullptr, 0) : fallback;
}

// What an answer is, for the check made as it leaves.
enum class Answer { accept, deliver, fail };

class CrashRun {
 public:
  CrashRun(uint64_t seed, bool sync_disk) : random_(seed), sync_disk_(sync_disk) {
    disk_ = std::make_unique<FaultyDisk>();
    mount_ = std::make_unique<Mount>(*disk_, options(sync_disk_));
    EXPECT_EQ(mount_->load(), 0);
  }

  void step(uint64_t k) {
    step_ = k;
    operate();
    if (::testing::Test::HasFailure()) return;
    end_turn();
  }

  uint64_t recoveries() const { return recoveries_; }

 private:
  // -- Requests answered as the adapter answers them -----------------------------

  class Write final : public engine::WriteRequest {
   public:
    Write(CrashRun& run, bool refuse) : run_(&run), refuse_(refuse) {}
    bool accept(std::size_t) override {
      run_->answering(Answer::accept);
      return !refuse_;
    }
    void fail(int) override { run_->answering(Answer::fail); }
    std::unique_ptr<engine::SendWaiter> park(engine::OpenFile& file, pid_t pid) override {
      ADD_FAILURE() << "a write that does not wait waited";
      return std::make_unique<engine::FakeSendWaiter>(file, pid, run_->spare_.emplace_back());
    }

   private:
    CrashRun* run_;
    bool refuse_;
  };

  class Read final : public engine::ReadRequest {
   public:
    Read(CrashRun& run, bool refuse) : run_(&run), refuse_(refuse) {}
    bool deliver(std::span<const iovec>) override {
      run_->answering(Answer::deliver);
      return !refuse_;
    }
    void fail(int) override { run_->answering(Answer::fail); }
    std::unique_ptr<engine::ReceiveWaiter> park(engine::OpenFile& file, pid_t pid, std::size_t size) override {
      ADD_FAILURE() << "a read that does not wait waited";
      return std::make_unique<engine::FakeReceiveWaiter>(file, pid, size, run_->spare_.emplace_back());
    }

   private:
    CrashRun* run_;
    bool refuse_;
  };

  // Reply::take: the journal is written out before every answer; a crash
  // right after it must find what that answer acknowledges.
  void answering(Answer answer) {
    mount_->journal.write_out();
    if (::testing::Test::HasFailure()) return;
    check_process_crash(answer == Answer::accept ? extra_ : 0, "at an answer");
  }

  // -- Operations ------------------------------------------------------------------

  uint64_t pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(random_); }
  bool chance(int percent) { return pick(100) < static_cast<uint64_t>(percent); }

  std::vector<Node*> nodes(bool queues, bool dirs) {
    std::vector<Node*> found{};
    std::vector<Node*> pending{&mount_->names.root()};
    while (!pending.empty()) {
      Node* n = pending.back();
      pending.pop_back();
      if (n->is_directory() ? dirs : queues) found.push_back(n);
      for (auto& [name, child] : n->children) pending.push_back(child);
    }
    return found;
  }
  Node* any(bool queues, bool dirs) {
    auto found = nodes(queues, dirs);
    return found.empty() ? nullptr : found[pick(found.size())];
  }
  std::string name() { return std::string(1, static_cast<char>('a' + pick(4))); }
  static std::string path_of(const Node& node) {
    std::string path = node.name;
    for (const Node* dir = node.parent; dir && dir->parent; dir = dir->parent) path = dir->name + "/" + path;
    return path;
  }

  std::string payload(std::size_t size) {
    std::string text(size, ' ');
    for (char& c : text) c = static_cast<char>('A' + pick(50));
    return text;
  }

  void operate() {
    auto& names = mount_->names;
    const uint64_t what = pick(100);
    if (what < 8) {
      Node* dir = any(false, true);
      Node* made = nullptr;
      const mode_t type = chance(70) ? S_IFREG : S_IFDIR;
      names.make(*dir, name(), type | static_cast<mode_t>(pick(01000)),
                 Owner{static_cast<uid_t>(pick(3)), static_cast<gid_t>(pick(3))}, made);
    } else if (what < 11) {
      Node* dir = any(false, true);
      const std::string n = name();
      if (names.unlink(*dir, n) == -EISDIR) names.rmdir(*dir, n);
    } else if (what < 14) {
      Node* from = any(false, true);
      Node* to = any(false, true);
      const unsigned flags = chance(20) ? RENAME_EXCHANGE : chance(20) ? RENAME_NOREPLACE : 0;
      names.rename(*from, name(), *to, name(), flags);
    } else if (what < 17) {
      Node* node = any(true, true);
      node->mode = (node->mode & S_IFMT) | static_cast<mode_t>(pick(07777));
      node->owner = Owner{static_cast<uid_t>(pick(5)), static_cast<gid_t>(pick(5))};
      names.changed(*node);
    } else if (what < 23) {
      Node* q = any(true, false);
      if (!q) return;
      Settings s = q->queue->settings();
      s.maxmsg = static_cast<int64_t>(1 + pick(40));
      s.msgsize = static_cast<int64_t>(8 + pick(6000));
      s.priority = static_cast<int64_t>(pick(4));
      s.read_mode = chance(50) ? engine::ReadMode::message : engine::ReadMode::stream;
      s.recv_timeout_ms = static_cast<int64_t>(pick(1000));
      s.send_timeout_ms = static_cast<int64_t>(pick(1000));
      s.framing = static_cast<engine::Framing>(pick(4));
      s.retry_delay_ms = chance(70) ? 0 : static_cast<int64_t>(1 + pick(1000));
      s.max_deliveries = static_cast<int64_t>(pick(4));
      Node* dead_letters = any(true, false);
      s.dead_letter = chance(20) ? "" : chance(20) ? name() : path_of(*dead_letters);
      s.type = static_cast<int64_t>(1 + pick(3));
      s.overflow = chance(50) ? engine::Overflow::block : engine::Overflow::drop;
      s.kind = chance(30) ? engine::QueueKind::topic : engine::QueueKind::queue;
      s.subscribe.clear();
      if (s.kind == engine::QueueKind::queue && chance(50)) {
        std::vector<Node*> topics;
        for (Node* n : nodes(true, false))
          if (n->queue->is_topic()) topics.push_back(n);
        s.subscribe.push_back(path_of(topics.empty() || chance(20) ? *any(true, false) : *topics[pick(topics.size())]));
      }
      names.configure(*q, s);  // may refuse: a queue holding messages becomes no topic
    } else if (what < 60) {
      write();
    } else if (what < 72) {
      read();
    } else if (what < 84) {
      read(true);
    } else if (what < 89) {
      settle_lease();
    } else if (what < 90) {
      mount_->timeouts.expire(engine::Clock::now() + std::chrono::hours(1000));  // every lease and delay ends
    } else if (what < 92) {
      if (Node* q = any(true, false)) q->queue->purge();
    } else if (what < 94) {
      // The disk fills up, or has room again.
      if (chance(50))
        disk_->set_space_limit(disk_->used() + pick(2 * kSegment));
      else
        disk_->set_space_limit(std::nullopt);
    } else if (what < 96) {
      restart();
    } else {
      mount_->journal.idle();
    }
  }

  void write() {
    Node* q = any(true, false);
    if (!q) return;
    engine::OpenFile file(q->queue, false, true);
    file.set_nonblocking(true);
    if (chance(50)) file.set_priority(static_cast<engine::Priority>(pick(4)));
    if (chance(50)) file.set_type(static_cast<engine::Type>(1 + pick(3)));
    // A publish to a topic queues a copy in each subscriber before its answer.
    extra_ = q->queue->is_topic() ? static_cast<int>(nodes(true, false).size()) : 1;
    const bool refuse = chance(12);
    std::string bytes;
    switch (q->queue->settings().framing) {
      case engine::Framing::none:
      case engine::Framing::file:
        bytes = payload(pick(3000));
        break;
      case engine::Framing::line:
        for (uint64_t n = pick(4); n-- > 0;) bytes += payload(1 + pick(500)) + "\n";
        if (chance(30)) bytes += payload(1 + pick(50));  // an unfinished line, sent at the last close
        break;
      case engine::Framing::u32:
        for (uint64_t n = pick(4); n-- > 0;) {
          const std::string frame = payload(1 + pick(500));
          std::byte header[engine::kFrameHeader];
          engine::put_frame_header(header, frame.size());
          bytes.append(reinterpret_cast<const char*>(header), sizeof header);
          bytes += frame;
        }
        break;
    }
    Write request(*this, refuse);
    q->queue->send(file, engine::bytes_of(bytes), engine::kWriterPid, engine::kT0, request);
    if (::testing::Test::HasFailure()) return;
    // The close: FLUSH ends a file-framed message, RELEASE sends a held line.
    Write close(*this, chance(12));
    q->queue->end_message(file, engine::kWriterPid, engine::kT0, engine::Queue::Ending::close, close);
    q->queue->flush(file, engine::kWriterPid, engine::kT0);
  }

  // A read, by a file of its own or (`leased`) by a reader in explicit
  // acknowledgement mode that stays open.
  void read(bool leased = false) {
    Node* q = any(true, false);
    if (!q) return;
    engine::OpenFile own(q->queue, true, false);
    engine::OpenFile* file = &own;
    if (leased && holders_.size() >= 6) {
      file = holders_[pick(holders_.size())].get();
    } else if (leased) {
      holders_.push_back(std::make_unique<engine::OpenFile>(q->queue, true, false));
      file = holders_.back().get();
      file->set_ack_mode(engine::AckMode::explicit_ack);
    }
    file->set_nonblocking(true);
    if (chance(30)) file->set_read_mode(engine::ReadMode::stream);
    if (chance(30)) file->set_selection({.type = static_cast<engine::Type>(pick(4)) * (chance(30) ? -1 : 1)});
    const std::size_t size = chance(20) ? 1 + pick(100) : 1 << 16;
    Read request(*this, chance(12));
    file->source().receive(*file, size, engine::kReaderPid, engine::kT0, request);
  }

  // A reader in explicit mode acks or nacks what it holds, or closes.
  void settle_lease() {
    if (holders_.empty()) return;
    const std::size_t i = pick(holders_.size());
    engine::OpenFile& file = *holders_[i];
    const auto& last = file.last_delivery();
    const uint64_t id = chance(50) || !last ? 0 : last->id;
    if (chance(25))
      file.source().ack(file, id);
    else if (chance(67))
      file.source().nack(file, id, engine::Clock::now());
    else
      holders_.erase(holders_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  // The daemon is killed and started again on what it left.
  void restart() {
    auto copy = disk_->crashed(Crash::process);
    auto again = std::make_unique<Mount>(*copy, options(sync_disk_));
    ASSERT_EQ(again->load(), 0);
    holders_.clear();
    mount_.reset();  // a killed daemon writes nothing more: its disk is dropped with it
    disk_ = std::move(copy);
    mount_ = std::move(again);
  }

  // -- Checks ----------------------------------------------------------------------

  // Filesystem::end_turn: write out, sync for writers waiting (sync=disk),
  // and compaction's idle work.
  void end_turn() {
    Journal& journal = mount_->journal;
    journal.write_out();
    if (sync_disk_ && chance(50)) journal.start_sync();
    if (chance(50)) journal.idle();
    ASSERT_EQ(journal.failed(), 0);

    // What the messages are now, and when they came and went.
    const auto now = messages_of(mount_->names);
    std::set<uint64_t> ids;
    for (const auto& [queue, list] : now)
      for (const Held& m : list) {
        ids.insert(m.id);
        if (ever_.emplace(m.id, m).second) acked_[m.id] = journal.position();
      }
    for (uint64_t id : previous_)
      if (!ids.contains(id)) gone_.emplace(id, journal.position());
    previous_ = std::move(ids);

    check_process_crash(0, "after a step");
    if (sync_disk_) check_power_cut(now);
  }

  // The same message, whatever its delivery count (a power cut may lose
  // deliveries recorded since the last sync).
  static bool same(const Held& a, const Held& b) {
    return a.queue == b.queue && a.id == b.id && a.priority == b.priority && a.bytes == b.bytes;
  }

  std::string where(const char* when) const {
    return std::string(when) + " of step " + std::to_string(step_) + (sync_disk_ ? " (sync=disk)" : " (sync=os)");
  }

  // A killed daemon's disk holds what this one has, but for up to
  // `extra` messages whose writers are being answered.
  void check_process_crash(int extra, const char* when) {
    ++recoveries_;
    auto copy = disk_->crashed(Crash::process);
    Mount again(*copy, options(sync_disk_));
    ASSERT_EQ(again.load(), 0) << where(when);
    if (extra == 0) {
      ASSERT_EQ(state_of(again.names), state_of(mount_->names)) << where(when);
      ASSERT_EQ(messages_of(again.names), messages_of(mount_->names)) << where(when);
      return;
    }
    ASSERT_EQ(names_of(again.names, false), names_of(mount_->names, false)) << where(when);
    auto expected = messages_of(mount_->names);
    auto got = messages_of(again.names);
    std::set<uint64_t> known;
    for (const auto& [queue, list] : expected)
      for (const Held& m : list) known.insert(m.id);
    int extras = 0;
    for (auto& [queue, list] : got)
      extras += static_cast<int>(std::erase_if(list, [&](const Held& m) { return !known.contains(m.id); }));
    ASSERT_LE(extras, extra) << where(when);
    ASSERT_EQ(got, expected) << where(when);
  }

  void check_power_cut(const std::map<uint64_t, std::vector<Held>>& now) {
    ++recoveries_;
    auto copy = disk_->crashed(Crash::power);
    Mount again(*copy, options(sync_disk_));
    ASSERT_EQ(again.load(), 0) << where("power cut after");
    const Journal& journal = mount_->journal;
    if (journal.synced() >= journal.position()) {
      ASSERT_EQ(state_of(again.names), state_of(mount_->names)) << where("power cut after a sync");
      ASSERT_EQ(messages_of(again.names), now) << where("power cut after a sync");
      return;
    }
    const uint64_t synced = journal.synced();
    auto got = messages_of(again.names);
    for (const auto& [queue, list] : now)
      for (const Held& m : list) {
        if (acked_.at(m.id) > synced) continue;
        auto& kept = got[queue];
        ASSERT_TRUE(std::find_if(kept.begin(), kept.end(), [&](const Held& k) { return same(k, m); }) != kept.end())
            << "message #" << m.id << " of queue " << queue << " was lost, " << where("power cut after");
      }
    for (const auto& [queue, list] : got) {
      for (std::size_t i = 0; i < list.size(); ++i) {
        const Held& m = list[i];
        auto it = ever_.find(m.id);
        ASSERT_TRUE(it != ever_.end() && same(it->second, m))
            << "message #" << m.id << " of queue " << queue << " was never queued so, " << where("power cut after");
        auto left = gone_.find(m.id);
        ASSERT_TRUE(left == gone_.end() || left->second > synced)
            << "message #" << m.id << " came back after its removal was synced, " << where("power cut after");
        if (i > 0) {
          const Held& before = list[i - 1];
          ASSERT_TRUE(before.priority > m.priority || (before.priority == m.priority && before.id < m.id))
              << "out of order in queue " << queue << ", " << where("power cut after");
        }
      }
    }
  }

  std::mt19937_64 random_;
  bool sync_disk_;
  uint64_t step_ = 0;
  uint64_t recoveries_ = 0;
  int extra_ = 1;  // messages an accepting answer may find recorded already
  std::unique_ptr<FaultyDisk> disk_;
  std::unique_ptr<Mount> mount_;
  std::deque<engine::Outcome> spare_;
  std::vector<std::unique_ptr<engine::OpenFile>> holders_;  // readers in explicit mode, open
  std::map<uint64_t, Held> ever_;       // every message seen queued, by id
  std::map<uint64_t, uint64_t> acked_;  // the position its writer's answer waited for
  std::map<uint64_t, uint64_t> gone_;   // the position of its removal's record
  std::set<uint64_t> previous_;         // ids queued after the last step
};

void run(bool sync_disk) {
  const uint64_t steps = env_or("MQFS_JOURNAL_CRASH_STEPS", 1000);
  const uint64_t seed = env_or("MQFS_JOURNAL_CRASH_SEED", 20240601) + (sync_disk ? 1 : 0);
  SCOPED_TRACE("MQFS_JOURNAL_CRASH_SEED=" + std::to_string(seed - (sync_disk ? 1 : 0)));
  CrashRun crash_run(seed, sync_disk);
  for (uint64_t k = 0; k < steps && !::testing::Test::HasFailure(); ++k) crash_run.step(k);
  if (!::testing::Test::HasFailure()) {
    EXPECT_GT(crash_run.recoveries(), steps);
  }
}

TEST(JournalCrash, EveryStepSurvivesAProcessCrashWithSyncOs) { run(false); }

TEST(JournalCrash, EveryStepSurvivesAProcessCrashAndAPowerCutWithSyncDisk) { run(true); }

}  // namespace
}  // namespace mqfs::store::testing
