// Synthetic transformer checkpoints and LoRA adapters for the checkpoint and CLI tests:
// deterministic values, Llama-like names, any size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "peft/merge.hpp"
#include "peft/state_dict.hpp"

namespace peft::testing {

struct SyntheticModel {
  int layers = 2;
  std::uint64_t hidden = 16;
  std::uint64_t intermediate = 32;
  std::uint64_t vocab = 24;
  DType dtype = DType::BF16;
  bool lm_head = true;         // false: tied to the input embedding, not stored
  bool integer_buffer = true;  // an I64 tensor that merges and casts must leave alone
  std::uint32_t seed = 1;
};

// "model.embed_tokens.weight", "model.layers.<i>.self_attn.q_proj.weight", ... in module
// order.
StateDict synthetic_state(const SyntheticModel& model);

// A LoRA (F32 factors, r, alpha) on every linear weight of `base` whose module name ends
// with one of `targets` ("q_proj", "down_proj", "lm_head"...).
MergeAdapter synthetic_lora(const StateDict& base, const std::vector<std::string>& targets, int r,
                            double alpha, std::uint32_t seed, const std::string& name = "default");

// Writes `adapter` as PEFT would (adapter_config.json + adapter_model.safetensors).
void save_adapter(const MergeAdapter& adapter, const std::filesystem::path& folder);

// A config.json as transformers writes it for a Llama model.
void write_model_config(const std::filesystem::path& folder, bool tie_word_embeddings,
                        const std::string& torch_dtype = "bfloat16");

}  // namespace peft::testing
