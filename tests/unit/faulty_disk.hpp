// An in-memory store::Disk that behaves as a real disk with a page cache,
// and breaks on demand.
//
// Each file has what was written (what the kernel holds) and what is
// durable (what the last fdatasync covered); the directory has its entries
// and the entries as of the last sync_directory. crashed() makes the disk a
// restarted daemon finds:
//
//   Crash::process — the daemon was killed (SIGKILL): everything written
//                    stays, synced or not;
//   Crash::power   — the machine lost power: files hold what was synced,
//                    and the directory holds the entries it had at its
//                    last sync (a file created since is gone, a file
//                    removed since is back).
//
// Faults: a torn last write (a prefix of it reached the disk, the rest is
// what was there before or garbage), a flipped bit, a disk that fills up at
// a chosen size (allocate and write past a file's end fail with ENOSPC),
// and failing syncs (EIO).
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/disk.hpp"

namespace mqfs::store::testing {

enum class Crash { process, power };

class FaultyDisk final : public Disk {
 public:
  struct File {
    std::vector<std::byte> written;
    std::vector<std::byte> durable;
  };
  using FilePtr = std::shared_ptr<File>;

  FaultyDisk() = default;
  FaultyDisk(const FaultyDisk&) = delete;
  FaultyDisk& operator=(const FaultyDisk&) = delete;

  // -- Disk ---------------------------------------------------------------------

  int open(const std::string& name, bool create) override {
    std::lock_guard lock(mutex_);
    auto it = names_.find(name);
    FilePtr file;
    if (create) {
      if (it != names_.end()) return -EEXIST;
      file = std::make_shared<File>();
      names_.emplace(name, file);
    } else {
      if (it == names_.end()) return -ENOENT;
      file = it->second;
    }
    const int handle = next_handle_++;
    handles_.emplace(handle, file);
    return handle;
  }

  void close(int file) override {
    std::lock_guard lock(mutex_);
    handles_.erase(file);
  }

  ssize_t read(int file, void* buffer, std::size_t size, uint64_t offset) override {
    std::lock_guard lock(mutex_);
    File* f = find(file);
    if (!f) return -EBADF;
    if (offset >= f->written.size()) return 0;
    const std::size_t n = std::min<std::size_t>(size, f->written.size() - offset);
    std::memcpy(buffer, f->written.data() + offset, n);
    return static_cast<ssize_t>(n);
  }

  int write(int file, const void* buffer, std::size_t size, uint64_t offset) override {
    std::lock_guard lock(mutex_);
    File* f = find(file);
    if (!f) return -EBADF;
    if (write_error_) return write_error_;
    if (int error = grow(*f, offset + size); error < 0) return error;
    LastWrite last{handles_.at(file), offset, {}, {}};
    last.before.assign(f->written.begin() + static_cast<std::ptrdiff_t>(offset),
                       f->written.begin() + static_cast<std::ptrdiff_t>(offset + size));
    const auto* bytes = static_cast<const std::byte*>(buffer);
    last.after.assign(bytes, bytes + size);
    std::memcpy(f->written.data() + offset, buffer, size);
    last_write_ = std::move(last);
    ++writes_;
    return 0;
  }

  int allocate(int file, uint64_t size) override {
    std::lock_guard lock(mutex_);
    File* f = find(file);
    if (!f) return -EBADF;
    return grow(*f, size);
  }

  int64_t size(int file) override {
    std::lock_guard lock(mutex_);
    File* f = find(file);
    return f ? static_cast<int64_t>(f->written.size()) : -EBADF;
  }

  int sync(int file) override {
    std::lock_guard lock(mutex_);
    File* f = find(file);
    if (!f) return -EBADF;
    if (sync_failures_ != 0) {
      if (sync_failures_ > 0) --sync_failures_;
      return sync_error_;
    }
    f->durable = f->written;
    ++syncs_;
    return 0;
  }

  int remove(const std::string& name) override {
    std::lock_guard lock(mutex_);
    return names_.erase(name) ? 0 : -ENOENT;
  }

  int sync_directory() override {
    std::lock_guard lock(mutex_);
    durable_names_ = names_;
    return 0;
  }

  int list(std::vector<std::string>& names) override {
    std::lock_guard lock(mutex_);
    names.push_back(".");
    names.push_back("..");
    names.push_back("lock");  // what PosixDisk keeps there: not a segment
    for (const auto& [name, file] : names_) names.push_back(name);
    return 0;
  }

  std::string where() const override { return "faulty-disk"; }

  // -- Crashes -------------------------------------------------------------------

  // The disk a daemon finds after `kind` of crash now; this one is unchanged.
  std::unique_ptr<FaultyDisk> crashed(Crash kind) const {
    std::lock_guard lock(mutex_);
    auto disk = std::make_unique<FaultyDisk>();
    std::unordered_map<const File*, FilePtr> copies;
    auto copy = [&](const FilePtr& file) {
      FilePtr& c = copies[file.get()];
      if (!c) {
        c = std::make_shared<File>();
        c->durable = file->durable;
        c->written = kind == Crash::process ? file->written : file->durable;
      }
      return c;
    };
    for (const auto& [name, file] : kind == Crash::process ? names_ : durable_names_) disk->names_[name] = copy(file);
    for (const auto& [name, file] : durable_names_) disk->durable_names_[name] = copy(file);
    if (last_write_) {
      if (auto it = copies.find(last_write_->file.get()); it != copies.end()) {
        disk->last_write_ = *last_write_;
        disk->last_write_->file = it->second;
      }
    }
    return disk;
  }

  // The last write reached the disk in part: its first `keep` bytes, then
  // the bytes that were there before (or, with `garbage`, random ones).
  // For a disk that crashed(): the write that was under way. False when
  // there was no write, or its file is gone.
  bool tear_last_write(std::size_t keep, bool garbage = false, uint32_t seed = 1) {
    std::lock_guard lock(mutex_);
    if (!last_write_) return false;
    LastWrite& last = *last_write_;
    std::vector<std::byte> bytes = last.after;
    keep = std::min(keep, bytes.size());
    std::mt19937 random(seed);
    for (std::size_t i = keep; i < bytes.size(); ++i)
      bytes[i] = garbage ? static_cast<std::byte>(random() & 0xff) : last.before[i];
    for (std::vector<std::byte>* contents : {&last.file->written, &last.file->durable}) {
      if (contents->size() < last.offset + bytes.size()) contents->resize(last.offset + bytes.size());
      std::memcpy(contents->data() + last.offset, bytes.data(), bytes.size());
    }
    return true;
  }
  // The size of the last write (0: none).
  std::size_t last_write_size() const {
    std::lock_guard lock(mutex_);
    return last_write_ ? last_write_->after.size() : 0;
  }
  uint64_t last_write_offset() const {
    std::lock_guard lock(mutex_);
    return last_write_ ? last_write_->offset : 0;
  }

  // Flips bit `bit` of the byte at `offset` of file `name` (written and
  // durable contents alike): false when the file is not that long.
  bool flip_bit(const std::string& name, uint64_t offset, int bit = 0) {
    std::lock_guard lock(mutex_);
    auto it = names_.find(name);
    if (it == names_.end()) return false;
    bool flipped = false;
    for (std::vector<std::byte>* contents : {&it->second->written, &it->second->durable})
      if (offset < contents->size()) {
        (*contents)[offset] ^= static_cast<std::byte>(1u << bit);
        flipped = true;
      }
    return flipped;
  }

  // -- Other faults --------------------------------------------------------------

  // Files may take `bytes` in all (allocate, or a write past a file's end,
  // beyond it fails with ENOSPC); nullopt: no limit.
  void set_space_limit(std::optional<uint64_t> bytes) {
    std::lock_guard lock(mutex_);
    space_limit_ = bytes;
  }
  // The next `count` syncs fail with `error` (-1: all of them).
  void fail_syncs(int count, int error = -EIO) {
    std::lock_guard lock(mutex_);
    sync_failures_ = count;
    sync_error_ = error;
  }
  // Every write fails with `error` (0: none does).
  void fail_writes(int error) {
    std::lock_guard lock(mutex_);
    write_error_ = error;
  }

  // -- Looking at it ---------------------------------------------------------------

  // Bytes the named files take.
  uint64_t used() const {
    std::lock_guard lock(mutex_);
    return used_locked();
  }
  std::vector<std::string> files() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> names;
    for (const auto& [name, file] : names_) names.push_back(name);
    return names;
  }
  // What file `name` holds as written (empty when it does not exist).
  std::vector<std::byte> contents(const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = names_.find(name);
    return it == names_.end() ? std::vector<std::byte>{} : it->second->written;
  }
  bool exists(const std::string& name) const {
    std::lock_guard lock(mutex_);
    return names_.contains(name);
  }
  int syncs() const { return syncs_; }
  int writes() const { return writes_; }

 private:
  struct LastWrite {
    FilePtr file;
    uint64_t offset;
    std::vector<std::byte> before;  // what the written range held before
    std::vector<std::byte> after;   // the bytes written
  };

  File* find(int handle) {
    auto it = handles_.find(handle);
    return it == handles_.end() ? nullptr : it->second.get();
  }
  uint64_t used_locked() const {
    uint64_t total = 0;
    for (const auto& [name, file] : names_) total += file->written.size();
    return total;
  }
  // Makes `file` at least `size` bytes long, within the space limit.
  int grow(File& file, uint64_t size) {
    if (size <= file.written.size()) return 0;
    if (space_limit_ && used_locked() + (size - file.written.size()) > *space_limit_) return -ENOSPC;
    file.written.resize(size);
    return 0;
  }

  mutable std::mutex mutex_;
  std::map<std::string, FilePtr> names_;
  std::map<std::string, FilePtr> durable_names_;
  std::unordered_map<int, FilePtr> handles_;
  int next_handle_ = 3;
  std::optional<LastWrite> last_write_;
  std::optional<uint64_t> space_limit_;
  int sync_failures_ = 0;
  int sync_error_ = -EIO;
  int write_error_ = 0;
  int syncs_ = 0;
  int writes_ = 0;
};

}  // namespace mqfs::store::testing
