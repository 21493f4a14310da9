// peft/peft_type.hpp — the PEFT method ("peft_type") and task ("task_type") names.
//
// PeftType lists the 30 types registered by PEFT v0.18.0 (docs/peft-rules.md §1.4), in the
// order of PEFT's own enumeration, followed by the 15 types added after v0.18.0
// (docs/peft-rules.md §6.1). A config naming one of the later types loads in peftcpp (so
// that it can be inspected), but PEFT v0.18.0 itself rejects it; `in_peft_0_18_0()` tells
// them apart.
// BONE is a v0.18.0 type (deprecated there); PEFT >= 0.19 no longer knows it and reads
// such adapters only after conversion to MISS.
//
// The string forms are exactly the values PEFT writes ("LORA", "CAUSAL_LM", ...); parsing
// is case-sensitive like PEFT's registry lookup.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "peft/export.hpp"

namespace peft {

enum class PeftType : std::uint8_t {
  // PEFT v0.18.0
  PROMPT_TUNING,
  MULTITASK_PROMPT_TUNING,
  P_TUNING,
  PREFIX_TUNING,
  LORA,
  ADALORA,
  BOFT,
  ADAPTION_PROMPT,
  IA3,
  LOHA,
  LOKR,
  OFT,
  POLY,
  LN_TUNING,
  VERA,
  FOURIERFT,
  XLORA,
  HRA,
  VBLORA,
  CPT,
  BONE,
  MISS,
  RANDLORA,
  ROAD,
  TRAINABLE_TOKENS,
  SHIRA,
  C3A,
  WAVEFT,
  OSF,
  DELORA,
  // Added after v0.18.0 (unknown to v0.18.0, which fails to load them)
  ADAMSS,
  BEFT,
  LILY,
  FROD,
  PVERA,
  GLORA,
  UNILORA,
  HIRA,
  GRALORA,
  CARTRIDGE,
  TINYLORA,
  PSOFT,
  PEANUT,
  SUPERTUNING,
  DEFT,
};

inline constexpr std::size_t kPeftTypeCount = 45;
inline constexpr std::size_t kPeftTypeCountV0_18_0 = 30;

// Every PeftType, in declaration order.
PEFT_API std::span<const PeftType> all_peft_types() noexcept;

// The string PEFT writes for `type`, e.g. "LORA".
PEFT_API std::string_view to_string(PeftType type) noexcept;
// Parses a peft_type value; nullopt for anything else.
PEFT_API std::optional<PeftType> peft_type_from_string(std::string_view name) noexcept;
// Prompt-learning methods (PROMPT_TUNING, MULTITASK_PROMPT_TUNING, P_TUNING, PREFIX_TUNING,
// CPT, and the later CARTRIDGE): they add virtual tokens instead of wrapping modules.
PEFT_API bool is_prompt_learning(PeftType type) noexcept;
// True for the 30 types PEFT v0.18.0 registers.
PEFT_API bool in_peft_0_18_0(PeftType type) noexcept;

enum class TaskType : std::uint8_t {
  SEQ_CLS,
  SEQ_2_SEQ_LM,
  CAUSAL_LM,
  TOKEN_CLS,
  QUESTION_ANS,
  FEATURE_EXTRACTION,
};

inline constexpr std::size_t kTaskTypeCount = 6;

PEFT_API std::span<const TaskType> all_task_types() noexcept;
PEFT_API std::string_view to_string(TaskType type) noexcept;
PEFT_API std::optional<TaskType> task_type_from_string(std::string_view name) noexcept;

}  // namespace peft
