// SHiRA: sparse weights plus index tensors kept outside the state dict (docs/peft-rules.md §2.5.4).
#include <unordered_set>

#include "methods/method_rules.hpp"

namespace peft::methods {

StateDict select_shira(SaveContext& ctx) {
  StateDict out = select_by_prefix(ctx);
  // Every adapter's indices of every module, the other adapters' keeping their name
  // (v0.18.0 quirk). Keys are "<module>.shira_indices.<adapter>".
  for (const auto& [key, indices] : ctx.model.facts.shira_indices) out.set(key, indices);
  return out;
}

StateDict remap_shira(LoadContext& ctx, StateDict state) {
  StateDict out = insert_adapter_names(ctx, std::move(state));
  // "<module>.shira_indices.<adapter>" goes back into the module's index dictionary (as
  // int32) and never reaches the state load. Every SHiRA layer has that dictionary;
  // a module is a SHiRA layer when it holds shira_weight parameters.
  const std::string suffix = ".shira_indices." + ctx.adapter;
  std::vector<std::string> index_keys;
  for (const auto& [key, tensor] : out) {
    if (key.ends_with(suffix)) index_keys.push_back(key);
  }
  if (index_keys.empty()) return out;
  std::unordered_set<std::string> shira_layers;
  for (const auto& [model_key, tensor] : ctx.model.state) {
    const auto at = model_key.find(".shira_weight.");
    if (at != std::string::npos) shira_layers.insert(model_key.substr(0, at));
  }
  for (const auto& key : index_keys) {
    if (shira_layers.count(key.substr(0, key.size() - suffix.size())) != 0) {
      ctx.model.facts.shira_indices.set(key, out.pop(key)->to(DType::I32));
    }
  }
  return out;
}

}  // namespace peft::methods
