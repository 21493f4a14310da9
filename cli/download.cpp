// peftcpp download: files or a snapshot of a Hub repository into the Hugging Face cache,
// like `huggingface-cli download`; the path is the last line of stdout.
#include <fmt/format.h>

#include "commands.hpp"
#include "peft/hub_download.hpp"
#include "progress.hpp"

namespace peftcpp::cli {

void register_download(CLI::App& app, GlobalOptions& /*global*/) {
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
  cmd->callback([options] {
    peft::HubSnapshotOptions hub;
    hub.revision = options->revision;
    if (!options->cache_dir.empty()) hub.settings.cache_dir = options->cache_dir;
    if (!options->token.empty()) hub.settings.token = options->token;
    // Progress: the CLI's default display (progress.hpp), on a terminal without --quiet.
    std::filesystem::path result;
    if (options->filenames.size() == 1) {
      result = peft::hf_hub_download(options->repo_id, options->filenames[0], hub);
    } else {
      // Several files: a snapshot restricted to them, as huggingface-cli does.
      hub.allow_patterns = options->filenames.empty() ? options->include : options->filenames;
      if (options->filenames.empty()) hub.ignore_patterns = options->exclude;
      result = peft::snapshot_download(options->repo_id, hub);
    }
    end_progress();
    fmt::print("{}\n", result.string());
  });
}

}  // namespace peftcpp::cli
