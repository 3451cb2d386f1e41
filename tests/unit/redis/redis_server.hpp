// A redis-server of the test's own, on a free port of 127.0.0.1, with no
// persistence, stopped by its PID; and a blocking client of it. Under
// CI=true a missing redis-server fails the test instead of skipping it.
#pragma once

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_calls.hpp"

namespace mqfs::store::redis::testing {

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* context) const { redisFree(context); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

inline int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (bind(s, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(s, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(s);
    return -1;
  }
  close(s);
  return ntohs(address.sin_port);
}

inline bool on_path(const char* program) {
  const std::string command = std::string("command -v ") + program + " >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

class RedisServer {
 public:
  // Starts redis-server on a free port with `extra` arguments (after
  // `leading` ones: a sentinel's configuration file and --sentinel);
  // started() says whether it answers PING.
  explicit RedisServer(std::vector<std::string> extra = {}, bool start_now = true,
                       std::vector<std::string> leading = {})
      : port_(free_port()), extra_(std::move(extra)), leading_(std::move(leading)) {
    if (start_now) start();
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer() { stop(); }

  // Starts it (again) on the same port, empty.
  bool start() {
    if (port_ < 0 || pid_ > 0) return false;
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test, however it ends
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      const std::string port = std::to_string(port_);
      std::vector<const char*> argv{"redis-server"};
      for (const std::string& arg : leading_) argv.push_back(arg.c_str());
      for (const char* arg : {"--port", port.c_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", "/tmp", "--loglevel", "warning"})
        argv.push_back(arg);
      for (const std::string& arg : extra_) argv.push_back(arg.c_str());
      argv.push_back(nullptr);
      execvp("redis-server", const_cast<char* const*>(argv.data()));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (ContextPtr c = connect()) {
        ReplyPtr pong(static_cast<redisReply*>(redisCommand(c.get(), "PING")));
        if (pong && (pong->type == REDIS_REPLY_STATUS || pong->type == REDIS_REPLY_ERROR)) return started_ = true;
      }
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {  // it did not start
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // Kills it (SIGKILL: as a crash or a power cut would).
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    started_ = false;
  }
  // Makes it hang, with its connections open, and go on.
  // (Never kill(-1): that would signal every process.)
  void pause() {
    if (pid_ > 0) kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) kill(pid_, SIGCONT);
  }

  bool started() const { return started_; }
  int port() const { return port_; }

  // A new blocking connection, with a 5 s timeout on every call; null when
  // it cannot connect.
  ContextPtr connect() const {
    const timeval timeout{5, 0};
    ContextPtr c(redisConnectWithTimeout("127.0.0.1", port_, timeout));
    if (!c || c->err) return nullptr;
    redisSetTimeout(c.get(), timeout);
    return c;
  }

 private:
  int port_ = -1;
  std::vector<std::string> extra_;
  std::vector<std::string> leading_;
  pid_t pid_ = -1;
  bool started_ = false;
};

// Runs `command` on `c`; null on a connection error.
inline ReplyPtr run(redisContext* c, const Command& command) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const std::string& arg : command.args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  return ReplyPtr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data())));
}

// Skips (or, under CI=true, fails) a test on a machine without redis-server.
#define MQFS_REQUIRE_REDIS_SERVER()                                                   \
  do {                                                                                \
    if (!::mqfs::store::redis::testing::on_path("redis-server")) {                    \
      if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")        \
        FAIL() << "redis-server is not installed (apt-get install redis-server)";     \
      GTEST_SKIP() << "redis-server is not installed";                                \
    }                                                                                 \
  } while (0)

}  // namespace mqfs::store::redis::testing
