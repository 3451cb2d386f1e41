// The attribute registry: strict parsing and printing of the user.mq.* values
// (and the mount options of the same names).
#include <gtest/gtest.h>

#include <cerrno>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "doubles.hpp"
#include "engine/attributes.hpp"
#include "engine/settings.hpp"

namespace mqfs::engine {
namespace {

// --- parse_integer ---

TEST(ParseInteger, AcceptsDecimalIntegersInRange) {
  EXPECT_EQ(parse_integer("0", 0, 10), 0);
  EXPECT_EQ(parse_integer("7", 0, 10), 7);
  EXPECT_EQ(parse_integer("10", 0, 10), 10);
  EXPECT_EQ(parse_integer("-3", -5, 5), -3);
  EXPECT_EQ(parse_integer("1099511627776", 0, kMaxTimeoutMs), kMaxTimeoutMs);
}

// `setfattr -v 5` and `echo 5 > ...`-style values end in a newline.
TEST(ParseInteger, AcceptsOneTrailingNewline) {
  EXPECT_EQ(parse_integer("42\n", 0, 100), 42);
  EXPECT_EQ(parse_integer("42\n\n", 0, 100), std::nullopt);
}

TEST(ParseInteger, RefusesOutOfRange) {
  EXPECT_EQ(parse_integer("11", 0, 10), std::nullopt);
  EXPECT_EQ(parse_integer("-1", 0, 10), std::nullopt);
  EXPECT_EQ(parse_integer("0", 1, 10), std::nullopt);
  EXPECT_EQ(parse_integer("9223372036854775807", 0, 10), std::nullopt);
  EXPECT_EQ(parse_integer("9223372036854775808", 0, INT64_MAX), std::nullopt);  // does not fit int64
  EXPECT_EQ(parse_integer("-9223372036854775809", INT64_MIN, 0), std::nullopt);
}

TEST(ParseInteger, RefusesWhatIsNotADecimalInteger) {
  for (const char* text : {"", "\n", "+5", "+0", " 5", "5 ", "5\r\n", "\n5", "0x10", "1e3", "1.5", "five", "5a",
                           "-", "--1"})
    EXPECT_EQ(parse_integer(text, -100, 100), std::nullopt) << '"' << text << '"';
}

TEST(ParseInteger, ReadsOnlyTheGivenLength) {
  const std::string text = "123";
  EXPECT_EQ(parse_integer(std::string_view(text).substr(0, 2), 0, 1000), 12);
}

// --- words ---

TEST(ReadModeWords, ParseAndPrint) {
  EXPECT_EQ(parse_read_mode("message"), ReadMode::message);
  EXPECT_EQ(parse_read_mode("stream"), ReadMode::stream);
  EXPECT_EQ(parse_read_mode("stream\n"), ReadMode::stream);
  EXPECT_EQ(to_string(ReadMode::message), "message");
  EXPECT_EQ(to_string(ReadMode::stream), "stream");
  for (const char* text : {"", "\n", "Stream", "MESSAGE", "streams", " stream", "stream ", "stream\n\n", "1"})
    EXPECT_EQ(parse_read_mode(text), std::nullopt) << '"' << text << '"';
}

TEST(FramingWords, ParseAndPrint) {
  EXPECT_EQ(parse_framing("none"), Framing::none);
  EXPECT_EQ(parse_framing("line"), Framing::line);
  EXPECT_EQ(parse_framing("u32"), Framing::u32);
  EXPECT_EQ(parse_framing("line\n"), Framing::line);
  EXPECT_EQ(to_string(Framing::none), "none");
  EXPECT_EQ(to_string(Framing::line), "line");
  EXPECT_EQ(to_string(Framing::u32), "u32");
  for (const char* text : {"", "NONE", "lines", "U32", "u64", "line\n\n", " none"})
    EXPECT_EQ(parse_framing(text), std::nullopt) << '"' << text << '"';
}

// --- the registry ---

const Attribute& attribute(std::string_view name) {
  const Attribute* a = find_attribute(name);
  if (!a) throw std::runtime_error("no attribute " + std::string(name));
  return *a;
}

// Every name of SPEC section 5, writable or not as it says, listed once.
TEST(Attributes, RegistryHoldsEveryNameOfTheContract) {
  const std::set<std::string_view> writable = {"priority",        "maxmsg",          "msgsize", "read_mode",
                                               "recv_timeout_ms", "send_timeout_ms", "framing"};
  const std::set<std::string_view> read_only = {"curmsgs", "curbytes", "sent", "received", "lspid", "lrpid"};
  for (std::string_view name : writable) {
    const Attribute* a = find_attribute(name);
    ASSERT_NE(a, nullptr) << "user.mq." << name << " is missing";
    EXPECT_TRUE(a->writable()) << name;
    EXPECT_NE(a->copy, nullptr) << name;
    EXPECT_FALSE(a->value.empty()) << name;
    EXPECT_FALSE(a->help.empty()) << name;
  }
  for (std::string_view name : read_only) {
    const Attribute* a = find_attribute(name);
    ASSERT_NE(a, nullptr) << "user.mq." << name << " is missing";
    EXPECT_FALSE(a->writable()) << name;
  }
  std::set<std::string_view> listed;
  for (const Attribute& a : attributes()) {
    EXPECT_TRUE(listed.insert(a.name).second) << "listed twice: " << a.name;
    if (a.writable())
      EXPECT_NE(a.print_setting, nullptr) << a.name;
    else
      EXPECT_NE(a.count, nullptr) << a.name;
  }
}

TEST(Attributes, NamesAreLookedUpWithoutThePrefix) {
  EXPECT_NE(find_attribute("maxmsg"), nullptr);
  EXPECT_EQ(find_attribute("user.mq.maxmsg"), nullptr);
  EXPECT_EQ(find_attribute("MAXMSG"), nullptr);
  EXPECT_EQ(find_attribute("maxmsgs"), nullptr);
  EXPECT_EQ(find_attribute(""), nullptr);
  EXPECT_EQ(kAttributePrefix, "user.mq.");
}

// Parses `text` into a copy of the defaults; the copy is unchanged on -EINVAL.
struct Parsed {
  int status;
  Settings settings;
};
Parsed parse(std::string_view name, std::string_view text) {
  Parsed p{0, Settings{}};
  p.status = attribute(name).parse(p.settings, text);
  return p;
}

TEST(Attributes, PriorityIsZeroTo32767) {
  EXPECT_EQ(parse("priority", "0").settings.priority, 0);
  EXPECT_EQ(parse("priority", "32767").settings.priority, 32767);
  EXPECT_EQ(parse("priority", "32768").status, -EINVAL);
  EXPECT_EQ(parse("priority", "-1").status, -EINVAL);
}

TEST(Attributes, MaxmsgIsAtLeastOne) {
  EXPECT_EQ(parse("maxmsg", "1").settings.maxmsg, 1);
  EXPECT_EQ(parse("maxmsg", "100000\n").settings.maxmsg, 100000);
  EXPECT_EQ(parse("maxmsg", "0").status, -EINVAL);
  EXPECT_EQ(parse("maxmsg", "-1").status, -EINVAL);
  EXPECT_EQ(parse("maxmsg", std::to_string(kMaxMaxmsg + 1)).status, -EINVAL);
}

TEST(Attributes, MsgsizeIsOneToTheLargestWholeFuseWrite) {
  EXPECT_EQ(parse("msgsize", "1").settings.msgsize, 1);
  EXPECT_EQ(parse("msgsize", std::to_string(kMaxMsgsize)).settings.msgsize, kMaxMsgsize);
  EXPECT_EQ(parse("msgsize", std::to_string(kMaxMsgsize + 1)).status, -EINVAL);
  EXPECT_EQ(parse("msgsize", "0").status, -EINVAL);
  EXPECT_LE(kMaxMsgsize, 1 << 20);
}

TEST(Attributes, TimeoutsAreZeroOrMore) {
  for (const char* name : {"recv_timeout_ms", "send_timeout_ms"}) {
    EXPECT_EQ(parse(name, "0").status, 0) << name;
    EXPECT_EQ(parse(name, "2500").status, 0) << name;
    EXPECT_EQ(parse(name, "-1").status, -EINVAL) << name;
  }
  EXPECT_EQ(parse("recv_timeout_ms", "2500").settings.recv_timeout_ms, 2500);
  EXPECT_EQ(parse("send_timeout_ms", "2500").settings.send_timeout_ms, 2500);
  EXPECT_EQ(parse("send_timeout_ms", "2500").settings.recv_timeout_ms, 0);
}

TEST(Attributes, ReadModeIsAWord) {
  EXPECT_EQ(parse("read_mode", "stream").settings.read_mode, ReadMode::stream);
  EXPECT_EQ(parse("read_mode", "message\n").settings.read_mode, ReadMode::message);
  EXPECT_EQ(parse("read_mode", "0").status, -EINVAL);
  EXPECT_EQ(parse("read_mode", "fast").status, -EINVAL);
}

TEST(Attributes, FramingIsAWord) {
  ASSERT_NE(find_attribute("framing"), nullptr) << "user.mq.framing is writable (SPEC section 5)";
  EXPECT_EQ(parse("framing", "line").settings.framing, Framing::line);
  EXPECT_EQ(parse("framing", "u32\n").settings.framing, Framing::u32);
  EXPECT_EQ(parse("framing", "none").settings.framing, Framing::none);
  EXPECT_EQ(parse("framing", "crlf").status, -EINVAL);
}

// A bad value changes nothing.
TEST(Attributes, BadValueLeavesTheSettingsAlone) {
  Settings s;
  s.priority = 4;
  s.maxmsg = 5;
  s.msgsize = 6;
  s.read_mode = ReadMode::stream;
  s.recv_timeout_ms = 7;
  s.send_timeout_ms = 8;
  s.framing = Framing::u32;
  for (const Attribute& a : attributes()) {
    if (!a.writable()) continue;
    Settings t = s;
    // Any name is a path; these are not.
    const bool path = a.name == "dead_letter" || a.name == "subscribe";
    std::vector<std::string_view> bad_values{"bogus", "+1", ""};
    if (path) bad_values = {"a//b", "../x", "a/", "./a", "/", "a\n\n"};
    if (a.name == "subscribe") bad_values.insert(bad_values.end(), {"a,,b", ",", "a,"});
    for (std::string_view bad : bad_values)
      EXPECT_EQ(a.parse(t, bad), -EINVAL) << a.name << " " << bad;
    EXPECT_EQ(t.priority, 4) << a.name;
    EXPECT_EQ(t.maxmsg, 5) << a.name;
    EXPECT_EQ(t.msgsize, 6) << a.name;
    EXPECT_EQ(t.read_mode, ReadMode::stream) << a.name;
    EXPECT_EQ(t.recv_timeout_ms, 7) << a.name;
    EXPECT_EQ(t.send_timeout_ms, 8) << a.name;
    EXPECT_EQ(t.framing, Framing::u32) << a.name;
    EXPECT_EQ(t.dead_letter, "") << a.name;
  }
}

TEST(Attributes, DeadLetterIsAQueuePathWithAnOptionalLeadingSlash) {
  const Attribute* a = find_attribute("dead_letter");
  ASSERT_NE(a, nullptr);
  Settings s;
  EXPECT_EQ(a->parse(s, "/jobs/dead\n"), 0);
  EXPECT_EQ(a->print_setting(s), "jobs/dead");
  EXPECT_EQ(a->parse(s, "dead"), 0);
  EXPECT_EQ(s.dead_letter, "dead");
  EXPECT_EQ(a->parse(s, ""), 0);  // none
  EXPECT_EQ(s.dead_letter, "");
  EXPECT_EQ(a->parse(s, std::string(5000, 'a')), -EINVAL);
}

// Setting one attribute touches no other.
TEST(Attributes, ParseChangesOnlyItsOwnSetting) {
  const Settings defaults;
  Settings s;
  ASSERT_EQ(attribute("maxmsg").parse(s, "77"), 0);
  EXPECT_EQ(s.maxmsg, 77);
  EXPECT_EQ(s.msgsize, defaults.msgsize);
  EXPECT_EQ(s.priority, defaults.priority);
  EXPECT_EQ(s.recv_timeout_ms, defaults.recv_timeout_ms);
}

// Removing a writable name restores its default.
TEST(Attributes, CopyRestoresOneSettingFromTheDefaults) {
  Settings defaults;
  defaults.maxmsg = 50;
  defaults.read_mode = ReadMode::stream;
  Settings s;
  s.maxmsg = 3;
  s.msgsize = 99;
  s.read_mode = ReadMode::message;
  attribute("maxmsg").copy(s, defaults);
  EXPECT_EQ(s.maxmsg, 50);
  EXPECT_EQ(s.msgsize, 99);
  attribute("read_mode").copy(s, defaults);
  EXPECT_EQ(s.read_mode, ReadMode::stream);
}

TEST(Attributes, PrintShowsTheQueuesSettings) {
  Settings s;
  s.priority = 3;
  s.maxmsg = 20;
  s.msgsize = 512;
  s.read_mode = ReadMode::stream;
  s.recv_timeout_ms = 1000;
  s.send_timeout_ms = 2000;
  Rig rig(s);
  EXPECT_EQ(attribute("priority").print(*rig.queue), "3");
  EXPECT_EQ(attribute("maxmsg").print(*rig.queue), "20");
  EXPECT_EQ(attribute("msgsize").print(*rig.queue), "512");
  EXPECT_EQ(attribute("read_mode").print(*rig.queue), "stream");
  EXPECT_EQ(attribute("recv_timeout_ms").print(*rig.queue), "1000");
  EXPECT_EQ(attribute("send_timeout_ms").print(*rig.queue), "2000");
}

TEST(Attributes, PrintedFramingIsAWord) {
  ASSERT_NE(find_attribute("framing"), nullptr) << "user.mq.framing is readable (SPEC section 5)";
  Rig rig;
  EXPECT_EQ(attribute("framing").print(*rig.queue), "none");
  Settings s = rig.queue->settings();
  s.framing = Framing::line;
  rig.queue->configure(s);
  EXPECT_EQ(attribute("framing").print(*rig.queue), "line");
}

TEST(Attributes, PrintShowsTheQueuesCounters) {
  Rig rig;
  ASSERT_EQ(rig.send("abc", 1234), 0);
  ASSERT_EQ(rig.send("de", 1235), 0);
  ASSERT_EQ(rig.receive(rig.reader, 100, 4321), "abc");
  ASSERT_EQ(rig.send("fghi", 1236), 0);
  EXPECT_EQ(attribute("curmsgs").print(*rig.queue), "2");
  EXPECT_EQ(attribute("curbytes").print(*rig.queue), "6");
  EXPECT_EQ(attribute("sent").print(*rig.queue), "3");
  EXPECT_EQ(attribute("received").print(*rig.queue), "1");
  EXPECT_EQ(attribute("lspid").print(*rig.queue), "1236");
  EXPECT_EQ(attribute("lrpid").print(*rig.queue), "4321");
}

// What getfattr prints, setfattr takes back.
TEST(Attributes, PrintedValuesParseBack) {
  Settings s;
  s.priority = 9;
  s.maxmsg = 4;
  s.read_mode = ReadMode::stream;
  s.send_timeout_ms = 30;
  Rig rig(s);
  for (const Attribute& a : attributes()) {
    if (!a.writable()) continue;
    Settings t;
    EXPECT_EQ(a.parse(t, a.print(*rig.queue)), 0) << a.name;
    EXPECT_EQ(a.parse(t, a.print(*rig.queue) + "\n"), 0) << a.name;
  }
  Settings t;
  for (const Attribute& a : attributes())
    if (a.writable()) a.parse(t, a.print(*rig.queue));
  EXPECT_EQ(t.priority, 9);
  EXPECT_EQ(t.maxmsg, 4);
  EXPECT_EQ(t.read_mode, ReadMode::stream);
  EXPECT_EQ(t.send_timeout_ms, 30);
}

}  // namespace
}  // namespace mqfs::engine
