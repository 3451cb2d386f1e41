// Reads and writes as the engine sees them (ReadRequest, WriteRequest):
// answered now through the handler's Reply, or parked in the queue as a
// waiter that owns the request until it answers it.
#pragma once

#include "fuse/filesystem.hpp"

namespace mqfs::fuse {

// A read(2): answered now, or handed to a PendingRead.
class ReadRequest final : public engine::ReadRequest {
 public:
  explicit ReadRequest(Reply& reply) : reply_(&reply) {}
  bool deliver(std::span<const iovec> data) override { return reply_->iov(data); }
  void fail(int error) override { reply_->error(error); }
  std::unique_ptr<engine::ReceiveWaiter> park(engine::OpenFile& file, pid_t pid, std::size_t size) override;

 private:
  Reply* reply_;
};

// How a request that sends is told it is done: a write(2) with its byte
// count; a close(2) that ended a message with 0; an fsync(2) with 0 once
// everything recorded is durable.
enum class Sent { bytes, status, synced };

// Answers a request that sent: through the filesystem, which holds the
// answer until the store made it durable when the mount asks for that.
bool answer_sent(Reply& reply, Sent sent, std::size_t n);

// A write(2), or a close(2) or fsync(2) that ends a whole-file message:
// answered now, or handed to a PendingWrite.
class WriteRequest final : public engine::WriteRequest {
 public:
  explicit WriteRequest(Reply& reply, Sent sent = Sent::bytes) : reply_(&reply), sent_(sent) {}
  bool accept(std::size_t n) override { return answer_sent(*reply_, sent_, n); }
  void fail(int error) override { reply_->error(error); }
  std::unique_ptr<engine::SendWaiter> park(engine::OpenFile& file, pid_t pid) override;

 private:
  Reply* reply_;
  Sent sent_;
};

// A parked request: listens for interrupts from the moment it is parked and
// stops before its one answer.
class ParkedRequest {
 public:
  ParkedRequest(Reply reply, engine::Waiter& waiter);
  ParkedRequest(const ParkedRequest&) = delete;
  ParkedRequest& operator=(const ParkedRequest&) = delete;
  ~ParkedRequest();
  // The request, for its answer.
  Reply& take();

 private:
  static void on_interrupt(fuse_req_t req, void* data);

  Reply reply_;
  Interrupted interrupted_;
};

class PendingRead final : public engine::ReceiveWaiter {
 public:
  PendingRead(Reply reply, engine::OpenFile& file, pid_t pid, std::size_t size)
      : ReceiveWaiter(file, pid, size), request_(std::move(reply), *this) {}
  bool deliver(std::span<const iovec> data) override { return request_.take().iov(data); }
  void fail(int error) override { request_.take().error(error); }

 private:
  ParkedRequest request_;
};

class PendingWrite final : public engine::SendWaiter {
 public:
  PendingWrite(Reply reply, engine::OpenFile& file, pid_t pid, Sent sent)
      : SendWaiter(file, pid), request_(std::move(reply), *this), sent_(sent) {}
  bool accept(std::size_t n) override { return answer_sent(request_.take(), sent_, n); }
  void fail(int error) override { request_.take().error(error); }

 private:
  ParkedRequest request_;
  Sent sent_;
};

}  // namespace mqfs::fuse
