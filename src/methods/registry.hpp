// The method registry: one descriptor per PeftType, in enum order, holding everything
// peftcpp does differently for that method — its config rules (name, fields, checks:
// config/method_config.hpp), the marker of its parameters in keys, its state-dict rules,
// its injection rule and whether it merges. Adding a method is adding one row here (and
// its config row), plus a file for each rule that is not a generic one.
//
// The merge numerics are the one part kept out of this table: they live in the merge
// layer (merge/method_table.cpp, keyed by the same enum and checked against `merge`
// below at compile time), so that reading and writing never link BLAS, LAPACK or FFTW.
#pragma once

#include <array>
#include <string_view>

#include "config/method_config.hpp"
#include "methods/injection_methods.hpp"
#include "methods/method_rules.hpp"

namespace peft::methods {

// get/set_peft_model_state_dict for the method (select == nullptr: not known).
struct StateDictRules {
  SelectFn select = nullptr;
  RemapFn remap = nullptr;
  AfterLoadFn after_load = nullptr;  // prompt encoders load their embedding from the dict
  bool vblora_key_names = false;     // "..._A.<adapter>_topk_indices" removal rule
};

// The tensors PEFT's injection creates (slots == nullptr: not implemented).
struct InjectionRule {
  injection::SlotFn slots = nullptr;
  injection::SharedFn shared = nullptr;  // model-level tensors made before the layers
  injection::ModelShape shape = injection::ModelShape::Tuner;
  injection::WrapsFn wraps = nullptr;  // which targeted modules it wraps (nullptr: all)
};

// Whether merge_and_unload exists for the method; when it does not, why (empty for types
// added after PEFT 0.18.0, whose rules are not known).
struct MergeRule {
  bool merges = false;
  std::string_view refusal = {};
};

struct MethodDescriptor {
  PeftType type;
  std::string_view prefix;  // PEFT's PEFT_TYPE_TO_PREFIX_MAPPING (empty: not known)
  StateDictRules state_dict = {};
  InjectionRule injection = {};
  MergeRule merge = {};

  const detail::MethodConfig& config() const noexcept { return detail::method_config(type); }
};

namespace registry_text {
inline constexpr std::string_view kPromptRefusal =
    "prompt-learning methods add virtual tokens instead of changing weights: there is "
    "nothing to merge (PEFT models of this type have no merge_and_unload)";
inline constexpr std::string_view kPolyRefusal =
    "Poly routes every input through a learned mix of skills, so no single weight "
    "reproduces it (PEFT raises NotImplementedError on merge)";
inline constexpr std::string_view kXloraRefusal =
    "X-LoRA mixes its LoRA experts per token with a learned classifier, so no static merged "
    "weight reproduces it";
}  // namespace registry_text

namespace registry_rows {
using D = MethodDescriptor;
using S = StateDictRules;
using I = InjectionRule;
using namespace injection;
using namespace registry_text;
constexpr MergeRule kMerges{true};
constexpr S kGeneric{select_by_prefix, insert_adapter_names};
constexpr S kPrompt{select_prompt_learning, keep_as_is, load_prompt_encoder};
constexpr MergeRule kPromptMerge{false, kPromptRefusal};
constexpr auto kPromptShape = ModelShape::PromptLearning;

inline constexpr std::array<MethodDescriptor, kPeftTypeCount> kRegistry = {
    // PEFT v0.18.0
    D{PeftType::PROMPT_TUNING, "prompt_tuning_", kPrompt,
      I{prompt_tuning_slots, nullptr, kPromptShape}, kPromptMerge},
    D{PeftType::MULTITASK_PROMPT_TUNING, "multitask_prompt_tuning_", kPrompt,
      I{multitask_prompt_tuning_slots, nullptr, kPromptShape}, kPromptMerge},
    D{PeftType::P_TUNING, "p_tuning_", kPrompt, I{p_tuning_slots, nullptr, kPromptShape},
      kPromptMerge},
    D{PeftType::PREFIX_TUNING, "prefix_tuning_", kPrompt,
      I{prefix_tuning_slots, nullptr, kPromptShape}, kPromptMerge},
    D{PeftType::LORA, "lora_", S{select_lora, remap_lora}, I{lora_slots}, kMerges},
    D{PeftType::ADALORA, "lora_", S{select_lora, remap_adalora}, I{adalora_slots}, kMerges},
    D{PeftType::BOFT, "boft_", S{select_boft, insert_adapter_names}, I{boft_slots}, kMerges},
    D{PeftType::ADAPTION_PROMPT, "adaption_prompt_", S{select_adaption_prompt, keep_as_is},
      I{adaption_prompt_slots, nullptr, ModelShape::AdaptionPrompt}, kPromptMerge},
    D{PeftType::IA3, "ia3_", kGeneric, I{ia3_slots}, kMerges},
    D{PeftType::LOHA, "hada_", kGeneric, I{loha_slots}, kMerges},
    D{PeftType::LOKR, "lokr_", kGeneric, I{lokr_slots}, kMerges},
    D{PeftType::OFT, "oft_", S{select_by_prefix, remap_oft}, I{oft_slots}, kMerges},
    D{PeftType::POLY, "poly_", kGeneric, I{poly_slots}, MergeRule{false, kPolyRefusal}},
    D{PeftType::LN_TUNING, "ln_tuning_", kGeneric, I{ln_tuning_slots}, kMerges},
    D{PeftType::VERA, "vera_lambda_", S{select_vera, remap_vera}, I{vera_slots, vera_shared},
      kMerges},
    D{PeftType::FOURIERFT, "fourierft_", kGeneric, I{fourierft_slots}, kMerges},
    D{PeftType::XLORA, "xlora_", S{select_xlora, keep_as_is},
      I{nullptr, nullptr, ModelShape::XLora}, MergeRule{false, kXloraRefusal}},
    D{PeftType::HRA, "hra_", kGeneric, I{hra_slots}, kMerges},
    D{PeftType::VBLORA, "vblora_", S{select_vblora, remap_vblora, nullptr, true},
      I{vblora_slots, vblora_shared}, kMerges},
    D{PeftType::CPT, "cpt_", kPrompt, I{cpt_slots, nullptr, kPromptShape}, kPromptMerge},
    D{PeftType::BONE, "bone_", kGeneric, I{bone_slots}, kMerges},
    D{PeftType::MISS, "miss_", kGeneric, I{miss_slots}, kMerges},
    D{PeftType::RANDLORA, "randlora_", kGeneric, I{randlora_slots, randlora_shared}, kMerges},
    D{PeftType::ROAD, "road_", kGeneric, I{road_slots}, kMerges},
    D{PeftType::TRAINABLE_TOKENS, "trainable_tokens_", kGeneric, I{trainable_tokens_slots},
      kMerges},
    D{PeftType::SHIRA, "shira_", S{select_shira, remap_shira}, I{shira_slots}, kMerges},
    D{PeftType::C3A, "c3a_", kGeneric, I{c3a_slots}, kMerges},
    D{PeftType::WAVEFT, "waveft_", kGeneric, I{waveft_slots}, kMerges},
    D{PeftType::OSF, "osf_", kGeneric, I{osf_slots, nullptr, ModelShape::Tuner, osf_wraps},
      kMerges},
    D{PeftType::DELORA, "delora_", kGeneric, I{delora_slots}, kMerges},
    // Added after PEFT v0.18.0: known by name only.
    D{PeftType::ADAMSS, ""},
    D{PeftType::BEFT, ""},
    D{PeftType::LILY, ""},
    D{PeftType::FROD, ""},
    D{PeftType::PVERA, ""},
    D{PeftType::GLORA, ""},
    D{PeftType::UNILORA, ""},
    D{PeftType::HIRA, ""},
    D{PeftType::GRALORA, ""},
    D{PeftType::CARTRIDGE, ""},
    D{PeftType::TINYLORA, ""},
    D{PeftType::PSOFT, ""},
    D{PeftType::PEANUT, ""},
    D{PeftType::SUPERTUNING, ""},
    D{PeftType::DEFT, ""},
};

constexpr bool covers_every_type_in_order() {
  for (std::size_t i = 0; i < kRegistry.size(); ++i) {
    const MethodDescriptor& row = kRegistry[i];
    if (static_cast<std::size_t>(row.type) != i) return false;
    // A v0.18.0 method has a prefix and a merge decision; later ones none. (Function
    // pointers cannot be compared in a constant expression under every compiler mode:
    // registry_test checks that exactly the v0.18.0 rows have state-dict rules.)
    const bool known = i < kPeftTypeCountV0_18_0;
    if (known != !row.prefix.empty()) return false;
    if (known != (row.merge.merges || !row.merge.refusal.empty())) return false;
  }
  return true;
}
static_assert(covers_every_type_in_order(),
              "one row per PeftType in enum order; every v0.18.0 method complete");
}  // namespace registry_rows

using registry_rows::kRegistry;

inline const MethodDescriptor& method(PeftType type) noexcept {
  return kRegistry[static_cast<std::size_t>(type)];
}

// The state-dict rules of `type`; Unsupported naming `source` for types added after
// PEFT 0.18.0.
const StateDictRules& state_dict_rules(PeftType type, std::string_view source = {});
// The marker of `type`'s parameters; Unsupported like state_dict_rules.
std::string_view prefix_of(PeftType type, std::string_view source = {});

}  // namespace peft::methods
