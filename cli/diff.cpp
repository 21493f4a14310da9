// peftcpp diff: are two adapters (or weight files) the same?
#include <fmt/format.h>

#include <iostream>

#include "commands.hpp"
#include "peft/convert.hpp"

namespace peftcpp::cli {

void register_diff(CLI::App& app, GlobalOptions& global) {
  struct Options {
    std::string a, b;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("diff", "compare two adapter folders or weight files");
  cmd->add_option("a", options->a, "first adapter folder or weights file")->required();
  cmd->add_option("b", options->b, "second adapter folder or weights file")->required();
  cmd->add_flag("--json", options->json, "print the differences as JSON");
  cmd->footer(
      "Exit code (as diff(1)): 0 identical, 1 different, 2 usage error or unreadable input.\n\n"
      "Example:\n  peftcpp diff adapter-v1 adapter-v2");
  cmd->callback([options, &global] {
    global.error_exit_code = 2;
    const auto comparison = peft::compare_adapters(options->a, options->b);
    if (options->json) {
      std::cout << peft::to_json(comparison).dump(2) << "\n";
    } else {
      for (const auto& d : comparison.tensors) {
        if (d.what == "values") {
          fmt::print("{}: values differ (max abs {:g}, max rel {:g})\n", d.key, d.max_abs,
                     d.max_rel);
        } else {
          fmt::print("{}: {}\n", d.key, d.what);
        }
      }
      for (const auto& c : comparison.config_differences) fmt::print("config {}\n", c);
      if (comparison.identical() && !global.quiet) fmt::print("identical\n");
    }
    global.exit_code = comparison.identical() ? 0 : 1;
  });
}

}  // namespace peftcpp::cli
