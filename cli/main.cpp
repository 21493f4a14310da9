// peftcpp — the command-line tool. Argument handling and presentation only; every
// decision lives in the library.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "peft/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"peftcpp: read, inspect, convert and apply Hugging Face PEFT adapters", "peftcpp"};
  app.set_version_flag("--version", std::string("peftcpp ") + PEFTCPP_VERSION);
  app.require_subcommand(1);
  peftcpp::cli::GlobalOptions global;
  app.add_flag("-q,--quiet", global.quiet, "print only errors");
  app.add_flag("-v,--verbose", global.verbose, "print more detail");

  peftcpp::cli::register_inspect(app, global);
  peftcpp::cli::register_validate(app, global);
  peftcpp::cli::register_convert(app, global);
  peftcpp::cli::register_diff(app, global);
  peftcpp::cli::register_extract(app, global);
  peftcpp::cli::register_merge(app, global);
  peftcpp::cli::register_unmerge(app, global);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // usage errors are exit code 2
  } catch (const std::exception& e) {
    // One line: file, rule and what was expected are in the message.
    std::fprintf(stderr, "peftcpp: error: %s\n", e.what());
    return global.error_exit_code;
  }
  return global.exit_code;
}
