// The subcommands of peftcpp, one registration function per file.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "peft/dtype.hpp"

namespace peftcpp::cli {

// The floating dtypes `--dtype` accepts (convert, merge, unmerge), and what each names;
// nullopt for an empty (not given) option.
inline const CLI::IsMember kCastDtypeNames({"f32", "f16", "bf16"});
inline std::optional<peft::DType> cast_dtype(const std::string& text) {
  if (text == "f32") return peft::DType::F32;
  if (text == "f16") return peft::DType::F16;
  if (text == "bf16") return peft::DType::BF16;
  return std::nullopt;
}

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
