// A message queue: its messages, limits, counters and waiters.
//
// Every read and write is tried at once; one that cannot finish becomes a
// Waiter that the queue answers when its state allows, in arrival order. A
// message leaves the queue only when its reader got it, and enters it only
// when its writer got the answer (see Receiver and Sender).
#pragma once

#include <sys/types.h>

#include <ctime>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/budget.hpp"
#include "engine/leases.hpp"
#include "engine/list.hpp"
#include "engine/message.hpp"
#include "engine/open_file.hpp"
#include "engine/remote.hpp"
#include "engine/settings.hpp"
#include "engine/waiter.hpp"
#include "store/store.hpp"

namespace mqfs::engine {

// What `ls -l` shows: mtime = last enqueue, atime = last dequeue,
// ctime = last attribute change.
struct Times {
  timespec atime{};
  timespec mtime{};
  timespec ctime{};
};

timespec now_realtime();
int64_t now_realtime_ns();

class Queue;

// Finds a queue by its path from the mount root: where a queue's dead
// letters go (SPEC section 11).
class QueueFinder {
 public:
  virtual Queue* find_queue(std::string_view path) = 0;
  // The queues whose user.mq.subscribe names the topic's path (SPEC section 13).
  virtual std::span<Queue* const> lasting_subscribers(const Queue& topic) = 0;

 protected:
  ~QueueFinder() = default;
};

class Queue : public ListNode<Queue> {  // a topic's list of its descriptors' subscriptions
 public:
  // `store` records the queue's changes under `ino` (none: memory only);
  // `finder` finds its dead-letter queue (none: it has none); `remote`: the
  // server that holds its messages, shared with other mounts (SPEC section 10).
  Queue(Budget& budget, Timeouts& timeouts, const Settings& settings, store::Store* store = nullptr,
        uint64_t ino = 0, QueueFinder* finder = nullptr, Remote* remote = nullptr);
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  ~Queue();

  Budget& budget() const { return *budget_; }
  uint64_t ino() const { return ino_; }
  const Settings& settings() const { return settings_; }
  // New settings take effect at once: room made by a larger maxmsg goes to
  // blocked writers; a smaller msgsize affects later writes only.
  void configure(const Settings& settings);
  // Whether `settings` may replace the queue's: 0, -EBUSY (a queue holding
  // messages cannot become a topic) or -EINVAL (a topic subscribes to nothing).
  int check(const Settings& settings) const;

  // SPEC section 13. A topic hands each message written to it to its
  // subscribers: the descriptors open on it for reading, and the queues
  // whose user.mq.subscribe names it. It keeps none itself.
  bool is_topic() const { return settings_.kind == QueueKind::topic; }
  // A descriptor opened for reading on this topic: its own subscription, a
  // queue that only `file` reads, which gets every message published from
  // now on while `file` is open.
  std::shared_ptr<Queue> subscribe(OpenFile& file);
  // Ends a descriptor's subscription (its file closes).
  void unsubscribe();
  // A subscriber made room or left, or the topic's subscribers changed: its
  // blocked writers may go on.
  void room_made();
  // Messages a full subscriber missed (overflow=drop), or, for a topic,
  // messages no subscriber took and those its descriptors missed.
  uint64_t dropped() const { return dropped_; }
  // A topic's subscribers now.
  uint64_t subscribers() const;

  const MessageStore& messages() const { return store_; }
  // Messages a reader can take now, and their bytes.
  uint64_t curmsgs() const { return store_.count() + fetched_.count(); }
  uint64_t curbytes() const { return store_.bytes() + fetched_.bytes(); }
  // Messages leased to readers, or returned and waiting for their retry delay.
  uint64_t inflight() const { return leases_.count(); }
  uint64_t sent() const { return sent_; }
  // Messages taken for good: read in auto mode, or acknowledged.
  uint64_t received() const { return received_; }
  uint64_t dead_lettered() const { return dead_lettered_; }
  // Age of the oldest queued message, 0 when none is.
  int64_t oldest_ms() const;
  pid_t lspid() const { return lspid_; }
  pid_t lrpid() const { return lrpid_; }
  Times& times() { return times_; }
  const Times& times() const { return times_; }

  // A read on `file` would not block.
  bool readable(const OpenFile& file) const;
  // A write would not block.
  bool writable() const { return removed_ || (remote_ ? has_room() : senders_.empty() && has_room()); }

  // A read(2) of up to `size` bytes for `file`. It is answered now — the
  // bytes, or EMSGSIZE when the next u32 frame does not fit in `size`, or
  // EAGAIN when the queue is empty and the file is O_NONBLOCK — or parked
  // until a message comes for it or recv_timeout_ms passes (EAGAIN, answered
  // at once, when the mount's waiters are at their cap).
  //
  // Framing (SPEC section 7): in stream mode a read carries as many whole
  // messages as fit (line: the messages' bytes; u32: each with its length);
  // in message mode, one.
  //
  // In explicit acknowledgement mode every message the read carries is
  // leased to `file` instead of taken (SPEC section 11). In peek mode the
  // read returns the next queued message after the last one the file
  // peeked, or end of file, and takes nothing.
  void receive(OpenFile& file, std::size_t size, pid_t pid, Clock::time_point now, ReadRequest& request);

  // A write(2) of `bytes` from `file`, answered now or parked until there is
  // room or send_timeout_ms passes. Refused with nothing queued: EMSGSIZE,
  // ENOSPC (the mount's byte budget), EAGAIN (full and O_NONBLOCK, or the
  // mount's waiters at their cap). Everything the write needs is allocated
  // before it is answered, and its message is queued only once the writer
  // got the answer.
  //
  // A framed write (SPEC section 7) is split into messages, queued one by
  // one as a pipe takes bytes: when the queue fills part way, an O_NONBLOCK
  // write reports the bytes consumed so far (a short write) and a blocking
  // one waits with the rest; a bad message after some were queued is
  // reported as a short write too.
  void send(OpenFile& file, std::span<const std::byte> bytes, pid_t pid, Clock::time_point now,
            WriteRequest& request);

  // What ends a message: a close(2) (FLUSH), an fsync(2), or the close the
  // kernel makes for a writer that a signal killed.
  enum class Ending { close, fsync, killed };

  // Ends the message under way in `file`, answering `request` once
  // (accept(0): done).
  //
  // File framing (SPEC section 14): the bytes the file wrote since its last
  // message are one message. It is queued when the request is answered 0;
  // a full queue parks the request until there is room or send_timeout_ms
  // passes, or fails it with EAGAIN when the file is O_NONBLOCK (the bytes
  // stay for the next close of the open file). A killed writer's bytes are
  // dropped instead. A close with nothing written since the last message
  // sends nothing.
  // Other framings: a close is as flush(); an fsync changes nothing.
  void end_message(OpenFile& file, pid_t pid, Clock::time_point now, Ending ending, WriteRequest& request);

  // The unfinished last line of a line-framed writer is sent as it is (when
  // the queue is full, as soon as there is room, with no one waiting for
  // it). Bytes held under file framing, or an unfinished u32 frame, are
  // dropped: this is the last close (RELEASE), whose FLUSH sent the message
  // unless its writer was killed. 0, or -ENOSPC / -EAGAIN when the mount's
  // caps left no room to keep the line.
  int flush(OpenFile& file, pid_t pid, Clock::time_point now);

  // SPEC section 11. The message `file` holds under `id` (0: all it holds) is
  // taken for good (ack) or returned (nack): 0, -ETIMEDOUT (its lease ran
  // out; for 0: it held none, and one ran out) or -ENOENT (it holds no such
  // message).
  int ack(OpenFile& file, uint64_t id);
  int nack(OpenFile& file, uint64_t id, Clock::time_point now);

  // SPEC section 12: `file`'s reads take what `selection` takes from now on
  // (a read of it that waits, too).
  void select(OpenFile& file, const Selection& selection);
  // `file`'s read mode from now on (MQFS_IOC_SET_READ_MODE).
  void set_read_mode(OpenFile& file, std::optional<ReadMode> mode);

  // Ends one wait with `error`; nothing is taken or queued for it.
  void cancel(Waiter& waiter, int error);
  // Ends every wait with `error` (the daemon is going away).
  void cancel_all(int error);

  // Drops every queued message (truncate to 0); leased ones stay leased.
  void purge();
  // The queue's name is going: the store forgets every message of it, queued
  // or in flight (the messages themselves stay while an open file holds the
  // queue).
  void drop_records(bool queued_only = false);

  // Notifies `watch` at the next change of readiness (once).
  void watch(OpenFile& file, std::unique_ptr<Watch> watch);

  // The queue's name was removed (rm, or mv over it). It keeps counting
  // against max_nodes while an open file holds it, and no longer; its store
  // no longer records it.
  void unlinked(NodeCharge charge);

  // The queue as its store kept it: counters, and messages in queue order.
  void restore(const store::QueueState& state, std::vector<MessagePtr> messages);
  // Calls `visit(Message&)` for every message, queued or in flight (the
  // store's compaction).
  template <class Visit>
  void for_each_message(Visit visit) {
    store_.for_each_mutable(visit);
    leases_.for_each_message(visit);
  }

  // SPEC section 10 (remote.cpp): a queue whose messages a server holds.
  // Its answers to this queue's requests (see Remote):
  // The messages of the write `ticket` were queued with `ids` (those
  // listed, when the queue filled part way), or refused; false when its
  // writer did not get the answer and they must be withdrawn.
  bool remote_sent(uint64_t ticket, RemoteStatus status, std::span<const uint64_t> ids);
  // Messages taken for this mount's readers, in queue order.
  void remote_taken(RemoteStatus status, std::vector<MessagePtr> messages);
  // What changed on the server, for the mirror: a message queued (sent, or
  // given back), messages taken by a reader of any mount, room made (an
  // acknowledgement, a larger maxmsg), every queued message dropped.
  void remote_queued(MessagePtr message);
  void remote_unqueued(std::span<const uint64_t> ids);
  void remote_room();
  void remote_purged();
  // The server's copy, at mount or after events may have been missed.
  void remote_reset(std::vector<MessagePtr> queued);
  // The queue was removed on the server: every wait and every later
  // request on it fail with EIDRM.
  void remote_removed();
  bool removed() const { return removed_; }
  // The mount is going away: what was taken for readers goes back now.
  void remote_unmount() { return_fetched(); }

  std::size_t receivers_waiting() const { return receivers_.size(); }
  std::size_t senders_waiting() const { return senders_.size(); }

 private:
  void queue_or_wait(OpenFile& file, MessagePtr message, pid_t pid, Clock::time_point now, std::size_t n,
                     WriteRequest& request);
  void append_to_message(OpenFile& file, std::span<const std::byte> bytes, WriteRequest& request);
  void send_frames(OpenFile& file, std::span<const std::byte> bytes, pid_t pid, Clock::time_point now,
                   WriteRequest& request);
  int read_now(OpenFile& file, std::size_t size, pid_t pid, Receiver& to);
  int read_message(OpenFile& file, std::size_t size, pid_t pid, Receiver& to);
  int read_batch(OpenFile& file, std::size_t size, pid_t pid, Receiver& to);
  int read_peek(OpenFile& file, std::size_t size, Receiver& to);
  MessagePtr copy_rest(const Message& message, std::size_t read);
  int release(OpenFile& file, uint64_t id, std::vector<MessagePtr>& messages);
  void delivered(OpenFile& file, Message& message);
  void hold(OpenFile& file, MessagePtr message);
  void taken(OpenFile& file, pid_t pid);
  void acknowledged(const Message& message);
  void give_back(MessagePtr message, Clock::time_point now);
  void take_dead_letter(Queue& from, MessagePtr message);
  void expire_leases(Clock::time_point now);
  void rearm();
  int prepare(const Message& message);
  void record(Message& message);
  void withdraw(const Message& message);
  void enqueue(MessagePtr message, pid_t pid) noexcept;
  int enqueue_now(MessagePtr message, pid_t pid);
  void dequeued(const Message& message);
  // Leased messages hold their place: they may come back.
  // A topic has room when every subscriber that must take its next message has.
  bool has_room() const {
    if (remote_) return !remote_full_;
    return is_topic() ? subscribers_have_room()
                      : store_.count() + leases_.count() < static_cast<uint64_t>(settings_.maxmsg);
  }

  // SPEC section 13 (topic.cpp).
  bool active_subscription() const;
  template <class Visit>
  void for_each_subscriber(Visit visit) const;
  bool subscribers_have_room() const;
  int prepare_publish(const Message& message);
  uint64_t publish_dropped() const;
  void record_publish(const Message& message, int sign);
  void discard_publish();
  void release_body() noexcept;
  void publish(MessagePtr message, pid_t pid) noexcept;
  void take_copy(MessagePtr copy, pid_t pid) noexcept;
  void feed_subscribers();
  Queue* leave_topic();
  void wake_topics();
  void give_id(Message& message);

  struct Progress {
    std::size_t used = 0;  // bytes of the input turned into queued messages or held
    int error = 0;         // the message under way was refused
    bool full = false;     // stopped for want of room
  };
  Progress write_frames(OpenFile& file, Framing framing, std::span<const std::byte> input, pid_t pid);
  bool resume(SendWaiter& writer);
  bool wait(List<Waiter>& line, std::unique_ptr<Waiter> waiter, int64_t timeout_ms, Clock::time_point now);
  void serve_receivers();
  std::unique_ptr<Waiter> take_waiter(Waiter& waiter);
  void settle();
  void notify_watchers();

  // SPEC section 10 (remote.cpp).
  MessageStore& source() { return remote_ ? fetched_ : store_; }
  void send_remote(OpenFile* file, MessagePtr message, pid_t pid, Clock::time_point now, std::size_t n,
                   WriteRequest* request);
  void send_frames_remote(OpenFile& file, std::span<const std::byte> bytes, pid_t pid, Clock::time_point now,
                          WriteRequest& request);
  void frames_queued(SendWaiter& writer, std::span<const uint64_t> ids);
  bool frames_sent(SendWaiter& writer);
  void pump_sends();
  void fetch(const OpenFile& file, std::size_t size);
  void fetch_for_waiters();
  void return_fetched();
  void linger_fetched();
  void linger_expired(Clock::time_point now);
  void unmirror(uint64_t id);
  bool message_sent(SendWaiter& writer, std::span<const uint64_t> ids);
  void mirror(MessagePtr message);

  friend class OpenFile;
  void opened() { ++open_files_; }
  // The last close of `file`: the messages it holds are returned.
  void closed(OpenFile& file);

  // An entry of the queue's on the mount's timer, calling `Expired` when
  // its deadline passes: the earliest lease or delay (expire_leases), and
  // how long what was taken ahead waits for a read (linger_expired).
  template <void (Queue::*Expired)(Clock::time_point)>
  class Timer final : public Timed {
   public:
    explicit Timer(Queue& queue) : queue_(&queue) {}
    std::optional<Clock::time_point> armed;

   private:
    void expired(Clock::time_point now) override {
      armed.reset();
      (queue_->*Expired)(now);
    }
    Queue* queue_;
  };

  Budget* budget_;
  Timeouts* timeouts_;
  Settings settings_;
  MessageStore store_;
  store::Store* backing_;  // where changes are recorded; null once the name is gone
  uint64_t ino_;
  QueueFinder* finder_;
  uint64_t last_id_ = 0;
  Leases leases_;
  Timer<&Queue::expire_leases> lease_timer_{*this};
  List<Waiter> receivers_;  // ReceiveWaiters, in arrival order
  List<Waiter> senders_;    // SendWaiters, in arrival order
  List<OpenFile> watchers_;
  uint64_t sent_ = 0;
  uint64_t received_ = 0;
  uint64_t dead_lettered_ = 0;
  bool dead_letter_warned_ = false;  // the log told of an unusable dead_letter since the last configure()
  pid_t lspid_ = 0;
  pid_t lrpid_ = 0;
  Times times_;
  std::size_t open_files_ = 0;
  NodeCharge unlinked_charge_;  // held from unlink until the last close

  // SPEC section 13.
  uint64_t dropped_ = 0;
  Queue* topic_ = nullptr;          // a descriptor's subscription: its topic, while it has one
  OpenFile* subscriber_ = nullptr;  // ... and the file that reads it
  List<Queue> subscriptions_;       // a topic: its descriptors' subscriptions
  bool settling_ = false;           // in settle(): a subscriber's room waits for the loop
  // A publish under way: the body its copies share, the subscribers that
  // take a copy, and how many full subscribers miss it (overflow=drop).
  SharedBody* body_ = nullptr;
  std::vector<std::pair<Queue*, MessagePtr>> copies_;
  std::vector<Queue*> missed_;
  std::vector<Queue*> fed_;  // subscribers given copies whose readers wait to be served

  // SPEC section 10: store_ is the mirror of the server's queued messages.
  Remote* remote_ = nullptr;
  MessageStore fetched_;  // taken from the server for this mount's readers
  std::unordered_map<uint64_t, std::pair<Type, Priority>> mirrored_;  // store_'s messages, by id
  uint64_t next_ticket_ = 1;
  bool remote_full_ = false;  // the server said full, and no room was made since
  bool fetching_ = false;     // a take is under way
  bool fetch_stale_ = false;  // the server had nothing the mirror showed: it is being read again
  bool fetch_one_ = false;    // the front message is larger than the read asking for it
  static constexpr uint32_t kMostFetched = 256;  // messages one framed read asks for at once
  static constexpr uint32_t kPrefetched = 16;    // ... and any other read, for the reads after it
  static constexpr std::size_t kPrefetchedBytes = 4 << 20;
  // Messages taken for readers that are not there wait this long for the
  // next read before they go back.
  static constexpr std::chrono::milliseconds kLinger{5};
  Timer<&Queue::linger_expired> linger_timer_{*this};
  uint64_t mirror_last_id_ = 0;
  bool removed_ = false;
};

}  // namespace mqfs::engine
