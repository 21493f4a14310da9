// peftcpp validate: problems users actually hit, each with what to do.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <tuple>

#include "commands.hpp"
#include "peft/adapter_io.hpp"
#include "peft/validate.hpp"

namespace peftcpp::cli {

namespace {

// Problems that say the same thing about several places (24 modules with the same rank
// mismatch) are printed once, with the places listed after the file they are in.
void print_grouped(const std::vector<peft::Problem>& problems) {
  struct Group {
    const peft::Problem* first;
    std::string file;
    std::vector<std::string> places;
  };
  std::vector<Group> groups;
  std::map<std::tuple<std::string, std::string, std::string>, std::size_t> index;
  for (const auto& p : problems) {
    const auto colon = p.source.find(": ");
    std::string file = colon == std::string::npos ? p.source : p.source.substr(0, colon);
    std::string place = colon == std::string::npos ? "" : p.source.substr(colon + 2);
    const auto key = std::make_tuple(p.code, p.message, file);
    auto [it, added] = index.emplace(key, groups.size());
    if (added) groups.push_back({&p, file, {}});
    if (!place.empty()) groups[it->second].places.push_back(std::move(place));
  }
  for (const auto& g : groups) {
    std::string where = g.file;
    if (g.places.size() == 1) where += ": " + g.places.front();
    if (g.places.size() > 1) {
      constexpr std::size_t kShown = 3;
      std::vector<std::string> shown(g.places.begin(),
                                     g.places.begin() + std::min(kShown, g.places.size()));
      where += fmt::format(": {} places ({}{})", g.places.size(), fmt::join(shown, ", "),
                           g.places.size() > kShown ? ", ..." : "");
    }
    fmt::print("{} [{}{}] {}\n    → {}\n", where, g.first->code,
               g.first->severity == peft::Severity::Warning ? ", warning" : "", g.first->message,
               g.first->hint);
  }
}

void print_counts(const std::vector<peft::Problem>& problems, bool strict) {
  const auto warnings =
      static_cast<std::size_t>(std::count_if(problems.begin(), problems.end(), [](const auto& p) {
        return p.severity == peft::Severity::Warning;
      }));
  const std::size_t errors = problems.size() - warnings;
  fmt::print("{} error{}, {} warning{}{}\n", errors, errors == 1 ? "" : "s", warnings,
             warnings == 1 ? "" : "s", strict && warnings ? " (--strict: warnings count)" : "");
}

}  // namespace

void register_validate(CLI::App& app, GlobalOptions& global) {
  struct Options {
    std::string path;
    peft::AdapterLocation location;
    bool json = false;
    bool strict = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("validate", "check an adapter folder for the problems users hit");
  cmd->add_option("path", options->path,
                  "adapter folder, one of its files, or Hub id (org/name[/sub][@rev]) in the "
                  "local cache")
      ->required();
  add_location_options(cmd, options->location);
  cmd->add_flag("--json", options->json, "print the problems as JSON");
  cmd->add_flag("--strict", options->strict, "count warnings as problems too (exit 1)");
  cmd->footer(
      "Exit code: 0 no error (warnings are shown), 1 errors found (or warnings with --strict), "
      "2 usage error or unreadable input.\n\nExamples:\n"
      "  peftcpp validate my-adapter\n  peftcpp validate my-adapter --json");
  cmd->callback([options, &global] {
    global.family = CommandFamily::Check;
    std::error_code ec;
    const auto problems = std::filesystem::is_regular_file(options->path, ec)
                              ? peft::validate_file(options->path)
                              : peft::validate_adapter_folder(
                                    peft::resolve_adapter_folder(options->path, options->location));
    const bool failed = std::any_of(problems.begin(), problems.end(), [&](const auto& p) {
      return options->strict || p.severity == peft::Severity::Error;
    });
    if (options->json) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& p : problems) list.push_back(peft::to_json(p));
      std::cout << nlohmann::json{{"path", options->path},
                                  {"clean", problems.empty()},
                                  {"passed", !failed},
                                  {"problems", list}}
                       .dump(2)
                << "\n";
    } else if (problems.empty()) {
      if (!global.quiet) fmt::print("{}: no problems found\n", options->path);
    } else {
      print_grouped(problems);
      if (!global.quiet) print_counts(problems, options->strict);
    }
    global.exit_code = failed ? 1 : 0;
  });
}

}  // namespace peftcpp::cli
