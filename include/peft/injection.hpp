// peft/injection.hpp — the tensors PEFT's injection creates when an adapter is added to a
// plain base model, for LoRA (with DoRA and lora_bias), IA3, LoHa and LoKr: targeted modules'
// weights move under `base_layer`, and the adapter's tensors get the shapes the config implies.
// Their values are placeholders (zeros; DoRA magnitudes ones): they exist to be loaded
// into, as PEFT's random initialisation is overwritten by from_pretrained too.
#pragma once

#include <map>
#include <string>

#include "peft/peft_model.hpp"

namespace peft {

// Python class of each module of the base model ("Linear", "Embedding", "Conv2d",
// "Conv1D" for GPT-2's transposed linear...), keyed by module path. Modules not listed
// are guessed from their weight's rank: 2-D Linear, 3-D Conv1d, 4-D Conv2d, 5-D Conv3d.
using ModuleClasses = std::map<std::string, std::string>;

// The PEFT model that injecting `config` as `adapter_name` into `base` (the base model's
// own state dict) produces. Throws Unsupported for other methods.
// With `autocast_adapter_dtype` (PEFT's default) adapter tensors are float32 whatever the
// base dtype; without it they take the dtype of their layer's weight.
PeftModel inject_adapter(const StateDict& base, const std::string& adapter_name,
                         const PeftConfig& config, const ModuleClasses& classes = {},
                         bool autocast_adapter_dtype = true);

}  // namespace peft
