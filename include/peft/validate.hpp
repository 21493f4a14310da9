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

namespace peft {

struct Problem {
  std::string code;     // stable identifier, e.g. "empty_weights", "rank_mismatch"
  std::string where;    // file (and key) concerned
  std::string message;  // what is wrong
  std::string hint;     // what to do
};

// Every problem of the adapter(s) in `folder` (the root and its adapter sub folders).
// Throws NotFound when `folder` is not a folder.
std::vector<Problem> validate_adapter_folder(const std::filesystem::path& folder);

nlohmann::json to_json(const Problem& problem);

}  // namespace peft
