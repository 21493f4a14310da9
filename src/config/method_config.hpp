// The config part of a PEFT method's descriptor: its name, whether it is a prompt-learning
// method, the fields its v0.18.0 config class declares, and the refusals of its
// constructor. One row per PeftType in enum order (method_configs.cpp); the state-dict,
// injection and merge parts of the same descriptor sit in the layers above
// (methods/registry.hpp, merge/method_table.cpp), keyed by the same enum.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "config/config_defaults.hpp"
#include "peft/config.hpp"
#include "peft/diagnostic.hpp"
#include "peft/peft_type.hpp"

namespace peft::detail {

// PEFT's refusals for one config class (config_checks.cpp); throws InvalidConfigValue.
using ConfigCheckFn = void (*)(const PeftConfig& config);
// What PEFT warns about when it loads one config class (config_checks.cpp).
using ConfigWarnFn = void (*)(const PeftConfig& config, Diagnostics& out);

// How a module's rank is found (module_match.cpp: rank_for).
enum class Ranks : std::uint8_t {
  R,             // the config's r
  Pattern,       // rank_pattern (first matching key), else r
  AdaLoraMasks,  // the kept slots of the AdaLoRA rank mask naming the module, else init_r
  NotPerName,    // derived from the weights (OSF): no per-name answer
};

// Which modules the method adapts (module_match.cpp: match_target).
enum class Targets : std::uint8_t {
  Modules,          // target_modules / exclude_modules / layers_to_transform
  None,             // prompt learning, X-LoRA: no module is wrapped by name
  AttentionLayers,  // adaption prompt: the attention of the last adapter_layers layers
};

struct MethodConfig {
  PeftType type;
  std::string_view name;  // the peft_type string
  bool prompt_learning = false;
  // The class runs PeftConfig's common initialiser (task_type is checked); RandLoRA and
  // CPT do not.
  bool common_init = true;
  // Declared after the common (and prompt-learning) fields; empty after v0.18.0.
  std::span<const FieldDefault> own_fields = {};
  ConfigCheckFn check = nullptr;
  ConfigWarnFn warn = nullptr;
  Targets targets = Targets::Modules;
  Ranks ranks = Ranks::R;
  std::string_view alpha_field = "lora_alpha";  // LoHa and LoKr say "alpha"
  bool alpha_pattern = false;                   // alpha_pattern overrides per module
  // Fields later PEFT versions declare (and write) for the class, with their defaults:
  // PEFT 0.18 drops them, which changes nothing while they hold their default.
  std::span<const FieldDefault> newer_fields = {};
};

// The entry of `newer_fields` for `field`, or null.
const FieldDefault* newer_field(PeftType type, std::string_view field) noexcept;

const MethodConfig& method_config(PeftType type) noexcept;
std::span<const MethodConfig> all_method_configs() noexcept;

// The per-method checks the table refers to (config_checks.cpp).
void check_lora(const PeftConfig& config);
void check_adalora(const PeftConfig& config);
void check_boft(const PeftConfig& config);
void check_oft(const PeftConfig& config);
void check_regex_layers(const PeftConfig& config);  // Bone, MiSS, C3A
void check_delora(const PeftConfig& config);
void check_all_layer_rules(const PeftConfig& config);  // FourierFT, HRA
void check_waveft(const PeftConfig& config);
void check_layers_pattern(const PeftConfig& config);  // LoHa, LoKr, VB-LoRA, VeRA
void check_ia3(const PeftConfig& config);
void check_road(const PeftConfig& config);
void check_prompt_tuning(const PeftConfig& config);  // also multitask prompt tuning
void check_cpt(const PeftConfig& config);

void warn_lora(const PeftConfig& config, Diagnostics& out);
void warn_adalora(const PeftConfig& config, Diagnostics& out);
void warn_bone(const PeftConfig& config, Diagnostics& out);
void warn_oft(const PeftConfig& config, Diagnostics& out);
void warn_projections(const PeftConfig& config, Diagnostics& out);  // VeRA, RandLoRA
void warn_shira(const PeftConfig& config, Diagnostics& out);
void warn_xlora(const PeftConfig& config, Diagnostics& out);

}  // namespace peft::detail
