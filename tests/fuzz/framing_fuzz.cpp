// framing_fuzz: drives the framing decoder (engine/framing.hpp: next_message
// for line and u32, put_frame_header) three ways, chosen by one input byte:
//
//  - a writer: the input cut into writes, split into messages the way a
//    framed write does (Queue::write_frames), the unfinished end carried in
//    `pending` from write to write;
//  - one call on an arbitrary `pending` and `input`, also a `pending` the
//    engine never holds (a whole u32 frame and more);
//  - a round trip: payloads encoded (u32 headers, or lines), cut into writes
//    anywhere and decoded again.
//
// Invariants: each message lies within `pending` and `input` (head is a suffix
// of pending, tail a prefix of input or, for u32, after the header's bytes in
// it), is 1 to msgsize bytes, and `used` stays within the input; a line ends
// with its first newline; a frame is its header's length; the messages
// concatenated (u32: each after its header) reproduce the bytes consumed, and
// with the final pending the whole stream; incomplete, too_long and empty are
// reported exactly when the bytes say so (a `pending` longer than its frame
// is too_long, with nothing used); a round trip gives back the payloads.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/framing.hpp"
#include "engine/settings.hpp"
#include "check.hpp"

namespace mqfs::engine {
namespace {

using Kind = NextMessage::Kind;
using fuzz::bytes_of;
using fuzz::frame_length;
using fuzz::frame_header;

std::string text_of(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

bool within(std::span<const std::byte> part, const std::string& whole) {
  if (part.empty()) return true;
  const auto* begin = reinterpret_cast<const std::byte*>(whole.data());
  return part.data() >= begin && part.data() + part.size() <= begin + whole.size();
}

// One call, checked against the SPEC's definition of the next message.
// Returns the message's bytes (u32: with its header) when there is one.
NextMessage decode(Framing framing, const std::string& pending, const std::string& input, std::size_t msgsize) {
  const NextMessage next = next_message(framing, bytes_of(pending), bytes_of(input), msgsize);
  const std::string all = pending + input;
  CHECK(next.used <= input.size());
  if (framing == Framing::line) {
    const std::size_t newline = input.find('\n');
    switch (next.kind) {
      case Kind::message:
        CHECK(newline != std::string::npos && next.used == newline + 1);
        CHECK(pending.size() + next.used <= msgsize);
        break;
      case Kind::incomplete:
        CHECK(newline == std::string::npos && all.size() <= msgsize);
        break;
      case Kind::too_long:
        CHECK(newline == std::string::npos ? all.size() > msgsize : pending.size() + newline + 1 > msgsize);
        break;
      case Kind::empty:
        CHECK(false);  // lines are never empty: each has its newline
    }
  } else {
    const bool has_header = all.size() >= kFrameHeader;
    const uint32_t length = has_header ? frame_length(all) : 0;
    // A pending longer than the frame it starts (the engine never holds one)
    // is refused, nothing used, rather than read past the input.
    const bool overlong = length > 0 && pending.size() > kFrameHeader + length;
    if (overlong) CHECK(next.kind == Kind::too_long && next.used == 0);
    switch (next.kind) {
      case Kind::message:
        CHECK(has_header && length > 0 && length <= msgsize && all.size() >= kFrameHeader + length);
        CHECK(next.size() == length);
        CHECK(pending.size() + next.used == kFrameHeader + length);
        break;
      case Kind::incomplete:
        CHECK(!has_header || (length > 0 && length <= msgsize && all.size() < kFrameHeader + length));
        CHECK(next.used == input.size());
        break;
      case Kind::too_long:
        CHECK(has_header && (length > msgsize || overlong) && next.used == 0);
        break;
      case Kind::empty:
        CHECK(has_header && length == 0);
        break;
    }
  }
  if (next.kind == Kind::message) {
    CHECK(next.size() >= 1 && next.size() <= msgsize);
    CHECK(within(next.head, pending) && within(next.tail, input));
    // The message is the bytes it was made of: pending and input up to `used`.
    const std::string frame = all.substr(0, pending.size() + next.used);
    const std::string message = text_of(next.head) + text_of(next.tail);
    CHECK((framing == Framing::line ? message : frame_header(message.size()) + message) == frame);
  } else {
    CHECK(next.head.empty() && next.tail.empty());
  }
  return next;
}

// Splits `writes` into messages as a framed write does; returns the messages
// (u32: with their headers) followed by what is left pending, or less when a
// message was refused.
std::vector<std::string> write_all(Framing framing, const std::vector<std::string>& writes, std::size_t msgsize,
                                   std::string& pending, bool& refused) {
  std::vector<std::string> messages;
  refused = false;
  for (const std::string& write : writes) {
    std::string rest = write;
    for (;;) {
      const NextMessage next = decode(framing, pending, rest, msgsize);
      if (next.kind == Kind::incomplete) {
        pending += rest;
        break;
      }
      if (next.kind != Kind::message) {
        refused = true;
        return messages;
      }
      const std::string message = text_of(next.head) + text_of(next.tail);
      messages.push_back(framing == Framing::u32 ? frame_header(message.size()) + message : message);
      pending.clear();
      rest.erase(0, next.used);
    }
  }
  return messages;
}

std::vector<std::string> cut(FuzzedDataProvider& in, const std::string& stream) {
  std::vector<std::string> writes;
  for (std::size_t at = 0; at < stream.size();) {
    const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(1, stream.size() - at);
    writes.push_back(stream.substr(at, n));
    at += n;
  }
  return writes;
}

std::size_t pick_msgsize(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0: return static_cast<std::size_t>(kMaxMsgsize);
    case 1: return in.ConsumeIntegralInRange<std::size_t>(1, 4096);
    default: return in.ConsumeIntegralInRange<std::size_t>(1, 16);
  }
}

// A writer: arbitrary bytes in arbitrary writes.
void writer(FuzzedDataProvider& in, Framing framing) {
  const std::size_t msgsize = pick_msgsize(in);
  const std::string stream = in.ConsumeRandomLengthString(4096);
  std::string pending;
  bool refused;
  const auto messages = write_all(framing, cut(in, stream), msgsize, pending, refused);
  std::string joined;
  for (const std::string& m : messages) joined += m;
  CHECK(stream.compare(0, joined.size(), joined) == 0);
  if (!refused) CHECK(joined + pending == stream);
}

// One call on any pending and input.
void once(FuzzedDataProvider& in, Framing framing) {
  const std::size_t msgsize = pick_msgsize(in);
  const std::string pending = in.ConsumeRandomLengthString(64);
  const std::string input = in.ConsumeRandomLengthString(4096);
  decode(framing, pending, input, msgsize);
}

// Payloads encoded and decoded again.
void round_trip(FuzzedDataProvider& in, Framing framing) {
  std::vector<std::string> payloads;
  std::string stream;
  std::size_t longest = 1;
  for (int n = in.ConsumeIntegralInRange(1, 16); n > 0; --n) {
    std::string payload = in.ConsumeRandomLengthString(300);
    if (framing == Framing::line) {
      std::erase(payload, '\n');
      payload += '\n';
      stream += payload;
    } else {
      if (payload.empty()) payload = "x";
      stream += frame_header(payload.size()) + payload;
    }
    longest = std::max(longest, payload.size());
    payloads.push_back(std::move(payload));
  }
  std::string pending;
  bool refused;
  const auto messages = write_all(framing, cut(in, stream), longest, pending, refused);
  CHECK(!refused && pending.empty() && messages.size() == payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i)
    CHECK(messages[i] ==
          (framing == Framing::u32 ? frame_header(payloads[i].size()) : "") + payloads[i]);
}

}  // namespace
}  // namespace mqfs::engine

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mqfs::engine;
  FuzzedDataProvider in(data, size);
  const uint8_t choice = in.ConsumeIntegral<uint8_t>();
  const Framing framing = choice & 1 ? Framing::u32 : Framing::line;
  switch ((choice >> 1) % 3) {
    case 0: writer(in, framing); break;
    case 1: once(in, framing); break;
    default: round_trip(in, framing); break;
  }
  // The header is the length, little-endian.
  const uint32_t value = in.ConsumeIntegral<uint32_t>();
  const std::string h = frame_header(value);
  CHECK(static_cast<uint8_t>(h[0]) == (value & 0xff) && static_cast<uint8_t>(h[3]) == value >> 24);
  CHECK(frame_length(h) == value);
  return 0;
}
