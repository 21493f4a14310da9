// save_pretrained(path_initial_model_for_weight_conversion=...): turning a PiSSA / CorDA /
// OLoRA adapter, which only works on the base weights its initialisation modified, into a
// plain LoRA adapter for the original base (docs/peft-rules.md §1.8):
//   ΔW = A·B − A₀·B₀ = [A | A₀] · [B | −B₀]ᵀ, so r and lora_alpha double.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "peft/config.hpp"
#include "peft/state_dict.hpp"

namespace peft::detail {

struct ConvertedAdapter {
  StateDict weights;  // only lora_A / lora_B keys, rank doubled
  PeftConfig config;  // init_lora_weights=true, r and lora_alpha (and patterns) doubled
};

// `initial` is the folder where the untrained adapter was saved; its config is replaced
// by a copy of `config` with init_lora_weights=true, as PEFT does.
ConvertedAdapter convert_to_plain_lora(const StateDict& trained, const PeftConfig& config,
                                       const std::filesystem::path& initial, Diagnostics* warnings);

// `a` and `b` joined along dimension `dim` (all other dimensions equal, same dtype).
Tensor concatenate(const Tensor& a, const Tensor& b, std::size_t dim);
// −x for floating tensors (the sign bit flipped, as PyTorch's neg does).
Tensor negate(const Tensor& x);

}  // namespace peft::detail
