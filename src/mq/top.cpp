// mq top: a live, full-screen view of the queues under a path (ncurses).
#include <curses.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "mq/commands.hpp"
#include "mq/queue_file.hpp"
#include "mq/stats.hpp"

namespace mq {
namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t interrupted = 0;
void on_interrupt(int) { interrupted = 1; }

enum Colour : short { kLow = 1, kMiddle, kHigh };

// A queue as one row shows it: its counters and its rates since the last sample.
struct Row {
  QueueStats stats;
  std::string name;  // its path under the watched one
  double send_rate = 0;
  double recv_rate = 0;
};

const char* sort_word(TopSort sort) {
  switch (sort) {
    case TopSort::depth: return "depth";
    case TopSort::rate: return "rate";
    case TopSort::name: return "name";
  }
  return "";
}

// The terminal in curses mode for as long as it lives.
class Screen {
 public:
  Screen() {
    initscr();
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    if (has_colors()) {
      start_color();
      use_default_colors();
      init_pair(kLow, COLOR_GREEN, -1);
      init_pair(kMiddle, COLOR_YELLOW, -1);
      init_pair(kHigh, COLOR_RED, -1);
    }
  }
  ~Screen() { endwin(); }
  Screen(const Screen&) = delete;
  Screen& operator=(const Screen&) = delete;
};

class Top {
 public:
  explicit Top(const TopOptions& options) : options_(options), sort_(options.sort) {}

  int run() {
    queues_at(options_.path, true);  // a missing path fails before the screen changes
    const Screen screen;
    auto next_sample = Clock::now();
    while (!interrupted) {
      if (Clock::now() >= next_sample) {
        sample();
        next_sample = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(options_.delay_seconds));
      }
      draw();
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(next_sample - Clock::now()).count();
      timeout(static_cast<int>(std::clamp<int64_t>(left, 0, 60000)));
      const int key = getch();
      if (key != ERR && !on_key(key, next_sample)) break;
    }
    return kDone;
  }

 private:
  void sample() {
    const auto now = Clock::now();
    const double seconds = std::chrono::duration<double>(now - sampled_at_).count();
    std::vector<Row> rows;
    std::map<std::string, QueueStats> counters;
    try {
      for (const std::string& path : queues_at(options_.path, true)) {
        Row row;
        try {
          row.stats = read_stats(path);
        } catch (const Failure&) {
          continue;  // removed since it was listed
        }
        row.name = path.size() > options_.path.size() && path.starts_with(options_.path)
                       ? path.substr(options_.path.size() + (options_.path.back() == '/' ? 0 : 1))
                       : path;
        if (auto before = previous_.find(path); before != previous_.end() && seconds > 0) {
          row.send_rate = std::max(0.0, double(row.stats.sent - before->second.sent) / seconds);
          row.recv_rate = std::max(0.0, double(row.stats.received - before->second.received) / seconds);
        }
        counters[path] = row.stats;
        rows.push_back(std::move(row));
      }
      problem_.clear();
    } catch (const Failure& failure) {
      problem_ = failure.where + ": " + failure.reason;
    }
    rows_ = std::move(rows);
    previous_ = std::move(counters);
    sampled_at_ = now;
  }

  std::vector<const Row*> shown() const {
    std::vector<const Row*> rows;
    for (const Row& row : rows_)
      if (filter_.empty() || row.name.find(filter_) != std::string::npos) rows.push_back(&row);
    const auto by_name = [](const Row* a, const Row* b) { return a->name < b->name; };
    switch (sort_) {
      case TopSort::depth:
        std::stable_sort(rows.begin(), rows.end(), [&](const Row* a, const Row* b) {
          return a->stats.messages != b->stats.messages ? a->stats.messages > b->stats.messages : by_name(a, b);
        });
        break;
      case TopSort::rate:
        std::stable_sort(rows.begin(), rows.end(), [&](const Row* a, const Row* b) {
          const double ra = a->send_rate + a->recv_rate, rb = b->send_rate + b->recv_rate;
          return ra != rb ? ra > rb : by_name(a, b);
        });
        break;
      case TopSort::name: std::stable_sort(rows.begin(), rows.end(), by_name); break;
    }
    return rows;
  }

  void draw() const {
    erase();
    const int width = COLS;
    const std::vector<const Row*> rows = shown();
    int64_t messages = 0;
    for (const Row& row : rows_) messages += row.stats.messages;
    char clock[16];
    const std::time_t now = std::time(nullptr);
    std::strftime(clock, sizeof clock, "%H:%M:%S", std::localtime(&now));
    attron(A_BOLD);
    mvprintw(0, 0, "mq top  %s  %zu queues  %lld messages  sort: %s  %s", options_.path.c_str(), rows_.size(),
             static_cast<long long>(messages), sort_word(sort_), clock);
    attroff(A_BOLD);

    // QUEUE takes what the fixed columns leave.
    constexpr int kBar = 20;
    constexpr int kFixed = kBar + 2 + 1 + 13 + 10 + 10 + 8 + 8 + 9 + 8;
    int name_width = 5;
    for (const Row* row : rows) name_width = std::max(name_width, static_cast<int>(row->name.size()));
    name_width = std::max(5, std::min(name_width, width - kFixed - 1));
    attron(A_REVERSE);
    mvprintw(1, 0, "%-*.*s %-*s %13s%10s%10s%8s%8s%9s%8s", name_width, name_width, "QUEUE", kBar + 2, "DEPTH",
             "MSGS/MAX", "SEND/s", "RECV/s", "READERS", "WRITERS", "INFLIGHT", "OLDEST");
    for (int x = getcurx(stdscr); x < width; ++x) addch(' ');
    attroff(A_REVERSE);

    int y = 2;
    for (const Row* row : rows) {
      if (y >= LINES - 1) break;
      const QueueStats& s = row->stats;
      const double fill = s.maxmsg > 0 ? std::min(1.0, double(s.messages) / double(s.maxmsg)) : 0;
      const int filled = static_cast<int>(std::lround(fill * kBar));
      mvprintw(y, 0, "%-*.*s [", name_width, name_width, row->name.c_str());
      const short colour = fill >= 0.9 ? kHigh : fill >= 0.5 ? kMiddle : kLow;
      attron(COLOR_PAIR(colour) | A_BOLD);
      for (int i = 0; i < filled; ++i) addch('#');
      attroff(COLOR_PAIR(colour) | A_BOLD);
      for (int i = filled; i < kBar; ++i) addch('.');
      const std::string depth = std::to_string(s.messages) + "/" + std::to_string(s.maxmsg);
      printw("] %13s%10.1f%10.1f%8lld%8lld%9lld%8s", depth.c_str(), row->send_rate, row->recv_rate,
             static_cast<long long>(s.waiting_readers), static_cast<long long>(s.waiting_writers),
             static_cast<long long>(s.inflight), age(s.oldest_ms).c_str());
      ++y;
    }
    if (rows.empty()) mvprintw(y, 0, filter_.empty() ? "(no queues)" : "(no queue matches the filter)");

    std::string footer = typing_ ? "filter: " + typed_ + "_   (Enter: apply, Esc: cancel)"
                                 : "q quit  d depth  r rate  n name  / filter  space refresh";
    if (!typing_ && !filter_.empty()) footer += "   filter: " + filter_;
    if (!problem_.empty()) footer += "   " + problem_;
    attron(A_REVERSE);
    mvprintw(LINES - 1, 0, "%-*.*s", width, width, footer.c_str());
    attroff(A_REVERSE);
    refresh();
  }

  // False when the key quits.
  bool on_key(int key, Clock::time_point& next_sample) {
    if (typing_) {
      if (key == '\n' || key == KEY_ENTER) {
        filter_ = typed_;
        typing_ = false;
      } else if (key == 27) {
        typing_ = false;
      } else if ((key == KEY_BACKSPACE || key == 127 || key == 8) && !typed_.empty()) {
        typed_.pop_back();
      } else if (key >= 32 && key < 127) {
        typed_ += static_cast<char>(key);
      }
      return true;
    }
    switch (key) {
      case 'q':
      case 'Q':
      case 27: return false;
      case 'd': sort_ = TopSort::depth; break;
      case 'r': sort_ = TopSort::rate; break;
      case 'n': sort_ = TopSort::name; break;
      case '/':
        typing_ = true;
        typed_.clear();
        break;
      case ' ': next_sample = Clock::now(); break;
      default: break;
    }
    return true;
  }

  const TopOptions& options_;
  TopSort sort_;
  std::vector<Row> rows_;
  std::map<std::string, QueueStats> previous_;
  Clock::time_point sampled_at_ = Clock::now();
  std::string filter_;
  std::string typed_;
  bool typing_ = false;
  std::string problem_;
};

}  // namespace

int top(const TopOptions& options) {
  if (!::isatty(STDOUT_FILENO))
    throw Failure{"top", "standard output is not a terminal (mq stat prints once)"};
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return Top(options).run();
}

}  // namespace mq
