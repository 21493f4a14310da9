// The config rows of the method registry (method_config.hpp): every PeftType's name and
// kind, and the declared fields of every PEFT v0.18.0 config class with their dataclass
// defaults. A data table, hence its length.
//
// Transcribed from the v0.18.0 sources (tag v0.18.0): for each method, the fields the
// config class declares after the common ones, in declaration order, with the default as
// the JSON PEFT writes for it. `runtime_config` (LoRA, AdaLoRA) is declared but never
// written, so it is not listed. Prompt-learning classes also get the six fields of their
// common base class.
#include "config/method_config.hpp"

#include <array>
#include <span>

#include "pycompat/python_json.hpp"

namespace peft::detail {
namespace {

// Declared by every config class (PeftConfigMixin + PeftConfig). peft_type is filled per type.
constexpr FieldDefault kCommon[] = {
    {"task_type", "null"},
    {"peft_type", "null"},
    {"auto_mapping", "null"},
    {"peft_version", "null"},
    {"base_model_name_or_path", "null"},
    {"revision", "null"},
    {"inference_mode", "false"},
};

// Declared by PromptLearningConfig.
constexpr FieldDefault kPromptLearning[] = {
    {"num_virtual_tokens", "null"},  {"token_dim", "null"},  {"num_transformer_submodules", "null"},
    {"num_attention_heads", "null"}, {"num_layers", "null"}, {"modules_to_save", "null"},
};

// PROMPT_TUNING: PromptTuningConfig
constexpr FieldDefault kPromptTuningConfig[] = {
    {"prompt_tuning_init", "\"RANDOM\""},
    {"prompt_tuning_init_text", "null"},
    {"tokenizer_name_or_path", "null"},
    {"tokenizer_kwargs", "null"},
};

// MULTITASK_PROMPT_TUNING: MultitaskPromptTuningConfig
constexpr FieldDefault kMultitaskPromptTuningConfig[] = {
    {"prompt_tuning_init", "\"RANDOM\""},
    {"prompt_tuning_init_text", "null"},
    {"tokenizer_name_or_path", "null"},
    {"tokenizer_kwargs", "null"},
    {"prompt_tuning_init_state_dict_path", "null"},
    {"prompt_tuning_init_task", "0"},
    {"num_ranks", "1"},
    {"num_tasks", "1"},
};

// P_TUNING: PromptEncoderConfig
constexpr FieldDefault kPromptEncoderConfig[] = {
    {"encoder_reparameterization_type", "\"MLP\""},
    {"encoder_hidden_size", "null"},
    {"encoder_num_layers", "2"},
    {"encoder_dropout", "0.0"},
};

// PREFIX_TUNING: PrefixTuningConfig
constexpr FieldDefault kPrefixTuningConfig[] = {
    {"encoder_hidden_size", "null"},
    {"prefix_projection", "false"},
};

// LORA: LoraConfig
constexpr FieldDefault kLoraConfig[] = {
    {"r", "8"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"lora_alpha", "8"},
    {"lora_dropout", "0.0"},
    {"fan_in_fan_out", "false"},
    {"bias", "\"none\""},
    {"use_rslora", "false"},
    {"modules_to_save", "null"},
    {"init_lora_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"rank_pattern", "{}"},
    {"alpha_pattern", "{}"},
    {"megatron_config", "null"},
    {"megatron_core", "\"megatron.core\""},
    {"trainable_token_indices", "null"},
    {"loftq_config", "{}"},
    {"eva_config", "null"},
    {"corda_config", "null"},
    {"use_dora", "false"},
    {"alora_invocation_tokens", "null"},
    {"use_qalora", "false"},
    {"qalora_group_size", "16"},
    {"layer_replication", "null"},
    {"lora_bias", "false"},
    {"target_parameters", "null"},
    {"arrow_config", "null"},
    {"ensure_weight_tying", "false"},
};

// ADALORA: AdaLoraConfig
constexpr FieldDefault kAdaLoraConfig[] = {
    {"r", "8"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"lora_alpha", "8"},
    {"lora_dropout", "0.0"},
    {"fan_in_fan_out", "false"},
    {"bias", "\"none\""},
    {"use_rslora", "false"},
    {"modules_to_save", "null"},
    {"init_lora_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"rank_pattern", "null"},
    {"alpha_pattern", "{}"},
    {"megatron_config", "null"},
    {"megatron_core", "\"megatron.core\""},
    {"trainable_token_indices", "null"},
    {"loftq_config", "{}"},
    {"eva_config", "null"},
    {"corda_config", "null"},
    {"use_dora", "false"},
    {"alora_invocation_tokens", "null"},
    {"use_qalora", "false"},
    {"qalora_group_size", "16"},
    {"layer_replication", "null"},
    {"lora_bias", "false"},
    {"target_parameters", "null"},
    {"arrow_config", "null"},
    {"ensure_weight_tying", "false"},
    {"target_r", "8"},
    {"init_r", "12"},
    {"tinit", "0"},
    {"tfinal", "0"},
    {"deltaT", "1"},
    {"beta1", "0.85"},
    {"beta2", "0.85"},
    {"orth_reg_weight", "0.5"},
    {"total_step", "null"},
};

// BOFT: BOFTConfig
constexpr FieldDefault kBOFTConfig[] = {
    {"boft_block_size", "4"},         {"boft_block_num", "0"},
    {"boft_n_butterfly_factor", "1"}, {"target_modules", "null"},
    {"exclude_modules", "null"},      {"boft_dropout", "0.0"},
    {"fan_in_fan_out", "false"},      {"bias", "\"none\""},
    {"modules_to_save", "null"},      {"init_weights", "true"},
    {"layers_to_transform", "null"},  {"layers_pattern", "null"},
};

// ADAPTION_PROMPT: AdaptionPromptConfig
constexpr FieldDefault kAdaptionPromptConfig[] = {
    {"target_modules", "null"},
    {"adapter_len", "null"},
    {"adapter_layers", "null"},
};

// IA3: IA3Config
constexpr FieldDefault kIA3Config[] = {
    {"target_modules", "null"},  {"exclude_modules", "null"}, {"feedforward_modules", "null"},
    {"fan_in_fan_out", "false"}, {"modules_to_save", "null"}, {"init_ia3_weights", "true"},
};

// LOHA: LoHaConfig
constexpr FieldDefault kLoHaConfig[] = {
    {"rank_pattern", "{}"},
    {"alpha_pattern", "{}"},
    {"r", "8"},
    {"alpha", "8"},
    {"rank_dropout", "0.0"},
    {"module_dropout", "0.0"},
    {"use_effective_conv2d", "false"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"init_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"modules_to_save", "null"},
};

// LOKR: LoKrConfig
constexpr FieldDefault kLoKrConfig[] = {
    {"rank_pattern", "{}"},
    {"alpha_pattern", "{}"},
    {"r", "8"},
    {"alpha", "8"},
    {"rank_dropout", "0.0"},
    {"module_dropout", "0.0"},
    {"use_effective_conv2d", "false"},
    {"decompose_both", "false"},
    {"decompose_factor", "-1"},
    {"rank_dropout_scale", "false"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"init_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"modules_to_save", "null"},
};

// OFT: OFTConfig
constexpr FieldDefault kOFTConfig[] = {
    {"r", "0"},
    {"oft_block_size", "32"},
    {"module_dropout", "0.0"},
    {"target_modules", "null"},
    {"fan_in_fan_out", "false"},
    {"bias", "\"none\""},
    {"exclude_modules", "null"},
    {"init_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"modules_to_save", "null"},
    {"coft", "false"},
    {"eps", "6e-05"},
    {"block_share", "false"},
    {"use_cayley_neumann", "true"},
    {"num_cayley_neumann_terms", "5"},
};

// POLY: PolyConfig
constexpr FieldDefault kPolyConfig[] = {
    {"r", "8"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"modules_to_save", "null"},
    {"init_weights", "true"},
    {"poly_type", "\"poly\""},
    {"n_tasks", "1"},
    {"n_skills", "4"},
    {"n_splits", "1"},
};

// LN_TUNING: LNTuningConfig
constexpr FieldDefault kLNTuningConfig[] = {
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"modules_to_save", "null"},
};

// VERA: VeraConfig
constexpr FieldDefault kVeraConfig[] = {
    {"r", "256"},
    {"target_modules", "null"},
    {"projection_prng_key", "0"},
    {"save_projection", "true"},
    {"vera_dropout", "0.0"},
    {"d_initial", "0.1"},
    {"fan_in_fan_out", "false"},
    {"bias", "\"none\""},
    {"modules_to_save", "null"},
    {"init_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
};

// FOURIERFT: FourierFTConfig
constexpr FieldDefault kFourierFTConfig[] = {
    {"n_frequency", "1000"},     {"scaling", "150.0"},          {"random_loc_seed", "777"},
    {"fan_in_fan_out", "false"}, {"target_modules", "null"},    {"exclude_modules", "null"},
    {"bias", "\"none\""},        {"modules_to_save", "null"},   {"layers_to_transform", "null"},
    {"layers_pattern", "null"},  {"n_frequency_pattern", "{}"}, {"init_weights", "false"},
};

// XLORA: XLoraConfig
constexpr FieldDefault kXLoraConfig[] = {
    {"hidden_size", "null"},
    {"adapters", "null"},
    {"enable_softmax", "true"},
    {"enable_softmax_topk", "false"},
    {"layerwise_scalings", "false"},
    {"xlora_depth", "1"},
    {"xlora_size", "2048"},
    {"xlora_dropout_p", "0.2"},
    {"use_trainable_adapters", "false"},
    {"softmax_temperature", "1.0"},
    {"top_k_lora", "null"},
    {"scaling_pass_value", "0.0"},
    {"global_scaling_weight", "1.0"},
};

// HRA: HRAConfig
constexpr FieldDefault kHRAConfig[] = {
    {"r", "8"},
    {"apply_GS", "false"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"init_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"bias", "\"none\""},
    {"modules_to_save", "null"},
};

// VBLORA: VBLoRAConfig
constexpr FieldDefault kVBLoRAConfig[] = {
    {"r", "4"},
    {"num_vectors", "256"},
    {"vector_length", "256"},
    {"topk", "2"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"save_only_topk_weights", "false"},
    {"vblora_dropout", "0.0"},
    {"fan_in_fan_out", "false"},
    {"bias", "\"none\""},
    {"modules_to_save", "null"},
    {"init_vector_bank_bound", "0.02"},
    {"init_logits_std", "0.1"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
};

// CPT: CPTConfig
constexpr FieldDefault kCPTConfig[] = {
    {"cpt_token_ids", "null"},
    {"cpt_mask", "null"},
    {"cpt_tokens_type_mask", "null"},
    {"opt_weighted_loss_type", "\"none\""},
    {"opt_loss_decay_factor", "1.0"},
    {"opt_projection_epsilon", "0.1"},
    {"opt_projection_format_epsilon", "0.1"},
    {"tokenizer_name_or_path", "null"},
};

// BONE: BoneConfig
constexpr FieldDefault kBoneConfig[] = {
    {"r", "64"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"init_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"bias", "\"none\""},
    {"modules_to_save", "null"},
};

// MISS: MissConfig
constexpr FieldDefault kMissConfig[] = {
    {"r", "64"},
    {"miss_dropout", "0.0"},
    {"mini_r", "1"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"init_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"bias", "\"none\""},
    {"modules_to_save", "null"},
};

// RANDLORA: RandLoraConfig
constexpr FieldDefault kRandLoraConfig[] = {
    {"r", "32"},
    {"target_modules", "null"},
    {"projection_prng_key", "0"},
    {"save_projection", "true"},
    {"sparse", "false"},
    {"very_sparse", "false"},
    {"randlora_dropout", "0.0"},
    {"fan_in_fan_out", "false"},
    {"randlora_alpha", "640"},
    {"bias", "\"none\""},
    {"modules_to_save", "null"},
    {"init_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
};

// ROAD: RoadConfig
constexpr FieldDefault kRoadConfig[] = {
    {"variant", "\"road_1\""},  {"group_size", "64"},        {"init_weights", "true"},
    {"target_modules", "null"}, {"modules_to_save", "null"},
};

// TRAINABLE_TOKENS: TrainableTokensConfig
constexpr FieldDefault kTrainableTokensConfig[] = {
    {"token_indices", "[]"},
    {"target_modules", "null"},
    {"init_weights", "true"},
};

// SHIRA: ShiraConfig
constexpr FieldDefault kShiraConfig[] = {
    {"r", "32"},
    {"mask_type", "\"random\""},
    {"random_seed", "null"},
    {"target_modules", "null"},
    {"fan_in_fan_out", "false"},
    {"init_weights", "true"},
    {"modules_to_save", "null"},
};

// C3A: C3AConfig
constexpr FieldDefault kC3AConfig[] = {
    {"block_size", "256"},
    {"target_modules", "null"},
    {"bias", "\"none\""},
    {"modules_to_save", "null"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"block_size_pattern", "{}"},
    {"init_weights", "\"xavier_uniform\""},
};

// WAVEFT: WaveFTConfig
constexpr FieldDefault kWaveFTConfig[] = {
    {"n_frequency", "2592"},
    {"scaling", "25.0"},
    {"wavelet_family", "\"db1\""},
    {"use_idwt", "true"},
    {"random_loc_seed", "777"},
    {"fan_in_fan_out", "false"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"bias", "\"none\""},
    {"modules_to_save", "null"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"n_frequency_pattern", "{}"},
    {"proportional_parameters", "false"},
    {"init_weights", "true"},
};

// OSF: OSFConfig
constexpr FieldDefault kOSFConfig[] = {
    {"effective_rank", "null"}, {"target_modules", "null"},  {"rank_pattern", "null"},
    {"init_weights", "null"},   {"modules_to_save", "null"}, {"target_svd_config", "null"},
};

// DELORA: DeloraConfig
constexpr FieldDefault kDeloraConfig[] = {
    {"r", "8"},
    {"delora_lambda", "15"},
    {"module_dropout", "0.0"},
    {"target_modules", "null"},
    {"exclude_modules", "null"},
    {"bias", "\"none\""},
    {"init_weights", "true"},
    {"layers_to_transform", "null"},
    {"layers_pattern", "null"},
    {"rank_pattern", "{}"},
    {"lambda_pattern", "{}"},
    {"modules_to_save", "null"},
};

// Declared by LoraConfig after v0.18.0 (PEFT 0.19: use_bdlora, lora_ga_config; 0.20:
// monteclora_config, velora_config), as configs written by those versions show them.
constexpr FieldDefault kLoraNewer[] = {
    {"use_bdlora", "null"},
    {"lora_ga_config", "null"},
    {"monteclora_config", "null"},
    {"velora_config", "null"},
};

using C = MethodConfig;

// One row per PeftType, in enum order (checked below).
constexpr MethodConfig kMethodConfigs[] = {
    // PEFT v0.18.0
    C{.type = PeftType::PROMPT_TUNING,
      .name = "PROMPT_TUNING",
      .prompt_learning = true,
      .own_fields = kPromptTuningConfig,
      .check = check_prompt_tuning,
      .targets = Targets::None},
    C{.type = PeftType::MULTITASK_PROMPT_TUNING,
      .name = "MULTITASK_PROMPT_TUNING",
      .prompt_learning = true,
      .own_fields = kMultitaskPromptTuningConfig,
      .check = check_prompt_tuning,
      .targets = Targets::None},
    C{.type = PeftType::P_TUNING,
      .name = "P_TUNING",
      .prompt_learning = true,
      .own_fields = kPromptEncoderConfig,
      .targets = Targets::None},
    C{.type = PeftType::PREFIX_TUNING,
      .name = "PREFIX_TUNING",
      .prompt_learning = true,
      .own_fields = kPrefixTuningConfig,
      .targets = Targets::None},
    C{.type = PeftType::LORA,
      .name = "LORA",
      .own_fields = kLoraConfig,
      .check = check_lora,
      .warn = warn_lora,
      .ranks = Ranks::Pattern,
      .alpha_pattern = true,
      .newer_fields = kLoraNewer},
    C{.type = PeftType::ADALORA,
      .name = "ADALORA",
      .own_fields = kAdaLoraConfig,
      .check = check_adalora,
      .warn = warn_adalora,
      .ranks = Ranks::AdaLoraMasks,
      .newer_fields = kLoraNewer},
    C{.type = PeftType::BOFT, .name = "BOFT", .own_fields = kBOFTConfig, .check = check_boft},
    C{.type = PeftType::ADAPTION_PROMPT,
      .name = "ADAPTION_PROMPT",
      .own_fields = kAdaptionPromptConfig,
      .targets = Targets::AttentionLayers},
    C{.type = PeftType::IA3, .name = "IA3", .own_fields = kIA3Config, .check = check_ia3},
    C{.type = PeftType::LOHA,
      .name = "LOHA",
      .own_fields = kLoHaConfig,
      .check = check_layers_pattern,
      .ranks = Ranks::Pattern,
      .alpha_field = "alpha",
      .alpha_pattern = true},
    C{.type = PeftType::LOKR,
      .name = "LOKR",
      .own_fields = kLoKrConfig,
      .check = check_layers_pattern,
      .ranks = Ranks::Pattern,
      .alpha_field = "alpha",
      .alpha_pattern = true},
    C{.type = PeftType::OFT,
      .name = "OFT",
      .own_fields = kOFTConfig,
      .check = check_oft,
      .warn = warn_oft},
    C{.type = PeftType::POLY, .name = "POLY", .own_fields = kPolyConfig},
    C{.type = PeftType::LN_TUNING, .name = "LN_TUNING", .own_fields = kLNTuningConfig},
    C{.type = PeftType::VERA,
      .name = "VERA",
      .own_fields = kVeraConfig,
      .check = check_layers_pattern,
      .warn = warn_projections},
    C{.type = PeftType::FOURIERFT,
      .name = "FOURIERFT",
      .own_fields = kFourierFTConfig,
      .check = check_all_layer_rules},
    C{.type = PeftType::XLORA,
      .name = "XLORA",
      .own_fields = kXLoraConfig,
      .warn = warn_xlora,
      .targets = Targets::None},
    C{.type = PeftType::HRA,
      .name = "HRA",
      .own_fields = kHRAConfig,
      .check = check_all_layer_rules},
    C{.type = PeftType::VBLORA,
      .name = "VBLORA",
      .own_fields = kVBLoRAConfig,
      .check = check_layers_pattern},
    C{.type = PeftType::CPT,
      .name = "CPT",
      .prompt_learning = true,
      .common_init = false,
      .own_fields = kCPTConfig,
      .check = check_cpt,
      .targets = Targets::None},
    C{.type = PeftType::BONE,
      .name = "BONE",
      .own_fields = kBoneConfig,
      .check = check_regex_layers,
      .warn = warn_bone},
    C{.type = PeftType::MISS,
      .name = "MISS",
      .own_fields = kMissConfig,
      .check = check_regex_layers},
    C{.type = PeftType::RANDLORA,
      .name = "RANDLORA",
      .common_init = false,
      .own_fields = kRandLoraConfig,
      .warn = warn_projections},
    C{.type = PeftType::ROAD, .name = "ROAD", .own_fields = kRoadConfig, .check = check_road},
    C{.type = PeftType::TRAINABLE_TOKENS,
      .name = "TRAINABLE_TOKENS",
      .own_fields = kTrainableTokensConfig},
    C{.type = PeftType::SHIRA, .name = "SHIRA", .own_fields = kShiraConfig, .warn = warn_shira},
    C{.type = PeftType::C3A, .name = "C3A", .own_fields = kC3AConfig, .check = check_regex_layers},
    C{.type = PeftType::WAVEFT,
      .name = "WAVEFT",
      .own_fields = kWaveFTConfig,
      .check = check_waveft},
    C{.type = PeftType::OSF, .name = "OSF", .own_fields = kOSFConfig, .ranks = Ranks::NotPerName},
    C{.type = PeftType::DELORA,
      .name = "DELORA",
      .own_fields = kDeloraConfig,
      .check = check_delora,
      .ranks = Ranks::Pattern},
    // Added after v0.18.0: known by name only.
    C{.type = PeftType::ADAMSS, .name = "ADAMSS"},
    C{.type = PeftType::BEFT, .name = "BEFT"},
    C{.type = PeftType::LILY, .name = "LILY"},
    C{.type = PeftType::FROD, .name = "FROD"},
    C{.type = PeftType::PVERA, .name = "PVERA"},
    C{.type = PeftType::GLORA, .name = "GLORA"},
    C{.type = PeftType::UNILORA, .name = "UNILORA"},
    C{.type = PeftType::HIRA, .name = "HIRA"},
    C{.type = PeftType::GRALORA, .name = "GRALORA"},
    C{.type = PeftType::CARTRIDGE,
      .name = "CARTRIDGE",
      .prompt_learning = true,
      .targets = Targets::None},
    C{.type = PeftType::TINYLORA, .name = "TINYLORA"},
    C{.type = PeftType::PSOFT, .name = "PSOFT"},
    C{.type = PeftType::PEANUT, .name = "PEANUT"},
    C{.type = PeftType::SUPERTUNING, .name = "SUPERTUNING"},
    C{.type = PeftType::DEFT, .name = "DEFT"},
};

constexpr bool covers_every_type_in_order() {
  if (std::size(kMethodConfigs) != kPeftTypeCount) return false;
  for (std::size_t i = 0; i < std::size(kMethodConfigs); ++i) {
    if (static_cast<std::size_t>(kMethodConfigs[i].type) != i) return false;
    if ((i < kPeftTypeCountV0_18_0) == kMethodConfigs[i].own_fields.empty()) return false;
  }
  return true;
}
static_assert(covers_every_type_in_order(),
              "one row per PeftType, in enum order; field lists exactly for v0.18.0 types");

}  // namespace

const MethodConfig& method_config(PeftType type) noexcept {
  return kMethodConfigs[static_cast<std::size_t>(type)];
}

std::span<const MethodConfig> all_method_configs() noexcept {
  return kMethodConfigs;
}

const FieldDefault* newer_field(PeftType type, std::string_view field) noexcept {
  for (const FieldDefault& entry : method_config(type).newer_fields) {
    if (entry.name == field) return &entry;
  }
  return nullptr;
}

std::vector<FieldDefault> declared_fields(PeftType type) {
  std::vector<FieldDefault> out;
  if (!in_peft_0_18_0(type)) return out;
  const MethodConfig& method = method_config(type);
  out.assign(std::begin(kCommon), std::end(kCommon));
  if (method.prompt_learning)
    out.insert(out.end(), std::begin(kPromptLearning), std::end(kPromptLearning));
  out.insert(out.end(), method.own_fields.begin(), method.own_fields.end());
  return out;
}

const nlohmann::json& field_defaults(PeftType type) {
  static const auto tables = [] {
    std::array<nlohmann::json, kPeftTypeCount> out;
    for (const PeftType each : all_peft_types()) {
      nlohmann::json& object = out[static_cast<std::size_t>(each)];
      object = nlohmann::json::object();
      for (const FieldDefault& field : declared_fields(each)) {
        object[std::string(field.name)] = parse_python_json(field.json, "built-in defaults").value;
      }
      if (in_peft_0_18_0(each)) object["peft_type"] = std::string(to_string(each));
    }
    return out;
  }();
  return tables[static_cast<std::size_t>(type)];
}

}  // namespace peft::detail
