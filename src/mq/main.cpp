// mq: send, receive, peek, work, watch: mqfs queues from the shell, using
// only their files (SPEC section 15, mq(1)).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "mq/commands.hpp"
#include "mq/queue_file.hpp"

namespace {

// CLI11's own range checks print their bounds as doubles; these say it in words.
const CLI::Validator kAtLeastOne(
    [](std::string& text) -> std::string {
      long long value = 0;
      return CLI::detail::lexical_cast(text, value) && value >= 1 ? "" : text + " is not a whole number of at least 1";
    },
    "", "at least 1");
const CLI::Validator kSeconds(
    [](std::string& text) -> std::string {
      double value = 0;
      return CLI::detail::lexical_cast(text, value) && value >= 0 ? "" : text + " is not a number of seconds, 0 or more";
    },
    "", "seconds");

constexpr const char* kWaitHelp = "wait at most SECONDS in all (decimals allowed; 0: do not wait); exit 3 when it passes";

void add_selection(CLI::App& command, mq::Selection& selection) {
  auto* type = command.add_option("-t,--type", selection.type,
                                  "only messages of TYPE; a negative TYPE: the lowest type up to -TYPE first");
  auto* except = command.add_option("-x,--except", selection.except, "any message but those of TYPE")
                     ->check(kAtLeastOne);
  type->type_name("TYPE")->excludes(except);
  except->type_name("TYPE");
}

void add_output(CLI::App& command, mq::Output& output) {
  command.add_flag("-v,--verbose", output.verbose, "print `QUEUE priority=P type=T delivery=D` before each message");
  command.add_flag("--raw", output.raw, "print the bytes only: no newline after a message that lacks one");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Sends, receives, peeks, works and watches mqfs queues.", "mq"};
  app.set_version_flag("--version", "mq " MQFS_VERSION);
  app.require_subcommand(1);
  app.footer("Exit status: 0 done, 1 error, 2 usage, 3 timeout. See mq(1).");

  mq::SendOptions send;
  auto* send_command = app.add_subcommand("send", "Send one message per MESSAGE, or standard input as one message");
  send_command->add_option("-p,--priority", send.priority, "priority of these messages only (0-32767)")
      ->type_name("PRIO");
  send_command->add_option("-t,--type", send.type, "type of these messages only (>= 1)")->type_name("TYPE");
  send_command->add_option("-w,--wait", send.wait_seconds, kWaitHelp)
      ->type_name("SECONDS")
      ->check(kSeconds);
  send_command->add_option("QUEUE", send.queue, "the queue")->required();
  send_command->add_option("MESSAGE", send.messages, "the messages, one per argument");

  mq::RecvOptions recv;
  auto* recv_command =
      app.add_subcommand("recv", "Receive messages from the first QUEUE that has one, waiting if none has");
  add_selection(*recv_command, recv.selection);
  recv_command->add_option("-n,--count", recv.count, "receive COUNT messages (default 1)")
      ->type_name("COUNT")
      ->check(kAtLeastOne);
  recv_command->add_option("-w,--wait", recv.wait_seconds, kWaitHelp)
      ->type_name("SECONDS")
      ->check(kSeconds);
  add_output(*recv_command, recv.output);
  recv_command->add_option("QUEUE", recv.queues, "the queues, first first")->required();

  mq::PeekOptions peek;
  auto* peek_command = app.add_subcommand("peek", "Show the queued messages in order, taking none");
  peek_command->add_option("-n,--count", peek.count, "show the first COUNT (default all)")
      ->type_name("COUNT")
      ->check(kAtLeastOne);
  add_selection(*peek_command, peek.selection);
  add_output(*peek_command, peek.output);
  peek_command->add_option("QUEUE", peek.queue, "the queue")->required();

  mq::WorkOptions work;
  auto* work_command = app.add_subcommand(
      "work", "Run COMMAND once per message, with the message on its standard input; exit 0 acknowledges it");
  work_command->add_option("-j,--jobs", work.jobs, "run up to N commands at once (default 1)")
      ->type_name("N")
      ->check(kAtLeastOne);
  work_command->add_option("-n,--count", work.count, "take COUNT messages, then exit when their commands end")
      ->type_name("COUNT")
      ->check(kAtLeastOne);
  work_command->add_option("QUEUE", work.queue, "the queue")->required();
  work_command->add_option("COMMAND", work.command, "the command and its arguments, after --")
      ->required()
      ;

  mq::StatOptions stat;
  auto* stat_command = app.add_subcommand("stat", "Print one line per queue: messages, limits, waiters, counters");
  stat_command->add_flag("-r,--recursive", stat.recursive, "also the queues of subdirectories");
  auto* json = stat_command->add_flag_callback(
      "--json", [&stat] { stat.format = mq::StatFormat::json; }, "print a JSON array, one object per queue");
  auto* prometheus = stat_command->add_flag_callback(
      "--prometheus", [&stat] { stat.format = mq::StatFormat::prometheus; },
      "print Prometheus's text format (node_exporter's textfile collector)");
  json->excludes(prometheus);
  stat_command->add_option("PATH", stat.paths, "queues, or directories of queues")->required();

  mq::TopOptions top;
  auto* top_command = app.add_subcommand("top", "Watch the busiest queues, live, full screen");
  const std::map<std::string, mq::TopSort> sorts{
      {"depth", mq::TopSort::depth}, {"rate", mq::TopSort::rate}, {"name", mq::TopSort::name}};
  std::string sort = "depth";
  top_command->add_option("-s,--sort", sort, "sort by depth (default), rate or name")
      ->type_name("KEY")
      ->check(CLI::IsMember({"depth", "rate", "name"}));
  top_command->add_option("-d,--delay", top.delay_seconds, "seconds between refreshes (default 1)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.1, 3600.0));
  top_command->add_option("PATH", top.path, "a directory of queues (and its subdirectories), or a queue")
      ->required()
      ;

  const auto commands = app.get_subcommands([](const CLI::App*) { return true; });
  if (argc > 1 && argv[1][0] != '-' &&
      std::none_of(commands.begin(), commands.end(), [&](const CLI::App* c) { return c->get_name() == argv[1]; })) {
    std::fprintf(stderr, "mq: %s: no such command (send, recv, peek, work, stat, top)\n"
                         "Run with --help for more information.\n", argv[1]);
    return mq::kUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    std::fprintf(stderr, "mq: %s\nRun with --help for more information.\n", error.what());
    return mq::kUsage;
  }

  try {
    if (*send_command) return mq::send(send);
    if (*recv_command) return mq::recv(recv);
    if (*peek_command) return mq::peek(peek);
    if (*work_command) return mq::work(work);
    if (*stat_command) return mq::stat(stat);
    top.sort = sorts.at(sort);
    return mq::top(top);
  } catch (const mq::Failure& failure) {
    std::fflush(stdout);
    std::fprintf(stderr, "mq: %s: %s\n", failure.where.c_str(), failure.reason.c_str());
    return failure.status;
  } catch (const std::exception& error) {
    std::fflush(stdout);
    std::fprintf(stderr, "mq: %s\n", error.what());
    return mq::kError;
  }
}
