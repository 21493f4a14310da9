// get_peft_model_state_dict and set_peft_model_state_dict: the steps shared by every
// method; what differs per method is in src/methods/.
#include "peft/peft_state_dict.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "engine/embedding_layers.hpp"
#include "engine/wrappers.hpp"
#include "methods/registry.hpp"
#include "peft/error.hpp"

namespace peft {
namespace {

// Step 2 of saving: what the auxiliary wrappers store for the adapter (docs/peft-rules.md §2.7).
void add_wrapper_entries(const PeftModel& model, const std::string& adapter, StateDict& out) {
  for (const auto& wrapper : detail::find_wrappers(model)) {
    for (const auto& [saved, full] : detail::wrapper_key_map(model, wrapper, adapter)) {
      out.set(wrapper.path + "." + saved, model.state.at(wrapper.path + "." + full));
    }
  }
}

// Step 1 of loading: saved wrapper keys to the wrappers' per-adapter keys.
void map_wrapper_keys(const PeftModel& model, const std::string& adapter, StateDict& state) {
  for (const auto& wrapper : detail::find_wrappers(model)) {
    for (const auto& [saved, full] : detail::wrapper_key_map(model, wrapper, adapter)) {
      const std::string lookup = wrapper.path + "." + saved;
      auto tensor = state.pop(lookup);
      if (!tensor) {
        throw Error(
            ErrorCode::MissingKey, "",
            fmt::format("the weights hold no '{}', which the adapter's {} wrapper at '{}' "
                        "needs",
                        lookup,
                        wrapper.kind == detail::Wrapper::Kind::ModulesToSave ? "modules_to_save"
                                                                             : "trainable tokens",
                        wrapper.path));
      }
      state.set(wrapper.path + "." + full, std::move(*tensor));
    }
  }
}

std::vector<MismatchedKey> drop_mismatched(const PeftModel& model, StateDict& state) {
  std::vector<MismatchedKey> mismatched;
  for (const auto& [key, tensor] : state) {
    const Tensor* current = model.state.find(key);
    if (current == nullptr) continue;
    // Packed 4-bit weights: two values per byte of a [..., 1] container.
    if (!current->shape().empty() && current->shape().back() == 1 &&
        current->numel() * 2 == tensor.numel()) {
      continue;
    }
    if (current->shape() != tensor.shape()) {
      mismatched.push_back({key, tensor.shape(), current->shape()});
    }
  }
  for (const auto& entry : mismatched) state.erase(entry.key);
  return mismatched;
}

// Module paths in PyTorch's traversal order, derived from the keys: a module's
// position is its first key's index, parents before children.
class ModuleOrder {
 public:
  explicit ModuleOrder(const StateDict& state) {
    std::size_t index = 0;
    for (const auto& [key, tensor] : state) {
      for (auto dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
        order_.try_emplace(key.substr(0, dot), std::make_pair(index, dot));
      }
      ++index;
    }
  }
  // (position, depth) of the deepest module that contains `key`; the root is first.
  std::pair<std::size_t, std::size_t> owner(const std::string& key) const {
    for (auto dot = key.rfind('.'); dot != std::string::npos && dot > 0;
         dot = key.rfind('.', dot - 1)) {
      const auto it = order_.find(key.substr(0, dot));
      if (it != order_.end()) return {it->second.first + 1, it->second.second};
    }
    return {0, 0};
  }

 private:
  std::unordered_map<std::string, std::pair<std::size_t, std::size_t>> order_;
};

std::string shape_text(const Shape& shape) {
  return fmt::format("torch.Size([{}])", fmt::join(shape, ", "));
}

// load_state_dict(strict=False): copies what matches, reports the rest; a size mismatch
// is raised after every other tensor was copied, as PyTorch does.
LoadResult load_into(PeftModel& model, const StateDict& state, bool assign) {
  LoadResult result;
  std::vector<std::string> errors;
  for (auto& [key, current] : model.state) {
    const Tensor* value = state.find(key);
    if (value == nullptr) {
      result.missing_keys.push_back(key);
      continue;
    }
    if (value->shape() != current.shape()) {
      errors.push_back(fmt::format(
          "size mismatch for {}: copying a param with shape {} from checkpoint, the shape in "
          "current model is {}.",
          key, shape_text(value->shape()), shape_text(current.shape())));
      continue;
    }
    if (assign) {
      current = *value;
    } else {
      methods::copy_into_model(model, key, *value, key);
    }
  }
  std::vector<std::pair<std::pair<std::size_t, std::size_t>, std::string>> unexpected;
  const ModuleOrder order(model.state);
  for (const auto& [key, tensor] : state) {
    if (!model.state.contains(key)) unexpected.emplace_back(order.owner(key), key);
  }
  std::stable_sort(unexpected.begin(), unexpected.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& entry : unexpected) result.unexpected_keys.push_back(std::move(entry.second));
  if (!errors.empty()) {
    throw Error(ErrorCode::SizeMismatch, "",
                fmt::format("Error(s) in loading state_dict: {}", fmt::join(errors, " ")));
  }
  return result;
}

// low_cpu_mem_usage: adapter tensors adopt the dtype of their layer's base weight.
void cast_to_base_layer_dtype(PeftModel& model, const StateDict& loaded, std::string_view prefix) {
  for (const auto& [key, tensor] : loaded) {
    const auto at = key.rfind(prefix);
    if (at == std::string::npos || at == 0) continue;
    const std::string layer = key.substr(0, at - 1);
    const Tensor* base = model.state.find(layer + ".base_layer.weight");
    Tensor* current = model.state.find(key);
    if (base == nullptr || current == nullptr) continue;
    if (is_floating(base->dtype()) && current->dtype() != base->dtype()) {
      *current = current->to(base->dtype());
    }
  }
}

}  // namespace

namespace methods {

void copy_into_model(PeftModel& model, const std::string& key, const Tensor& value,
                     std::string_view shown_key) {
  Tensor* current = model.state.find(key);
  if (current == nullptr) {
    throw Error(ErrorCode::MissingKey, "", fmt::format("the model has no tensor '{}'", key));
  }
  if (current->shape() != value.shape()) {
    throw Error(ErrorCode::SizeMismatch, "",
                fmt::format("size mismatch for {}: copying a param with shape {} from checkpoint, "
                            "the shape in current model is {}.",
                            shown_key, shape_text(value.shape()), shape_text(current->shape())));
  }
  const Tensor converted = value.to(current->dtype());
  if (current->is_heap() && !current->is_meta()) {
    // In place, so that tensors sharing this storage see the new values.
    const auto bytes = converted.bytes();
    if (!bytes.empty()) std::memcpy(current->mutable_bytes().data(), bytes.data(), bytes.size());
  } else {
    *current = converted.is_heap() ? converted : converted.clone();
  }
}

}  // namespace methods

StateDict get_peft_model_state_dict(PeftModel& model, const GetStateDictOptions& options) {
  return annotate_errors("adapter '" + options.adapter_name + "'", [&]() -> StateDict {
    PeftConfig& config = model.config(options.adapter_name);
    const methods::StateDictRules& rules = methods::state_dict_rules(config.peft_type());
    methods::SaveContext ctx{model, config, options.adapter_name, options.warnings};

    StateDict selected = rules.select(ctx);
    add_wrapper_entries(model, options.adapter_name, selected);
    const bool targeted = detail::embedding_is_targeted(model, config);
    if (detail::resolve_save_embedding_layers(model, config, options.save_embedding_layers,
                                              targeted, options.warnings)) {
      detail::add_embedding_layers(model, config, targeted, selected, options.warnings);
    }

    StateDict out;
    for (auto& [key, tensor] : selected) {
      out.set(remove_adapter_name(key, options.adapter_name, rules.vblora_key_names), tensor);
    }
    return out;
  });
}

LoadResult set_peft_model_state_dict(PeftModel& model, StateDict state,
                                     const SetStateDictOptions& options) {
  return annotate_errors("adapter '" + options.adapter_name + "'", [&]() -> LoadResult {
    const PeftConfig& config = model.config(options.adapter_name);
    const methods::StateDictRules& rules = methods::state_dict_rules(config.peft_type());
    const std::string_view prefix = methods::prefix_of(config.peft_type());
    methods::LoadContext ctx{model, config, options.adapter_name, options.warnings};

    map_wrapper_keys(model, options.adapter_name, state);
    StateDict remapped = rules.remap(ctx, std::move(state));
    std::vector<MismatchedKey> mismatched;
    if (options.ignore_mismatched_sizes) mismatched = drop_mismatched(model, remapped);

    LoadResult result = load_into(model, remapped, options.low_cpu_mem_usage);
    if (options.low_cpu_mem_usage) cast_to_base_layer_dtype(model, remapped, prefix);
    if (rules.after_load != nullptr) rules.after_load(ctx, remapped);

    if (!mismatched.empty()) {
      std::vector<std::string> lines;
      lines.reserve(mismatched.size());
      for (const auto& m : mismatched) {
        lines.push_back(
            fmt::format("- {}: found shape {} in the checkpoint and {} in the model instantiated",
                        m.key, shape_text(m.checkpoint_shape), shape_text(m.model_shape)));
      }
      report_warning(
          options.warnings, "ignored_mismatched_sizes",
          fmt::format(
              "Some weights of {} were not initialized from the model checkpoint and are being "
              "ignored because you passed `ignore_mismatched_sizes=True`: {}.",
              model.facts.model_class, fmt::join(lines, "\n")));
    }
    result.mismatched_keys = std::move(mismatched);
    for (const auto& key : result.missing_keys) {
      if (key.find(prefix) != std::string::npos &&
          key.find(options.adapter_name) != std::string::npos) {
        result.adapter_missing_keys.push_back(key);
      }
    }
    return result;
  });
}

}  // namespace peft
