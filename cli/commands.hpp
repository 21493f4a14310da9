// The subcommands of peftcpp, one registration function per file.
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <optional>
#include <string>

#include "peft/adapter_io.hpp"
#include "peft/dtype.hpp"

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

// Where an input that is a Hub id is looked for: "org/name[/sub][@rev]" in the argument,
// or these options (single-input commands).
struct SourceOptions {
  std::string revision = "main";
  std::string subfolder;
};
inline void add_source_options(CLI::App* cmd, SourceOptions& source) {
  cmd->add_option("--revision", source.revision,
                  "branch, tag or commit of a Hub id (same as ID@REVISION; default main)");
  cmd->add_option("--subfolder", source.subfolder,
                  "sub folder inside the adapter folder or Hub repository (same as ID/SUB)");
}
inline peft::AdapterLocation location_of(const SourceOptions& source) {
  peft::AdapterLocation location;
  location.revision = source.revision;
  location.subfolder = source.subfolder;
  return location;
}
inline std::filesystem::path resolve_input(const std::string& path, const SourceOptions& source) {
  return peft::resolve_adapter_folder(path, location_of(source));
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
