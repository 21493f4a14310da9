// peft/validate.hpp — the problems users actually hit with adapter folders, found
// without the base model: empty or truncated weight files, configs PEFT would refuse,
// tensors whose shapes contradict the config, tensors of modules the config does not
// target, targeted modules without weights, adapter names left inside keys, .bin files
// that would need code execution.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/config.hpp"
#include "peft/diagnostic.hpp"
#include "peft/export.hpp"
#include "peft/state_dict.hpp"

namespace peft {

// A problem validate found: a Diagnostic whose source is the file (and key) concerned,
// with a hint; Severity::Error for what makes PEFT fail or load other values.
using Problem = Diagnostic;

// Every problem of the adapter(s) in `folder` (the root and its adapter sub folders).
// Throws NotFound when `folder` is not a folder.
PEFT_API std::vector<Problem> validate_adapter_folder(const std::filesystem::path& folder);

// The problems of one file: an adapter_config.json (recognised by content: JSON) or a
// weights file. Throws for a file that is neither (e.g. GGUF) or cannot be opened.
PEFT_API std::vector<Problem> validate_file(const std::filesystem::path& file);

// The problems of an adapter held in memory (a config and its saved-key weights): the
// checks of validate_adapter_folder that do not need files, with `source` as their source.
PEFT_API std::vector<Problem> validate_adapter(const PeftConfig& config, const StateDict& weights,
                                               const std::string& source);

PEFT_API nlohmann::json to_json(const Problem& problem);

}  // namespace peft
