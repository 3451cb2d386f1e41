// Reads and writes whose reply is sent now (on the stack) or later (parked in
// the queue, owning their request until they reply).
#pragma once

#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

// A read answered at once.
class ReadReply final : public engine::Receiver {
 public:
  explicit ReadReply(fuse_req_t req) : req_(req) {}
  bool deliver(std::span<const iovec> data) override;

 private:
  fuse_req_t req_;
};

// A write answered at once.
class WriteReply final : public engine::Sender {
 public:
  explicit WriteReply(fuse_req_t req) : req_(req) {}
  bool accept(std::size_t n) override;

 private:
  fuse_req_t req_;
};

// A parked request: registers for interrupts when parked and unregisters
// before its one reply.
class ParkedRequest {
 public:
  ParkedRequest(fuse_req_t req, engine::Waiter& waiter) : req_(req), interrupted_(waiter) {}
  // Call once the waiter is in its queue. An interrupt that came already is
  // handled as soon as the current request is done.
  void listen_for_interrupts();
  // Takes the request for its reply.
  fuse_req_t take();

 private:
  static void on_interrupt(fuse_req_t req, void* data);

  fuse_req_t req_;
  Interrupted interrupted_;
};

class PendingRead final : public engine::ReceiveWaiter {
 public:
  PendingRead(fuse_req_t req, engine::OpenFile& file, pid_t pid, std::size_t size)
      : ReceiveWaiter(file, pid, size), request_(req, *this) {}
  ParkedRequest& request() { return request_; }
  bool deliver(std::span<const iovec> data) override;
  void fail(int error) override;

 private:
  ParkedRequest request_;
};

class PendingWrite final : public engine::SendWaiter {
 public:
  PendingWrite(fuse_req_t req, engine::OpenFile& file, pid_t pid) : SendWaiter(file, pid), request_(req, *this) {}
  ParkedRequest& request() { return request_; }
  bool accept(std::size_t n) override;
  void fail(int error) override;

 private:
  ParkedRequest request_;
};

}  // namespace mqfs::fuse
