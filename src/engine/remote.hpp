// A queue shared by several mounts (SPEC section 10): its messages live on a
// server that decides who gets each one and whether the queue is full. The
// engine keeps, per queue, a copy of what the server has queued (the
// mirror: what poll, stat and peeking read), and the messages the server
// gave this mount for its readers; a read or write that needs the server's
// decision waits, like a blocked one, for its answer.
//
// The engine asks through Remote; the answers come back through the Queue's
// remote_*() calls, found by inode number, so that a queue gone meanwhile is
// simply not told (the Remote settles what it was given: a message queued
// for a writer that left is withdrawn, messages taken for no one go back).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/message.hpp"

namespace mqfs::engine {

class Queue;

enum class RemoteStatus {
  ok,
  full,    // send: the queue holds maxmsg messages, on all mounts together
  empty,   // take: nothing the selection takes is queued
  big,     // take: the first message does not fit the read
  gone,    // the queue was removed (EIDRM)
  failed,  // no answer in time, or the connection was lost (EIO)
  retry,   // publish: the names changed; ask again once they are read
};

class Remote {
 public:
  // The queue of inode `ino` is this one from now on, or no longer (it is
  // going away). Its mirror is filled once the server answered.
  virtual void attach(uint64_t ino, Queue& queue) = 0;
  virtual void detach(uint64_t ino, Queue& queue) = 0;

  // Queues `messages` in order while there is room; answered with
  // Queue::remote_sent(ticket, ...), with how many were queued. To a topic
  // (SPEC section 13): publishes them, to its descriptors' subscriptions and
  // to the queues `subscribers` that subscribe to it by name.
  virtual void send(uint64_t ino, uint64_t ticket, std::span<const Message* const> messages,
                    std::span<const uint64_t> subscribers = {}) = 0;
  // An open file of this mount reads topic `topic` through a subscription
  // of its own, a queue that gets every message published from now on
  // until unsubscribe(): returns the inode number it goes by here.
  virtual uint64_t subscribe(uint64_t topic, int64_t maxmsg) = 0;
  virtual void unsubscribe(uint64_t topic, uint64_t subscription) = 0;
  // Takes for this mount up to `most` messages `selection` takes, while each
  // with `header` bytes of framing fits `limit` bytes (0: one message of
  // any size); answered with Queue::remote_taken().
  virtual void take(uint64_t ino, const Selection& selection, uint32_t most, std::size_t limit,
                    std::size_t header) = 0;
  // A message the server gave this mount: taken for good (it is retried
  // until the server has it), or given back — after `delay_ms`, with its
  // delivery counted, or, when it never reached a reader, as if never taken.
  virtual void ack(uint64_t ino, const Message& message) = 0;
  virtual void release(uint64_t ino, const Message& message, int64_t delay_ms, bool delivered) = 0;
  // Moves a message this mount holds to the end of queue `to` (SPEC section 11).
  virtual void dead_letter(uint64_t ino, uint64_t to, const Message& message) = 0;
  // Drops every queued message (truncate).
  virtual void purge(uint64_t ino) = 0;
  // Reads the queue's queued messages again; answered with Queue::remote_reset().
  virtual void refresh(uint64_t ino) = 0;

 protected:
  ~Remote() = default;
};

}  // namespace mqfs::engine
