// peftcpp download: files or a snapshot of a Hub repository into the Hugging Face cache,
// like `huggingface-cli download`; the path is the last line of stdout.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "commands.hpp"
#include "peft/hub_download.hpp"

namespace peftcpp::cli {

namespace {

// One status line on stderr (per file and total, bytes/s, ETA), redrawn at most 10 times a
// second from the downloading threads.
class ProgressLine {
 public:
  void update(const peft::HubProgress& p) {
    const std::lock_guard lock(mutex_);
    files_[p.file] = {p.done, p.total};
    const auto now = std::chrono::steady_clock::now();
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
    std::fflush(stderr);
  }
  void end() {
    const std::lock_guard lock(mutex_);
    if (!files_.empty()) fmt::print(stderr, "\r\033[K");
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
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

void register_download(CLI::App& app, GlobalOptions& global) {
  struct Options {
    std::string repo_id, revision = "main", cache_dir, token;
    std::vector<std::string> filenames, include, exclude;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "download", "download files or a snapshot of a Hub repository into the Hugging Face cache");
  cmd->add_option("repo_id", options->repo_id, "the repository (org/name)")->required();
  cmd->add_option("filenames", options->filenames,
                  "files to download (default: the whole repository)");
  cmd->add_option("--revision", options->revision, "branch, tag or full commit sha (default main)");
  cmd->add_option("--cache-dir", options->cache_dir,
                  "the cache folder (default $HF_HUB_CACHE, else $HF_HOME/hub)");
  cmd->add_option("--include", options->include, "only files matching this glob (repeatable)");
  cmd->add_option("--exclude", options->exclude, "no file matching this glob (repeatable)");
  cmd->add_option("--token", options->token, "Hub token (default $HF_TOKEN, else $HF_HOME/token)");
  cmd->footer(
      "Prints the snapshot folder (for one FILENAME, that file's path) as the last line of "
      "stdout. HF_ENDPOINT, HF_HUB_OFFLINE and the other variables of docs/hub.md apply.\n\n"
      "Examples:\n  peftcpp download org/my-lora\n"
      "  peftcpp download org/model config.json --revision v1.0 --quiet\n"
      "  peftcpp download org/model --include '*.safetensors' --exclude 'original/*'");
  cmd->callback([options, &global] {
    peft::HubSnapshotOptions hub;
    hub.revision = options->revision;
    if (!options->cache_dir.empty()) hub.settings.cache_dir = options->cache_dir;
    if (!options->token.empty()) hub.settings.token = options->token;
    ProgressLine line;
    if (!global.quiet && ::isatty(STDERR_FILENO))
      hub.progress = [&line](const peft::HubProgress& p) { line.update(p); };
    std::filesystem::path result;
    if (options->filenames.size() == 1) {
      result = peft::hf_hub_download(options->repo_id, options->filenames[0], hub);
    } else {
      // Several files: a snapshot restricted to them, as huggingface-cli does.
      hub.allow_patterns = options->filenames.empty() ? options->include : options->filenames;
      if (options->filenames.empty()) hub.ignore_patterns = options->exclude;
      result = peft::snapshot_download(options->repo_id, hub);
    }
    line.end();
    fmt::print("{}\n", result.string());
  });
}

}  // namespace peftcpp::cli
