// The subcommands of peftcpp, one registration function per file.
#pragma once

#include <CLI/CLI.hpp>

namespace peftcpp::cli {

struct GlobalOptions {
  bool quiet = false;
  bool verbose = false;
  int exit_code = 0;  // set by the command that ran
};

void register_inspect(CLI::App& app, GlobalOptions& global);

}  // namespace peftcpp::cli
