// What a method's state-dict rules see and the rules themselves; the method registry
// (registry.hpp) says which rule each PeftType uses. A method whose rules are not the
// generic prefix rules has one file here with its select/remap functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "methods/adapter_names.hpp"
#include "peft/peft_model.hpp"
#include "peft/peft_state_dict.hpp"

namespace peft::methods {

struct SaveContext {
  PeftModel& model;
  PeftConfig& config;  // AdaLoRA rewrites its rank_pattern while saving, as PEFT does
  const std::string& adapter;
  Diagnostics* warnings;
  void warn(std::string code, std::string message) const {
    report_warning(warnings, std::move(code), std::move(message));
  }
};

struct LoadContext {
  PeftModel& model;
  const PeftConfig& config;
  const std::string& adapter;
  Diagnostics* warnings;
  void warn(std::string code, std::string message) const {
    report_warning(warnings, std::move(code), std::move(message));
  }
};

// Step 1 of get_peft_model_state_dict: the method's tensors, under full keys.
using SelectFn = StateDict (*)(SaveContext&);
// Step 2 of set_peft_model_state_dict: saved keys to the model's full keys.
using RemapFn = StateDict (*)(LoadContext&, StateDict);
// After the state load: prompt encoders load their embedding from the dict.
using AfterLoadFn = void (*)(LoadContext&, const StateDict&);

// Shared building blocks.
StateDict select_containing(const StateDict& state, std::string_view needle);
StateDict select_by_prefix(SaveContext& ctx);
StateDict insert_adapter_names(LoadContext& ctx, StateDict state);  // the generic remap
StateDict keep_as_is(LoadContext& ctx, StateDict state);

// Copies `value` into the model tensor `key` as load_state_dict does: same shape
// required (SizeMismatch naming `shown_key` otherwise), converted to the model's dtype,
// written in place so tensors sharing its storage see it.
void copy_into_model(PeftModel& model, const std::string& key, const Tensor& value,
                     std::string_view shown_key);

// Rows (or, with `columns`, columns) `kept` of a 2-D tensor; the tensor itself when it
// already has that many.
Tensor select_rank_slots(const Tensor& tensor, const std::vector<std::int64_t>& kept, bool columns);

// Per-method functions (one file each).
StateDict select_lora(SaveContext& ctx);
StateDict remap_lora(LoadContext& ctx, StateDict state);
StateDict remap_adalora(LoadContext& ctx, StateDict state);
StateDict select_boft(SaveContext& ctx);
StateDict select_adaption_prompt(SaveContext& ctx);
StateDict select_xlora(SaveContext& ctx);
StateDict remap_oft(LoadContext& ctx, StateDict state);
StateDict select_vera(SaveContext& ctx);
StateDict remap_vera(LoadContext& ctx, StateDict state);
StateDict select_vblora(SaveContext& ctx);
StateDict remap_vblora(LoadContext& ctx, StateDict state);
StateDict select_shira(SaveContext& ctx);
StateDict remap_shira(LoadContext& ctx, StateDict state);
StateDict select_prompt_learning(SaveContext& ctx);
void load_prompt_encoder(LoadContext& ctx, const StateDict& state);

}  // namespace peft::methods
