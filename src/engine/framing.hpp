// Framing modes (SPEC section 7): how the bytes of one write become several
// messages, and how one read carries several messages.
//
//   line: each line, with its '\n', is a message.
//   u32:  each message is a 4-byte little-endian length and that many bytes.
//
// A write may end inside a message; those bytes stay with the open file
// (`pending`) and the next write continues them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/settings.hpp"

namespace mqfs::engine {

inline constexpr std::size_t kFrameHeader = 4;  // u32 length prefix

// The next message in `pending` followed by `input`. `pending` is what this
// decoder held from earlier input: the start of one message, never a whole one.
struct NextMessage {
  enum class Kind {
    message,     // a whole message: `head` (from pending) then `tail` (from input)
    incomplete,  // no whole message: all of input belongs to an unfinished one
    too_long,    // the message under way is longer than msgsize
    empty,       // a u32 frame of length 0
  };
  Kind kind;
  std::span<const std::byte> head;
  std::span<const std::byte> tail;
  std::size_t used = 0;  // bytes of input up to the end of this message

  std::size_t size() const { return head.size() + tail.size(); }
};

NextMessage next_message(Framing framing, std::span<const std::byte> pending, std::span<const std::byte> input,
                         std::size_t msgsize);

// The u32 header of a message of `size` bytes.
void put_frame_header(std::byte* out, uint32_t size);

}  // namespace mqfs::engine
