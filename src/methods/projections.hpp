// VeRA and RandLoRA projections PEFT draws at load time (see projections.cpp).
#pragma once

#include <functional>
#include <optional>
#include <string_view>

#include "peft/config.hpp"
#include "peft/state_dict.hpp"

namespace peft::methods {

// The shape of a base model tensor by key ("model.layers.0.q_proj.weight"), if known.
using ShapeLookup = std::function<std::optional<Shape>(std::string_view base_key)>;

// Adds base_model.vera_A / vera_B to `weights` when the config is VeRA and they are absent.
void draw_vera_projections(const PeftConfig& config, StateDict& weights,
                           const ShapeLookup& base_shapes);
// Adds base_model.randlora_A / randlora_B likewise for RandLoRA.
void draw_randlora_projections(const PeftConfig& config, StateDict& weights,
                               const ShapeLookup& base_shapes);

}  // namespace peft::methods
