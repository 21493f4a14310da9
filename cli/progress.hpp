// The progress display of Hub downloads on stderr: one line redrawn in place, installed as
// the library's default progress callback so that every command that downloads shows it.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "peft/hub_download.hpp"

namespace peftcpp::cli {

// One status line on stderr (per file and total, bytes/s, ETA), redrawn at most 10 times a
// second from the downloading threads.
class ProgressLine {
 public:
  void update(const peft::HubProgress& p) {
    const std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (files_.empty()) start_ = now;  // a new batch of downloads: its own rate
    files_[p.file] = {p.done, p.total};
    if (!p.finished && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    std::uint64_t done = 0, total = 0;
    for (const auto& [name, f] : files_) {
      done += f.first;
      total += f.second;
    }
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    std::string eta = "?";
    if (rate > 0 && total >= done)
      eta = fmt::format("{:.0f}s", static_cast<double>(total - done) / rate);
    fmt::print(stderr, "\r\033[K{}: {} / {}  total {} / {}  {}/s  ETA {}", p.file, human(p.done),
               human(p.total), human(done), human(total), human(static_cast<std::uint64_t>(rate)),
               eta);
    // Everything reported is complete: the last state stays on its own line.
    if (std::all_of(files_.begin(), files_.end(), [](const auto& f) {
          return f.second.first == f.second.second && f.second.second > 0;
        })) {
      fmt::print(stderr, "\n");
      files_.clear();
    }
    std::fflush(stderr);
  }
  // Clears the line (before the command's output or error message) and forgets the files.
  void end() {
    const std::lock_guard lock(mutex_);
    if (!files_.empty()) fmt::print(stderr, "\r\033[K");
    files_.clear();
  }

 private:
  static std::string human(std::uint64_t bytes) {
    const char* units[] = {"B", "KB", "MB", "GB", "TB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1000 && unit < 4) {
      value /= 1000;
      ++unit;
    }
    return fmt::format("{:.1f} {}", value, units[unit]);
  }

  std::mutex mutex_;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> files_;
  std::chrono::steady_clock::time_point start_{};
  std::chrono::steady_clock::time_point last_{};
};

inline ProgressLine& progress_line() {
  static ProgressLine line;
  return line;
}

// Draws progress only when stderr is a terminal and --quiet is not given (checked when a
// download reports, after the arguments are parsed).
inline void install_hub_progress(const GlobalOptions& global) {
  if (::isatty(STDERR_FILENO) == 0) return;
  peft::set_default_hub_progress([&global](const peft::HubProgress& p) {
    if (!global.quiet) progress_line().update(p);
  });
}

inline void end_progress() {
  progress_line().end();
}

}  // namespace peftcpp::cli
