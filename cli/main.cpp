// peftcpp — the command-line tool. Argument handling and presentation only; every
// decision lives in the library.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "peft/error.hpp"
#include "peft/signals.hpp"
#include "peft/version.hpp"
#include "progress.hpp"

namespace {

// Levenshtein distance, for "did you mean" (names are a few letters: O(n·m) is nothing).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

// The first argument that is not an option of peftcpp itself (the command), or -1.
int command_position(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") return i + 1 < argc ? i + 1 : -1;
    if (!arg.starts_with("-")) return i;
  }
  return -1;
}

bool wants_json(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--json") return true;
  }
  return false;
}

// One line on stderr; with --json, also a JSON document on stdout that scripts can read.
int fail(const std::string& code, const std::string& message, const std::string& source,
         int exit_code, bool json, const peft::ErrorCode* number = nullptr) {
  peftcpp::cli::end_progress();  // the message starts its own line
  std::fprintf(stderr, "peftcpp: error: %s\n", message.c_str());
  if (json) {
    nlohmann::json doc{{"error", {{"code", code}, {"source", source}, {"message", message}}}};
    if (number != nullptr) {
      doc["error"]["number"] = static_cast<int>(*number);
      doc["error"]["category"] = peft::to_string(peft::category(*number));
    }
    std::cout << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return exit_code;
}

// `peftcpp help [COMMAND]`, and unknown commands with the nearest known one suggested.
// Returns an exit code when the arguments were handled here.
std::optional<int> handle_command_word(CLI::App& app, int argc, char** argv, bool json) {
  const int at = command_position(argc, argv);
  if (at < 0) return std::nullopt;
  const std::string word = argv[at];
  const auto names = command_names(app);
  if (word == "help") {
    if (at + 1 >= argc) {
      std::cout << app.help();
      return 0;
    }
    const std::string topic = argv[at + 1];
    if (std::find(names.begin(), names.end(), topic) != names.end()) {
      std::cout << app.get_subcommand(topic)->help();
      return 0;
    }
    return fail("usage",
                fmt::format("no command '{}'; commands: {}", topic, fmt::join(names, ", ")), "", 2,
                json);
  }
  if (std::find(names.begin(), names.end(), word) != names.end()) return std::nullopt;
  // The closest name, if it is close: two edits, or the word is the start of a name.
  std::string nearest;
  std::size_t best = 3;
  for (const auto& name : names) {
    const std::size_t d = edit_distance(word, name);
    const bool prefix = word.size() >= 3 && name.starts_with(word);
    if (d < best || (prefix && nearest.empty())) {
      best = std::min(best, d);
      nearest = name;
    }
  }
  const std::string message =
      nearest.empty() ? fmt::format("unknown command '{}'; commands: {} (peftcpp help)", word,
                                    fmt::join(names, ", "))
                      : fmt::format("unknown command '{}'; did you mean '{}'?", word, nearest);
  return fail("usage", message, "", 2, json);
}

}  // namespace

static int run(int argc, char** argv) {
  CLI::App app{"peftcpp: read, inspect, convert and apply Hugging Face PEFT adapters", "peftcpp"};
  app.set_version_flag("--version", std::string("peftcpp ") + PEFTCPP_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // -q / -v are accepted after the command too
  peftcpp::cli::GlobalOptions global;
  app.add_flag("-q,--quiet", global.quiet, "print only errors");
  app.add_flag("-v,--verbose", global.verbose, "print more detail");
  app.footer("Run 'peftcpp help COMMAND' (or 'peftcpp COMMAND --help') for a command's options.");

  peftcpp::cli::register_inspect(app, global);
  peftcpp::cli::register_validate(app, global);
  peftcpp::cli::register_convert(app, global);
  peftcpp::cli::register_diff(app, global);
  peftcpp::cli::register_extract(app, global);
  peftcpp::cli::register_merge(app, global);
  peftcpp::cli::register_unmerge(app, global);
  peftcpp::cli::register_export_gguf(app, global);
  peftcpp::cli::register_download(app, global);
  peftcpp::cli::install_hub_progress(global);
  peft::install_sigbus_handler(1);

  const bool json = wants_json(argc, argv);
  if (const auto handled = handle_command_word(app, argc, argv, json)) return *handled;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string command = "peftcpp";
    for (const CLI::App* sub : app.get_subcommands()) command += " " + sub->get_name();
    return fail("usage", fmt::format("{} (see '{} --help')", e.what(), command), "", 2, json);
  } catch (const peft::Error& e) {
    // One line: file, rule and what was expected are in the message.
    const peft::ErrorCode code = e.code();
    return fail(std::string(peft::to_string(code)), e.what(), e.source(),
                peftcpp::cli::failure_exit_code(peft::category(code), global.family), json, &code);
  } catch (const std::exception& e) {  // std::bad_alloc, filesystem errors of the CLI itself
    return fail("error", e.what(), "", global.family == peftcpp::cli::CommandFamily::Act ? 1 : 2,
                json);
  }
  return global.exit_code;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // setting the parser up failed (out of memory...)
    std::fprintf(stderr, "peftcpp: error: %s\n", e.what());
    return 1;
  }
}
