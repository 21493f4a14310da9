// peft/inspect.hpp — what an adapter folder holds, from headers only.
//
// The facts `peftcpp inspect` shows: the config, the weights file and its tensors, and
// per targeted module the rank, alpha and effective scaling (rsLoRA, rank_pattern and
// alpha_pattern applied). A folder may hold several adapters: the root one ("default")
// and one per sub folder with an adapter_config.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/config.hpp"
#include "peft/export.hpp"
#include "peft/state_dict.hpp"
#include "peft/tensor.hpp"

namespace peft {

struct PEFT_API TensorSummary {
  std::string name;
  DType dtype;
  Shape shape;
};

struct PEFT_API ModuleSummary {
  std::string module;  // path in the base model ("model.layers.0.self_attn.q_proj")
  // LoRA-like methods. PEFT takes r and the scaling from the config, never from the
  // tensors: `rank`, `alpha` and `scaling` are the config's (rank_pattern/alpha_pattern
  // and rsLoRA applied); `weights_rank` is what lora_A's first dimension says. When the
  // two differ PEFT refuses the weights with a size mismatch.
  std::optional<std::int64_t> rank;          // from the config
  std::optional<std::int64_t> weights_rank;  // from the tensors
  std::optional<double> alpha;               // from the config (alpha_pattern applied)
  std::optional<double> scaling;             // alpha / r, or alpha / sqrt(r) with rsLoRA
  std::size_t tensors = 0;
  bool rank_mismatch() const { return rank && weights_rank && *rank != *weights_rank; }
};

struct PEFT_API AdapterSummary {
  std::string name;  // "default" for the root folder, else the sub folder's name
  std::filesystem::path folder;
  std::optional<PeftConfig> config;
  std::string config_error;            // why the config could not be read, when it could not
  std::filesystem::path weights_file;  // empty when the folder has no weights
  std::string weights_format;          // "safetensors", "bin" or "" (missing)
  std::string weights_error;           // why the weights could not be read
  std::uint64_t bytes_on_disk = 0;
  std::uint64_t parameters = 0;
  std::map<std::string, std::size_t> dtypes;  // dtype name -> tensor count
  std::vector<TensorSummary> tensors;         // in file order
  std::vector<ModuleSummary> modules;         // targeted modules found in the weights
  std::vector<std::string> other_keys;        // saved keys that belong to no tuner layer

  // Whether everything asked about could be read: a config, and weights without error
  // (for a single weights file: the weights only).
  bool complete() const {
    return (config || config_error.empty()) && !weights_file.empty() && weights_error.empty();
  }
};

// The adapters of a folder: the root one (if it has a config or weights) and every
// direct sub folder holding an adapter_config.json. Never throws for a broken file:
// the problem is recorded in config_error / weights_error. Throws NotFound when the
// folder does not exist or holds no adapter at all.
PEFT_API std::vector<AdapterSummary> inspect_adapters(const std::filesystem::path& folder);

// A single weights file (safetensors or torch.save, recognised by content): its tensors.
// A file that cannot be read at all (missing, a JSON or GGUF file) throws; a damaged one
// is summarized with weights_error set.
PEFT_API AdapterSummary inspect_weights_file(const std::filesystem::path& file);

// The summary of an adapter held in memory: a config and its weights with saved keys
// (what load_peft_weights returns). weights_file stays empty, weights_format is "memory".
PEFT_API AdapterSummary summarize_adapter(const PeftConfig& config, const StateDict& weights,
                                          std::string name = "default");

// The documented JSON form of a summary (see docs/cli.md).
PEFT_API nlohmann::json to_json(const AdapterSummary& summary, bool with_tensors);

// "model.layers.*.self_attn.q_proj" for every module path, numeric components replaced.
PEFT_API std::string layer_pattern(std::string_view module);

}  // namespace peft
