#include "peft/peft_type.hpp"

#include <array>

namespace peft {
namespace {

struct TypeName {
  PeftType type;
  std::string_view name;
};

// Kept in enum order; a test checks that the order and names match.
constexpr std::array kTypeNames = {
    TypeName{PeftType::PROMPT_TUNING, "PROMPT_TUNING"},
    TypeName{PeftType::MULTITASK_PROMPT_TUNING, "MULTITASK_PROMPT_TUNING"},
    TypeName{PeftType::P_TUNING, "P_TUNING"},
    TypeName{PeftType::PREFIX_TUNING, "PREFIX_TUNING"},
    TypeName{PeftType::LORA, "LORA"},
    TypeName{PeftType::ADALORA, "ADALORA"},
    TypeName{PeftType::BOFT, "BOFT"},
    TypeName{PeftType::ADAPTION_PROMPT, "ADAPTION_PROMPT"},
    TypeName{PeftType::IA3, "IA3"},
    TypeName{PeftType::LOHA, "LOHA"},
    TypeName{PeftType::LOKR, "LOKR"},
    TypeName{PeftType::OFT, "OFT"},
    TypeName{PeftType::POLY, "POLY"},
    TypeName{PeftType::LN_TUNING, "LN_TUNING"},
    TypeName{PeftType::VERA, "VERA"},
    TypeName{PeftType::FOURIERFT, "FOURIERFT"},
    TypeName{PeftType::XLORA, "XLORA"},
    TypeName{PeftType::HRA, "HRA"},
    TypeName{PeftType::VBLORA, "VBLORA"},
    TypeName{PeftType::CPT, "CPT"},
    TypeName{PeftType::BONE, "BONE"},
    TypeName{PeftType::MISS, "MISS"},
    TypeName{PeftType::RANDLORA, "RANDLORA"},
    TypeName{PeftType::ROAD, "ROAD"},
    TypeName{PeftType::TRAINABLE_TOKENS, "TRAINABLE_TOKENS"},
    TypeName{PeftType::SHIRA, "SHIRA"},
    TypeName{PeftType::C3A, "C3A"},
    TypeName{PeftType::WAVEFT, "WAVEFT"},
    TypeName{PeftType::OSF, "OSF"},
    TypeName{PeftType::DELORA, "DELORA"},
    TypeName{PeftType::ADAMSS, "ADAMSS"},
    TypeName{PeftType::BEFT, "BEFT"},
    TypeName{PeftType::LILY, "LILY"},
    TypeName{PeftType::FROD, "FROD"},
    TypeName{PeftType::PVERA, "PVERA"},
    TypeName{PeftType::GLORA, "GLORA"},
    TypeName{PeftType::UNILORA, "UNILORA"},
    TypeName{PeftType::HIRA, "HIRA"},
    TypeName{PeftType::GRALORA, "GRALORA"},
    TypeName{PeftType::CARTRIDGE, "CARTRIDGE"},
    TypeName{PeftType::TINYLORA, "TINYLORA"},
    TypeName{PeftType::PSOFT, "PSOFT"},
    TypeName{PeftType::PEANUT, "PEANUT"},
    TypeName{PeftType::SUPERTUNING, "SUPERTUNING"},
    TypeName{PeftType::DEFT, "DEFT"},
};
static_assert(kTypeNames.size() == kPeftTypeCount);

constexpr std::array<PeftType, kPeftTypeCount> make_all_types() {
  std::array<PeftType, kPeftTypeCount> out{};
  for (std::size_t i = 0; i < kPeftTypeCount; ++i) out[i] = kTypeNames[i].type;
  return out;
}
constexpr auto kAllTypes = make_all_types();

struct TaskName {
  TaskType type;
  std::string_view name;
};

constexpr std::array kTaskNames = {
    TaskName{TaskType::SEQ_CLS, "SEQ_CLS"},
    TaskName{TaskType::SEQ_2_SEQ_LM, "SEQ_2_SEQ_LM"},
    TaskName{TaskType::CAUSAL_LM, "CAUSAL_LM"},
    TaskName{TaskType::TOKEN_CLS, "TOKEN_CLS"},
    TaskName{TaskType::QUESTION_ANS, "QUESTION_ANS"},
    TaskName{TaskType::FEATURE_EXTRACTION, "FEATURE_EXTRACTION"},
};
static_assert(kTaskNames.size() == kTaskTypeCount);

constexpr std::array<TaskType, kTaskTypeCount> make_all_tasks() {
  std::array<TaskType, kTaskTypeCount> out{};
  for (std::size_t i = 0; i < kTaskTypeCount; ++i) out[i] = kTaskNames[i].type;
  return out;
}
constexpr auto kAllTasks = make_all_tasks();

}  // namespace

std::span<const PeftType> all_peft_types() noexcept {
  return kAllTypes;
}

std::string_view to_string(PeftType type) noexcept {
  const auto index = static_cast<std::size_t>(type);
  return index < kTypeNames.size() ? kTypeNames[index].name : std::string_view("UNKNOWN");
}

std::optional<PeftType> peft_type_from_string(std::string_view name) noexcept {
  for (const auto& entry : kTypeNames) {
    if (entry.name == name) return entry.type;
  }
  return std::nullopt;
}

bool is_prompt_learning(PeftType type) noexcept {
  switch (type) {
    case PeftType::PROMPT_TUNING:
    case PeftType::MULTITASK_PROMPT_TUNING:
    case PeftType::P_TUNING:
    case PeftType::PREFIX_TUNING:
    case PeftType::CPT:
    case PeftType::CARTRIDGE:
      return true;
    default:
      return false;
  }
}

bool in_peft_0_18_0(PeftType type) noexcept {
  return static_cast<std::size_t>(type) < kPeftTypeCountV0_18_0;
}

std::span<const TaskType> all_task_types() noexcept {
  return kAllTasks;
}

std::string_view to_string(TaskType type) noexcept {
  const auto index = static_cast<std::size_t>(type);
  return index < kTaskNames.size() ? kTaskNames[index].name : std::string_view("UNKNOWN");
}

std::optional<TaskType> task_type_from_string(std::string_view name) noexcept {
  for (const auto& entry : kTaskNames) {
    if (entry.name == name) return entry.type;
  }
  return std::nullopt;
}

}  // namespace peft
