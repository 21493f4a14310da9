// The table of merge rules: one row per PEFT v0.18.0 type. Markers are the prefixes of the
// parameter names each method saves (PEFT's prefix table); build turns one module's
// parameters into operations on base tensors.
#include <array>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"

namespace peft::merge {
namespace {

constexpr std::string_view kPromptRefusal =
    "prompt-learning methods add virtual tokens instead of changing weights: there is "
    "nothing to merge (PEFT models of this type have no merge_and_unload)";

const std::array<MergeRules, 30>& table() {
  static const std::array<MergeRules, 30> rows = {
      MergeRules{PeftType::LORA, {"lora_"}, build_lora, {}},
      MergeRules{PeftType::ADALORA, {"lora_"}, build_adalora, {}},
      MergeRules{PeftType::IA3, {"ia3_"}, build_ia3, {}},
      MergeRules{PeftType::LOHA, {"hada_"}, build_loha, {}},
      MergeRules{PeftType::LOKR, {"lokr_"}, build_lokr, {}},
      MergeRules{PeftType::OFT, {"oft_"}, build_oft, {}},
      MergeRules{PeftType::BOFT, {"boft_"}, build_boft, {}},
      MergeRules{PeftType::HRA, {"hra_"}, build_hra, {}},
      MergeRules{PeftType::VERA, {"vera_lambda_"}, build_vera, {}},
      MergeRules{PeftType::RANDLORA, {"randlora_"}, build_randlora, {}},
      MergeRules{PeftType::VBLORA, {"vblora_"}, build_vblora, {}},
      MergeRules{PeftType::FOURIERFT, {"fourierft_"}, build_fourierft, {}},
      MergeRules{PeftType::WAVEFT, {"waveft_"}, build_waveft, {}},
      MergeRules{PeftType::BONE, {"bone_"}, build_miss, {}},
      MergeRules{PeftType::MISS, {"miss_"}, build_miss, {}},
      MergeRules{PeftType::SHIRA, {"shira_"}, build_shira, {}},
      MergeRules{PeftType::C3A, {"c3a_"}, build_c3a, {}},
      MergeRules{PeftType::ROAD, {"road_"}, build_road, {}},
      MergeRules{PeftType::DELORA, {"delora_"}, build_delora, {}},
      MergeRules{PeftType::OSF, {"osf_"}, build_osf, {}},
      MergeRules{PeftType::LN_TUNING, {"ln_tuning_"}, build_ln_tuning, {}},
      MergeRules{PeftType::TRAINABLE_TOKENS, {"trainable_tokens_"}, build_trainable_tokens, {}},
      MergeRules{PeftType::POLY,
                 {"poly_"},
                 nullptr,
                 "Poly routes every input through a learned mix of skills, so no single "
                 "weight reproduces it (PEFT raises NotImplementedError on merge)"},
      MergeRules{PeftType::XLORA,
                 {"xlora_"},
                 nullptr,
                 "X-LoRA mixes its LoRA experts per token with a learned classifier, so no "
                 "static merged weight reproduces it"},
      MergeRules{PeftType::ADAPTION_PROMPT, {"adaption_"}, nullptr, kPromptRefusal},
      MergeRules{PeftType::PROMPT_TUNING, {"prompt_"}, nullptr, kPromptRefusal},
      MergeRules{PeftType::MULTITASK_PROMPT_TUNING, {"prompt_"}, nullptr, kPromptRefusal},
      MergeRules{PeftType::P_TUNING, {"prompt_"}, nullptr, kPromptRefusal},
      MergeRules{PeftType::PREFIX_TUNING, {"prompt_"}, nullptr, kPromptRefusal},
      MergeRules{PeftType::CPT, {"prompt_"}, nullptr, kPromptRefusal},
  };
  return rows;
}

}  // namespace

const MergeRules& merge_rules_for(PeftType type) {
  for (const auto& rules : table()) {
    if (rules.type == type) return rules;
  }
  throw Error(ErrorCode::Unsupported, "",
              fmt::format("merging {} adapters is not supported: the type was added after "
                          "PEFT 0.18.0, whose merge rules peftcpp follows",
                          to_string(type)));
}

}  // namespace peft::merge
