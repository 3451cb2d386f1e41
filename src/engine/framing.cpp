#include "engine/framing.hpp"

#include <algorithm>

namespace mqfs::engine {

namespace {

using Kind = NextMessage::Kind;

NextMessage next_line(std::span<const std::byte> pending, std::span<const std::byte> input, std::size_t msgsize) {
  const auto newline = std::find(input.begin(), input.end(), std::byte{'\n'});
  if (newline == input.end()) {
    const bool too_long = pending.size() + input.size() > msgsize;
    return {too_long ? Kind::too_long : Kind::incomplete, {}, {}, input.size()};
  }
  const std::size_t used = static_cast<std::size_t>(newline - input.begin()) + 1;
  if (pending.size() + used > msgsize) return {Kind::too_long, {}, {}, used};
  return {Kind::message, pending, input.first(used), used};
}

NextMessage next_frame(std::span<const std::byte> pending, std::span<const std::byte> input, std::size_t msgsize) {
  // The header may be split between pending and input.
  const std::size_t available = pending.size() + input.size();
  if (available < kFrameHeader) return {Kind::incomplete, {}, {}, input.size()};
  uint32_t length = 0;
  for (std::size_t i = 0; i < kFrameHeader; ++i) {
    const std::byte b = i < pending.size() ? pending[i] : input[i - pending.size()];
    length |= static_cast<uint32_t>(b) << (8 * i);
  }
  if (length == 0) return {Kind::empty, {}, {}, kFrameHeader - std::min(pending.size(), kFrameHeader)};
  if (length > msgsize) return {Kind::too_long, {}, {}, 0};
  if (available < kFrameHeader + length) return {Kind::incomplete, {}, {}, input.size()};
  // More held than this frame: not bytes this decoder held. Refused, never read past.
  if (pending.size() > kFrameHeader + length) return {Kind::too_long, {}, {}, 0};

  const auto head = pending.size() > kFrameHeader ? pending.subspan(kFrameHeader) : std::span<const std::byte>{};
  const std::size_t tail_start = kFrameHeader - std::min(pending.size(), kFrameHeader);
  const std::size_t tail_size = length - head.size();
  return {Kind::message, head, input.subspan(tail_start, tail_size), tail_start + tail_size};
}

}  // namespace

NextMessage next_message(Framing framing, std::span<const std::byte> pending, std::span<const std::byte> input,
                         std::size_t msgsize) {
  if (framing == Framing::line) return next_line(pending, input, msgsize);
  return next_frame(pending, input, msgsize);
}

void put_frame_header(std::byte* out, uint32_t size) {
  for (std::size_t i = 0; i < kFrameHeader; ++i) out[i] = static_cast<std::byte>(size >> (8 * i));
}

}  // namespace mqfs::engine
