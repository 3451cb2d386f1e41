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

std::optional<Address> parse_url(std::string_view url, std::string* error) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) {
    *error = "a Redis URL starts with redis://";
    return std::nullopt;
  }
  std::string_view rest = url.substr(kScheme.size());
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
  if (const std::size_t slash = rest.find('/'); slash != std::string_view::npos) {
    if (!parse_number(rest.substr(slash + 1), 0, INT32_MAX, address.db)) {
      *error = "the database is a number: redis://HOST/DB";
      return std::nullopt;
    }
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest;
  std::string_view port;
  if (rest.starts_with('[')) {  // [IPv6]
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      *error = "an IPv6 address ends with ]";
      return std::nullopt;
    }
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') {
        *error = "a port follows the host after ':'";
        return std::nullopt;
      }
      port = rest.substr(close + 2);
      if (port.empty()) port = "x";
    }
  } else if (const std::size_t colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) port = "x";
  }
  if (host.empty()) {
    *error = "the URL names no host";
    return std::nullopt;
  }
  if (!port.empty() && !parse_number(port, 1, 65535, address.port)) {
    *error = "the port is a number from 1 to 65535";
    return std::nullopt;
  }
  address.host = host;
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
  if (epoll_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  connect(Clock::now());
}

Connection::~Connection() {
  while (!waiting_.empty()) {
    Call call = std::move(waiting_.front());
    waiting_.pop_front();
    call.done(nullptr);
  }
  connected_ = nullptr;
  message_ = nullptr;
  if (context_) redisAsyncFree(context_);  // answers the calls sent with none
  close(epoll_);
}

void Connection::call(Command command, Callback done) {
  const Clock::time_point deadline = Clock::now() + timeout_;
  if (state_ == State::ready && waiting_.empty())
    send(std::move(command), std::move(done), deadline);
  else
    waiting_.push_back({std::move(command), std::move(done), deadline});
}

void Connection::subscribe(std::string channel, std::function<void(std::string_view)> message) {
  channel_ = std::move(channel);
  message_ = std::move(message);
  if (state_ == State::ready)
    redisAsyncCommand(context_, message_callback, this, "SUBSCRIBE %b", channel_.data(), channel_.size());
}

void Connection::send(Command command, Callback done, Clock::time_point deadline) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
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
  context_ = redisAsyncConnect(address_.host.c_str(), address_.port);
  if (!context_ || context_->err) {
    spdlog::debug("redis {}:{}: {}", address_.host, address_.port, context_ ? context_->errstr : "out of memory");
    if (context_) redisAsyncFree(context_);
    context_ = nullptr;
    state_ = State::down;
    connect_at_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, kLastRetry);
    return;
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

// The connection is gone (it failed, hung, or never came): every call sent
// on it was answered with none; the next attempt comes after the backoff.
void Connection::drop(Clock::time_point now) {
  if (redisAsyncContext* context = context_) {
    context_ = nullptr;       // so that its disconnect callback leaves the rest to here
    redisAsyncFree(context);  // answers the calls sent on it with none
  }
  reading_ = writing_ = false;
  watch();
  state_ = State::down;
  in_flight_.clear();
  connect_at_ = now + backoff_;
  backoff_ = std::min(backoff_ * 2, kLastRetry);
}

void Connection::connect_callback(const redisAsyncContext* context, int status) {
  static_cast<Connection*>(context->data)->on_connect(status);
}

void Connection::on_connect(int status) {
  const Clock::time_point now = Clock::now();
  if (status != REDIS_OK) {
    // hiredis frees the context after this returns.
    spdlog::debug("redis {}:{}: {}", address_.host, address_.port, context_->errstr);
    context_ = nullptr;
    reading_ = writing_ = false;
    watched_fd_ = -1;  // its socket is about to close, which leaves the epoll set
    state_ = State::down;
    connect_at_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, kLastRetry);
    return;
  }
  std::vector<Command> setup;
  if (!address_.password.empty()) setup.push_back(Command{{"AUTH", address_.password}});
  if (address_.db != 0) setup.push_back(Command{{"SELECT", std::to_string(address_.db)}});
  setup.insert(setup.end(), setup_.begin(), setup_.end());
  auto remaining = std::make_shared<std::size_t>(setup.size());
  const auto ready = [this] {
    state_ = State::ready;
    backoff_ = kFirstRetry;
    ++connections_;
    if (message_)
      redisAsyncCommand(context_, message_callback, this, "SUBSCRIBE %b", channel_.data(), channel_.size());
    while (!waiting_.empty() && state_ == State::ready) {
      Call call = std::move(waiting_.front());
      waiting_.pop_front();
      send(std::move(call.command), std::move(call.done), call.deadline);
    }
    if (connected_) connected_();
  };
  if (setup.empty()) return ready();
  for (Command& command : setup) {
    send(std::move(command),
         [this, remaining, ready](const redisReply* reply) {
           if (!reply) return;  // the connection went; the next one starts over
           if (reply->type == REDIS_REPLY_ERROR) {
             spdlog::error("redis {}:{}: setting up the connection failed: {}", address_.host, address_.port,
                           std::string_view(reply->str, reply->len));
             redisAsyncFree(context_);  // after this callback: its disconnect callback drops it
             return;
           }
           if (--*remaining == 0) ready();
         },
         now + timeout_);
  }
}

void Connection::disconnect_callback(const redisAsyncContext* context, int status) {
  auto* connection = static_cast<Connection*>(context->data);
  if (status != REDIS_OK)
    spdlog::debug("redis {}:{}: connection lost: {}", connection->address_.host, connection->address_.port,
                  context->errstr);
  if (connection->context_ != context) return;  // drop() is freeing it
  connection->context_ = nullptr;
  connection->reading_ = connection->writing_ = false;
  connection->watched_fd_ = -1;
  connection->state_ = State::down;
  connection->in_flight_.clear();
  connection->connect_at_ = Clock::now() + connection->backoff_;
  connection->backoff_ = std::min(connection->backoff_ * 2, kLastRetry);
}

void Connection::reply_callback(redisAsyncContext*, void* reply, void* data) {
  std::unique_ptr<Sent> sent(static_cast<Sent*>(data));
  sent->connection->on_reply(static_cast<redisReply*>(reply), sent.get());
}

void Connection::on_reply(redisReply* reply, Sent* sent) {
  if (!in_flight_.empty()) in_flight_.pop_front();
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
  if (state_ == State::down && now >= connect_at_) connect(now);
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
