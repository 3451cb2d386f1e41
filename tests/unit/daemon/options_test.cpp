// The registry of mount options: each option parses, prints and is described
// one way, the per-queue ones are the writable attributes, and --help and the
// command line come from it.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/options.hpp"
#include "engine/attributes.hpp"
#include "engine/message.hpp"
#include "engine/settings.hpp"

namespace mqfs::daemon {
namespace {

// Every option printed, to see that a refused value changed nothing.
std::map<std::string_view, std::string> printed(const Options& o) {
  std::map<std::string_view, std::string> all;
  for (const Option& option : options()) all[option.name] = option.print(o);
  return all;
}

TEST(Options, NamesAreUniqueAndEachHasAValueAndAHelpLine) {
  std::set<std::string_view> names;
  for (const Option& option : options()) {
    EXPECT_TRUE(names.insert(option.name).second) << "listed twice: " << option.name;
    EXPECT_FALSE(option.value.empty()) << option.name;
    EXPECT_FALSE(option.help.empty()) << option.name;
    EXPECT_EQ(option.help.find('\n'), std::string_view::npos) << option.name;
    EXPECT_TRUE(option.parse && option.print) << option.name;
    EXPECT_EQ(find_option(option.name), &option);
  }
  for (std::string_view name : {"max_queues", "max_bytes", "max_open_files", "max_waiters", "log_level", "log_file",
                                "store", "sync"})
    EXPECT_NE(find_option(name), nullptr) << name;
  EXPECT_EQ(find_option("nosuch"), nullptr);
  EXPECT_EQ(find_option("curmsgs"), nullptr);  // read-only attributes are no options
}

// Only log_file, store and redis print nothing by default: no file, no store.
TEST(Options, EachParsesItsDefaultAndPrintsItBack) {
  const Options defaults;
  for (const Option& option : options()) {
    const std::string text = option.print(defaults);
    if (text.empty()) {
      EXPECT_TRUE(option.name == "log_file" || option.name == "store" || option.name == "redis" ||
                  option.name == "dead_letter" || option.name == "subscribe")
          << option.name;
      continue;
    }
    Options o;
    EXPECT_EQ(option.parse(o, text), "") << option.name << '=' << text;
    EXPECT_EQ(option.print(o), text) << option.name;
    EXPECT_EQ(printed(o), printed(defaults)) << option.name;
  }
  EXPECT_EQ(find_option("max_bytes")->print(defaults), "1G");
  EXPECT_EQ(find_option("sync")->print(defaults), "os");
  EXPECT_EQ(find_option("log_level")->print(defaults), "info");
}

// A value of each option other than its default: what it prints back.
TEST(Options, EachParsesAnotherValueAndPrintsItBack) {
  struct Sample {
    std::string_view name, text, printed;
  };
  const Sample samples[] = {
      {"priority", "9", "9"},
      {"maxmsg", "77", "77"},
      {"msgsize", "1044480", "1044480"},
      {"read_mode", "stream", "stream"},
      {"recv_timeout_ms", "1500", "1500"},
      {"send_timeout_ms", "2500", "2500"},
      {"framing", "u32", "u32"},
      {"lease_ms", "5000", "5000"},
      {"retry_delay_ms", "250", "250"},
      {"max_deliveries", "3", "3"},
      {"dead_letter", "/jobs/dead", "jobs/dead"},
      {"type", "42", "42"},
      {"kind", "topic", "topic"},
      {"overflow", "drop", "drop"},
      {"subscribe", "/news,sports/live,/news", "/news,/sports/live"},
      {"max_queues", "2k", "2048"},
      {"max_bytes", "2048M", "2G"},
      {"max_bytes", "1000", "1000"},
      {"max_open_files", "100", "100"},
      {"max_waiters", "1M", "1048576"},
      {"log_level", "warn", "warn"},
      {"log_file", "/var/log/mqfs.log", "/var/log/mqfs.log"},
      {"store", "/var/lib/mqfs", "/var/lib/mqfs"},
      {"sync", "disk", "disk"},
      {"redis", "redis://:secret@10.0.0.5:6380/2", "redis://:secret@10.0.0.5:6380/2"},
      {"redis_prefix", "jobs", "jobs"},
      {"redis_lease_ms", "2500", "2500"},
      {"redis_timeout_ms", "800", "800"},
  };
  std::set<std::string_view> tried;
  for (const Sample& s : samples) {
    const Option* option = find_option(s.name);
    ASSERT_NE(option, nullptr) << s.name;
    Options o;
    EXPECT_EQ(option->parse(o, s.text), "") << s.name << '=' << s.text;
    EXPECT_EQ(option->print(o), s.printed) << s.name << '=' << s.text;
    tried.insert(s.name);
  }
  for (const Option& option : options()) EXPECT_TRUE(tried.contains(option.name)) << "no sample of " << option.name;
}

TEST(Options, PerQueueDefaultsAreTheWritableAttributes) {
  const Options o;
  for (const engine::Attribute& a : engine::attributes()) {
    const Option* option = find_option(a.name);
    if (!a.writable()) {
      EXPECT_EQ(option, nullptr) << a.name;
      continue;
    }
    ASSERT_NE(option, nullptr) << "user.mq." << a.name << " has no mount option";
    EXPECT_TRUE(option->queue_default) << a.name;
    EXPECT_EQ(option->value, a.value) << a.name;
    EXPECT_EQ(option->help, a.help) << a.name;
    EXPECT_EQ(option->print(o), a.print_setting(engine::Settings{})) << a.name;
  }
  for (const Option& option : options()) {
    const engine::Attribute* a = engine::find_attribute(option.name);
    EXPECT_EQ(option.queue_default, a != nullptr && a->writable()) << option.name;
  }
}

TEST(Options, PerQueueDefaultsSetTheDefaultsOfNewQueues) {
  Options o;
  EXPECT_EQ(find_option("maxmsg")->parse(o, "5"), "");
  EXPECT_EQ(find_option("framing")->parse(o, "line"), "");
  EXPECT_EQ(o.config.defaults.maxmsg, 5);
  EXPECT_EQ(o.config.defaults.framing, engine::Framing::line);
}

TEST(Options, BadValuesAreRefusedWithAReasonAndChangeNothing) {
  const std::map<std::string_view, std::vector<std::string_view>> bad = {
      {"priority", {"", "-1", "32768", "+1", "high"}},
      {"maxmsg", {"", "0", "-1", "99999999999999999999", "many"}},
      {"msgsize", {"", "0", "1044481", "2000000"}},
      {"read_mode", {"", "fast", "Stream", "0"}},
      {"recv_timeout_ms", {"", "-1", "soon"}},
      {"send_timeout_ms", {"", "-1", "later"}},
      {"framing", {"", "json", "LINE"}},
      {"max_queues", {"", "0", "-1", "k", "12X"}},
      {"max_bytes", {"", "0", "12X", "1T", "1.5G", "9999999999G"}},
      {"max_open_files", {"", "0", "-5"}},
      {"max_waiters", {"", "0", "-1", "lots"}},
      {"log_level", {"", "loud", "INFO", "warning"}},
      {"store", {""}},
      {"sync", {"", "fsync", "OS", "disk "}},
      {"redis", {""}},
      {"redis_prefix", {"", "my jobs", "a\tb"}},
      {"redis_lease_ms", {"", "0", "-5", "1s", "86400001"}},
      {"redis_timeout_ms", {"", "0", "soon"}},
  };
  const Options defaults;
  for (const auto& [name, texts] : bad) {
    const Option* option = find_option(name);
    ASSERT_NE(option, nullptr) << name;
    for (std::string_view text : texts) {
      Options o;
      EXPECT_NE(option->parse(o, text), "") << name << '=' << text << " was accepted";
      EXPECT_EQ(printed(o), printed(defaults)) << name << '=' << text;
    }
  }
  Options o;
  EXPECT_EQ(find_option("maxmsg")->parse(o, "0"), "invalid value");
  EXPECT_EQ(find_option("max_bytes")->parse(o, "0"), "expected a positive number");
}

TEST(Options, StoreIsKeptAbsolute) {
  Options o;
  ASSERT_EQ(find_option("store")->parse(o, "state/mq"), "");
  EXPECT_TRUE(o.store_dir.starts_with('/')) << o.store_dir;
  EXPECT_TRUE(o.store_dir.ends_with("/state/mq")) << o.store_dir;
}

TEST(Options, HelpHasALineForEveryOptionWithItsDefault) {
  const std::string help = option_help();
  const Options defaults;
  for (const Option& option : options()) {
    const std::string head = "    " + std::string(option.name) + "=" + std::string(option.value) + " ";
    const size_t at = help.find(head);
    ASSERT_NE(at, std::string::npos) << "--help lacks " << option.name;
    const std::string_view first_words = option.help.substr(0, option.help.find(' '));
    EXPECT_NE(help.find(first_words, at), std::string::npos) << option.name;
    const std::string value = option.print(defaults);
    if (!value.empty()) {
      EXPECT_NE(option.help.find(value), std::string_view::npos) << option.name << " default " << value;
    }
  }
  EXPECT_NE(find_option("msgsize")->help.find(std::to_string(engine::kMaxMsgsize)), std::string_view::npos);
  EXPECT_NE(find_option("max_bytes")->help.find(std::to_string(engine::kMessageOverhead) + " of bookkeeping"),
            std::string_view::npos);
}

// Per-queue defaults first, then the rest; lines wrapped to 100 columns.
TEST(Options, HelpGroupsThePerQueueDefaultsFirst) {
  const std::string help = option_help();
  const size_t mount_wide = help.find("mount-wide limits, logging and store:");
  ASSERT_NE(mount_wide, std::string::npos) << help;
  for (const Option& option : options()) {
    const size_t at = help.find("    " + std::string(option.name) + "=");
    EXPECT_EQ(at < mount_wide, option.queue_default) << option.name;
  }
  size_t start = 0;
  for (size_t end; (end = help.find('\n', start)) != std::string::npos; start = end + 1)
    EXPECT_LE(end - start, 100u) << help.substr(start, end - start);
}

// --- the command line ---

struct CommandLine {
  explicit CommandLine(std::vector<std::string> words) : words_(std::move(words)) {
    argv_.push_back(program_.data());
    for (std::string& word : words_) argv_.push_back(word.data());
    args = FUSE_ARGS_INIT(static_cast<int>(argv_.size()), argv_.data());
  }
  ~CommandLine() { fuse_opt_free_args(&args); }

  std::string program_ = "mqfs";
  std::vector<std::string> words_;
  std::vector<char*> argv_;
  fuse_args args;
};

std::optional<Options> parse(std::vector<std::string> words) {
  CommandLine line(std::move(words));
  return parse_options(line.args);
}

TEST(ParseOptions, TakesEveryOptionOfTheRegistry) {
  auto o = parse({"-o", "maxmsg=5,max_bytes=2M,log_level=debug,store=/srv/mq,sync=disk", "/mnt/mq"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->config.defaults.maxmsg, 5);
  EXPECT_EQ(o->config.max_bytes, uint64_t{2} << 20);
  EXPECT_EQ(o->log_level, "debug");
  EXPECT_EQ(o->store_dir, "/srv/mq");
  EXPECT_TRUE(o->sync_disk);
  EXPECT_EQ(o->mountpoint, "/mnt/mq");
}

TEST(ParseOptions, WithoutOptionsGivesTheDefaults) {
  auto o = parse({"/mnt/mq"});
  ASSERT_TRUE(o);
  EXPECT_EQ(printed(*o), printed(Options{}));
  EXPECT_TRUE(o->store_dir.empty());
  EXPECT_FALSE(o->sync_disk);
}

TEST(ParseOptions, SyncNeedsStore) {
  EXPECT_FALSE(parse({"-o", "sync=disk", "/mnt/mq"}));
  EXPECT_FALSE(parse({"-o", "sync=os", "/mnt/mq"}));
  EXPECT_TRUE(parse({"-o", "sync=os,store=/srv/mq", "/mnt/mq"}));  // in either order
  EXPECT_TRUE(parse({"-o", "store=/srv/mq", "-o", "sync=disk", "/mnt/mq"}));
}

TEST(ParseOptions, RedisSettingsNeedRedisAndRedisExcludesAStore) {
  EXPECT_FALSE(parse({"-o", "redis_prefix=jobs", "/mnt/mq"}));
  EXPECT_FALSE(parse({"-o", "redis_lease_ms=100", "/mnt/mq"}));
  EXPECT_FALSE(parse({"-o", "redis=redis://127.0.0.1,store=/srv/mq", "/mnt/mq"}));
  auto o = parse({"-o", "redis_timeout_ms=100,redis=redis://127.0.0.1:7000,redis_prefix=a", "/mnt/mq"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->redis_url, "redis://127.0.0.1:7000");
  EXPECT_EQ(o->redis_prefix, "a");
  EXPECT_EQ(o->redis_timeout_ms, 100);
  EXPECT_EQ(o->redis_lease_ms, 10000);
}

TEST(ParseOptions, RefusesABadValue) {
  EXPECT_FALSE(parse({"-o", "store=", "/mnt/mq"}));
  EXPECT_FALSE(parse({"-o", "maxmsg=0", "/mnt/mq"}));
  EXPECT_FALSE(parse({"-o", "store=/srv/mq,sync=fast", "/mnt/mq"}));
}

// Options mqfs does not know stay for libfuse, which refuses the unknown ones.
TEST(ParseOptions, LeavesOtherOptionsToFuse) {
  CommandLine line({"-o", "allow_other,maxmsg=3,sync", "/mnt/mq"});
  auto o = parse_options(line.args);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->config.defaults.maxmsg, 3);
  std::string rest;
  for (int i = 0; i < line.args.argc; ++i) rest += std::string(line.args.argv[i]) + " ";
  EXPECT_NE(rest.find("allow_other"), std::string::npos) << rest;
  EXPECT_NE(rest.find("sync"), std::string::npos) << rest;  // the kernel's flag, not sync=
  EXPECT_EQ(rest.find("maxmsg"), std::string::npos) << rest;
}

}  // namespace
}  // namespace mqfs::daemon
