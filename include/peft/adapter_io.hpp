// peft/adapter_io.hpp — adapter folders end to end, named as in Python PEFT:
// load_peft_weights, save_pretrained, from_pretrained (docs/peft-rules.md §1.1, §1.6, §3.6, §4).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "peft/config.hpp"
#include "peft/diagnostic.hpp"
#include "peft/export.hpp"
#include "peft/injection.hpp"
#include "peft/peft_model.hpp"
#include "peft/peft_state_dict.hpp"
#include "peft/state_dict.hpp"

namespace peft {

// Where an adapter is looked for: a local folder, else the Hugging Face cache.
struct PEFT_API AdapterLocation {
  std::string subfolder;                           // "" = none
  std::string revision = "main";                   // branch, tag or commit (cache lookups)
  std::optional<std::filesystem::path> cache_dir;  // default: HubCache::default_root()
};

struct PEFT_API LoadWeightsOptions {
  AdapterLocation location;
  // Python's key_mapping: (regex, replacement) pairs tried in order on each key with
  // its "base_model.model." / "base_model." prefix stripped; the first pattern that
  // matches replaces all its matches (Python re.subn, \1 and \g<name> references).
  std::vector<std::pair<std::string, std::string>> key_mapping;
  bool use_mmap = true;
};

// The file `filename` of the adapter `id_or_path`: id_or_path[/subfolder]/filename when it
// exists locally, else the cached file of Hub repository `id_or_path`. Throws NotFound
// listing every place that was tried.
PEFT_API std::filesystem::path resolve_adapter_file(const std::string& id_or_path,
                                                    const std::string& filename,
                                                    const AdapterLocation& location = {});

// The folder of the adapter `id_or_path`: the local folder (with the sub folder), else
// the snapshot folder of that revision in the Hugging Face cache. Throws NotFound listing
// the places tried.
PEFT_API std::filesystem::path resolve_adapter_folder(const std::string& id_or_path,
                                                      const AdapterLocation& location = {});

// The adapter's weights, saved keys (adapter_model.safetensors preferred over
// adapter_model.bin), zero-copy where the file allows.
PEFT_API StateDict load_peft_weights(const std::string& id_or_path,
                                     const LoadWeightsOptions& options = {});

// Applies a key_mapping as load_peft_weights does.
PEFT_API StateDict apply_key_mapping(
    StateDict weights, const std::vector<std::pair<std::string, std::string>>& key_mapping);

// adapter_config.json of the adapter `id_or_path`.
PEFT_API PeftConfig load_adapter_config(const std::string& id_or_path,
                                        const AdapterLocation& location = {});

struct PEFT_API SavePretrainedOptions {
  std::vector<std::string> selected_adapters;  // empty: every adapter, in creation order
  bool select_none = false;                    // save no adapter (only the model card)
  SaveEmbeddingLayers save_embedding_layers = SaveEmbeddingLayers::Auto;
  bool safe_serialization = true;  // false: adapter_model.bin
  bool write_model_card = true;
  // For the model card and, when a config has none, base_model_name_or_path.
  std::optional<std::string> base_model_name_or_path;
  std::string base_model_class;        // auto_mapping when task_type is null
  std::string base_model_library;      // auto_mapping's parent_library
  bool is_transformers_model = false;  // model card tag
  std::string task_type_pipeline;      // "text-generation" for causal LMs, else ""
  // PiSSA / CorDA / OLoRA: the folder where the untrained adapter was saved; the written
  // adapter becomes a plain LoRA (rank doubled) for the original base weights.
  std::optional<std::filesystem::path> path_initial_model_for_weight_conversion;
  Diagnostics* warnings = nullptr;
};

// Writes every selected adapter as PEFT does: "default" into `folder`, adapter X into
// folder/X, each an adapter_config.json plus adapter_model.safetensors (or .bin), and a
// README.md model card at the top. Every file is replaced atomically. Unlike PEFT, an
// adapter of which the model holds no tensor is refused (InvalidArgument) before anything
// is written: the model's state must use full keys ("...lora_A.default.weight"); weights
// with saved keys (load_peft_weights) are written with save_adapter instead.
PEFT_API void save_pretrained(PeftModel& model, const std::filesystem::path& folder,
                              const SavePretrainedOptions& options = {});

struct PEFT_API FromPretrainedOptions {
  AdapterLocation location;
  std::string adapter_name = "default";
  bool is_trainable = false;
  bool ignore_mismatched_sizes = false;
  bool low_cpu_mem_usage = false;
  std::vector<std::pair<std::string, std::string>> key_mapping;
  Diagnostics* warnings = nullptr;
};

// Loads the adapter `id_or_path` into `model` under options.adapter_name: reads its
// config (registering the adapter if the model does not have it yet; the model must
// already hold the adapter's tensors, as PEFT's injection would create them), then
// load_peft_weights + set_peft_model_state_dict. Returns the load result with the
// missing keys PEFT reports.
PEFT_API LoadResult from_pretrained(PeftModel& model, const std::string& id_or_path,
                                    const FromPretrainedOptions& options = {});

// PeftModel.from_pretrained on a plain base model (its own state dict): reads the
// adapter's config, creates the adapter's tensors as PEFT's injection does
// (inject_adapters; X-LoRA's experts are found next to the adapter's folder unless
// `injection.adapter_folder` says otherwise), then loads the weights. `result`, when
// given, receives the load result.
PEFT_API PeftModel from_pretrained(const StateDict& base, const std::string& id_or_path,
                                   const FromPretrainedOptions& options = {},
                                   const InjectionOptions& injection = {},
                                   LoadResult* result = nullptr);

}  // namespace peft
