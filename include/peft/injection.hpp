// peft/injection.hpp — the tensors PEFT creates when adapters are added to a plain base
// model (get_peft_model, PeftModel.from_pretrained, load_adapter), with their keys, order,
// shapes and dtypes:
//   * tuner methods (LoRA and its relatives, IA3, OFT, BOFT, VeRA, ..., OSF): targeted
//     modules move under `base_layer` and gain the adapter's tensors; LoRA also on
//     nn.MultiheadAttention, on parameters (`target_parameters`, 3-D experts too), with
//     `layer_replication`, `trainable_token_indices` and modules_to_save (the classifier
//     heads that task types add, as PeftModelForSequenceClassification does);
//   * prompt learning (prompt tuning, P-tuning, prefix tuning, multitask prompt tuning,
//     CPT): "base_model.<key>" plus the prompt encoder and the shared word embeddings;
//   * adaption prompt: the adapted attention modules of the last layers;
//   * several adapters in one model, added in order as load_adapter adds them.
// Trainable values are placeholders (zeros, ones, or the values PEFT starts from when they
// are deterministic, e.g. trainable tokens copy their embedding rows, OSF's low singular
// triplets start as zeros and are overwritten): they exist to be loaded into, as PEFT's
// random initialisation is overwritten by from_pretrained too. Frozen tensors a saved
// adapter may lack are computed as PEFT does: AdaLoRA's ranknum, DeLoRA's weight norms,
// VeRA's and RandLoRA's projections (from projection_prng_key). Tensors PEFT shares
// between layers or modules (projections, VB-LoRA's bank, replicated layers' base weights,
// tied trainable-token deltas, prompt learning's word embeddings) share one storage here too.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

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

// What injection needs to know about the base model beyond its state dict.
struct PEFT_API InjectionOptions {
  ModuleClasses classes;
  bool autocast_adapter_dtype = true;
  // get_input_embeddings()/get_output_embeddings() paths and vocab_size: prompt learning
  // shares the input embedding (else the first tensor with vocab_size rows), a
  // trainable_token_indices list targets it. Copied into the result's facts.
  ModelFacts facts;
  // config.json's tie_word_embeddings: trainable tokens of the input embedding then also
  // wrap the output embedding, sharing the delta.
  bool tie_word_embeddings = false;
  // X-LoRA: the folder its config's relative adapter paths are relative to.
  std::filesystem::path adapter_folder = ".";
};

// The PEFT model holding `adapters` (name, config), each injected in order into `base`.
// All adapters must be of one PEFT type (as in PeftModel). Throws as inject_adapter does.
PEFT_API PeftModel inject_adapters(const StateDict& base,
                                   const std::vector<std::pair<std::string, PeftConfig>>& adapters,
                                   const InjectionOptions& options = {});

}  // namespace peft
