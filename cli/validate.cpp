// peftcpp validate: problems users actually hit, each with what to do.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "peft/adapter_io.hpp"
#include "peft/validate.hpp"

namespace peftcpp::cli {

void register_validate(CLI::App& app, GlobalOptions& global) {
  struct Options {
    std::string path;
    SourceOptions source;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("validate", "check an adapter folder for the problems users hit");
  cmd->add_option("path", options->path,
                  "adapter folder, one of its files, or Hub id (org/name[/sub][@rev]) in the "
                  "local cache")
      ->required();
  add_source_options(cmd, options->source);
  cmd->add_flag("--json", options->json, "print the problems as JSON");
  cmd->footer(
      "Exit code: 0 clean, 1 problems found, 2 usage error or unreadable input.\n\nExamples:\n"
      "  peftcpp validate my-adapter\n  peftcpp validate my-adapter --json");
  cmd->callback([options, &global] {
    global.family = CommandFamily::Check;
    std::error_code ec;
    const auto problems =
        std::filesystem::is_regular_file(options->path, ec)
            ? peft::validate_file(options->path)
            : peft::validate_adapter_folder(resolve_input(options->path, options->source));
    if (options->json) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& p : problems) list.push_back(peft::to_json(p));
      std::cout << nlohmann::json{{"path", options->path},
                                  {"clean", problems.empty()},
                                  {"problems", list}}
                       .dump(2)
                << "\n";
    } else if (problems.empty()) {
      if (!global.quiet) fmt::print("{}: no problems found\n", options->path);
    } else {
      for (const auto& p : problems) {
        fmt::print("{} [{}{}] {}\n    → {}\n", p.where, p.code,
                   p.severity == peft::Severity::Warning ? ", warning" : "", p.message, p.hint);
      }
      if (!global.quiet)
        fmt::print("{} problem{} found\n", problems.size(), problems.size() == 1 ? "" : "s");
    }
    global.exit_code = problems.empty() ? 0 : 1;
  });
}

}  // namespace peftcpp::cli
