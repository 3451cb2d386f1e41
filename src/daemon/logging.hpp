// Logging through spdlog: stderr in the foreground, syslog when daemonized,
// a file when asked. libfuse's own messages go the same way.
#pragma once

#include <string>

namespace mqfs::daemon {

void log_to_stderr(const std::string& level);
// After daemonizing: to `file` if given, else to syslog.
void log_in_background(const std::string& level, const std::string& file);

}  // namespace mqfs::daemon
