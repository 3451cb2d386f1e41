#include "fuse/filesystem.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <new>
#include <utility>

namespace mqfs::fuse {

// Node ids the kernel may hold at once before a queue's lookups share one:
// about 100 bytes each here (the kernel's inode for each is larger).
constexpr std::size_t kMaxNodeIds = 1 << 20;

Filesystem::Filesystem(const Config& config, store::Store& store)
    : config_(config),
      store_(&store),
      budget_(engine::Limits{.max_nodes = config.max_queues,
                             .max_bytes = config.max_bytes,
                             .max_open_files = config.max_open_files,
                             .max_waiters = config.max_waiters,
                             .message_overhead = engine::kMessageOverhead}),
      timeouts_(),
      names_(budget_, timeouts_, config.defaults, 0755, engine::Owner{getuid(), getgid()}, &store),
      node_ids_(names_.root(), kMaxNodeIds) {
  store.set_source(names_);
}

int Filesystem::restore() {
  store::Contents contents;
  if (int status = store_->load(budget_, contents); status < 0) return status;
  if (names_.restore(contents) < 0) {
    spdlog::error("the store holds more queues and directories than max_queues={}; mount with a larger max_queues",
                  config_.max_queues);
    return -ENOSPC;
  }
  return 0;
}

// A write's answer: its byte count, or 0 for a close or fsync that sent.
static bool answer_now(Reply& reply, std::size_t written, bool status) {
  return status ? reply.done() : reply.write(written);
}

bool Filesystem::answer_write(Reply& reply, std::size_t written, bool status) {
  if (!store_->syncs_writes() || store_->synced() >= store_->position())
    return answer_now(reply, written, status);
  // The writer learns that its message was sent once it is on disk; the
  // message is queued now, as if the writer had been answered.
  durable_replies_.push_back(DurableReply{std::move(reply), store_->position(), written, status});
  return true;
}

void Filesystem::answer_fsync(Reply& reply) {
  if (store_->synced() >= store_->position()) return reply.status(store_->failed() ? -EIO : 0);
  durable_replies_.push_back(DurableReply{std::move(reply), store_->position(), 0, true});
}

// Only a reply that waits starts a sync: the records of reads and of other
// changes ride with the next one, so that a reader does not make the next
// writer wait for a second sync.
void Filesystem::end_turn() {
  store_->write_out();
  // Names changed by a request that does not wait for them (a write that
  // cleared set-ID bits) go to a shared store now.
  if (store_->shares_names()) store_->commit_names([](int) {});
  if (!durable_replies_.empty()) {
    store_->start_sync();
    answer_durable();
  }
  store_->idle();
}

void Filesystem::sync_completed() {
  store_->sync_completed();
  answer_durable();
  if (!durable_replies_.empty()) store_->start_sync();
}

void Filesystem::finish() {
  cancel_all_waits(ENOTCONN);
  // Files still open give back what they hold under lease (a dead letter
  // among them is recorded), as their last close would.
  open_files_.clear();
  store_->close();
  answer_durable();
}

// Answers the replies whose changes are durable now — or, when the store
// failed to sync, all of them with EIO: whether their changes reached the
// disk is unknown.
void Filesystem::answer_durable() {
  while (!durable_replies_.empty()) {
    DurableReply& waiting = durable_replies_.front();
    if (store_->failed())
      waiting.reply.error(EIO);
    else if (waiting.position > store_->synced())
      return;
    else
      answer_now(waiting.reply, waiting.written, waiting.status);
    durable_replies_.pop_front();
  }
}

void Filesystem::end_names_change() {
  holding_ = nullptr;
  if (!held_) return;  // answered by a waiter: nothing to hold
  auto held = std::make_shared<HeldName>(*std::exchange(held_, std::nullopt), *this);
  // The commit's callback keeps it alive until it is answered, when the
  // interrupt callback is taken off first.
  fuse_req_interrupt_func(held->answer.req, on_names_interrupt, held.get());
  store_->commit_names([held](int error) { held->fs->answer_held(*held, error); });
}

// Under libfuse's request lock: the answer is made by cancel_interrupted(),
// on the loop's thread, before the commit's callback can run.
void Filesystem::on_names_interrupt(fuse_req_t, void* data) {
  auto* held = static_cast<HeldName*>(data);
  held->fs->interrupted_names_.push_back(held->weak_from_this());
}

// Sends a held answer, or `error` instead; what the answer would have given
// the kernel (a node id, an open file) is taken back when it does not reach it.
void Filesystem::answer_held(HeldName& held, int error) {
  if (held.answered) return;
  held.answered = true;
  const HeldAnswer& answer = held.answer;
  fuse_req_interrupt_func(answer.req, nullptr, nullptr);
  int sent = -1;
  if (error < 0) {
    fuse_reply_err(answer.req, -error);
  } else {
    switch (answer.kind) {
      case HeldAnswer::Kind::status: sent = fuse_reply_err(answer.req, -answer.status); break;
      case HeldAnswer::Kind::entry: sent = fuse_reply_entry(answer.req, &answer.entry); break;
      case HeldAnswer::Kind::create: sent = fuse_reply_create(answer.req, &answer.entry, &answer.fi); break;
      case HeldAnswer::Kind::attr: sent = fuse_reply_attr(answer.req, &answer.attr, answer.timeout); break;
    }
  }
  if (sent == 0) return;
  if (answer.kind == HeldAnswer::Kind::create) {
    close(open_file_of(&answer.fi));
    node_ids_.released(answer.entry.ino);
  }
  if (answer.kind == HeldAnswer::Kind::entry || answer.kind == HeldAnswer::Kind::create)
    node_ids_.forget(answer.entry.ino, 1);
}

engine::OpenFile& Filesystem::keep_open(std::unique_ptr<engine::OpenFile> file) {
  engine::OpenFile& kept = *file;
  open_files_.emplace(&kept, std::move(file));
  return kept;
}

void Filesystem::cancel_interrupted() {
  for (const auto& interrupted : std::exchange(interrupted_names_, {}))
    if (auto held = interrupted.lock()) answer_held(*held, -EINTR);
  while (Interrupted* entry = interrupted_.pop_front()) {
    engine::Waiter& waiter = *entry->waiter;
    if (waiter.queue()) waiter.queue()->cancel(waiter, EINTR);
  }
}

// Every waiting request belongs to an open file.
void Filesystem::cancel_all_waits(int error) {
  for (auto& [file, owned] : open_files_) {
    file->queue().cancel_all(error);
    file->source().cancel_all(error);
  }
}

engine::Node* node_of(const Reply& reply, fuse_ino_t ino) { return reply.filesystem().node_ids().find(ino); }

engine::OpenFile& open_file_of(const fuse_file_info* fi) {
  return *reinterpret_cast<engine::OpenFile*>(static_cast<uintptr_t>(fi->fh));
}

namespace {

// The one place where an unexpected failure of a handler becomes an errno:
// ENOMEM for exhausted memory, EIO and a log line for anything else. The
// request is answered so only if its Reply still owns it: a handler may
// throw after it answered, or after a waiter took its request over.
template <auto Handler>
struct Guarded;

// A request that may change the names: on a mount whose store shares them
// (SPEC section 10), its answer waits for the store to accept its changes.
template <auto Handler>
struct Named;

template <class... Args, void (*Handler)(Reply&, Args...)>
struct Guarded<Handler> {
  static void call(fuse_req_t req, Args... args) {
    Reply reply(req);
    try {
      Handler(reply, args...);
    } catch (const std::bad_alloc&) {
      spdlog::error("out of memory");
      if (reply.owns()) reply.error(ENOMEM);
    } catch (const std::exception& e) {
      spdlog::error("unexpected error: {}", e.what());
      if (reply.owns()) reply.error(EIO);
    }
  }
};

template <class... Args, void (*Handler)(Reply&, Args...)>
struct Named<Handler> {
  static void call(fuse_req_t req, Args... args) {
    auto& fs = *static_cast<Filesystem*>(fuse_req_userdata(req));
    if (!fs.store().shares_names()) return Guarded<Handler>::call(req, args...);
    fs.begin_names_change(req);
    Guarded<Handler>::call(req, args...);
    fs.end_names_change();
  }
};

fuse_lowlevel_ops make_operations() {
  fuse_lowlevel_ops ops{};
  ops.init = do_init;
  ops.lookup = Guarded<do_lookup>::call;
  ops.forget = Guarded<do_forget>::call;
  ops.forget_multi = Guarded<do_forget_multi>::call;
  ops.getattr = Guarded<do_getattr>::call;
  ops.setattr = Named<do_setattr>::call;
  ops.statfs = Guarded<do_statfs>::call;
  ops.mkdir = Named<do_mkdir>::call;
  ops.rmdir = Named<do_rmdir>::call;
  ops.unlink = Named<do_unlink>::call;
  ops.rename = Named<do_rename>::call;
  ops.link = Guarded<do_link>::call;
  ops.symlink = Guarded<do_symlink>::call;
  ops.opendir = Guarded<do_opendir>::call;
  ops.readdir = Guarded<do_readdir>::call;
  ops.releasedir = Guarded<do_releasedir>::call;
  ops.mknod = Named<do_mknod>::call;
  ops.create = Named<do_create>::call;
  ops.open = Guarded<do_open>::call;
  ops.release = Guarded<do_release>::call;
  ops.flush = Guarded<do_flush>::call;
  ops.fsync = Guarded<do_fsync>::call;
  ops.read = Guarded<do_read>::call;
  ops.write = Guarded<do_write>::call;
  ops.poll = Guarded<do_poll>::call;
  ops.ioctl = Guarded<do_ioctl>::call;
  ops.setxattr = Named<do_setxattr>::call;
  ops.getxattr = Guarded<do_getxattr>::call;
  ops.listxattr = Guarded<do_listxattr>::call;
  ops.removexattr = Named<do_removexattr>::call;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& Filesystem::operations() {
  static const fuse_lowlevel_ops ops = make_operations();
  return ops;
}

void do_init(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  // The shell's `> q` opens with O_TRUNC; with atomic O_TRUNC it reaches open,
  // where it is ignored, instead of a truncate that would purge the queue.
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // One write(2) must be one request: no splitting or reordering of direct I/O.
  conn->want &= ~(FUSE_CAP_ASYNC_DIO | FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                  FUSE_CAP_SPLICE_MOVE | FUSE_CAP_READDIRPLUS | FUSE_CAP_POSIX_LOCKS);
  if (conn->max_write < engine::kMaxMsgsize + 4096)
    spdlog::warn("the kernel accepts writes of at most {} bytes; larger messages will be split", conn->max_write);
}

}  // namespace mqfs::fuse
