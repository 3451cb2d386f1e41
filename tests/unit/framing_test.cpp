#include "engine/framing.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using mqfs::engine::Framing;
using mqfs::engine::next_message;
using Kind = mqfs::engine::NextMessage::Kind;

namespace {

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::string text(const mqfs::engine::NextMessage& m) {
  std::string out;
  for (auto part : {m.head, m.tail}) out.append(reinterpret_cast<const char*>(part.data()), part.size());
  return out;
}

std::string frame(const std::string& payload) {
  std::string out(4, '\0');
  mqfs::engine::put_frame_header(reinterpret_cast<std::byte*>(out.data()), static_cast<uint32_t>(payload.size()));
  return out + payload;
}

// Splits `input` into messages the way a framed write does, carrying the
// unfinished end in `pending`.
std::vector<std::string> split(Framing framing, std::string& pending, std::string input, std::size_t msgsize = 100) {
  std::vector<std::string> out;
  auto rest = bytes(input);
  for (;;) {
    auto next = next_message(framing, bytes(pending), rest, msgsize);
    if (next.kind == Kind::incomplete) {
      pending.append(reinterpret_cast<const char*>(rest.data()), rest.size());
      return out;
    }
    EXPECT_EQ(next.kind, Kind::message);
    if (next.kind != Kind::message) return out;
    out.push_back(text(next));
    pending.clear();
    rest = rest.subspan(next.used);
  }
}

}  // namespace

TEST(LineFraming, EachLineWithItsNewlineIsOneMessage) {
  std::string pending;
  EXPECT_EQ(split(Framing::line, pending, "a\nbb\n\nccc"), (std::vector<std::string>{"a\n", "bb\n", "\n"}));
  EXPECT_EQ(pending, "ccc");
}

TEST(LineFraming, AnUnfinishedLineIsCompletedByTheNextWrite) {
  std::string pending = "hel";
  EXPECT_EQ(split(Framing::line, pending, "lo\nwor"), (std::vector<std::string>{"hello\n"}));
  EXPECT_EQ(pending, "wor");
}

TEST(LineFraming, ALineLongerThanMsgsizeIsTooLong) {
  std::string pending = "12345";
  auto next = next_message(Framing::line, bytes(pending), bytes("678\n"), 8);
  EXPECT_EQ(next.kind, Kind::too_long);
  // Exactly msgsize with its newline fits.
  EXPECT_EQ(next_message(Framing::line, bytes(pending), bytes("67\n"), 8).kind, Kind::message);
  // An unfinished line is too long as soon as it passes msgsize.
  EXPECT_EQ(next_message(Framing::line, {}, bytes("123456789"), 8).kind, Kind::too_long);
  EXPECT_EQ(next_message(Framing::line, {}, bytes("12345678"), 8).kind, Kind::incomplete);
}

TEST(U32Framing, FramesBecomeMessagesWithoutTheirHeader) {
  std::string pending;
  EXPECT_EQ(split(Framing::u32, pending, frame("one") + frame("two!") + frame("x")),
            (std::vector<std::string>{"one", "two!", "x"}));
  EXPECT_TRUE(pending.empty());
}

TEST(U32Framing, AFrameMayBeSplitAnywhereAcrossWrites) {
  const std::string stream = frame("hello") + frame("world, again");
  for (std::size_t cut1 = 0; cut1 <= stream.size(); ++cut1) {
    for (std::size_t cut2 = cut1; cut2 <= stream.size(); ++cut2) {
      std::string pending;
      std::vector<std::string> got;
      for (auto piece : {stream.substr(0, cut1), stream.substr(cut1, cut2 - cut1), stream.substr(cut2)}) {
        auto part = split(Framing::u32, pending, piece);
        got.insert(got.end(), part.begin(), part.end());
      }
      EXPECT_EQ(got, (std::vector<std::string>{"hello", "world, again"})) << cut1 << " " << cut2;
      EXPECT_TRUE(pending.empty());
    }
  }
}

TEST(U32Framing, LengthZeroAndLengthOverMsgsizeAreRefused) {
  EXPECT_EQ(next_message(Framing::u32, {}, bytes(frame("")), 10).kind, Kind::empty);
  EXPECT_EQ(next_message(Framing::u32, {}, bytes(frame("12345678901")), 10).kind, Kind::too_long);
  EXPECT_EQ(next_message(Framing::u32, {}, bytes(frame("1234567890")), 10).kind, Kind::message);
  // Known from the header alone, before the payload arrives.
  EXPECT_EQ(next_message(Framing::u32, {}, bytes(frame("12345678901").substr(0, 4)), 10).kind, Kind::too_long);
}

TEST(U32Framing, HeaderIsLittleEndian) {
  std::byte header[4];
  mqfs::engine::put_frame_header(header, 0x01020304);
  EXPECT_EQ(header[0], std::byte{4});
  EXPECT_EQ(header[3], std::byte{1});
}
