// peft/peft_state_dict.hpp — get_peft_model_state_dict and set_peft_model_state_dict.
//
// The pair PEFT's persistence is built on, with PEFT v0.18.0's exact results for every
// method: which keys are saved, how the adapter name is removed from them and inserted
// again, and every method's special case (DoRA, AdaLoRA ranks, VeRA and RandLoRA
// projections, VB-LoRA top-k, SHiRA indices, prompt encoders, auxiliary wrappers,
// embedding layers). Each method's rules live in one row of src/methods/.
// Deliberate v0.18.0 quirks that later releases fixed are kept so files stay identical;
// they are listed in docs/compatibility.md.
#pragma once

#include <string>
#include <tuple>
#include <vector>

#include "peft/diagnostic.hpp"
#include "peft/export.hpp"
#include "peft/peft_model.hpp"
#include "peft/state_dict.hpp"

namespace peft {

enum class SaveEmbeddingLayers { Auto, Yes, No };

struct PEFT_API GetStateDictOptions {
  std::string adapter_name = "default";
  SaveEmbeddingLayers save_embedding_layers = SaveEmbeddingLayers::Auto;
  // Where PEFT's warnings go (they are never printed by the library).
  Diagnostics* warnings = nullptr;
};

// The adapter's tensors under their saved keys, in PEFT's order. Like PEFT, AdaLoRA
// rewrites the adapter's rank_pattern in model.adapters (adapter name stripped).
PEFT_API StateDict get_peft_model_state_dict(PeftModel& model,
                                             const GetStateDictOptions& options = {});

struct PEFT_API SetStateDictOptions {
  std::string adapter_name = "default";
  bool ignore_mismatched_sizes = false;
  // The adapter's tensors were created without storage: adopt the loaded tensors
  // (their dtype), then cast floating ones to the dtype of their layer's base weight.
  bool low_cpu_mem_usage = false;
  Diagnostics* warnings = nullptr;
};

struct PEFT_API MismatchedKey {
  std::string key;
  Shape checkpoint_shape;
  Shape model_shape;
};

struct PEFT_API LoadResult {
  std::vector<std::string> missing_keys;       // as load_state_dict(strict=False) returns them
  std::vector<std::string> unexpected_keys;    // idem
  std::vector<MismatchedKey> mismatched_keys;  // dropped with ignore_mismatched_sizes
  // What PeftModel.load_adapter keeps of missing_keys: those containing the method's
  // prefix and the adapter name.
  std::vector<std::string> adapter_missing_keys;
};

// Loads `state` (saved keys) into the model's adapter `adapter_name`, which must exist.
// Throws peft::Error where PEFT raises: a missing modules_to_save key (MissingKey), a
// size mismatch (SizeMismatch, after copying every other tensor, as PyTorch does),
// old OFT files, missing VeRA projections, a missing or misshapen prompt embedding.
PEFT_API LoadResult set_peft_model_state_dict(PeftModel& model, StateDict state,
                                              const SetStateDictOptions& options = {});

}  // namespace peft
