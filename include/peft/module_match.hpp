// peft/module_match.hpp — which modules an adapter config puts adapter layers on, and the
// rank/alpha each one gets, following PEFT v0.18.0's rules.
//
// Module names are those of the *base* model's named_modules() (e.g.
// "model.layers.0.self_attn.q_proj"), i.e. without the "base_model.model." prefix of the
// PEFT wrapper. The rules, in PEFT's order:
//
//   1. exclude_modules: a string is a regular expression that must match the whole name;
//      a list excludes a name equal to an entry or ending with "." + entry.
//   2. modules_to_save: a name that is, or lies inside, a module to save is never adapted
//      (the entry is spliced into a regular expression as-is).
//   3. target_modules null with target_parameters set: no module (only parameters).
//   4. target_modules a string: a regular expression that must match the whole name.
//      target_modules a list: a name equal to an entry, or ending with "." + entry; then,
//      if layers_to_transform is set (an int, or a non-empty list), the layer index is the
//      number after "<layers_pattern>." (any pattern when layers_pattern is null or
//      empty) in the name and must be one of layers_to_transform.
//
// Optional fields are read the way PEFT reads them (getattr on the config object): one
// the method does not declare counts as absent even when the file has it, since PEFT drops
// it on load (for types added after v0.18.0 the file is all there is to go by).
//
// Regular expressions are Python's (see src/pycompat/python_regex.hpp). An invalid one throws
// InvalidConfigValue naming the config's source, the field and the pattern.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "peft/config.hpp"
#include "peft/export.hpp"

namespace peft {

enum class TargetMatch {
  NotTargeted,
  Targeted,
  Excluded,  // by exclude_modules or modules_to_save
};

// PEFT's decision for one module. Prompt-learning methods and X-LoRA adapt no module
// (NotTargeted). Throws Unsupported where the decision needs facts a name does not carry:
// ADAPTION_PROMPT (adapts the attention modules of the last `adapter_layers` layers),
// target_modules "all-linear" (the layer classes), and target_modules null without
// target_parameters (PEFT then picks defaults from the model type).
PEFT_API TargetMatch match_target(const PeftConfig& config, std::string_view module_name);
PEFT_API bool is_targeted(const PeftConfig& config, std::string_view module_name);

// LoRA target_parameters: whether the parameter "<module>.<name>" (module name without
// any ".base_layer") is wrapped: it equals an entry or ends with "." + entry.
PEFT_API bool is_parameter_targeted(const PeftConfig& config, std::string_view parameter_path);

// PEFT's pattern lookup (get_pattern_key) in the object-valued field `pattern_field`
// (rank_pattern, alpha_pattern, lambda_pattern, ...): the first key, in the file's order,
// for which `(.*\.)?(<key>)$` matches the module name from its start. When none does,
// PEFT looks the module name itself up, so the name is returned if it is a key.
// nullopt otherwise.
PEFT_API std::optional<std::string> pattern_key(const PeftConfig& config,
                                                std::string_view pattern_field,
                                                std::string_view module_name);

// The rank of the adapter layer on `module_name`:
//   LoRA, LoHa, LoKr, DeLoRA: rank_pattern (pattern_key) else r;
//   AdaLoRA: the number of kept ranks in the rank_pattern mask "<module>.lora_E" else init_r;
//   other methods: r. OSF throws Unsupported (its ranks come from the weights' spectrum).
PEFT_API int rank_for(const PeftConfig& config, std::string_view module_name);
// The alpha of that layer: LoRA: alpha_pattern else lora_alpha; AdaLoRA: lora_alpha;
// LoHa/LoKr: alpha_pattern else alpha; other methods: lora_alpha().
PEFT_API double alpha_for(const PeftConfig& config, std::string_view module_name);

}  // namespace peft
