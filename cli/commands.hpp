// The subcommands of peftcpp, one registration function per file.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "peft/adapter_io.hpp"
#include "peft/dtype.hpp"
#include "peft/error.hpp"

namespace peftcpp::cli {

// Every dtype option (--dtype): PyTorch's and safetensors' spellings, one alias table
// (peft::floating_dtype_from_alias). nullopt for an empty (not given) option.
inline const CLI::Validator kCastDtypeNames(
    [](const std::string& text) -> std::string {
      if (peft::floating_dtype_from_alias(text)) return {};
      return "unknown dtype '" + text + "'; expected one of " +
             std::string(peft::floating_dtype_aliases());
    },
    "DTYPE");
inline std::optional<peft::DType> cast_dtype(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return peft::floating_dtype_from_alias(text);
}

// --revision / --subfolder of single-input commands: where a Hub id is looked for (the
// argument's own "org/name[/sub][@rev]" takes precedence for the revision).
inline void add_location_options(CLI::App* cmd, peft::AdapterLocation& location) {
  cmd->add_option("--revision", location.revision,
                  "branch, tag or commit of a Hub id (same as ID@REVISION; default main)");
  cmd->add_option("--subfolder", location.subfolder,
                  "sub folder inside the adapter folder or Hub repository (same as ID/SUB)");
}

// How a command reports through its exit status: most commands exit 1 when their input is
// invalid, unreadable or refused; validate and diff follow diff(1), where 1 is their answer
// ("problems", "different") and a failure to read the input is 2.
enum class CommandFamily { Act, Check };

// The exit status of a command that failed with an error of `category`; argument errors
// (caught before the library runs) are always 2. One row per family, one column per
// category (io, usage, format, tensor, config, model, unsupported).
inline int failure_exit_code(peft::ErrorCategory category, CommandFamily family) {
  //                          io usage format tensor config model unsupported
  constexpr int kTable[2][7] = {{1, 1, 1, 1, 1, 1, 1},   // Act
                                {2, 2, 2, 2, 2, 2, 2}};  // Check
  const auto row = static_cast<std::size_t>(family);
  const auto column = static_cast<std::size_t>(static_cast<int>(category) - 1);
  return column < 7 ? kTable[row][column] : kTable[row][0];
}

struct GlobalOptions {
  bool quiet = false;
  bool verbose = false;
  int exit_code = 0;                          // set by the command that ran
  CommandFamily family = CommandFamily::Act;  // set by the command that ran
};

void register_inspect(CLI::App& app, GlobalOptions& global);
void register_validate(CLI::App& app, GlobalOptions& global);
void register_convert(CLI::App& app, GlobalOptions& global);
void register_diff(CLI::App& app, GlobalOptions& global);
void register_extract(CLI::App& app, GlobalOptions& global);
void register_merge(CLI::App& app, GlobalOptions& global);
void register_unmerge(CLI::App& app, GlobalOptions& global);
void register_export_gguf(CLI::App& app, GlobalOptions& global);
void register_download(CLI::App& app, GlobalOptions& global);

}  // namespace peftcpp::cli
