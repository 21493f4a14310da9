// peft/config.hpp — adapter_config.json for every PEFT method: typed, lossless, byte-exact.
//
// A PeftConfig holds the whole JSON object of the file (docs/peft-rules.md §1.2–§1.5) and
// reads typed values out of it on demand:
//
//   * Lossless. Every member is kept verbatim, including fields PEFT v0.18.0 does not
//     declare for the type (newer PEFT fields, legacy PEFT <= 0.2 fields such as
//     `enable_lora`/`merge_weights`). PEFT drops those with a warning; keeping them is a
//     deliberate improvement (a file written by a newer PEFT survives a round trip
//     through us). They are listed by unknown_fields() and reported in warnings().
//     The one exception, as in PEFT, is `runtime_config`, which is dropped on load.
//   * Byte-exact. to_json_text() is Python's json.dumps(indent=2, sort_keys=True), so a
//     file PEFT wrote is reproduced byte for byte (see src/pycompat/python_json.hpp). List
//     order is kept as read; note that PEFT writes target_modules, exclude_modules and
//     IA³'s feedforward_modules from Python sets, in arbitrary order.
//   * Typed accessors return PEFT's default when the field is absent (old files), accept
//     what Python accepts (0/1 or null for booleans, an integer where a float is expected)
//     and throw ConfigFieldType naming the file, the field and the expected type
//     otherwise (MissingKey for a method-specific field such as `r` that the type does not
//     declare and the file does not set).
//   * Loading is lenient on purpose: it checks only that the file is a JSON object with a
//     known peft_type, so that old, hand-made or newer files can be inspected. validate()
//     applies the checks with which PEFT v0.18.0 would refuse the config (docs/peft-rules.md §5.2).
//
// Types added after v0.18.0 (peft_type.hpp) load, with a warning that v0.18.0 cannot read
// them; no field table is known for them, so their accessors only read what the file has.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/diagnostic.hpp"
#include "peft/export.hpp"
#include "peft/peft_type.hpp"

namespace peft {

// target_modules / exclude_modules / feedforward_modules.
struct PEFT_API TargetModules {
  enum class Kind {
    None,   // null (or absent)
    List,   // a list of names: a module matches a name exactly or ends with "." + name
    Regex,  // a string: a Python regular expression that must match the whole module name
  };
  Kind kind = Kind::None;
  std::vector<std::string> names;  // Kind::List, in file order
  std::string regex;               // Kind::Regex
  // "all-linear" (any letter case) is kept as a Regex whose text is the shorthand: PEFT
  // replaces it, when the adapter is created, by the names of the model's Linear/Conv1D
  // layers except the output layer, and saves that list instead.
  bool is_all_linear() const;
};

// trainable_token_indices: a list of token ids (for the input embedding), or a map
// layer name -> token ids.
using TokenIndices =
    std::variant<std::vector<std::int64_t>, std::map<std::string, std::vector<std::int64_t>>>;

class PEFT_API PeftConfig {
 public:
  // `file_or_folder` is adapter_config.json itself or the folder holding it.
  static PeftConfig load(const std::filesystem::path& file_or_folder);
  // `source` names the text in errors and warnings (usually the file path).
  static PeftConfig from_json_text(std::string_view text, std::string source);
  static PeftConfig from_json(nlohmann::json value, std::string source);
  // A new config with every field PEFT v0.18.0 writes for `type`, at its default, and
  // peft_version "0.18.0" — except RandLoRA and CPT, whose configs never fill it (null),
  // as in PEFT. Input-independent effects of PEFT's constructors are applied: X-LoRA
  // hidden_size 4096 and adapters {}; CPT cpt_token_ids [0], masks [1],
  // num_virtual_tokens 1, num_transformer_submodules 1 and task_type CAUSAL_LM (the only
  // one CPT accepts). Throws Unsupported for types added after v0.18.0.
  static PeftConfig make(PeftType type);
  // The fields PEFT v0.18.0 declares (and writes) for `type`, sorted; empty for later types.
  static std::vector<std::string> declared_fields(PeftType type);

  // json.dumps(json(), indent=2, sort_keys=True): no trailing newline.
  std::string to_json_text() const;
  // Writes to_json_text() to `file` atomically (a folder means folder/adapter_config.json).
  void save(const std::filesystem::path& file) const;

  const nlohmann::json& json() const noexcept { return json_; }
  nlohmann::json& mutable_json() noexcept { return json_; }
  const std::string& source() const noexcept { return source_; }
  // What PEFT would warn about when loading this config, plus what peftcpp does
  // differently (kept fields, skipped byte order mark, ...).
  const Diagnostics& warnings() const noexcept { return warnings_; }
  // Members PEFT v0.18.0 does not declare for this type (sorted): it drops them with a
  // warning, we keep them. Empty for types added after v0.18.0 (no table is known).
  std::vector<std::string> unknown_fields() const;
  // Whether PEFT v0.18.0 declares `field` for this config's type.
  bool declares(std::string_view field) const;
  // The keys of an object-valued member in the order the text listed them (the order a
  // Python dict has, which decides PEFT's pattern lookups); members added or rebuilt
  // through mutable_json() come in sorted order. Empty when the member is not an object.
  std::vector<std::string> member_keys(std::string_view field) const;

  // The config PEFT v0.18.0 writes after loading this one: every declared field present
  // (missing ones at their defaults) and peft_version filled with "0.18.0" when absent
  // (not for RandLoRA/CPT). Unknown fields are still kept.
  PeftConfig completed() const;

  // Throws InvalidConfigValue (or ConfigFieldType) for the first reason PEFT v0.18.0
  // would refuse to construct this config (docs/peft-rules.md §5.2 C7, C8, C10–C14, C17, C18, C21,
  // C23–C25, C28–C31), and Unsupported for types added after v0.18.0.
  void validate() const;

  PeftType peft_type() const;
  std::optional<TaskType> task_type() const;  // InvalidConfigValue for an unknown name
  bool is_prompt_learning() const { return peft::is_prompt_learning(peft_type()); }

  // Common fields.
  std::optional<std::string> base_model_name_or_path() const;
  std::optional<std::string> revision() const;
  bool inference_mode() const;
  std::optional<std::string> peft_version() const;  // as stored; nullopt when null/absent

  // LoRA family and most tuner methods.
  int r() const;              // MissingKey when the type has no `r`
  double lora_alpha() const;  // LoRA/AdaLoRA: lora_alpha; LoHa/LoKr: alpha
  bool use_rslora() const;
  bool use_dora() const;
  bool lora_bias() const;
  std::string bias() const;  // "none" | "all" | "<method>_only"
  bool fan_in_fan_out() const;
  // true/false, or a named initialisation ("gaussian", "pissa", "loftq", ...).
  std::variant<bool, std::string> init_lora_weights() const;
  TargetModules target_modules() const;
  TargetModules exclude_modules() const;
  TargetModules feedforward_modules() const;  // IA³
  std::optional<std::vector<std::string>> target_parameters() const;
  std::optional<std::vector<std::string>> modules_to_save() const;
  // An int n is returned as {n}; null or absent as nullopt.
  std::optional<std::vector<int>> layers_to_transform() const;
  // A string s is returned as {s}, or {} when s is empty (which, like null and [],
  // means "any layer pattern"); null or absent as nullopt.
  std::optional<std::vector<std::string>> layers_pattern() const;
  // LoRA/LoHa/LoKr/DeLoRA: module regex -> rank. AdaLoRA stores masks instead; asking
  // for them here throws InvalidArgument (use adalora_rank_masks()).
  std::map<std::string, int> rank_pattern() const;
  std::map<std::string, double> alpha_pattern() const;
  // AdaLoRA after rank allocation: parameter path (e.g. "lin0.lora_E") -> kept ranks.
  std::map<std::string, std::vector<bool>> adalora_rank_masks() const;
  std::optional<TokenIndices> trainable_token_indices() const;
  std::vector<std::int64_t> token_indices() const;  // TRAINABLE_TOKENS
  // Pairs [start, end) of layers to stack, e.g. [[0, 4], [2, 5]].
  std::optional<std::vector<std::vector<int>>> layer_replication() const;

  // VeRA / RandLoRA.
  bool save_projection() const;
  // VB-LoRA.
  int num_vectors() const;
  int topk() const;
  bool save_only_topk_weights() const;

  // Prompt learning.
  std::optional<int> num_virtual_tokens() const;
  std::optional<int> token_dim() const;
  std::optional<int> num_transformer_submodules() const;
  std::optional<int> num_layers() const;
  std::optional<int> num_attention_heads() const;
  std::string encoder_reparameterization_type() const;  // P-tuning: "MLP" | "LSTM"
  bool prefix_projection() const;                       // prefix tuning

  // Generic readers with the same rules, for the fields without an accessor: the value
  // of `field`, else PEFT's default for this type, else `fallback`.
  const nlohmann::json* find(std::string_view field) const;
  bool get_bool(std::string_view field, bool fallback) const;
  std::int64_t get_int(std::string_view field, std::int64_t fallback) const;
  double get_double(std::string_view field, double fallback) const;
  std::optional<std::string> get_string(std::string_view field) const;

 private:
  PeftConfig() = default;
  using KeyOrder = std::map<std::string, std::vector<std::string>, std::less<>>;
  static PeftConfig from_document(nlohmann::json json, std::string source, KeyOrder key_order,
                                  bool had_bom);
  void check_structure();
  void collect_warnings();

  nlohmann::json json_;
  std::string source_;
  Diagnostics warnings_;
  KeyOrder key_order_;
};

}  // namespace peft
