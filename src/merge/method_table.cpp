// The merge part of the method registry: one build function per PeftType, in enum order,
// next to the registry row (methods/registry.hpp) that gives the method's parameter
// marker and whether PEFT merges it. Kept in the merge layer so that only merging links
// the numeric libraries; the two tables are checked against each other at compile time.
#include <array>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "methods/registry.hpp"
#include "peft/error.hpp"

namespace peft::merge {
namespace {

// A build function, or none. The flag lets the table be checked at compile time
// (comparing function pointers with null is not a constant expression in every mode).
struct Builder {
  BuildFn build = nullptr;
  bool present = false;
  constexpr Builder() = default;
  constexpr Builder(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): table syntax
  constexpr Builder(BuildFn fn)
      : build(fn), present(true) {}  // NOLINT(google-explicit-constructor)
};

// Index = PeftType; nullptr where the registry says the method does not merge.
constexpr std::array<Builder, kPeftTypeCount> kBuilders = {
    // PEFT v0.18.0
    nullptr,                 // PROMPT_TUNING
    nullptr,                 // MULTITASK_PROMPT_TUNING
    nullptr,                 // P_TUNING
    nullptr,                 // PREFIX_TUNING
    build_lora,              // LORA
    build_adalora,           // ADALORA
    build_boft,              // BOFT
    nullptr,                 // ADAPTION_PROMPT
    build_ia3,               // IA3
    build_loha,              // LOHA
    build_lokr,              // LOKR
    build_oft,               // OFT
    nullptr,                 // POLY
    build_ln_tuning,         // LN_TUNING
    build_vera,              // VERA
    build_fourierft,         // FOURIERFT
    nullptr,                 // XLORA
    build_hra,               // HRA
    build_vblora,            // VBLORA
    nullptr,                 // CPT
    build_miss,              // BONE (MiSS's "bat" layout)
    build_miss,              // MISS
    build_randlora,          // RANDLORA
    build_road,              // ROAD
    build_trainable_tokens,  // TRAINABLE_TOKENS
    build_shira,             // SHIRA
    build_c3a,               // C3A
    build_waveft,            // WAVEFT
    build_osf,               // OSF
    build_delora,            // DELORA
                             // Added after v0.18.0 (the remaining entries): rules not known.
};

constexpr bool agrees_with_registry() {
  for (std::size_t i = 0; i < kPeftTypeCount; ++i) {
    if (methods::kRegistry[i].merge.merges != kBuilders[i].present) return false;
  }
  return true;
}
static_assert(agrees_with_registry(),
              "a build function exactly for the methods the registry says merge");

std::array<MergeRules, kPeftTypeCount> make_rules() {
  std::array<MergeRules, kPeftTypeCount> out{};
  for (std::size_t i = 0; i < kPeftTypeCount; ++i) {
    const methods::MethodDescriptor& row = methods::kRegistry[i];
    out[i] = MergeRules{row.type, row.prefix, kBuilders[i].build, row.merge.refusal};
  }
  return out;
}
// Built at first use: GCC's sanitizer builds refuse to evaluate this at compile time.
const std::array<MergeRules, kPeftTypeCount>& all_rules() {
  static const auto rules = make_rules();
  return rules;
}

}  // namespace

const MergeRules& merge_rules_for(PeftType type) {
  const MergeRules& rules = all_rules()[static_cast<std::size_t>(type)];
  if (rules.build != nullptr || !rules.refusal.empty()) return rules;
  throw Error(ErrorCode::Unsupported, "",
              fmt::format("merging {} adapters is not supported: the type was added after "
                          "PEFT 0.18.0, whose merge rules peftcpp follows",
                          to_string(type)));
}

}  // namespace peft::merge
