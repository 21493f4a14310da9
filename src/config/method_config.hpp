// The config part of a PEFT method's descriptor: its name, whether it is a prompt-learning
// method, the fields its v0.18.0 config class declares, and the refusals of its
// constructor. One row per PeftType in enum order (method_configs.cpp); the state-dict,
// injection and merge parts of the same descriptor sit in the layers above
// (methods/registry.hpp, merge/method_table.cpp), keyed by the same enum.
#pragma once

#include <span>
#include <string_view>

#include "config/config_defaults.hpp"
#include "peft/config.hpp"
#include "peft/peft_type.hpp"

namespace peft::detail {

// PEFT's refusals for one config class (config_checks.cpp); throws InvalidConfigValue.
using ConfigCheckFn = void (*)(const PeftConfig& config);

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
};

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

}  // namespace peft::detail
