// The journal store (store/journal.hpp) under an engine Namespace, on a
// FaultyDisk: what a restart after a crash finds, torn and damaged records,
// a full disk, failing syncs, and compaction.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "journal_rig.hpp"

namespace mqfs::store::testing {
namespace {

std::string segment(uint32_t number) {
  char name[32];
  std::snprintf(name, sizeof name, "journal-%08x", number);
  return name;
}

std::string message(int n, std::size_t size = 100) {
  std::string text = "message " + std::to_string(n) + " ";
  text.resize(size, static_cast<char>('a' + n % 26));
  return text;
}

class JournalTest : public ::testing::Test {
 protected:
  // A fresh mount on `d` (the test's disk unless given): load must succeed.
  std::unique_ptr<Mount> mount(FaultyDisk& d, bool sync_disk = false, uint64_t segment_size = kSegment) {
    auto m = std::make_unique<Mount>(d, options(sync_disk, segment_size));
    EXPECT_EQ(m->load(), 0);
    return m;
  }
  // Loads what a crash of kind `kind` leaves of `disk` now: the mount, with
  // its disk kept alive in `crashed`.
  std::unique_ptr<Mount> restart(Crash kind, bool sync_disk = false, uint64_t segment_size = kSegment) {
    crashed.push_back(disk.crashed(kind));
    return mount(*crashed.back(), sync_disk, segment_size);
  }
  int load_status(FaultyDisk& d) {
    Mount m(d, options());
    return m.load();
  }

  FaultyDisk disk;
  std::vector<std::unique_ptr<FaultyDisk>> crashed;  // outlive the mounts that use them
};

TEST_F(JournalTest, RestartKeepsNamesModesOwnersSettingsCountersAndMessagesInOrder) {
  auto m = mount(disk);
  Node* dir = m->make("dir", S_IFDIR | 0750, nullptr, Owner{7, 8});
  ASSERT_NE(dir, nullptr);
  Node* q = m->queue("q", dir);
  Node* p = m->queue("p");
  ASSERT_TRUE(q && p);
  q->mode = S_IFREG | 0604;
  q->owner = Owner{42, 43};
  m->names.changed(*q);
  Settings s = p->queue->settings();
  s.maxmsg = 50;
  s.msgsize = 300;
  s.priority = 3;
  s.read_mode = engine::ReadMode::stream;
  s.recv_timeout_ms = 1234;
  s.send_timeout_ms = 5678;
  s.framing = engine::Framing::line;
  p->queue->configure(s);
  ASSERT_EQ(m->names.rename(m->names.root(), "p", *dir, "renamed", 0), 0);

  for (int i = 0; i < 8; ++i) ASSERT_EQ(m->send(*q, message(i), static_cast<engine::Priority>(i % 3)), 0);
  ASSERT_EQ(m->send(*p, "one\ntwo\n"), 0);
  EXPECT_EQ(m->receive(*q), message(2));  // the oldest of the highest priority
  const std::string before = state_of(m->names);
  const auto messages = messages_of(m->names);
  ASSERT_EQ(messages.at(q->ino).size(), 7u);

  {
    auto again = restart(Crash::process);
    EXPECT_EQ(state_of(again->names), before);
    EXPECT_EQ(messages_of(again->names), messages);
    // It goes on where it was: the next message comes after the others.
    Node* q2 = again->names.lookup(*again->names.lookup(again->names.root(), "dir"), "q");
    ASSERT_NE(q2, nullptr);
    ASSERT_EQ(again->send(*q2, "later", 2), 0);
    for (const char* expected : {"message 5", "later", "message 1"}) {
      auto got = again->receive(*q2);
      ASSERT_TRUE(got);
      EXPECT_EQ(got->substr(0, std::string(expected).size()), expected);
    }
  }
  // A clean unmount keeps all of it through a power cut too.
  m->journal.close();
  auto after_close = restart(Crash::power);
  EXPECT_EQ(state_of(after_close->names), before);
  EXPECT_EQ(messages_of(after_close->names), messages);
}

TEST_F(JournalTest, TornLastRecordIsDroppedAndTheRestKept) {
  auto m = mount(disk);
  Node* q = m->queue("q");
  for (int i = 0; i < 5; ++i) ASSERT_EQ(m->send(*q, message(i)), 0);
  const std::string before = state_of(m->names);
  ASSERT_EQ(m->send(*q, message(99, 500)), 0);
  const std::size_t size = disk.last_write_size();
  ASSERT_EQ(size, Journal::kMessageRecord + 500);

  for (std::size_t keep : {std::size_t{0}, std::size_t{3}, std::size_t{8}, std::size_t{9}, size / 2, size - 1}) {
    for (bool garbage : {false, true}) {
      if (garbage && keep < 8) continue;  // a garbage length may claim the bytes after it: see below
      SCOPED_TRACE("keep " + std::to_string(keep) + (garbage ? " then garbage" : ""));
      auto copy = disk.crashed(Crash::process);
      ASSERT_TRUE(copy->tear_last_write(keep, garbage));
      auto again = mount(*copy);
      EXPECT_EQ(state_of(again->names), before);
      // Appending goes on after the last whole record.
      Node* q2 = again->find("q");
      ASSERT_EQ(again->send(*q2, "after"), 0);
      again->journal.close();
      auto third = std::make_unique<Mount>(*copy, options());
      ASSERT_EQ(third->load(), 0);
      auto held = messages_of(third->names).at(q2->ino);
      ASSERT_EQ(held.size(), 6u);
      EXPECT_EQ(held.back().bytes, "after");
    }
  }
}

TEST_F(JournalTest, BitFlipInTheLastRecordIsATornRecord) {
  auto m = mount(disk);
  Node* q = m->queue("q");
  for (int i = 0; i < 5; ++i) ASSERT_EQ(m->send(*q, message(i)), 0);
  const std::string before = state_of(m->names);
  ASSERT_EQ(m->send(*q, message(5)), 0);
  const uint64_t last = disk.last_write_offset();
  auto copy = disk.crashed(Crash::process);
  ASSERT_TRUE(copy->flip_bit(segment(1), last + Journal::kMessageRecord + 10, 3));  // in its payload
  auto again = mount(*copy);
  EXPECT_EQ(state_of(again->names), before);
}

TEST_F(JournalTest, BitFlipBeforeTheLastRecordRefusesTheLoad) {
  auto m = mount(disk);
  Node* q = m->queue("q");
  std::vector<uint64_t> offsets;  // of each message's record
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(m->send(*q, message(i)), 0);
    offsets.push_back(disk.last_write_offset());
  }
  for (std::size_t i = 0; i + 1 < offsets.size(); ++i) {
    for (uint64_t within : {uint64_t{0}, uint64_t{5}, uint64_t{9}, uint64_t{Journal::kMessageRecord + 40}}) {
      SCOPED_TRACE("record " + std::to_string(i) + " byte " + std::to_string(within));
      auto copy = disk.crashed(Crash::process);
      ASSERT_TRUE(copy->flip_bit(segment(1), offsets[i] + within, 1));
      EXPECT_LT(load_status(*copy), 0);
    }
  }
  // The segment's header.
  auto copy = disk.crashed(Crash::process);
  ASSERT_TRUE(copy->flip_bit(segment(1), 9, 0));
  EXPECT_LT(load_status(*copy), 0);
}

TEST_F(JournalTest, DamageInAnOlderSegmentRefusesTheLoadAndSoDoesAMissingSegment) {
  auto m = mount(disk);
  Node* q = m->queue("q");
  for (int i = 0; i < 400; ++i) ASSERT_EQ(m->send(*q, message(i, 1000)), 0);
  ASSERT_GE(m->journal.segment_count(), 4u);
  {
    auto copy = disk.crashed(Crash::process);
    ASSERT_TRUE(copy->flip_bit(segment(2), 5000, 6));
    EXPECT_LT(load_status(*copy), 0);
  }
  {
    // The last record of an older segment is no torn record.
    auto copy = disk.crashed(Crash::process);
    auto contents = copy->contents(segment(1));
    std::size_t end = contents.size();
    while (end > 0 && contents[end - 1] == std::byte{0}) --end;
    ASSERT_TRUE(copy->flip_bit(segment(1), end - 3, 2));
    EXPECT_LT(load_status(*copy), 0);
  }
  {
    auto copy = disk.crashed(Crash::process);
    ASSERT_EQ(copy->remove(segment(2)), 0);
    EXPECT_EQ(load_status(*copy), -EUCLEAN);
  }
  auto intact = restart(Crash::process);
  EXPECT_EQ(messages_of(intact->names), messages_of(m->names));
}

TEST_F(JournalTest, FullDiskRefusesNewMessagesAndNamesWithNothingChangedButRecordsWhatLeaves) {
  auto m = mount(disk);
  Node* q = m->queue("q");
  int sent = 0;
  for (; sent < 40; ++sent) ASSERT_EQ(m->send(*q, message(sent, 1000)), 0);
  disk.set_space_limit(disk.used());  // not one more byte
  // The active segment's room runs out: the write that needs a new segment fails.
  int status = 0;
  for (int i = 0; i < 200 && status == 0; ++i) {
    status = m->send(*q, message(1000 + i, 1000));
    if (status == 0) ++sent;
  }
  ASSERT_EQ(status, -ENOSPC);
  EXPECT_EQ(m->send(*q, message(2000, 1000)), -ENOSPC) << "nothing was freed";
  // Smaller ones fit until the room is gone.
  status = 0;
  for (int i = 0; i < 100 && status == 0; ++i) {
    status = m->send(*q, "x");
    if (status == 0) ++sent;
  }
  ASSERT_EQ(status, -ENOSPC);
  const std::string full = state_of(m->names);
  EXPECT_EQ(m->send(*q, "x"), -ENOSPC);
  Node* none = m->queue("none");
  EXPECT_EQ(none, nullptr);
  EXPECT_EQ(state_of(m->names), full);
  EXPECT_EQ(state_of(restart(Crash::process)->names), full);

  // Reads go on, and are recorded.
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(m->receive(*q));
  EXPECT_EQ(state_of(restart(Crash::process)->names), state_of(m->names));
  EXPECT_EQ(m->send(*q, "x"), -ENOSPC);

  disk.set_space_limit(std::nullopt);
  EXPECT_EQ(m->send(*q, "room again"), 0);
  EXPECT_EQ(state_of(restart(Crash::process)->names), state_of(m->names));
}

// Segments of 512 KiB: each keeps 64 KiB for records that cannot be
// refused, so that the space taken stays close to the records' bytes.
TEST_F(JournalTest, CompactionKeepsTheJournalBoundedAndRecoveryExact) {
  constexpr uint64_t kBig = 512 << 10;
  auto m = mount(disk, false, kBig);
  Node* q = m->queue("q");
  Node* r = m->queue("r");
  // A few messages stay for good (live in the oldest segment), many pass.
  for (int i = 0; i < 20; ++i) ASSERT_EQ(m->send(*r, message(i, 2000), static_cast<engine::Priority>(i % 4)), 0);
  uint64_t pushed = 0;
  uint64_t most = 0;
  for (int i = 0; pushed < 40 * kBig; ++i) {
    const std::string text = message(i, 500 + (i * 37) % 3000);
    ASSERT_EQ(m->send(*q, text, static_cast<engine::Priority>(i % 2)), 0);
    pushed += text.size();
    if (q->queue->curmsgs() > 50) {
      ASSERT_TRUE(m->receive(*q));
    }
    m->journal.idle();
    // Twice the live records and 4 segments, the active one, and the
    // reserve each segment keeps.
    const uint64_t bound = 2 * m->journal.live_bytes() + 6 * kBig;
    most = std::max(most, disk.used());
    ASSERT_LE(m->journal.stored_bytes(), bound) << "after " << pushed << " bytes";
    ASSERT_LE(disk.used(), bound) << "after " << pushed << " bytes";
  }
  EXPECT_GT(pushed, 5 * most) << "the run must push much more than the journal holds";
  EXPECT_FALSE(disk.exists(segment(1))) << "the oldest segments were retired";
  const std::string live = state_of(m->names);
  const auto messages = messages_of(m->names);
  auto again = restart(Crash::process, false, kBig);
  EXPECT_EQ(state_of(again->names), live);
  EXPECT_EQ(messages_of(again->names), messages);
  m->journal.close();
  auto after_close = restart(Crash::power, false, kBig);
  EXPECT_EQ(messages_of(after_close->names), messages);
}

TEST_F(JournalTest, WithdrawnMessagesDoNotComeBack) {
  auto m = mount(disk);
  Node* q = m->queue("q");
  ASSERT_EQ(m->send(*q, "kept"), 0);
  ASSERT_EQ(m->send(*q, "withdrawn", 0, /*refuse=*/true), 0);
  ASSERT_EQ(m->send(*q, "kept too"), 0);
  EXPECT_FALSE(m->receive(*q, /*refuse=*/true));  // the reader did not get it: it stays
  const auto messages = messages_of(m->names);
  ASSERT_EQ(messages.at(q->ino).size(), 2u);
  auto again = restart(Crash::process);
  EXPECT_EQ(messages_of(again->names), messages);
  EXPECT_EQ(state_of(again->names), state_of(m->names));
  EXPECT_EQ(again->names.find(q->ino)->queue->sent(), 2u);
}

TEST_F(JournalTest, SyncDiskAdvancesSyncedOnlyAfterASync) {
  auto m = mount(disk, /*sync_disk=*/true);
  EXPECT_TRUE(m->journal.syncs_writes());
  Node* q = m->queue("q");
  m->journal.start_sync();
  ASSERT_EQ(m->journal.synced(), m->journal.position());
  const std::string empty = state_of(m->names);
  ASSERT_EQ(m->send(*q, "first"), 0);
  EXPECT_LT(m->journal.synced(), m->journal.position());
  // Not yet synced: a power cut loses it, a process crash does not.
  EXPECT_EQ(state_of(restart(Crash::power, true)->names), empty);
  EXPECT_EQ(state_of(restart(Crash::process, true)->names), state_of(m->names));
  const int syncs = disk.syncs();
  m->journal.start_sync();
  EXPECT_EQ(disk.syncs(), syncs + 1);
  EXPECT_EQ(m->journal.synced(), m->journal.position());
  EXPECT_EQ(state_of(restart(Crash::power, true)->names), state_of(m->names));
  m->journal.start_sync();  // nothing new: no sync
  EXPECT_EQ(disk.syncs(), syncs + 1);
}

TEST_F(JournalTest, FailedSyncRefusesFurtherChanges) {
  auto m = mount(disk, /*sync_disk=*/true);
  Node* q = m->queue("q");
  ASSERT_EQ(m->send(*q, "first"), 0);
  const uint64_t synced = m->journal.synced();
  disk.fail_syncs(1);
  m->journal.start_sync();
  EXPECT_EQ(m->journal.failed(), -EIO);
  EXPECT_EQ(m->journal.synced(), synced);
  EXPECT_EQ(m->journal.prepare(10), -EIO);
  const std::string state = state_of(m->names);
  EXPECT_EQ(m->send(*q, "second"), -EIO);
  EXPECT_EQ(m->queue("other"), nullptr);
  EXPECT_EQ(state_of(m->names), state);
}

}  // namespace
}  // namespace mqfs::store::testing
