// The random values PEFT draws, and then throws away, while add_weighted_adapter creates
// the combined LoRA adapter: they come before the first DARE mask, so reproducing the masks
// after torch.manual_seed(seed) means advancing the generator by as many outputs.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "peft/config.hpp"
#include "pycompat/torch_random.hpp"

namespace peft::merge {

// One module the combined adapter is created on.
struct CreatedModule {
  std::string_view path;
  std::uint64_t rank = 0;          // rows of the new lora_A
  std::uint64_t in_features = 0;   // lora_A's elements per row (in * prod(kernel) for convs)
  std::uint64_t out_features = 0;  // rows of the new lora_B
  bool embedding = false;
};

// Advances `generator` past the draws of creating the combined adapter on `modules` with a
// copy of `first_source` (its init_lora_weights decides what is drawn again). Throws
// Unsupported, naming the module or the setting, where PEFT's draws are not reproduced
// (embedding layers, named initialisations such as "pissa").
void skip_creation_draws(numeric::TorchGenerator& generator, const PeftConfig& first_source,
                         std::span<const CreatedModule> modules);

}  // namespace peft::merge
