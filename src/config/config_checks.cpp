// PeftConfig::validate: the refusals of PEFT v0.18.0's config classes (docs/peft-rules.md §5.2).
#include "peft/config.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>

#include <fmt/format.h>

#include "config/config_json.hpp"
#include "peft/error.hpp"

namespace peft {
using namespace detail::config_json;

void PeftConfig::validate() const {
  const PeftType type = peft_type();
  if (!in_peft_0_18_0(type)) {
    throw Error(ErrorCode::Unsupported, source_,
                fmt::format("peft_type {} was added after PEFT v0.18.0, which cannot load it",
                            to_string(type)));
  }
  const auto reject = [&](std::string_view rule, std::string detail) {
    throw Error(ErrorCode::InvalidConfigValue, source_,
                fmt::format("{} (PEFT v0.18.0 rule {}, docs/peft-rules.md §5.2)", detail, rule));
  };
  const auto member = [&](std::string_view field) -> const Json* { return find(field); };
  const auto target_is_string = [&] {
    const Json* value = member("target_modules");
    return value != nullptr && value->is_string();
  };
  // C10, C11, C12 in the order the constructors test them.
  const auto check_regex_with_layers_to_transform = [&] {
    if (target_is_string() && !is_null(member("layers_to_transform"))) {
      reject("C10", "layers_to_transform cannot be used when target_modules is a string");
    }
  };
  const auto check_regex_with_layers_pattern = [&] {
    if (target_is_string() && !is_null(member("layers_pattern"))) {
      reject("C12", "layers_pattern cannot be used when target_modules is a string");
    }
  };
  const auto check_layers_pattern_needs_layers = [&] {
    if (truthy(member("layers_pattern")) && !truthy(member("layers_to_transform"))) {
      reject("C11", "layers_pattern is set but layers_to_transform is empty");
    }
  };
  const auto int_field = [&](std::string_view field) {
    const Json* value = member(field);
    if (value == nullptr) missing(source_, field, type);
    return to_int64(source_, field, *value);
  };

  // C7: every class whose constructor runs the common initialiser (all but RandLoRA, CPT).
  if (type != PeftType::RANDLORA && type != PeftType::CPT) task_type();

  switch (type) {
    case PeftType::LORA:
    case PeftType::ADALORA: {
      const Json* parameters = member("target_parameters");
      if (parameters != nullptr && parameters->is_string()) {
        reject("C18", "target_parameters must be a list of strings, not a string");
      }
      check_regex_with_layers_to_transform();
      check_regex_with_layers_pattern();
      check_layers_pattern_needs_layers();
      if (truthy(member("use_dora")) && truthy(member("megatron_config"))) {
        reject("C13", "DoRA (use_dora) does not support megatron_config");
      }
      const Json* init = member("init_lora_weights");
      const bool loftq = is_string_equal(init, "loftq");
      if (loftq && !truthy(member("loftq_config"))) {
        reject("C14", "init_lora_weights 'loftq' needs a loftq_config");
      }
      if (truthy(member("lora_bias"))) {
        // Python's `x in (True, False)` is an equality test: 0, 1, 0.0 and 1.0 pass too.
        const bool boolean_like =
            init == nullptr || init->is_boolean() ||
            (init->is_number() && (init->get<double>() == 0.0 || init->get<double>() == 1.0));
        if (!boolean_like) {
          reject("C17", fmt::format("lora_bias needs init_lora_weights true or false, not {}",
                                    show(*init)));
        }
        if (truthy(member("use_dora"))) reject("C17", "lora_bias is not supported with DoRA");
      }
      if (type == PeftType::ADALORA) {
        if (truthy(member("use_dora"))) reject("C21", "AdaLoRA does not support DoRA");
        // LoRA's constructor has already reset loftq_config unless the init is 'loftq'.
        if (loftq && truthy(member("loftq_config")))
          reject("C21", "AdaLoRA does not support LoftQ");
        const Json* total = member("total_step");
        if (is_null(total) || to_int64(source_, "total_step", *total) <= 0) {
          reject("C21", "AdaLoRA needs total_step > 0");
        }
        const std::int64_t total_step = to_int64(source_, "total_step", *total);
        if (int_field("tinit") >= total_step - int_field("tfinal")) {
          reject("C21", "AdaLoRA needs tinit < total_step - tfinal");
        }
      }
      break;
    }
    case PeftType::BOFT: {
      check_layers_pattern_needs_layers();
      const std::int64_t size = int_field("boft_block_size");
      const std::int64_t number = int_field("boft_block_num");
      if (size == 0 && number == 0) {
        reject("C24", "one of boft_block_size and boft_block_num must be non-zero");
      }
      if ((size != 0) == (number != 0)) {
        reject("C24", "only one of boft_block_size and boft_block_num may be non-zero");
      }
      break;
    }
    case PeftType::OFT: {
      if (!json_.contains("oft_block_size")) {
        reject("C8",
               "an OFT config without oft_block_size comes from PEFT < 0.14.0, whose OFT "
               "weights are incompatible");
      }
      check_layers_pattern_needs_layers();
      const std::int64_t rank = int_field("r");
      const std::int64_t block = int_field("oft_block_size");
      if (rank == 0 && block == 0) reject("C23", "one of r and oft_block_size must be non-zero");
      if ((rank != 0) == (block != 0)) {
        reject("C23", "only one of r and oft_block_size may be non-zero");
      }
      break;
    }
    case PeftType::BONE:
    case PeftType::MISS:
    case PeftType::C3A:
      check_regex_with_layers_to_transform();
      check_regex_with_layers_pattern();
      break;
    case PeftType::DELORA:
      check_regex_with_layers_to_transform();
      check_layers_pattern_needs_layers();
      break;
    case PeftType::FOURIERFT:
    case PeftType::HRA:
    case PeftType::WAVEFT:
      check_regex_with_layers_to_transform();
      check_regex_with_layers_pattern();
      check_layers_pattern_needs_layers();
      if (type == PeftType::WAVEFT) {
        const std::string family = get_string("wavelet_family").value_or("");
        if (!is_supported_wavelet(family)) {
          reject("C29", fmt::format("wavelet_family '{}' is not supported (db1-db38, sym2-sym20, "
                                    "coif1-coif17)",
                                    family));
        }
      }
      break;
    case PeftType::LOHA:
    case PeftType::LOKR:
    case PeftType::VBLORA:
    case PeftType::VERA:
      check_layers_pattern_needs_layers();
      break;
    case PeftType::IA3: {
      const Json* feedforward = member("feedforward_modules");
      const Json* targets = member("target_modules");
      if (feedforward != nullptr && feedforward->is_array() && targets != nullptr &&
          targets->is_array()) {
        const auto wanted = to_string_list(source_, "feedforward_modules", *feedforward);
        const auto all = to_string_list(source_, "target_modules", *targets);
        for (const auto& name : wanted) {
          if (std::find(all.begin(), all.end(), name) == all.end()) {
            reject("C25",
                   fmt::format("feedforward_modules entry '{}' is not in target_modules", name));
          }
        }
      }
      break;
    }
    case PeftType::ROAD: {
      const std::string variant = get_string("variant").value_or("");
      if (variant != "road_1" && variant != "road_2" && variant != "road_4") {
        reject("C28", fmt::format("variant '{}' is not road_1, road_2 or road_4", variant));
      }
      const std::int64_t group = int_field("group_size");
      if (group <= 0 || group % 2 != 0) {
        reject("C28", fmt::format("group_size {} must be positive and even", group));
      }
      break;
    }
    case PeftType::PROMPT_TUNING:
    case PeftType::MULTITASK_PROMPT_TUNING: {
      const bool text_init = is_string_equal(member("prompt_tuning_init"), "TEXT");
      if (text_init && !truthy(member("tokenizer_name_or_path"))) {
        reject("C31", "prompt_tuning_init TEXT needs tokenizer_name_or_path");
      }
      if (text_init && is_null(member("prompt_tuning_init_text"))) {
        reject("C31", "prompt_tuning_init TEXT needs prompt_tuning_init_text");
      }
      if (truthy(member("tokenizer_kwargs")) && !text_init) {
        reject("C31", "tokenizer_kwargs is only used with prompt_tuning_init TEXT");
      }
      break;
    }
    case PeftType::CPT: {
      if (!is_string_equal(member("task_type"), "CAUSAL_LM")) {
        reject("C30", "CPT only supports task_type CAUSAL_LM");
      }
      const Json* ids = member("cpt_token_ids");
      const std::size_t count =
          is_null(ids) ? 1 : to_int_list(source_, "cpt_token_ids", *ids).size();
      for (const char* field : {"cpt_mask", "cpt_tokens_type_mask"}) {
        const Json* mask = member(field);
        if (!is_null(mask) && to_int_list(source_, field, *mask).size() != count) {
          reject("C30",
                 "cpt_token_ids, cpt_mask and cpt_tokens_type_mask must have the same length");
        }
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace peft
