#include "store/redis_connection.hpp"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <charconv>
#include <system_error>

#include <spdlog/spdlog.h>

namespace mqfs::store::redis {

namespace {

constexpr std::chrono::milliseconds kFirstRetry{50};
constexpr std::chrono::milliseconds kLastRetry{1000};

bool parse_number(std::string_view text, int min, int max, int& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc{} && end == text.data() + text.size() && !text.empty() && value >= min && value <= max;
}

}  // namespace

namespace {

// "HOST[:PORT]" or "[IPv6][:PORT]"; false with `error` set when malformed.
bool parse_host_port(std::string_view text, std::string& host, int& port, std::string* error) {
  std::string_view name = text;
  std::string_view number;
  bool has_port = false;
  if (text.starts_with('[')) {  // [IPv6]
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      *error = "an IPv6 address ends with ]";
      return false;
    }
    name = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') {
        *error = "a port follows the host after ':'";
        return false;
      }
      number = text.substr(close + 2);
      has_port = true;
    }
  } else if (const std::size_t colon = text.find(':'); colon != std::string_view::npos) {
    name = text.substr(0, colon);
    number = text.substr(colon + 1);
    has_port = true;
  }
  if (name.empty()) {
    *error = "the URL names no host";
    return false;
  }
  if (has_port && !parse_number(number, 1, 65535, port)) {
    *error = "the port is a number from 1 to 65535";
    return false;
  }
  host = name;
  return true;
}

}  // namespace

std::optional<Address> parse_url(std::string_view url, std::string* error) {
  constexpr std::string_view kRedis = "redis://";
  constexpr std::string_view kSentinel = "sentinel://";
  const bool sentinel = url.starts_with(kSentinel);
  if (!sentinel && !url.starts_with(kRedis)) {
    *error = "a Redis URL starts with redis:// or sentinel://";
    return std::nullopt;
  }
  std::string_view rest = url.substr(sentinel ? kSentinel.size() : kRedis.size());
  Address address;
  if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view user = rest.substr(0, at);
    if (!user.starts_with(':') || user.size() == 1) {
      *error = "the password comes as redis://:PASSWORD@HOST";
      return std::nullopt;
    }
    address.password = user.substr(1);
    rest = rest.substr(at + 1);
  }
  const std::size_t slash = rest.find('/');
  const std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  rest = rest.substr(0, slash);
  if (sentinel) {
    if (path.empty()) {
      *error = "a sentinel URL ends with /MASTER, the name the sentinels monitor";
      return std::nullopt;
    }
    address.master = path;
    for (;;) {
      const std::size_t comma = rest.find(',');
      Address::Sentinel one{.host = {}, .port = 26379};
      if (!parse_host_port(rest.substr(0, comma), one.host, one.port, error)) return std::nullopt;
      address.sentinels.push_back(std::move(one));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    return address;
  }
  if (slash != std::string_view::npos && !parse_number(path, 0, INT32_MAX, address.db)) {
    *error = "the database is a number: redis://HOST/DB";
    return std::nullopt;
  }
  if (!parse_host_port(rest, address.host, address.port, error)) return std::nullopt;
  return address;
}

bool is_loopback(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  const std::string text(host);
  return inet_pton(AF_INET, text.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

Connection::Connection(Address address, std::chrono::milliseconds timeout, std::vector<Command> setup,
                       std::function<void()> connected)
    : address_(std::move(address)),
      timeout_(timeout),
      setup_(std::move(setup)),
      connected_(std::move(connected)),
      epoll_(epoll_create1(EPOLL_CLOEXEC)),
      backoff_(kFirstRetry) {
  target_.host = address_.host;
  target_.port = address_.port;
  if (epoll_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  connect(Clock::now());
}

Connection::~Connection() {
  while (!waiting_.empty()) {
    Call call = std::move(waiting_.front());
    waiting_.pop_front();
    call.done(nullptr);
  }
  closing_ = true;  // a call made by a callback from here on gets none at once
  connected_ = nullptr;
  message_ = nullptr;
  if (context_) redisAsyncFree(context_);  // answers the calls sent with none
  close(epoll_);
}

void Connection::call(Command command, Callback done) {
  if (closing_) return done(nullptr);
  const Clock::time_point deadline = Clock::now() + timeout_;
  if (state_ == State::ready && waiting_.empty())
    send(std::move(command), std::move(done), deadline);
  else
    waiting_.push_back({std::move(command), std::move(done), deadline});
}

void Connection::subscribe(std::string channel, std::function<void(std::string_view)> message) {
  channel_ = std::move(channel);
  message_ = std::move(message);
  if (state_ == State::ready) send_subscribe();
}

void Connection::send_subscribe() {
  redisAsyncCommand(context_, message_callback, this, "SUBSCRIBE %b", channel_.data(), channel_.size());
}

void Connection::send(Command command, Callback done, Clock::time_point deadline) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(command.args.size());
  lengths.reserve(command.args.size());
  for (const std::string& arg : command.args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  auto* sent = new Sent{this, std::move(done)};
  if (redisAsyncCommandArgv(context_, reply_callback, sent, static_cast<int>(argv.size()), argv.data(),
                            lengths.data()) != REDIS_OK) {
    // The context is going away; the call gets no reply.
    Callback failed = std::move(sent->done);
    delete sent;
    failed(nullptr);
    return;
  }
  in_flight_.push_back(deadline);
}

void Connection::connect(Clock::time_point now) {
  // With sentinels, a connection first asks one of them where the master is.
  asking_ = !address_.sentinels.empty() && !resolved_;
  const std::string& host = asking_ ? address_.sentinels[sentinel_].host : target_.host;
  const int port = asking_ ? address_.sentinels[sentinel_].port : target_.port;
  context_ = redisAsyncConnect(host.c_str(), port);
  if (!context_ || context_->err) {
    spdlog::debug("redis {}:{}: {}", host, port, context_ ? context_->errstr : "out of memory");
    if (context_) redisAsyncFree(context_);
    return lost(now);
  }
  state_ = State::connecting;
  connect_by_ = now + timeout_;
  context_->data = this;
  context_->ev.data = this;
  context_->ev.addRead = [](void* self) { static_cast<Connection*>(self)->want(true, std::nullopt); };
  context_->ev.delRead = [](void* self) { static_cast<Connection*>(self)->want(false, std::nullopt); };
  context_->ev.addWrite = [](void* self) { static_cast<Connection*>(self)->want(std::nullopt, true); };
  context_->ev.delWrite = [](void* self) { static_cast<Connection*>(self)->want(std::nullopt, false); };
  context_->ev.cleanup = [](void* self) { static_cast<Connection*>(self)->want(false, false); };
  redisAsyncSetDisconnectCallback(context_, disconnect_callback);
  redisAsyncSetConnectCallback(context_, connect_callback);  // waits for the socket to be writable
}

// hiredis's wishes: to read, to write (none: keep as it is).
void Connection::want(std::optional<bool> read, std::optional<bool> write) {
  if (read) reading_ = *read;
  if (write) writing_ = *write;
  watch();
}

// Keeps the epoll set on the socket and the events hiredis wants.
void Connection::watch() {
  const int fd = context_ ? context_->c.fd : -1;
  const uint32_t events = (reading_ ? uint32_t{EPOLLIN} : 0u) | (writing_ ? uint32_t{EPOLLOUT} : 0u);
  if (fd != watched_fd_ && watched_fd_ >= 0) epoll_ctl(epoll_, EPOLL_CTL_DEL, watched_fd_, nullptr);
  if (fd < 0 || (!reading_ && !writing_)) {
    if (fd == watched_fd_ && fd >= 0) epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    watched_fd_ = -1;
    return;
  }
  epoll_event event{};
  event.events = events;
  if (fd != watched_fd_) {
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event);
  } else if (events != watched_events_) {
    epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &event);
  }
  watched_fd_ = fd;
  watched_events_ = events;
}

// The connection is gone, or never came: hiredis or drop() frees it, and
// every call sent on it is answered with none. The next attempt comes after
// the backoff — at once when a sentinel just named the master; a lost
// master is asked for again, a sentinel that failed gives way to the next.
void Connection::lost(Clock::time_point now) {
  const bool named = asking_ && resolved_;
  if (asking_ && !resolved_) sentinel_ = (sentinel_ + 1) % address_.sentinels.size();
  if (!asking_ && !address_.sentinels.empty()) resolved_ = false;
  context_ = nullptr;
  state_ = State::down;
  in_flight_.clear();
  connect_at_ = named ? now : now + backoff_;
  if (!named) backoff_ = std::min(backoff_ * 2, kLastRetry);
}

// A connection that failed to come or hangs is given up.
void Connection::drop(Clock::time_point now) {
  if (redisAsyncContext* context = context_) {
    context_ = nullptr;       // so that its disconnect callback leaves the rest to here
    redisAsyncFree(context);  // answers the calls sent on it with none
  }
  lost(now);
}

void Connection::connect_callback(const redisAsyncContext* context, int status) {
  static_cast<Connection*>(context->data)->on_connect(status);
}

void Connection::on_connect(int status) {
  const Clock::time_point now = Clock::now();
  if (status != REDIS_OK) {  // hiredis frees the context after this returns
    spdlog::debug("redis: connecting failed: {}", context_->errstr);
    return lost(now);
  }
  if (asking_) return ask_sentinel(now);

  struct Step {
    Command command;
    std::function<bool(const redisReply*)> accepts;  // null: any reply but an error
  };
  std::vector<Step> setup;
  if (!address_.password.empty()) setup.push_back({Command{{"AUTH", address_.password}}, nullptr});
  if (address_.db != 0) setup.push_back({Command{{"SELECT", std::to_string(address_.db)}}, nullptr});
  if (!address_.sentinels.empty())  // the sentinel's answer may be out of date
    setup.push_back({Command{{"ROLE"}}, [](const redisReply* r) {
                       return r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                              r->element[0]->type == REDIS_REPLY_STRING &&
                              std::string_view(r->element[0]->str, r->element[0]->len) == "master";
                     }});
  for (const Command& command : setup_) setup.push_back({command, nullptr});
  auto remaining = std::make_shared<std::size_t>(setup.size());
  if (setup.empty()) return ready();
  for (Step& step : setup) {
    send(std::move(step.command),
         [this, remaining, accepts = std::move(step.accepts)](const redisReply* reply) {
           if (!reply) return;  // the connection went; the next one starts over
           if (reply->type == REDIS_REPLY_ERROR || (accepts && !accepts(reply))) {
             spdlog::error("redis {}:{}: setting up the connection failed: {}", target_.host, target_.port,
                           reply->type == REDIS_REPLY_ERROR ? std::string_view(reply->str, reply->len)
                                                            : std::string_view("not the master"));
             redisAsyncFree(context_);  // after this callback: its disconnect callback drops it
             return;
           }
           if (--*remaining == 0) ready();
         },
         now + timeout_);
  }
}

// The connection is set up: the subscription and the calls that waited go
// out, in order, and the owner learns of the new connection.
void Connection::ready() {
  state_ = State::ready;
  backoff_ = kFirstRetry;
  ++connections_;
  if (message_) send_subscribe();
  while (!waiting_.empty() && state_ == State::ready) {
    Call call = std::move(waiting_.front());
    waiting_.pop_front();
    send(std::move(call.command), std::move(call.done), call.deadline);
  }
  if (connected_) connected_();
}

// Asks the sentinel this connection reached for the master's address; the
// connection then closes and the next one goes there.
void Connection::ask_sentinel(Clock::time_point now) {
  send(Command{{"SENTINEL", "get-master-addr-by-name", address_.master}},
       [this](const redisReply* reply) {
         if (!reply) return;
         int port = 0;
         if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
             reply->element[0]->type == REDIS_REPLY_STRING && reply->element[1]->type == REDIS_REPLY_STRING &&
             parse_number({reply->element[1]->str, reply->element[1]->len}, 1, 65535, port)) {
           target_.host.assign(reply->element[0]->str, reply->element[0]->len);
           target_.port = port;
           resolved_ = true;
         } else {
           spdlog::error("redis: sentinel {}:{} does not know the master '{}'", address_.sentinels[sentinel_].host,
                         address_.sentinels[sentinel_].port, address_.master);
         }
         redisAsyncFree(context_);  // after this callback: its disconnect callback goes on
       },
       now + timeout_);
}

void Connection::disconnect_callback(const redisAsyncContext* context, int status) {
  auto* connection = static_cast<Connection*>(context->data);
  if (status != REDIS_OK) spdlog::debug("redis: connection lost: {}", context->errstr);
  if (connection->context_ != context) return;  // drop() is freeing it
  connection->lost(Clock::now());
}

void Connection::reply_callback(redisAsyncContext*, void* reply, void* data) {
  std::unique_ptr<Sent> sent(static_cast<Sent*>(data));
  sent->connection->on_reply(static_cast<redisReply*>(reply), sent.get());
}

void Connection::on_reply(redisReply* reply, Sent* sent) {
  if (!in_flight_.empty()) in_flight_.pop_front();
  // No reply: the connection is going away. A call made from this callback
  // waits for the next one.
  if (!reply && state_ == State::ready) state_ = State::down;
  sent->done(reply);
}

void Connection::message_callback(redisAsyncContext*, void* reply, void* data) {
  auto* connection = static_cast<Connection*>(data);
  const auto* r = static_cast<const redisReply*>(reply);
  if (!r || !connection->message_ || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  const redisReply* kind = r->element[0];
  const redisReply* payload = r->element[2];
  if (kind->type != REDIS_REPLY_STRING || std::string_view(kind->str, kind->len) != "message" ||
      payload->type != REDIS_REPLY_STRING)
    return;
  connection->message_({payload->str, payload->len});
}

void Connection::flush() {
  if (context_ && state_ == State::ready && writing_) redisAsyncHandleWrite(context_);
}

void Connection::handle(Clock::time_point now) {
  epoll_event events[2];
  const int n = epoll_wait(epoll_, events, 2, 0);
  for (int i = 0; i < n && context_; ++i) {
    const uint32_t e = events[i].events;
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) redisAsyncHandleRead(context_);
    if (context_ && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && writing_) redisAsyncHandleWrite(context_);
  }
  if (state_ == State::connecting && now >= connect_by_) drop(now);
  if (!in_flight_.empty() && in_flight_.front() <= now) drop(now);  // it hangs
  fail_late(now);
  if (state_ == State::down && !context_ && now >= connect_at_) connect(now);
}

// Calls that waited for a connection as long as the mount allows get none.
void Connection::fail_late(Clock::time_point now) {
  while (!waiting_.empty() && waiting_.front().deadline <= now) {
    Call call = std::move(waiting_.front());
    waiting_.pop_front();
    call.done(nullptr);
  }
}

std::optional<Clock::time_point> Connection::next_deadline() const {
  std::optional<Clock::time_point> next;
  const auto consider = [&](Clock::time_point t) {
    if (!next || t < *next) next = t;
  };
  if (state_ == State::down) consider(connect_at_);
  if (state_ == State::connecting) consider(connect_by_);
  if (!in_flight_.empty()) consider(in_flight_.front());
  if (!waiting_.empty()) consider(waiting_.front().deadline);
  return next;
}

}  // namespace mqfs::store::redis
