// The file operations of the journal store, behind an interface so that unit
// tests can put a disk that loses unsynced data, tears writes, flips bits or
// fills up (tests/unit/faulty_disk.hpp) where the real one is.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mqfs::store {

class Disk {
 public:
  virtual ~Disk() = default;

  // Files are named within the store's directory. Each call returns a
  // handle or count >= 0, or -errno.
  virtual int open(const std::string& name, bool create) = 0;
  virtual void close(int file) = 0;
  virtual ssize_t read(int file, void* buffer, std::size_t size, uint64_t offset) = 0;
  // Writes all of `size` bytes at `offset`, or fails.
  virtual int write(int file, const void* buffer, std::size_t size, uint64_t offset) = 0;
  // Reserves room for the file to reach `size` bytes (zeros), so that later
  // writes within it cannot run out of space.
  virtual int allocate(int file, uint64_t size) = 0;
  virtual int64_t size(int file) = 0;
  // fdatasync: what was written to `file` survives a power cut. May be
  // called from another thread than the other calls.
  virtual int sync(int file) = 0;
  virtual int remove(const std::string& name) = 0;
  // Makes the creation and removal of files survive a power cut.
  virtual int sync_directory() = 0;
  virtual int list(std::vector<std::string>& names) = 0;
  // What the store's files are, for messages: the directory's path.
  virtual std::string where() const = 0;
};

// The real disk: files in a directory, created with mode 0700 if missing and
// locked for one daemon at a time.
class PosixDisk final : public Disk {
 public:
  // Opens (creating) `directory` and locks it: nullptr after logging one line
  // when it cannot be used or another mqfs uses it.
  static std::unique_ptr<PosixDisk> open_directory(const std::string& directory);
  ~PosixDisk() override;
  // Names this process in the lock file, for the error a second mount gets
  // (again after fuse_daemonize forked).
  void write_owner();

  int open(const std::string& name, bool create) override;
  void close(int file) override;
  ssize_t read(int file, void* buffer, std::size_t size, uint64_t offset) override;
  int write(int file, const void* buffer, std::size_t size, uint64_t offset) override;
  int allocate(int file, uint64_t size) override;
  int64_t size(int file) override;
  int sync(int file) override;
  int remove(const std::string& name) override;
  int sync_directory() override;
  int list(std::vector<std::string>& names) override;
  std::string where() const override { return path_; }

 private:
  PosixDisk(std::string path, int directory, int lock) : path_(std::move(path)), directory_(directory), lock_(lock) {}

  std::string path_;
  int directory_;
  int lock_;
};

}  // namespace mqfs::store
