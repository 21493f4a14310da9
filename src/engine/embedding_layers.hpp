// save_embedding_layers (docs/peft-rules.md §2.8).
#pragma once

#include <string>
#include <vector>

#include "peft/peft_model.hpp"
#include "peft/peft_state_dict.hpp"

namespace peft::detail {

// Whether target_modules names an embedding (exact list entry, or a regex matching a
// module path ending in embed_tokens / lm_head).
bool embedding_is_targeted(const PeftModel& model, const PeftConfig& config);

// Resolves "auto" as PEFT does, emitting its warnings.
bool resolve_save_embedding_layers(const PeftModel& model, const PeftConfig& config,
                                   SaveEmbeddingLayers requested, bool targeted,
                                   Diagnostics* warnings);

// Adds the embedding layers' entries to `out`.
void add_embedding_layers(const PeftModel& model, const PeftConfig& config, bool targeted,
                          StateDict& out, Diagnostics* warnings);

}  // namespace peft::detail
