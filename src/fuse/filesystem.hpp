// The FUSE adapter: translates low-level FUSE requests into engine calls and
// replies. Every handler answers its request exactly once through its Reply,
// now or (reads and writes that wait) later through a waiter that took the
// Reply over.
#pragma once

#include <fuse_lowlevel.h>

#include <cstdint>
#include <memory>
#include <deque>
#include <optional>
#include <vector>
#include <unordered_map>

#include "engine/budget.hpp"
#include "engine/list.hpp"
#include "engine/namespace.hpp"
#include "engine/node_ids.hpp"
#include "engine/open_file.hpp"
#include "engine/settings.hpp"
#include "engine/waiter.hpp"
#include "fuse/reply.hpp"
#include "store/store.hpp"

namespace mqfs::fuse {

struct Config {
  engine::Settings defaults;              // settings of new queues
  uint64_t max_queues = 65536;            // queues and directories together
  uint64_t max_bytes = uint64_t{1} << 30; // message bytes held in all queues
  uint64_t max_open_files = 65536;        // open files of all queues
  uint64_t max_waiters = 65536;           // reads and writes waiting at once
};

// A waiter whose request was interrupted, waiting to be cancelled by the loop.
// The interrupt callback runs under libfuse's request lock, where replying is
// not safe; the loop cancels right after the request that carried it.
struct Interrupted : engine::ListNode<Interrupted> {
  explicit Interrupted(engine::Waiter& w) : waiter(&w) {}
  engine::Waiter* waiter;
};

// A reply that waits until the store has made its request's change durable
// (sync=disk): a write(2) that queued messages, an fsync(2).
struct DurableReply {
  Reply reply;
  uint64_t position;    // the store's position after the change
  std::size_t written;  // a write's byte count
  bool status;          // answered with a status (0), not a byte count
};

class Filesystem {
 public:
  // `store` keeps the mount's state (it outlives the filesystem).
  Filesystem(const Config& config, store::Store& store);
  // Builds the mount from what the store kept: 0 or -errno, logged.
  int restore();

  static const fuse_lowlevel_ops& operations();

  const Config& config() const { return config_; }
  engine::Budget& budget() { return budget_; }
  engine::Timeouts& timeouts() { return timeouts_; }
  engine::Namespace& names() { return names_; }
  engine::NodeIds& node_ids() { return node_ids_; }
  store::Store& store() { return *store_; }

  // Answers a write now, or once its change is durable (sync=disk).
  bool answer_write(Reply& reply, std::size_t written, bool status);
  // Answers an fsync(2) once everything recorded so far is durable.
  void answer_fsync(Reply& reply);
  // Runs at the end of each loop turn: hands the turn's records to the
  // store, starts a sync for the replies waiting for one, and lets the store
  // compact itself.
  void end_turn();
  // The store finished a sync: answers the replies it made durable.
  void sync_completed();
  // At unmount: every waiting request is answered, open files are closed,
  // and the store writes and syncs everything.
  void finish();

  // Open files live from open until the kernel releases them; those still
  // open when the daemon stops are freed with it.
  engine::OpenFile& keep_open(std::unique_ptr<engine::OpenFile> file);
  void close(engine::OpenFile& file) { open_files_.erase(&file); }

  // SPEC section 10: a request that may change names shared with other
  // mounts is answered once the store accepted its changes (or refused
  // them: the request then fails with the store's error).
  void begin_names_change(fuse_req_t req) { holding_ = req; }
  void end_names_change();
  // Whether the answer to `req` is held (the names change under way).
  bool holds_answer(fuse_req_t req) const { return req && holding_ == req; }
  void hold(const HeldAnswer& answer) { held_ = answer; }

  void interrupted(Interrupted& entry) { interrupted_.push_back(entry); }
  // Cancels waits whose requests were interrupted (EINTR).
  void cancel_interrupted();
  // Answers every waiting request before the session ends.
  void cancel_all_waits(int error);

 private:
  // A names change's answer waiting for the store. An interrupt answers it
  // EINTR at once (the change may still be made, as over any network).
  struct HeldName : std::enable_shared_from_this<HeldName> {
    HeldName(const HeldAnswer& answer, Filesystem& fs) : answer(answer), fs(&fs) {}
    HeldAnswer answer;
    Filesystem* fs;
    bool answered = false;
  };
  static void on_names_interrupt(fuse_req_t req, void* data);
  void answer_durable();
  void answer_held(HeldName& held, int error);

  Config config_;
  store::Store* store_;
  engine::Budget budget_;
  engine::Timeouts timeouts_;
  engine::Namespace names_;
  engine::NodeIds node_ids_;
  engine::List<Interrupted> interrupted_;
  std::unordered_map<engine::OpenFile*, std::unique_ptr<engine::OpenFile>> open_files_;
  std::deque<DurableReply> durable_replies_;  // in position order
  fuse_req_t holding_ = nullptr;
  std::optional<HeldAnswer> held_;
  std::vector<std::weak_ptr<HeldName>> interrupted_names_;
};

// Runs the session on one thread: requests, timeouts and signals from one
// epoll set. Returns when the filesystem is unmounted or a SIGINT, SIGTERM or
// SIGHUP arrives; 0 on a clean end.
int run_loop(fuse_session* session, Filesystem& fs);

// Shared by the handlers.
engine::Node* node_of(const Reply& reply, fuse_ino_t ino);
engine::OpenFile& open_file_of(const fuse_file_info* fi);
struct stat stat_of(const engine::Node& node);
// The entry of a reply that hands the kernel a reference to `node` (its
// node id counted in node_ids(): forget it if the reply fails).
fuse_entry_param entry_of(Filesystem& fs, engine::Node& node);
// Replies with the node's entry and takes the kernel's reference to it.
void reply_entry(Reply& reply, engine::Node& node);
// Makes a queue or directory; on failure replies and sets `made` to null.
void make_node(Reply& reply, fuse_ino_t parent, const char* name, mode_t mode, engine::Node*& made);

// The handlers, by family (fuse_attr.cpp, fuse_dir.cpp, ...).
void do_init(void* userdata, fuse_conn_info* conn);
void do_lookup(Reply& reply, fuse_ino_t parent, const char* name);
void do_forget(Reply& reply, fuse_ino_t ino, uint64_t nlookup);
void do_forget_multi(Reply& reply, size_t count, fuse_forget_data* forgets);
void do_getattr(Reply& reply, fuse_ino_t ino, fuse_file_info* fi);
void do_setattr(Reply& reply, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
void do_statfs(Reply& reply, fuse_ino_t ino);
void do_mkdir(Reply& reply, fuse_ino_t parent, const char* name, mode_t mode);
void do_rmdir(Reply& reply, fuse_ino_t parent, const char* name);
void do_unlink(Reply& reply, fuse_ino_t parent, const char* name);
void do_rename(Reply& reply, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned flags);
void do_link(Reply& reply, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);
void do_symlink(Reply& reply, const char* link, fuse_ino_t parent, const char* name);
void do_opendir(Reply& reply, fuse_ino_t ino, fuse_file_info* fi);
void do_readdir(Reply& reply, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void do_releasedir(Reply& reply, fuse_ino_t ino, fuse_file_info* fi);
void do_mknod(Reply& reply, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
void do_create(Reply& reply, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
void do_open(Reply& reply, fuse_ino_t ino, fuse_file_info* fi);
void do_release(Reply& reply, fuse_ino_t ino, fuse_file_info* fi);
void do_flush(Reply& reply, fuse_ino_t ino, fuse_file_info* fi);
void do_fsync(Reply& reply, fuse_ino_t ino, int datasync, fuse_file_info* fi);
void do_read(Reply& reply, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void do_write(Reply& reply, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi);
void do_poll(Reply& reply, fuse_ino_t ino, fuse_file_info* fi, fuse_pollhandle* ph);
void do_ioctl(Reply& reply, fuse_ino_t ino, unsigned int cmd, void* arg, fuse_file_info* fi, unsigned flags,
              const void* in_buf, size_t in_bufsz, size_t out_bufsz);
void do_setxattr(Reply& reply, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags);
void do_getxattr(Reply& reply, fuse_ino_t ino, const char* name, size_t size);
void do_listxattr(Reply& reply, fuse_ino_t ino, size_t size);
void do_removexattr(Reply& reply, fuse_ino_t ino, const char* name);

}  // namespace mqfs::fuse
