#include "daemon/logging.hpp"

#include <fuse_log.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <cstdarg>
#include <cstdio>
#include <string>

namespace mqfs::daemon {

namespace {

// libfuse sometimes writes one message in several calls; a line is logged
// when its newline arrives.
void from_libfuse(fuse_log_level level, const char* format, va_list ap) {
  static std::string pending;
  char text[1024];
  std::vsnprintf(text, sizeof text, format, ap);
  pending += text;
  if (pending.empty() || pending.back() != '\n') return;
  pending.pop_back();
  const std::string line = std::move(pending);
  pending.clear();
  switch (level) {
    case FUSE_LOG_EMERG: case FUSE_LOG_ALERT: case FUSE_LOG_CRIT: case FUSE_LOG_ERR:
      spdlog::error("{}", line); break;
    case FUSE_LOG_WARNING: spdlog::warn("{}", line); break;
    case FUSE_LOG_NOTICE: case FUSE_LOG_INFO: spdlog::info("{}", line); break;
    case FUSE_LOG_DEBUG: spdlog::debug("{}", line); break;
  }
}

void install(std::shared_ptr<spdlog::logger> logger, const std::string& level) {
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
  fuse_set_log_func(from_libfuse);
}

}  // namespace

void log_to_stderr(const std::string& level) {
  spdlog::drop_all();
  auto logger = spdlog::stderr_logger_st("mqfs");
  logger->set_pattern("mqfs: %^%l%$: %v");
  install(std::move(logger), level);
}

void log_in_background(const std::string& level, const std::string& file) {
  spdlog::drop_all();
  if (!file.empty()) {
    auto logger = spdlog::basic_logger_st("mqfs", file);
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e mqfs[%P] %l: %v");
    install(std::move(logger), level);
  } else {
    install(spdlog::syslog_logger_st("mqfs", "mqfs", LOG_PID, LOG_DAEMON), level);
  }
}

}  // namespace mqfs::daemon
