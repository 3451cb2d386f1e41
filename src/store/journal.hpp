// The durable local store (-o store=DIR): an append-only journal of changes
// in segment files, as Redis's AOF and Kafka's segments keep theirs.
//
// Every change is a record — a length, a CRC-32 and the change — appended to
// a buffer and handed to the kernel with one write before the next answer
// leaves the daemon (write_out). With sync=disk, writers are answered only
// after an fdatasync on a helper thread covered their record; every writer
// that came meanwhile shares the next one (group commit).
//
// Segments are preallocated, so that a full disk is seen when a change asks
// for room (prepare: ENOSPC, nothing changed), never half-way through a
// write. The journal stays bounded: when its segments hold more than twice
// the live records plus a few segments, the oldest segment is retired — a
// snapshot of the names and settings is appended, the segment's live
// messages are copied forward, and the segment is deleted.
//
// Recovery replays every segment in order: the newest snapshot sets the
// names, message records add and take messages by id. A torn record at the
// end of the last segment is dropped with a warning; damage anywhere else
// refuses the mount, naming the file and offset.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "store/disk.hpp"
#include "store/store.hpp"

namespace mqfs::store {

struct JournalOptions {
  bool sync_disk = false;                   // sync=disk
  uint64_t segment_size = uint64_t{8} << 20;
  bool sync_thread = true;                  // false: syncs run inline (unit tests)
};

class Journal final : public Store {
 public:
  Journal(Disk& disk, JournalOptions options);
  ~Journal() override;

  int load(engine::Budget& budget, Contents& contents) override;
  void set_source(Source& source) override { source_ = &source; }
  int prepare(std::size_t bytes) override;
  void put_node(const NodeState& node) override;
  void remove_node(uint64_t ino) override;
  void put_settings(uint64_t queue, const engine::Settings& settings) override;
  void enqueued(uint64_t queue, engine::Message& message) override;
  void dequeued(uint64_t queue, const engine::Message& message) override;
  void delivered(uint64_t queue, const engine::Message& message) override;
  void moved(uint64_t from, uint64_t to, engine::Message& message) override;
  void withdrawn(uint64_t queue, const engine::Message& message) override;
  void counted(uint64_t queue, int64_t sent, int64_t dropped) override;
  void purged(uint64_t queue, std::span<const engine::Message* const> messages, bool all) override;
  int write_out() override;
  bool syncs_writes() const override { return options_.sync_disk; }
  uint64_t position() const override;
  uint64_t synced() const override { return synced_; }
  void start_sync() override;
  int completion_fd() const override { return completion_fd_; }
  void sync_completed() override;
  int failed() const override { return failed_; }
  void idle() override;
  void close() override;

  // Bytes of records in all segments, and of the live ones among them.
  uint64_t stored_bytes() const;
  uint64_t live_bytes() const { return live_messages_ + live_names_; }
  std::size_t segment_count() const { return segments_.size(); }

  // A record's bytes besides the payload of a message record.
  static constexpr std::size_t kRecordHeader = 9;      // length, CRC-32, type
  // queue, id, priority, type, enqueued_ns, deliveries
  static constexpr std::size_t kMessageRecord = kRecordHeader + 8 + 8 + 2 + 8 + 8 + 4;

 private:
  struct Segment {
    uint32_t number;
    int file;
    uint64_t used;      // bytes of header and records written
    uint64_t live = 0;  // queued messages whose record is here
  };
  class Record;
  struct Replay;

  Segment& active() { return segments_.back(); }
  Segment* segment(uint32_t number);
  void forget(const engine::Message& message);
  void note_synced(uint64_t position);
  bool retire_dead();
  void make_room(std::size_t need);
  void put_message(uint8_t type, uint64_t queue, engine::Message& message);
  void put_taken(uint8_t type, uint64_t queue, const engine::Message& message);
  int rotate();
  int open_segment(uint32_t number);
  int load_segment(Replay& replay, const std::string& name, uint32_t number, bool last, uint64_t synced_before);
  void write_snapshot();
  bool retire_oldest();
  bool retire(Segment oldest);
  void fail(int error, const char* what);
  void run_syncs();

  Disk* disk_;
  JournalOptions options_;
  Source* source_ = nullptr;
  std::deque<Segment> segments_;  // oldest first; the last one is written to
  std::vector<std::byte> buffer_;  // records not yet written out
  uint64_t next_id_ = 1;
  uint64_t live_messages_ = 0;  // bytes of the records of queued messages
  uint64_t live_names_ = 0;     // bytes of the last snapshot of names and settings
  uint64_t synced_ = 0;
  int failed_ = 0;  // an fdatasync failed: what reached the disk is unknown
  bool write_failed_ = false;  // the last write_out failed (logged once)
  bool disk_full_ = false;     // no new segment could be made this turn
  bool full_logged_ = false;   // ...and that was logged
  bool retiring_ = false;      // a segment is being retired
  uint32_t snapshot_segment_ = 0;  // where the newest snapshot of names begins (0: none)
  int synced_file_ = -1;           // holds synced_, a hint for recovery after a power cut

  // The helper thread that runs fdatasync for sync=disk.
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  struct SyncRequest {
    int file;
    uint64_t position;
  };
  std::optional<SyncRequest> request_;  // for the thread
  std::optional<std::pair<uint64_t, int>> result_;  // from the thread: position, 0 or -errno
  bool stopping_ = false;
  bool sync_running_ = false;  // a request is with the thread
  int sync_file_ = -1;         // the file it syncs
  int completion_fd_ = -1;     // eventfd the thread signals
};

}  // namespace mqfs::store
