#include <array>

#include <fmt/format.h>

#include "methods/method_rules.hpp"
#include "peft/error.hpp"

namespace peft::methods {
namespace {

// PEFT v0.18.0's methods. Prefixes from PEFT_TYPE_TO_PREFIX_MAPPING; selection and
// remapping from get/set_peft_model_state_dict (docs/peft-rules.md §2.4, §3.1).
constexpr std::array kMethods = {
    MethodRules{PeftType::LORA, "lora_", select_lora, remap_lora},
    MethodRules{PeftType::ADALORA, "lora_", select_lora, remap_adalora},
    MethodRules{PeftType::BOFT, "boft_", select_boft, insert_adapter_names},
    MethodRules{PeftType::OFT, "oft_", select_by_prefix, remap_oft},
    MethodRules{PeftType::IA3, "ia3_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::LOHA, "hada_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::LOKR, "lokr_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::POLY, "poly_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::LN_TUNING, "ln_tuning_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::TRAINABLE_TOKENS, "trainable_tokens_", select_by_prefix,
                insert_adapter_names},
    MethodRules{PeftType::ROAD, "road_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::DELORA, "delora_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::RANDLORA, "randlora_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::FOURIERFT, "fourierft_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::WAVEFT, "waveft_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::HRA, "hra_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::BONE, "bone_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::MISS, "miss_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::C3A, "c3a_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::OSF, "osf_", select_by_prefix, insert_adapter_names},
    MethodRules{PeftType::VERA, "vera_lambda_", select_vera, remap_vera},
    MethodRules{PeftType::VBLORA, "vblora_", select_vblora, remap_vblora, nullptr, true},
    MethodRules{PeftType::SHIRA, "shira_", select_shira, remap_shira},
    MethodRules{PeftType::XLORA, "xlora_", select_xlora, keep_as_is},
    MethodRules{PeftType::ADAPTION_PROMPT, "adaption_prompt_", select_adaption_prompt, keep_as_is},
    MethodRules{PeftType::PROMPT_TUNING, "prompt_tuning_", select_prompt_learning, keep_as_is,
                load_prompt_encoder},
    MethodRules{PeftType::MULTITASK_PROMPT_TUNING, "multitask_prompt_tuning_",
                select_prompt_learning, keep_as_is, load_prompt_encoder},
    MethodRules{PeftType::P_TUNING, "p_tuning_", select_prompt_learning, keep_as_is,
                load_prompt_encoder},
    MethodRules{PeftType::PREFIX_TUNING, "prefix_tuning_", select_prompt_learning, keep_as_is,
                load_prompt_encoder},
    MethodRules{PeftType::CPT, "cpt_", select_prompt_learning, keep_as_is, load_prompt_encoder},
};

}  // namespace

const MethodRules& rules_for(PeftType type) {
  for (const auto& rules : kMethods) {
    if (rules.type == type) return rules;
  }
  throw Error(ErrorCode::Unsupported, "",
              fmt::format("state-dict rules for {} are not implemented: the type was added after "
                          "PEFT 0.18.0, whose file format peftcpp follows",
                          to_string(type)));
}

StateDict select_containing(const StateDict& state, std::string_view needle) {
  StateDict out;
  for (const auto& [key, tensor] : state) {
    if (key.find(needle) != std::string::npos) out.set(key, tensor);
  }
  return out;
}

StateDict select_by_prefix(SaveContext& ctx) {
  return select_containing(ctx.model.state, rules_for(ctx.config.peft_type()).prefix);
}

StateDict insert_adapter_names(LoadContext& ctx, StateDict state) {
  const std::string_view prefix = rules_for(ctx.config.peft_type()).prefix;
  StateDict out;
  for (auto& [key, tensor] : state) out.set(insert_adapter_name(key, ctx.adapter, prefix), tensor);
  return out;
}

StateDict keep_as_is(LoadContext& /*ctx*/, StateDict state) {
  return state;
}

StateDict select_adaption_prompt(SaveContext& ctx) {
  StateDict out;
  for (const auto& [key, tensor] : ctx.model.state) {
    const auto dot = key.rfind('.');
    const std::string_view last =
        dot == std::string::npos ? std::string_view(key) : std::string_view(key).substr(dot + 1);
    if (last.starts_with("adaption_")) out.set(key, tensor);
  }
  return out;
}

StateDict select_xlora(SaveContext& ctx) {
  return select_containing(ctx.model.state, "internal_xlora_classifier");
}

StateDict remap_oft(LoadContext& ctx, StateDict state) {
  StateDict out = insert_adapter_names(ctx, std::move(state));
  for (const auto& [key, tensor] : out) {
    if (key.find(".oft_r.") != std::string::npos) {
      throw Error(ErrorCode::Unsupported, "",
                  fmt::format("'{}' is from an OFT adapter of PEFT <= 0.15.2, whose format is no "
                              "longer supported; load it with PEFT <= 0.15.2 or train a new one",
                              key));
    }
  }
  return out;
}

}  // namespace peft::methods
