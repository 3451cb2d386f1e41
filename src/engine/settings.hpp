// The writable attributes of a queue (user.mq.* and the mount options of the
// same names) and the parsing and printing they share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/message.hpp"

namespace mqfs::engine {

// peek: per open file only (MQFS_IOC_SET_READ_MODE), never a queue's setting.
enum class ReadMode { message, stream, peek };
enum class Framing { none, line, u32, file };
// SPEC section 13: a queue keeps its messages; a topic hands each to its subscribers.
enum class QueueKind { queue, topic };
// What a topic's full subscriber does: hold back the publisher, or miss the message.
enum class Overflow { block, drop };

// Largest message: 1 MiB less one page, so that a write of up to msgsize bytes
// always reaches the daemon as one FUSE request, whatever the alignment of the
// writer's buffer (the kernel moves at most 256 pages per request).
inline constexpr int64_t kMaxMsgsize = (1 << 20) - 4096;
inline constexpr int64_t kMaxMaxmsg = 1 << 30;
inline constexpr int64_t kMaxTimeoutMs = int64_t{1} << 40;
inline constexpr int64_t kMaxDeliveries = INT32_MAX;
inline constexpr std::size_t kMaxPathLength = 4095;

struct Settings {
  int64_t priority = 0;
  Type type = 1;  // SPEC section 12: of messages sent without their own
  int64_t maxmsg = 10;      // as Linux's /proc/sys/fs/mqueue/msg_default
  int64_t msgsize = 8192;   // as Linux's /proc/sys/fs/mqueue/msgsize_default
  ReadMode read_mode = ReadMode::message;
  int64_t recv_timeout_ms = 0;  // 0: wait for ever
  int64_t send_timeout_ms = 0;
  Framing framing = Framing::none;
  // SPEC section 11.
  int64_t lease_ms = 30000;
  int64_t retry_delay_ms = 0;
  int64_t max_deliveries = 0;  // 0: no limit
  std::string dead_letter;     // a queue's path from the mount root, without a leading '/'; empty: none
  // SPEC section 13.
  QueueKind kind = QueueKind::queue;
  Overflow overflow = Overflow::block;
  std::vector<std::string> subscribe;  // the topics this queue subscribes to, paths as dead_letter's

  bool operator==(const Settings&) const = default;
};

// Strict decimal integer in [min, max]; an optional trailing newline is allowed.
std::optional<int64_t> parse_integer(std::string_view text, int64_t min, int64_t max);

std::string_view to_string(ReadMode mode);
std::string_view to_string(Framing framing);
std::optional<ReadMode> parse_read_mode(std::string_view text);
std::optional<Framing> parse_framing(std::string_view text);
std::string_view to_string(QueueKind kind);
std::string_view to_string(Overflow overflow);
std::optional<QueueKind> parse_kind(std::string_view text);
std::optional<Overflow> parse_overflow(std::string_view text);

}  // namespace mqfs::engine
