// A synthetic Llama-shaped BF16 checkpoint (sharded as transformers shards it) with an
// all-linear LoRA adapter of F32 factors: the input of the merge benchmarks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "peft/tensor.hpp"

namespace peft::bench {

struct LlamaShape {
  int layers = 34;
  std::uint64_t hidden = 1024;
  std::uint64_t intermediate = 2816;
  std::uint64_t vocab = 32000;
  std::size_t shards = 4;
  int rank = 16;
};

struct WeightSpec {
  std::string name;
  Shape shape;
};

// The checkpoint's tensors in transformers' order (embeddings, layers, norm, lm_head).
std::vector<WeightSpec> llama_weights(const LlamaShape& shape);
// Whether the LoRA targets this weight (q/k/v/o/gate/up/down projections).
bool lora_targeted(const std::string& weight_name);
// 2 * out * in * r summed over the targeted weights.
double lora_flops(const LlamaShape& shape);
// Writes <root>/base (shards, index, config.json) and <root>/adapter.
void write_llama_checkpoint(const std::filesystem::path& root, const LlamaShape& shape);

}  // namespace peft::bench
