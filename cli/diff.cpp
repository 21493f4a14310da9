// peftcpp diff: are two adapters (or weight files) the same?
#include <fmt/format.h>

#include <iostream>

#include "commands.hpp"
#include "peft/convert.hpp"

namespace peftcpp::cli {

namespace {

void print_summary(const peft::Comparison& c) {
  const std::string tolerance =
      c.within_tolerance ? fmt::format(", {} equal within the tolerance", c.within_tolerance)
                         : std::string();
  if (c.identical()) {
    fmt::print("identical ({} tensor{}{})\n", c.compared, c.compared == 1 ? "" : "s", tolerance);
    return;
  }
  fmt::print("different: {} tensor difference{} ({} tensor{} in both{}), {} config difference{}\n",
             c.tensors.size(), c.tensors.size() == 1 ? "" : "s", c.compared,
             c.compared == 1 ? "" : "s", tolerance, c.config_differences.size(),
             c.config_differences.size() == 1 ? "" : "s");
}

}  // namespace

void register_diff(CLI::App& app, GlobalOptions& global) {
  struct Options {
    std::string a, b;
    bool json = false;
    peft::CompareOptions compare;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("diff", "compare two adapter folders or weight files");
  cmd->add_option("a", options->a, "first adapter folder or weights file")->required();
  cmd->add_option("b", options->b, "second adapter folder or weights file")->required();
  cmd->add_flag("--json", options->json, "print the differences as JSON");
  cmd->add_option("--atol", options->compare.atol,
                  "absolute tolerance: values equal when |a-b| <= atol + rtol*|b| (default 0: "
                  "identical bytes)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--rtol", options->compare.rtol, "relative tolerance (see --atol)")
      ->check(CLI::NonNegativeNumber);
  cmd->footer(
      "Exit code (as diff(1)): 0 identical, 1 different, 2 usage error or unreadable input.\n\n"
      "A folder compared with a file stands for its weights file.\n\nExamples:\n"
      "  peftcpp diff adapter-v1 adapter-v2\n"
      "  peftcpp diff adapter-v1 converted.safetensors --atol 1e-6 --rtol 1e-3");
  cmd->callback([options, &global] {
    global.family = CommandFamily::Check;
    const auto comparison = peft::compare_adapters(options->a, options->b, options->compare);
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
      if (!global.quiet) print_summary(comparison);
    }
    global.exit_code = comparison.identical() ? 0 : 1;
  });
}

}  // namespace peftcpp::cli
