#include "store/journal.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <unordered_map>

namespace mqfs::store {

namespace {

// A segment starts with its magic and its number, checked by a CRC-32.
constexpr char kMagic[8] = {'m', 'q', 'f', 's', 'j', 'n', 'l', '1'};
constexpr std::size_t kSegmentHeader = 16;
// Room each segment keeps for records that cannot be refused (a message
// taken, a name removed), so that a disk too full for new messages still
// records what leaves.
constexpr uint64_t kSegmentReserve = 64 << 10;
// Segments retired at most per loop turn.
constexpr int kRetiredPerTurn = 8;

enum Type : uint8_t {
  kNode = 1,           // ino, parent, mode, uid, gid, name
  kRemove = 2,         // ino
  kSettings = 3,       // queue, priority, maxmsg, msgsize, recv and send timeouts, read mode, framing,
                       // then (since leases) lease_ms, retry_delay_ms, max_deliveries, dead_letter
  kEnqueue = 4,        // queue, id, priority, bytes (journals from before leases; now kSend)
  kMove = 5,           // as kEnqueue, copied forward (now kCopy)
  kDequeue = 6,        // queue, id: taken for good
  kPurge = 7,          // queue: every message dropped
  kSnapshotBegin = 8,  // the names, settings and counters that follow replace all before
  kSnapshotEnd = 9,    // next message id
  kCounters = 10,      // queue, sent, received, then (since leases) dead_lettered, (since topics) dropped
                       // (in snapshots)
  kWithdraw = 11,      // queue, id: a message whose writer was not answered
  kSend = 12,          // queue, id, priority, type, enqueued_ns, deliveries, bytes
  kCopy = 13,          // as kSend: a live message copied forward, not sent again
  kDeliver = 14,       // queue, id: leased to a reader, one more delivery
  kDeadLetter = 15,    // queue, id, dead-letter queue, new id: moved there
  kDrop = 16,          // queue, id: dropped by a truncate
  kQueueSettings = 17, // as kSettings to max_deliveries, then type, kind, overflow, dead_letter (u32 length,
                       // bytes), subscribe (paths, each ended by '\0'); now in place of kSettings
  kCounted = 18,       // queue, sent, dropped: counted without a message (a topic's publish, a miss)
};

uint32_t checksum(const std::byte* data, std::size_t size) {
  return static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(data), size));
}

std::string segment_name(uint32_t number) {
  char name[32];
  std::snprintf(name, sizeof name, "journal-%08x", number);
  return name;
}

std::optional<uint32_t> segment_number(const std::string& name) {
  constexpr std::string_view prefix = "journal-";
  if (name.size() != prefix.size() + 8 || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  uint32_t number = 0;
  auto [end, error] = std::from_chars(name.data() + prefix.size(), name.data() + name.size(), number, 16);
  if (error != std::errc() || end != name.data() + name.size()) return std::nullopt;
  return number;
}

// Reads the fields of one record's payload in order; `ok` turns false when
// the payload is shorter than its fields.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> data) : data_(data) {}
  template <class T>
  T get() {
    T value{};
    if (data_.size() < sizeof value) {
      ok_ = false;
      return value;
    }
    std::memcpy(&value, data_.data(), sizeof value);
    data_ = data_.subspan(sizeof value);
    return value;
  }
  bool empty() const { return data_.empty(); }
  // The next `size` bytes as text.
  std::string text(std::size_t size) {
    if (data_.size() < size) {
      ok_ = false;
      return {};
    }
    std::string text(reinterpret_cast<const char*>(data_.data()), size);
    data_ = data_.subspan(size);
    return text;
  }
  // Text up to `end`, which is passed over.
  std::string text_until(char end) {
    const auto* begin = reinterpret_cast<const char*>(data_.data());
    const void* found = std::memchr(begin, end, data_.size());
    if (!found) {
      ok_ = false;
      return {};
    }
    std::string text = this->text(static_cast<const char*>(found) - begin);
    data_ = data_.subspan(1);
    return text;
  }
  std::span<const std::byte> rest() {
    auto rest = data_;
    data_ = {};
    return rest;
  }
  bool ok() const { return ok_; }

 private:
  std::span<const std::byte> data_;
  bool ok_ = true;
};

}  // namespace

// One record being built at the end of the journal's buffer.
class Journal::Record {
 public:
  Record(std::vector<std::byte>& buffer, uint8_t type) : buffer_(&buffer), start_(buffer.size()) {
    buffer.resize(start_ + 8);
    put(type);
  }
  template <class T>
  Record& put(T value) {
    const std::size_t at = buffer_->size();
    buffer_->resize(at + sizeof value);
    std::memcpy(buffer_->data() + at, &value, sizeof value);
    return *this;
  }
  Record& put(std::span<const std::byte> bytes) {
    buffer_->insert(buffer_->end(), bytes.begin(), bytes.end());
    return *this;
  }
  // Fills in the length and checksum; the record's size in all.
  std::size_t finish() {
    std::byte* start = buffer_->data() + start_;
    const auto length = static_cast<uint32_t>(buffer_->size() - start_ - 8);
    const uint32_t crc = checksum(start + 8, length);
    std::memcpy(start, &length, 4);
    std::memcpy(start + 4, &crc, 4);
    return buffer_->size() - start_;
  }

 private:
  std::vector<std::byte>* buffer_;
  std::size_t start_;
};

Journal::Journal(Disk& disk, JournalOptions options) : disk_(&disk), options_(options) {}

Journal::~Journal() { close(); }

uint64_t Journal::position() const {
  if (segments_.empty()) return synced_;
  const Segment& s = segments_.back();
  return (uint64_t{s.number} << 32) + s.used + buffer_.size();
}

uint64_t Journal::stored_bytes() const {
  uint64_t total = buffer_.size();
  for (const Segment& s : segments_) total += s.used;
  return total;
}

void Journal::fail(int error, const char* what) {
  spdlog::error("store {}: {}: {}", disk_->where(), what, std::strerror(-error));
}

// -- Recovery ------------------------------------------------------------------

// The state built while the segments are replayed in order.
struct Journal::Replay {
  engine::Budget* budget = nullptr;
  std::map<uint64_t, Contents::Node> nodes;
  std::optional<std::map<uint64_t, Contents::Node>> snapshot;  // being read
  struct Held {
    uint64_t queue;
    engine::MessagePtr message;
  };
  std::unordered_map<uint64_t, Held> messages;  // by id
  uint64_t next_id = 1;
  bool over_budget = false;
  uint32_t snapshot_began = 0;    // the segment of the snapshot being read
  uint32_t snapshot_segment = 0;  // ... and of the newest complete one

  std::map<uint64_t, Contents::Node>& names() { return snapshot ? *snapshot : nodes; }
  QueueState* queue(uint64_t ino) {
    auto it = nodes.find(ino);
    return it == nodes.end() || !it->second.queue ? nullptr : &*it->second.queue;
  }

  // False when the payload does not hold what its type needs.
  bool apply(uint8_t type, std::span<const std::byte> payload, uint32_t segment) {
    Reader in(payload);
    switch (type) {
      case kNode: {
        NodeState node;
        node.ino = in.get<uint64_t>();
        node.parent = in.get<uint64_t>();
        node.mode = in.get<uint32_t>();
        node.uid = in.get<uint32_t>();
        node.gid = in.get<uint32_t>();
        auto name = in.rest();
        node.name.assign(reinterpret_cast<const char*>(name.data()), name.size());
        if (!in.ok()) return false;
        Contents::Node& kept = names()[node.ino];
        if (S_ISREG(node.mode) && !kept.queue) kept.queue.emplace();
        kept.node = std::move(node);
        return true;
      }
      case kRemove: {
        const auto ino = in.get<uint64_t>();
        names().erase(ino);
        return in.ok();
      }
      case kSettings:
      case kQueueSettings: {
        const auto ino = in.get<uint64_t>();
        engine::Settings s;
        s.priority = in.get<int64_t>();
        s.maxmsg = in.get<int64_t>();
        s.msgsize = in.get<int64_t>();
        s.recv_timeout_ms = in.get<int64_t>();
        s.send_timeout_ms = in.get<int64_t>();
        s.read_mode = static_cast<engine::ReadMode>(in.get<uint8_t>());
        s.framing = static_cast<engine::Framing>(in.get<uint8_t>());
        if (type == kQueueSettings || !in.empty()) {  // since leases
          s.lease_ms = in.get<int64_t>();
          s.retry_delay_ms = in.get<int64_t>();
          s.max_deliveries = in.get<int64_t>();
        }
        if (type == kQueueSettings) {
          s.type = in.get<int64_t>();
          s.kind = static_cast<engine::QueueKind>(in.get<uint8_t>());
          s.overflow = static_cast<engine::Overflow>(in.get<uint8_t>());
          s.dead_letter = in.text(in.get<uint32_t>());
          while (in.ok() && !in.empty()) s.subscribe.push_back(in.text_until('\0'));
          if (static_cast<uint8_t>(s.kind) > 1 || static_cast<uint8_t>(s.overflow) > 1) return false;
        } else {
          const auto dead_letter = in.rest();
          s.dead_letter.assign(reinterpret_cast<const char*>(dead_letter.data()), dead_letter.size());
        }
        if (!in.ok()) return false;
        auto it = names().find(ino);
        if (it != names().end() && it->second.queue) it->second.queue->settings = s;
        return true;
      }
      case kCounters: {
        const auto ino = in.get<uint64_t>();
        const auto sent = in.get<uint64_t>();
        const auto received = in.get<uint64_t>();
        const auto dead_lettered = in.empty() ? 0 : in.get<uint64_t>();
        const auto dropped = in.empty() ? 0 : in.get<uint64_t>();
        auto it = names().find(ino);
        if (it != names().end() && it->second.queue) {
          it->second.queue->sent = sent;
          it->second.queue->received = received;
          it->second.queue->dead_lettered = dead_lettered;
          it->second.queue->dropped = dropped;
        }
        return in.ok();
      }
      case kEnqueue:
      case kMove:
      case kSend:
      case kCopy: {
        const auto queue = in.get<uint64_t>();
        const auto id = in.get<uint64_t>();
        const auto priority = in.get<engine::Priority>();
        int64_t enqueued_ns = 0;
        uint32_t deliveries = 0;
        int64_t message_type = 1;
        if (type == kSend || type == kCopy) {
          message_type = in.get<int64_t>();
          enqueued_ns = in.get<int64_t>();
          deliveries = in.get<uint32_t>();
        }
        const auto bytes = in.rest();
        if (message_type == 0) message_type = 1;  // recorded before SPEC section 12: untyped
        if (!in.ok() || priority > engine::kMaxPriority || message_type < 1) return false;
        next_id = std::max(next_id, id + 1);
        if (type == kEnqueue || type == kSend) {
          if (QueueState* q = this->queue(queue)) ++q->sent;
        }
        auto it = messages.find(id);
        if (it != messages.end()) {  // copied forward: it lives on in this segment
          it->second.message->set_segment(segment);
          it->second.message->set_deliveries(deliveries);
          it->second.queue = queue;
          return true;
        }
        engine::MessagePtr message = engine::Message::make(*budget, bytes, priority, message_type);
        if (!message) {
          over_budget = true;
          return true;
        }
        message->set_id(id);
        message->set_segment(segment);
        message->set_enqueued_ns(enqueued_ns);
        message->set_deliveries(deliveries);
        messages.emplace(id, Held{queue, std::move(message)});
        return true;
      }
      case kDequeue:
      case kWithdraw:
      case kDrop: {
        const auto queue = in.get<uint64_t>();
        const auto id = in.get<uint64_t>();
        if (QueueState* q = this->queue(queue)) {
          if (type == kDequeue)
            ++q->received;
          else if (type == kWithdraw)
            --q->sent;
        }
        messages.erase(id);
        return in.ok();
      }
      case kDeliver: {
        in.get<uint64_t>();
        const auto id = in.get<uint64_t>();
        if (auto it = messages.find(id); it != messages.end())
          it->second.message->set_deliveries(it->second.message->deliveries() + 1);
        return in.ok();
      }
      case kCounted: {
        const auto queue = in.get<uint64_t>();
        const auto sent = in.get<int64_t>();
        const auto dropped = in.get<int64_t>();
        if (!in.ok()) return false;
        if (QueueState* q = this->queue(queue)) {
          q->sent += static_cast<uint64_t>(sent);
          q->dropped += static_cast<uint64_t>(dropped);
        }
        return true;
      }
      case kDeadLetter: {
        const auto from = in.get<uint64_t>();
        const auto id = in.get<uint64_t>();
        const auto to = in.get<uint64_t>();
        const auto new_id = in.get<uint64_t>();
        if (!in.ok()) return false;
        next_id = std::max(next_id, new_id + 1);
        if (QueueState* q = this->queue(from)) ++q->dead_lettered;
        if (QueueState* q = this->queue(to)) ++q->sent;
        auto it = messages.find(id);
        if (it == messages.end()) return true;
        Held held = std::move(it->second);
        messages.erase(it);
        held.queue = to;
        held.message->set_id(new_id);
        held.message->set_deliveries(0);
        messages.emplace(new_id, std::move(held));
        return true;
      }
      case kPurge: {
        const auto queue = in.get<uint64_t>();
        std::erase_if(messages, [&](const auto& entry) { return entry.second.queue == queue; });
        return in.ok();
      }
      case kSnapshotBegin:
        snapshot.emplace();
        snapshot_began = segment;
        return true;
      case kSnapshotEnd: {
        next_id = std::max(next_id, in.get<uint64_t>());
        if (snapshot) {
          nodes = std::move(*std::exchange(snapshot, std::nullopt));
          snapshot_segment = snapshot_began;
        }
        return in.ok();
      }
    }
    return false;
  }
};

int Journal::load(engine::Budget& budget, Contents& contents) {
  std::vector<std::string> names;
  if (int error = disk_->list(names); error < 0) {
    fail(error, "cannot list the store");
    return error;
  }
  std::vector<uint32_t> numbers;
  for (const std::string& name : names)
    if (auto number = segment_number(name)) numbers.push_back(*number);
  std::sort(numbers.begin(), numbers.end());

  // How far the last daemon knew the journal to be on disk (a hint: 0 if unknown).
  uint64_t synced_before = 0;
  if (int file = disk_->open("synced", false); file >= 0) {
    if (disk_->read(file, &synced_before, sizeof synced_before, 0) != sizeof synced_before) synced_before = 0;
    disk_->close(file);
  }

  Replay replay;
  replay.budget = &budget;
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    if (i > 0 && numbers[i] != numbers[i - 1] + 1) {
      spdlog::error("store {}: {} is missing", disk_->where(), segment_name(numbers[i - 1] + 1));
      return -EUCLEAN;
    }
    if (int error = load_segment(replay, segment_name(numbers[i]), numbers[i], i + 1 == numbers.size(), synced_before);
        error < 0)
      return error;
    if (replay.over_budget) {
      spdlog::error("store {}: its messages need more than max_bytes={}; mount with a larger max_bytes",
                    disk_->where(), budget.max_bytes());
      return -ENOSPC;
    }
  }
  if (segments_.empty()) {
    if (int error = open_segment(numbers.empty() ? 1 : numbers.back() + 1); error < 0) {
      fail(error, "cannot create the journal");
      return error;
    }
  } else if (int error = disk_->allocate(active().file, options_.segment_size); error < 0) {
    fail(error, "cannot make room in the journal");
    return error;
  }
  // A daemon that was killed left its last records in the page cache only:
  // they are what this one serves, so they are made durable before synced()
  // says so (and the segments' names with them).
  for (const Segment& s : segments_)
    if (int error = disk_->sync(s.file); error < 0) {
      fail(error, "cannot sync the journal");
      return error;
    }
  if (int error = disk_->sync_directory(); error < 0) {
    fail(error, "cannot sync the store's directory");
    return error;
  }
  next_id_ = replay.next_id;
  snapshot_segment_ = replay.snapshot_segment;
  synced_file_ = disk_->open("synced", false);
  if (synced_file_ < 0) synced_file_ = disk_->open("synced", true);
  note_synced(position());

  for (auto& [ino, node] : replay.nodes) contents.nodes.push_back(std::move(node));
  for (auto& [id, held] : replay.messages) {
    auto it = replay.nodes.find(held.queue);
    if (it == replay.nodes.end() || !it->second.queue) continue;  // its queue was removed
    live_messages_ += kMessageRecord + held.message->size();
    if (Segment* s = segment(held.message->segment())) ++s->live;
    contents.messages[held.queue].push_back(std::move(held.message));
  }
  for (auto& [queue, messages] : contents.messages)
    std::sort(messages.begin(), messages.end(), [](const engine::MessagePtr& a, const engine::MessagePtr& b) {
      return a->priority() != b->priority() ? a->priority() > b->priority() : a->id() < b->id();
    });
  live_names_ = contents.nodes.size() * (3 * kRecordHeader + 100);
  return 0;
}

// Replays one segment. In the last one, a torn record at the end (a write the
// daemon never finished, so never acknowledged) is dropped with a warning
// and zeroed, so that appending continues after the last whole record.
int Journal::load_segment(Replay& replay, const std::string& name, uint32_t number, bool last,
                          uint64_t synced_before) {
  int file = disk_->open(name, false);
  if (file < 0) {
    fail(file, ("cannot open " + name).c_str());
    return file;
  }
  const int64_t size = disk_->size(file);
  std::vector<std::byte> data(size > 0 ? static_cast<std::size_t>(size) : 0);
  if (size < 0 || disk_->read(file, data.data(), data.size(), 0) != static_cast<ssize_t>(data.size())) {
    disk_->close(file);
    spdlog::error("store {}: cannot read {}", disk_->where(), name);
    return -EIO;
  }
  auto damaged = [&](uint64_t offset, const char* what) {
    disk_->close(file);
    spdlog::error("store {}: {} is damaged at offset {} ({}); refusing to mount", disk_->where(), name, offset, what);
    return -EUCLEAN;
  };
  uint32_t header_number = 0, header_crc = 0;
  if (data.size() >= kSegmentHeader) {
    std::memcpy(&header_number, data.data() + 8, 4);
    std::memcpy(&header_crc, data.data() + 12, 4);
  }
  if (data.size() < kSegmentHeader || std::memcmp(data.data(), kMagic, 8) != 0 || header_number != number ||
      header_crc != checksum(data.data(), 12)) {
    const bool blank = std::all_of(data.begin(), data.end(), [](std::byte b) { return b == std::byte{0}; });
    if (!last || !(blank || data.size() < kSegmentHeader)) return damaged(0, "bad segment header");
    // Made by a daemon that died while starting it: it holds nothing.
    spdlog::warn("store {}: {} was never finished; removing it", disk_->where(), name);
    disk_->close(file);
    disk_->remove(name);
    return 0;
  }

  auto zero = [&](std::size_t from, std::size_t to) {
    to = std::min(to, data.size());
    from = std::min(from, to);
    return std::all_of(data.begin() + static_cast<std::ptrdiff_t>(from), data.begin() + static_cast<std::ptrdiff_t>(to),
                       [](std::byte b) { return b == std::byte{0}; });
  };
  auto zero_from = [&](std::size_t at) { return zero(at, data.size()); };
  // Past what the last daemon knew to be on disk, a power cut may leave
  // holes: pages never written back read as zeros. A bad record there that
  // touches a page of zeros is such a hole, the end of what reached the disk.
  constexpr std::size_t kPage = 4096;
  auto hole_at = [&](std::size_t offset, std::size_t end) {
    if (!last || (uint64_t{number} << 32) + offset < synced_before) return false;
    for (std::size_t page = offset / kPage * kPage; page < std::min(end, data.size()); page += kPage)
      if (zero(page, page + kPage)) return true;
    return false;
  };
  std::size_t offset = kSegmentHeader;
  while (offset + 8 <= data.size()) {
    uint32_t length, crc;
    std::memcpy(&length, data.data() + offset, 4);
    std::memcpy(&crc, data.data() + offset + 4, 4);
    if (length == 0 && crc == 0) break;  // the end of what was written
    const std::size_t end = offset + 8 + length;
    const bool whole = length > 0 && end <= data.size() && crc == checksum(data.data() + offset + 8, length);
    if (!whole) {
      const bool torn = last && (end > data.size() || zero_from(end) || hole_at(offset, end));
      if (!torn) return damaged(offset, "bad record");
      break;  // dropped below
    }
    const std::byte* record = data.data() + offset + 8;
    if (!replay.apply(static_cast<uint8_t>(record[0]), {record + 1, length - 1}, number))
      return damaged(offset, "bad record contents");
    offset = end;
  }
  if (!zero_from(offset)) {
    if (!last || !(hole_at(offset, offset + 8) || !zero(offset, offset + 8)))
      return damaged(offset, "data after the end");
    spdlog::warn("store {}: dropping a torn record at the end of {} (offset {}): a change never acknowledged",
                 disk_->where(), name, offset);
    const std::vector<std::byte> zeros(data.size() - offset);
    if (int error = disk_->write(file, zeros.data(), zeros.size(), offset); error < 0) {
      disk_->close(file);
      fail(error, "cannot drop a torn record");
      return error;
    }
  }
  segments_.push_back(Segment{number, file, offset});
  return 0;
}

// -- Writing -------------------------------------------------------------------

int Journal::prepare(std::size_t bytes) {
  if (failed_) return -EIO;
  const uint64_t need = kMessageRecord + bytes;
  if (active().used + buffer_.size() + need + kSegmentReserve <= options_.segment_size) return 0;
  if (int error = rotate(); error < 0) return error == -ENOSPC || error == -EDQUOT ? -ENOSPC : -EIO;
  return 0;
}

// A record that would not fit in the active segment starts the next one.
// When none can be made, the record is kept anyway, past the segment's
// planned end: only records that cannot be refused get here without
// prepare() having made room, and they are few (the segment's reserve).
void Journal::make_room(std::size_t need) {
  if (disk_full_ || active().used + buffer_.size() + need <= options_.segment_size) return;
  rotate();
}

int Journal::open_segment(uint32_t number) {
  const std::string name = segment_name(number);
  int file = disk_->open(name, true);
  if (file < 0) return file;
  int error = disk_->allocate(file, options_.segment_size);
  // With sync=disk the segment is written with zeros first, as databases do
  // with their write-ahead logs: an fdatasync of records written into
  // blocks that are already written needs no change of the file's extents,
  // only the data, and is faster.
  if (error == 0 && options_.sync_disk) {
    const std::vector<std::byte> zeros(1 << 20);
    for (uint64_t at = 0; error == 0 && at < options_.segment_size; at += zeros.size())
      error = disk_->write(file, zeros.data(), std::min<uint64_t>(zeros.size(), options_.segment_size - at), at);
    if (error == 0) error = disk_->sync(file);
  }
  std::byte header[kSegmentHeader];
  std::memcpy(header, kMagic, 8);
  std::memcpy(header + 8, &number, 4);
  const uint32_t crc = checksum(header, 12);
  std::memcpy(header + 12, &crc, 4);
  if (error == 0) error = disk_->write(file, header, sizeof header, 0);
  // The old segment is complete: only the last one may ever be torn.
  if (error == 0 && !segments_.empty()) error = disk_->sync(active().file);
  if (error == 0) error = disk_->sync_directory();
  if (error < 0) {
    disk_->close(file);
    disk_->remove(name);
    return error;
  }
  if (!segments_.empty()) note_synced((uint64_t{active().number} << 32) + active().used);
  segments_.push_back(Segment{number, file, kSegmentHeader});
  return 0;
}

// Ends the active segment and starts the next. When the disk has no room
// for one, segments whose messages were all taken are retired first; if
// there is still none, records that cannot be refused stop trying until the
// end of the loop turn (a writer's prepare() tries again), and the journal
// says so once until a segment can be made again.
int Journal::rotate() {
  if (int error = write_out(); error < 0) return error;
  int error = open_segment(active().number + 1);
  // Not while retiring: the records a retirement appends may come here.
  if ((error == -ENOSPC || error == -EDQUOT) && !retiring_) {
    if (retire_dead()) error = open_segment(active().number + 1);
  }
  if (error < 0) {
    disk_full_ = true;
    if (!full_logged_) fail(error, "cannot start a new segment; new messages are refused until there is room");
    full_logged_ = true;
    return error;
  }
  full_logged_ = false;
  return 0;
}

int Journal::write_out() {
  if (buffer_.empty() || segments_.empty()) return 0;
  Segment& s = active();
  if (int error = disk_->write(s.file, buffer_.data(), buffer_.size(), s.used); error < 0) {
    if (!write_failed_) fail(error, "cannot write the journal (changes kept in memory, written when it can)");
    write_failed_ = true;
    return error;
  }
  write_failed_ = false;
  s.used += buffer_.size();
  buffer_.clear();
  return 0;
}

void Journal::put_node(const NodeState& node) {
  make_room(kRecordHeader + 28 + node.name.size());
  Record record(buffer_, kNode);
  record.put(node.ino).put(node.parent).put(node.mode).put(node.uid).put(node.gid);
  record.put(std::as_bytes(std::span(node.name)));
  record.finish();
}

void Journal::remove_node(uint64_t ino) {
  make_room(kRecordHeader + 8);
  Record(buffer_, kRemove).put(ino).finish();
}

void Journal::put_settings(uint64_t queue, const engine::Settings& s) {
  std::size_t paths = 0;
  for (const std::string& topic : s.subscribe) paths += topic.size() + 1;
  make_room(kRecordHeader + 88 + s.dead_letter.size() + paths);
  Record record(buffer_, kQueueSettings);
  record.put(queue).put(s.priority).put(s.maxmsg).put(s.msgsize).put(s.recv_timeout_ms).put(s.send_timeout_ms);
  record.put(static_cast<uint8_t>(s.read_mode)).put(static_cast<uint8_t>(s.framing));
  record.put(s.lease_ms).put(s.retry_delay_ms).put(s.max_deliveries).put(s.type);
  record.put(static_cast<uint8_t>(s.kind)).put(static_cast<uint8_t>(s.overflow));
  record.put(static_cast<uint32_t>(s.dead_letter.size())).put(std::as_bytes(std::span(s.dead_letter)));
  for (const std::string& topic : s.subscribe) record.put(std::as_bytes(std::span(topic))).put('\0');
  record.finish();
}

Journal::Segment* Journal::segment(uint32_t number) {
  if (segments_.empty() || number < segments_.front().number || number > segments_.back().number) return nullptr;
  return &segments_[number - segments_.front().number];
}

void Journal::put_message(uint8_t type, uint64_t queue, engine::Message& message) {
  make_room(kMessageRecord + message.size());
  Record record(buffer_, type);
  record.put(queue).put(message.id()).put(message.priority());
  record.put(message.type()).put(message.enqueued_ns()).put(message.deliveries()).put(message.bytes());
  record.finish();
  if (Segment* old = segment(message.segment()); old && type == kCopy) --old->live;
  message.set_segment(active().number);
  ++active().live;
}

// A message left the queue: its record is dead.
void Journal::forget(const engine::Message& message) {
  live_messages_ -= kMessageRecord + message.size();
  if (Segment* s = segment(message.segment())) --s->live;
}

void Journal::enqueued(uint64_t queue, engine::Message& message) {
  message.set_id(next_id_++);
  put_message(kSend, queue, message);
  live_messages_ += kMessageRecord + message.size();
}

// A record naming one message of a queue: `type` (kDequeue, kWithdraw,
// kDrop, kDeliver).
void Journal::put_taken(uint8_t type, uint64_t queue, const engine::Message& message) {
  make_room(kRecordHeader + 16);
  Record(buffer_, type).put(queue).put(message.id()).finish();
}

void Journal::dequeued(uint64_t queue, const engine::Message& message) {
  put_taken(kDequeue, queue, message);
  forget(message);
}

void Journal::withdrawn(uint64_t queue, const engine::Message& message) {
  put_taken(kWithdraw, queue, message);
  forget(message);
}

void Journal::counted(uint64_t queue, int64_t sent, int64_t dropped) {
  make_room(kRecordHeader + 24);
  Record(buffer_, kCounted).put(queue).put(sent).put(dropped).finish();
}

void Journal::delivered(uint64_t queue, const engine::Message& message) { put_taken(kDeliver, queue, message); }

// One record, so that a torn end never keeps the message in both queues or
// in neither. Its bytes stay where they were recorded.
void Journal::moved(uint64_t from, uint64_t to, engine::Message& message) {
  make_room(kRecordHeader + 32);
  const uint64_t id = message.id();
  message.set_id(next_id_++);
  Record(buffer_, kDeadLetter).put(from).put(id).put(to).put(message.id()).finish();
}

void Journal::purged(uint64_t queue, std::span<const engine::Message* const> messages, bool all) {
  if (all) {
    make_room(kRecordHeader + 8);
    Record(buffer_, kPurge).put(queue).finish();
  }
  for (const engine::Message* m : messages) {
    if (!all) put_taken(kDrop, queue, *m);
    forget(*m);
  }
}

// -- Group commit (sync=disk) --------------------------------------------------

// Everything up to `position` is on disk. The position is also written to
// the file `synced` (not synced itself, so it may lag): after a power cut,
// a hole in the journal past it is data that never reached the disk, and
// recovery drops it as a torn end rather than refusing the mount.
void Journal::note_synced(uint64_t position) {
  synced_ = std::max(synced_, position);
  if (synced_file_ >= 0) disk_->write(synced_file_, &synced_, sizeof synced_, 0);
}

// Everything written out so far goes to the helper thread in one fdatasync;
// writers that come while it runs wait for the next one.
void Journal::start_sync() {
  if (sync_running_ || failed_) return;
  if (write_out() < 0) return;
  const uint64_t target = position();
  if (synced_ >= target) return;
  if (!options_.sync_thread) {
    if (int error = disk_->sync(active().file); error < 0) {
      failed_ = error;
      fail(error, "fdatasync failed");
      return;
    }
    note_synced(target);
    return;
  }
  if (!thread_.joinable()) {
    completion_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    thread_ = std::thread([this] { run_syncs(); });
  }
  std::lock_guard lock(mutex_);
  request_ = SyncRequest{active().file, target};
  sync_running_ = true;
  sync_file_ = active().file;
  wake_.notify_one();
}

void Journal::run_syncs() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || request_; });
    if (!request_) return;
    const SyncRequest request = *std::exchange(request_, std::nullopt);
    lock.unlock();
    const int error = disk_->sync(request.file);
    lock.lock();
    result_ = {request.position, error};
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(completion_fd_, &one, sizeof one);
  }
}

void Journal::sync_completed() {
  uint64_t count;
  [[maybe_unused]] auto n = ::read(completion_fd_, &count, sizeof count);
  std::lock_guard lock(mutex_);
  if (!result_) return;
  auto [target, error] = *std::exchange(result_, std::nullopt);
  sync_running_ = false;
  if (error < 0) {
    failed_ = error;
    fail(error, "fdatasync failed; refusing further changes");
    return;
  }
  note_synced(target);
}

// -- Staying bounded -----------------------------------------------------------

// Names, settings and counters, as one group of records that replaces every
// earlier one at recovery.
void Journal::write_snapshot() {
  struct Writer final : Source::NodeVisitor {
    Journal* journal;
    uint64_t bytes = 0;
    void node(const NodeState& node, const QueueState* queue) override {
      const uint64_t before = journal->stored_bytes();
      journal->put_node(node);
      if (queue) {
        journal->put_settings(node.ino, queue->settings);
        journal->make_room(kRecordHeader + 40);
        Record(journal->buffer_, kCounters)
            .put(node.ino)
            .put(queue->sent)
            .put(queue->received)
            .put(queue->dead_lettered)
            .put(queue->dropped)
            .finish();
      }
      bytes += journal->stored_bytes() - before;
    }
  } writer;
  writer.journal = this;
  make_room(kRecordHeader);
  snapshot_segment_ = active().number;
  Record(buffer_, kSnapshotBegin).finish();
  source_->visit_nodes(writer);
  make_room(kRecordHeader + 8);
  Record(buffer_, kSnapshotEnd).put(next_id_).finish();
  live_names_ = writer.bytes + 2 * kRecordHeader + 8;
}

// Retires the oldest segment when the journal holds more than twice its live
// records (and a few segments of slack): what is still live in it is
// appended again, made durable, and the segment is deleted. A few segments
// per call at most, so that one call's work stays bounded, and enough that
// a storm of the largest messages (64 per turn) cannot outgrow it.
void Journal::idle() {
  disk_full_ = false;
  if (!source_ || failed_) return;
  for (int retired = 0; retired < kRetiredPerTurn; ++retired) {
    if (segments_.size() < 2) return;
    const bool dead = segments_.front().live == 0;
    if (!dead && stored_bytes() <= 2 * live_bytes() + 4 * options_.segment_size) return;
    // The helper thread may be syncing that segment's file.
    if (sync_running_ && sync_file_ == segments_.front().file) return;
    if (!retire_oldest()) return;
  }
}

// Retires the oldest segments while none of their messages is still queued
// (they cost a snapshot at most): true if any was.
bool Journal::retire_dead() {
  bool retired = false;
  while (segments_.size() >= 2 && segments_.front().live == 0 &&
         !(sync_running_ && sync_file_ == segments_.front().file) && retire_oldest())
    retired = true;
  return retired;
}

bool Journal::retire_oldest() {
  retiring_ = true;
  const bool retired = retire(segments_.front());
  retiring_ = false;
  return retired;
}

bool Journal::retire(const Segment oldest) {
  // Names, settings and counters recorded in it live on in a snapshot.
  if (snapshot_segment_ <= oldest.number) write_snapshot();
  struct Mover final : Source::MessageVisitor {
    Journal* journal;
    uint32_t segment;
    void message(uint64_t queue, engine::Message& message) override {
      if (message.segment() == segment) journal->put_message(kCopy, queue, message);
    }
  } mover;
  mover.journal = this;
  mover.segment = oldest.number;
  source_->visit_messages(mover);
  if (write_out() < 0) return false;
  if (int error = disk_->sync(active().file); error < 0) {
    fail(error, "cannot sync the journal to retire a segment");
    return false;
  }
  note_synced(position());
  if (int error = disk_->remove(segment_name(oldest.number)); error < 0) {
    fail(error, "cannot delete a retired segment");
    return false;
  }
  disk_->close(oldest.file);
  segments_.pop_front();
  disk_->sync_directory();
  return true;
}

// Everything recorded reaches the disk before the daemon ends.
void Journal::close() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      wake_.notify_one();
    }
    thread_.join();
  }
  if (segments_.empty()) return;
  if (write_out() == 0 && !failed_) {
    if (int error = disk_->sync(active().file); error < 0) {
      failed_ = error;
      fail(error, "fdatasync at unmount failed");
    } else {
      note_synced(position());
    }
  }
  if (completion_fd_ >= 0) ::close(completion_fd_);
  completion_fd_ = -1;
  if (synced_file_ >= 0) disk_->close(synced_file_);
  synced_file_ = -1;
  for (const Segment& s : segments_) disk_->close(s.file);
  segments_.clear();
}

}  // namespace mqfs::store
