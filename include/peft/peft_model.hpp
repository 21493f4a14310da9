// peft/peft_model.hpp — what stands in for Python's PeftModel.
//
// C++ has no nn.Module tree, so a PEFT model is described by:
//   * its full state dict, keyed exactly as PyTorch's state_dict() names them
//     ("base_model.model.lin0.lora_A.default.weight", "prompt_encoder.default.embedding.weight"),
//     in state_dict() order. Tensors that share storage in the model (tied embeddings,
//     VB-LoRA banks, RandLoRA projections) should share storage here too: loading writes
//     into the tensors in place, so aliases see the new values as they do in PyTorch;
//   * its adapter configs by adapter name, in creation order;
//   * the few facts that keys cannot carry (ModelFacts).
// Everything else (tuner layers, auxiliary wrappers, which adapters a wrapper serves,
// module order) is derived from the keys.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "peft/config.hpp"
#include "peft/export.hpp"
#include "peft/state_dict.hpp"

namespace peft {

struct PEFT_API ModelFacts {
  // transformers' get_input_embeddings()/get_output_embeddings(), as module paths of the
  // user's model ("model.embed_tokens", "lm_head"); unset when the model has none.
  std::optional<std::string> input_embedding;
  std::optional<std::string> output_embedding;
  // True for transformers models (they have the embedding accessors, even if they
  // return nothing); save_embedding_layers warns and saves nothing otherwise.
  bool has_embedding_accessors = false;
  // The model config's current vocab_size, for save_embedding_layers="auto".
  std::optional<std::int64_t> vocab_size;
  // Where a relative base_model_name_or_path is looked up (the working directory in Python).
  std::filesystem::path working_directory = ".";
  // SHiRA keeps its sparse indices outside the state dict: one int32 tensor per module
  // and adapter, keyed "<module path>.shira_indices.<adapter>", in module order.
  StateDict shira_indices;
  // Paths of TrainableTokensWrappers tied to another wrapper (GPT-2's lm_head tied to
  // wte). When empty, a wrapper whose delta shares memory with an earlier wrapper's
  // delta is taken as tied.
  std::vector<std::string> tied_token_wrappers;
  // The Python class of the PEFT model, for messages ("PeftModelForCausalLM").
  std::string model_class = "PeftModel";
};

struct PEFT_API PeftModel {
  StateDict state;
  std::vector<std::pair<std::string, PeftConfig>> adapters;
  ModelFacts facts;

  // Throws NotFound naming the adapter and the known ones.
  const PeftConfig& config(std::string_view adapter_name) const;
  PeftConfig& config(std::string_view adapter_name);
  bool has_adapter(std::string_view adapter_name) const;
};

// Makes every tensor of `state` writable heap storage, keeping tensors that viewed the
// same bytes aliased (one copy shared by all of them).
PEFT_API void make_writable(StateDict& state);

}  // namespace peft
