// The subcommands of peftcpp, one registration function per file.
#pragma once

#include <CLI/CLI.hpp>

namespace peftcpp::cli {

struct GlobalOptions {
  bool quiet = false;
  bool verbose = false;
  int exit_code = 0;        // set by the command that ran
  int error_exit_code = 1;  // what a failure means for that command (diff/validate: 2)
};

void register_inspect(CLI::App& app, GlobalOptions& global);
void register_validate(CLI::App& app, GlobalOptions& global);
void register_convert(CLI::App& app, GlobalOptions& global);
void register_diff(CLI::App& app, GlobalOptions& global);
void register_extract(CLI::App& app, GlobalOptions& global);
void register_merge(CLI::App& app, GlobalOptions& global);
void register_unmerge(CLI::App& app, GlobalOptions& global);

}  // namespace peftcpp::cli
