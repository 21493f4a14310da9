#include "peft/peft_type.hpp"

#include <array>

#include "config/method_config.hpp"

namespace peft {
namespace {

constexpr std::array<PeftType, kPeftTypeCount> make_all_types() {
  std::array<PeftType, kPeftTypeCount> out{};
  for (std::size_t i = 0; i < kPeftTypeCount; ++i) out[i] = static_cast<PeftType>(i);
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

// Names and kinds come from the method registry's config rows (method_configs.cpp).
std::string_view to_string(PeftType type) noexcept {
  const auto index = static_cast<std::size_t>(type);
  return index < kPeftTypeCount ? detail::method_config(type).name : std::string_view("UNKNOWN");
}

std::optional<PeftType> peft_type_from_string(std::string_view name) noexcept {
  for (const auto& method : detail::all_method_configs()) {
    if (method.name == name) return method.type;
  }
  return std::nullopt;
}

bool is_prompt_learning(PeftType type) noexcept {
  const auto index = static_cast<std::size_t>(type);
  return index < kPeftTypeCount && detail::method_config(type).prompt_learning;
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
