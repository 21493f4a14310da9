// LoRA, AdaLoRA (and DoRA) and BOFT: the methods whose saving honours `bias`.
#include <cstring>

#include <fmt/format.h>

#include "methods/method_rules.hpp"
#include "peft/error.hpp"

namespace peft::methods {
namespace {

bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

// The bias modes of docs/peft-rules.md §2.6 with `marker` = "lora_" or "boft_".
StateDict select_with_bias(const PeftModel& model, const PeftConfig& config,
                           std::string_view marker) {
  const std::string bias = config.bias();
  const std::string marker_only = std::string(marker) + "only";  // "lora_only" / "boft_only"
  StateDict out;
  if (bias == "none") return select_containing(model.state, marker);
  if (bias == "all") {
    for (const auto& [key, tensor] : model.state) {
      if (contains(key, marker) || contains(key, "bias")) out.set(key, tensor);
    }
    return out;
  }
  if (bias == marker_only) {
    for (const auto& [key, tensor] : model.state) {
      if (!contains(key, marker)) continue;
      out.set(key, tensor);
      // The bias "of the layer" is looked up next to the marker; for tuner layers it
      // lives under base_layer, so in v0.18.0 this finds nothing (docs/peft-rules.md §2.6).
      const std::string bias_name = key.substr(0, key.find(marker)) + "bias";
      if (const Tensor* found = model.state.find(bias_name)) out.set(bias_name, *found);
    }
    return out;
  }
  throw Error(ErrorCode::InvalidConfigValue, config.source(),
              fmt::format("bias '{}' is not one of none, all, {}", bias, marker_only));
}

std::vector<std::int64_t> kept_slots(const std::vector<bool>& mask) {
  std::vector<std::int64_t> kept;
  for (std::size_t i = 0; i < mask.size(); ++i) {
    if (mask[i]) kept.push_back(static_cast<std::int64_t>(i));
  }
  return kept;
}

// The layer a rank_pattern key belongs to: the key minus its parameter name, minus the
// adapter name too when the key still contains it (a substring test, as in PEFT).
std::string adalora_layer_path(std::string_view name, std::string_view adapter) {
  const std::size_t drop = contains(name, adapter) ? 2 : 1;
  std::string_view layer = name;
  for (std::size_t i = 0; i < drop; ++i) {
    const auto dot = layer.rfind('.');
    layer = dot == std::string_view::npos ? std::string_view() : layer.substr(0, dot);
  }
  return std::string(layer);
}

// AdaLoRA: keep only the rank slots the training kept (docs/peft-rules.md §2.5.5).
void prune_by_rank_pattern(SaveContext& ctx, StateDict& selected) {
  const nlohmann::json* pattern = ctx.config.find("rank_pattern");
  if (pattern == nullptr || pattern->is_null()) return;
  // Strip ".<adapter>" from every key, and store the result in the config, as PEFT does.
  nlohmann::json stripped = nlohmann::json::object();
  const std::string needle = "." + ctx.adapter;
  for (const auto& [name, mask] : pattern->items()) {
    std::string key = name;
    for (auto at = key.find(needle); at != std::string::npos; at = key.find(needle, at)) {
      key.erase(at, needle.size());
    }
    stripped[key] = mask;
  }
  ctx.config.mutable_json()["rank_pattern"] = stripped;

  for (const auto& [name, mask_json] : ctx.config.adalora_rank_masks()) {
    const std::vector<std::int64_t> kept = kept_slots(mask_json);
    const std::string layer = adalora_layer_path(name, ctx.adapter);
    for (const char* parameter : {"lora_E", "lora_A", "lora_B"}) {
      const std::string key =
          fmt::format("base_model.model.{}.{}.{}", layer, parameter, ctx.adapter);
      const Tensor* tensor = selected.find(key);
      if (tensor == nullptr) {
        throw Error(
            ErrorCode::MissingKey, ctx.config.source(),
            fmt::format("rank_pattern names '{}' but the model has no tensor '{}'", name, key));
      }
      const bool columns = std::string_view(parameter) == "lora_B";
      selected.set(key, select_rank_slots(*tensor, kept, columns));
    }
  }
}

}  // namespace

Tensor select_rank_slots(const Tensor& tensor, const std::vector<std::int64_t>& kept,
                         bool columns) {
  if (tensor.rank() != 2) {
    throw Error(ErrorCode::ShapeMismatch, "", "AdaLoRA tensors must be 2-D");
  }
  const std::uint64_t rows = tensor.shape()[0], cols = tensor.shape()[1];
  const std::uint64_t current = columns ? cols : rows;
  if (kept.size() == current) return tensor;  // already at the final rank
  for (const auto index : kept) {
    if (static_cast<std::uint64_t>(index) >= current) {
      throw Error(
          ErrorCode::ShapeMismatch, "",
          fmt::format("rank mask selects slot {} of a tensor with {} slots", index, current));
    }
  }
  const std::size_t element = dtype_size(tensor.dtype());
  Shape shape = columns ? Shape{rows, kept.size()} : Shape{kept.size(), cols};
  Tensor out = Tensor::zeros(tensor.dtype(), shape);
  const std::byte* src = tensor.bytes().data();
  std::byte* dst = out.mutable_bytes().data();
  for (std::uint64_t r = 0; r < shape[0]; ++r) {
    for (std::uint64_t c = 0; c < shape[1]; ++c) {
      const std::uint64_t sr = columns ? r : static_cast<std::uint64_t>(kept[r]);
      const std::uint64_t sc = columns ? static_cast<std::uint64_t>(kept[c]) : c;
      std::memcpy(dst + (r * shape[1] + c) * element, src + (sr * cols + sc) * element, element);
    }
  }
  return out;
}

StateDict select_lora(SaveContext& ctx) {
  StateDict selected = select_with_bias(ctx.model, ctx.config, "lora_");
  // The adapter filter is a substring test (v0.18.0): "default" also keeps "default_v2".
  StateDict out;
  for (auto& [key, tensor] : selected) {
    if ((contains(key, "lora_") && contains(key, ctx.adapter)) || contains(key, "bias")) {
      out.set(key, tensor);
    }
  }
  if (ctx.config.peft_type() == PeftType::ADALORA) prune_by_rank_pattern(ctx, out);
  if (ctx.config.use_dora()) {
    // DoRA's magnitude is saved without the ".weight" of its module (docs/peft-rules.md §2.5.1).
    const std::string suffix = "lora_magnitude_vector." + ctx.adapter + ".weight";
    StateDict renamed;
    for (auto& [key, tensor] : out) {
      renamed.set(key.ends_with(suffix) ? key.substr(0, key.size() - 7) : key, tensor);
    }
    return renamed;
  }
  return out;
}

StateDict remap_lora(LoadContext& ctx, StateDict state) {
  StateDict inserted = insert_adapter_names(ctx, std::move(state));
  // Every LoRA load re-appends ".weight" to the DoRA magnitude, DoRA or not.
  const std::string suffix = "lora_magnitude_vector." + ctx.adapter;
  StateDict out;
  for (auto& [key, tensor] : inserted) {
    out.set(key.ends_with(suffix) ? key + ".weight" : key, tensor);
  }
  return out;
}

StateDict remap_adalora(LoadContext& ctx, StateDict state) {
  StateDict out = insert_adapter_names(ctx, std::move(state));
  const nlohmann::json* pattern = ctx.config.find("rank_pattern");
  if (pattern == nullptr || pattern->is_null()) return out;
  // Shrink the model's layers to the saved ranks before loading (resize_modules_by_rank_pattern).
  for (const auto& [name, mask] : ctx.config.adalora_rank_masks()) {
    const std::vector<std::int64_t> kept = kept_slots(mask);
    const std::string layer = adalora_layer_path(name, ctx.adapter);
    for (const char* parameter : {"lora_E", "lora_A", "lora_B"}) {
      const std::string key =
          fmt::format("base_model.model.{}.{}.{}", layer, parameter, ctx.adapter);
      Tensor* tensor = ctx.model.state.find(key);
      if (tensor == nullptr) {
        throw Error(
            ErrorCode::MissingKey, ctx.config.source(),
            fmt::format("rank_pattern names '{}' but the model has no tensor '{}'", name, key));
      }
      // A fresh tensor of the new rank (not a view), as update_layer creates one.
      *tensor = select_rank_slots(*tensor, kept, std::string_view(parameter) == "lora_B").clone();
    }
  }
  return out;
}

StateDict select_boft(SaveContext& ctx) {
  return select_with_bias(ctx.model, ctx.config, "boft_");
}

}  // namespace peft::methods
