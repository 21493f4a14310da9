// peft/injection.hpp — the tensors PEFT's injection creates when an adapter is added to a
// plain base model: targeted modules' tensors move under `base_layer`, and the adapter's
// tensors get the shapes, dtypes and order the config implies. Methods: LoRA (DoRA,
// lora_bias), AdaLoRA, LoHa, LoKr, IA3, OFT, BOFT, HRA, Bone, MiSS, FourierFT, WaveFT,
// C3A, SHiRA, RoAd, DeLoRA, Poly, LN tuning, VeRA, RandLoRA and VB-LoRA.
// Trainable values are placeholders (zeros or ones): they exist to be loaded into, as
// PEFT's random initialisation is overwritten by from_pretrained too. Frozen tensors a
// saved adapter may lack are computed as PEFT does: AdaLoRA's ranknum, DeLoRA's weight
// norms, VeRA's and RandLoRA's projections (from projection_prng_key). Tensors PEFT shares
// between layers (those projections, VB-LoRA's vector bank) share one storage here too.
#pragma once

#include <map>
#include <string>

#include "peft/export.hpp"
#include "peft/peft_model.hpp"

namespace peft {

// Python class of each module of the base model ("Linear", "Embedding", "Conv2d",
// "Conv1D" for GPT-2's transposed linear...), keyed by module path. Modules not listed
// are guessed from their weight's rank: 2-D Linear, 3-D Conv1d, 4-D Conv2d, 5-D Conv3d.
using ModuleClasses = std::map<std::string, std::string>;

// The PEFT model that injecting `config` as `adapter_name` into `base` (the base model's
// own state dict) produces. Throws Unsupported for other methods (and for layer classes
// the method does not wrap), InvalidConfigValue where PEFT's layer refuses the config.
// Adapter tensors take the dtype of their layer's weight (float32 for a non-float one);
// with `autocast_adapter_dtype` (PEFT's default) float16/bfloat16 become float32.
PEFT_API PeftModel inject_adapter(const StateDict& base, const std::string& adapter_name,
                                  const PeftConfig& config, const ModuleClasses& classes = {},
                                  bool autocast_adapter_dtype = true);

}  // namespace peft
