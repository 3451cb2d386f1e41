// One connection to Redis for the daemon's loop (SPEC section 10): hiredis's
// asynchronous client, its socket and timers behind one descriptor that the
// loop watches, so that no thread waits for Redis.
//
// What the mount promises while Redis cannot be reached lives here:
//   - a call is answered exactly once: with its reply, or with none (EIO)
//     when no reply came within `timeout` (redis_timeout_ms) of the call —
//     whether Redis was down, unreachable, or took the call and hung — or
//     the connection it went out on was lost (its outcome is then unknown:
//     the caller decides whether to make it again);
//   - calls made while the connection is down wait for it, up to the same
//     timeout, and go out, in order, once it is back;
//   - a connection that fails or hangs is dropped and made again, after a
//     delay that grows from 50 ms to 1 s while Redis stays away; each new
//     connection first authenticates, selects the database, runs the
//     connection's set-up commands (loading the server functions) and
//     subscribes again, and then tells its owner (connected()), who must
//     assume it missed every event meanwhile;
//   - with sentinels, each new connection asks them in turn where the master
//     is, and checks that the server it reached is the master (a failover
//     may have made it a replica since).
// hiredis resolves a host name with getaddrinfo(3) at each connection, on
// the calling thread: a name whose resolver is slow holds the loop that
// long. Addresses, or names in /etc/hosts, never wait.
#pragma once

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/redis_calls.hpp"

namespace mqfs::store::redis {

using Clock = std::chrono::steady_clock;

// Where Redis is: redis://[:PASSWORD@]HOST[:PORT][/DB], or
// sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER: the sentinels
// (port 26379 unless given) that know where the master MASTER is now.
struct Address {
  std::string host;
  int port = 6379;
  std::string password;  // empty: none
  int db = 0;
  struct Sentinel {
    std::string host;
    int port;
  };
  std::vector<Sentinel> sentinels;  // when set, host and port are unused
  std::string master;
};
// The address a URL names, or nullopt with `error` saying what is wrong.
std::optional<Address> parse_url(std::string_view url, std::string* error);
// Whether `host` is this machine (127.0.0.0/8, ::1, localhost).
bool is_loopback(std::string_view host);

class Connection {
 public:
  // A call's reply, or null when none came in time (EIO). The reply lives
  // until the callback returns.
  using Callback = std::function<void(const redisReply* reply)>;

  // `setup`: commands every new connection runs first (their replies are
  // checked: an error reply drops the connection); `connected`: called once
  // each new connection is ready.
  Connection(Address address, std::chrono::milliseconds timeout, std::vector<Command> setup,
             std::function<void()> connected);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // Answers every call still waiting with none.
  ~Connection();

  // A callback may make calls; those made while the connection is going
  // away wait for the next one.
  void call(Command command, Callback done);
  // From now on, and on every new connection, the connection carries only
  // the messages published on `channel`, each passed to `message`: a
  // connection either subscribes or makes calls.
  void subscribe(std::string channel, std::function<void(std::string_view)> message);

  // Readable when the socket is ready; the loop calls handle() then, and at
  // next_deadline().
  int fd() const { return epoll_; }
  void handle(Clock::time_point now);
  std::optional<Clock::time_point> next_deadline() const;

  bool connected() const { return state_ == State::ready; }
  // No call waits for its answer.
  bool idle() const { return in_flight_.empty() && waiting_.empty(); }
  // Writes the calls made so far to the socket now, rather than when the
  // loop next finds it writable: one wake-up less per call.
  void flush();
  // New connections made so far (the first one included).
  uint64_t connections() const { return connections_; }

 private:
  enum class State { down, connecting, ready };
  struct Call {
    Command command;
    Callback done;
    Clock::time_point deadline;
  };
  struct Sent {
    Connection* connection;
    Callback done;
  };

  void connect(Clock::time_point now);
  void lost(Clock::time_point now);
  void drop(Clock::time_point now);
  void ready();
  void send_subscribe();
  void ask_sentinel(Clock::time_point now);
  void send(Command command, Callback done, Clock::time_point deadline);
  void on_connect(int status);
  void on_reply(redisReply* reply, Sent* sent);
  void fail_late(Clock::time_point now);
  void want(std::optional<bool> read, std::optional<bool> write);
  void watch();

  static void connect_callback(const redisAsyncContext* context, int status);
  static void disconnect_callback(const redisAsyncContext* context, int status);
  static void reply_callback(redisAsyncContext* context, void* reply, void* data);
  static void message_callback(redisAsyncContext* context, void* reply, void* data);

  Address address_;
  Address::Sentinel target_;  // where the data connection goes: the address, or the master a sentinel named
  std::size_t sentinel_ = 0;  // the sentinel to ask next
  bool asking_ = false;       // the connection is to a sentinel
  bool resolved_ = false;     // a sentinel named target_ since the last master was lost
  std::chrono::milliseconds timeout_;
  std::vector<Command> setup_;
  std::function<void()> connected_;
  std::string channel_;
  std::function<void(std::string_view)> message_;

  int epoll_ = -1;
  redisAsyncContext* context_ = nullptr;
  State state_ = State::down;
  bool reading_ = false;
  bool writing_ = false;
  int watched_fd_ = -1;
  uint32_t watched_events_ = 0;
  Clock::time_point connect_at_{};     // down: when to try again
  Clock::time_point connect_by_{};     // connecting: when to give up
  std::chrono::milliseconds backoff_{};
  std::deque<Call> waiting_;               // made while down, in order
  std::deque<Clock::time_point> in_flight_;  // deadlines of calls sent, in order
  uint64_t connections_ = 0;
  bool closing_ = false;
};

}  // namespace mqfs::store::redis
