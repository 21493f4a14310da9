// The model of X-LoRA: a LoRA model holding the expert adapters its config lists (named
// "0", "1", ... in order and loaded while the model is built, as XLoraModel does), under
// "base_model.lora_model.model.", and the classifier that mixes them.
#include <fmt/format.h>

#include <set>

#include "engine/injection_walks.hpp"
#include "peft/adapter_io.hpp"
#include "peft/error.hpp"
#include "peft/peft_state_dict.hpp"

namespace peft::injection {
namespace {

// LoRA layers XLoraModel counts (lora.Linear, lora.Embedding, lora.Conv2d): one class
// per expert-adapted module, for a layerwise classifier's output size.
std::uint64_t xlora_layers(const StateDict& state) {
  std::set<std::string> layers;
  for (const auto& [key, tensor] : state) {
    for (const char* part : {".lora_A.", ".lora_embedding_A."}) {
      const auto at = key.find(part);
      if (at == std::string::npos) continue;
      const std::string path = key.substr(0, at);
      const Tensor* weight = state.find(path + ".base_layer.weight");
      const bool counted = std::string(part) == ".lora_embedding_A." ||
                           (weight != nullptr && (weight->rank() == 2 || weight->rank() == 4));
      if (counted) layers.insert(path);
    }
  }
  return layers.size();
}

std::uint64_t positive_field(const PeftConfig& config, std::string_view field) {
  const std::int64_t value = config.get_int(field, 0);
  if (value <= 0) {
    throw Error(ErrorCode::InvalidConfigValue, config.source(),
                fmt::format("X-LoRA needs a positive '{}'", field));
  }
  return static_cast<std::uint64_t>(value);
}

// XLoraClassifier's Sequential: Linear, ReLU[, Dropout] per hidden layer, then the output.
void add_classifier(const PeftConfig& config, std::uint64_t classes, std::uint64_t lora_layers,
                    DType dtype, StateDict& out) {
  const std::uint64_t hidden = positive_field(config, "hidden_size");
  const auto depth = static_cast<std::uint64_t>(positive_field(config, "xlora_depth"));
  const std::uint64_t size = depth > 1 ? positive_field(config, "xlora_size") : hidden;
  const auto* dropout = config.find("xlora_dropout_p");
  const std::size_t step = dropout && dropout->is_number() && dropout->get<double>() > 0 ? 3 : 2;
  const std::uint64_t outputs =
      config.get_bool("layerwise_scalings", false) ? classes * lora_layers : classes;
  std::size_t index = 0;
  const auto linear = [&](std::uint64_t in, std::uint64_t n) {
    const std::string p = fmt::format("base_model.internal_xlora_classifier.layers.{}.", index);
    out.set(p + "weight", Tensor::zeros(dtype, {n, in}));
    out.set(p + "bias", Tensor::zeros(dtype, {n}));
  };
  std::uint64_t in = hidden;
  for (std::uint64_t layer = 0; layer + 1 < depth; ++layer, index += step) {
    linear(in, size);
    in = size;
  }
  linear(in, outputs);
}

}  // namespace

PeftModel xlora_model(const StateDict& base, const Adapters& adapters,
                      const InjectionOptions& options) {
  const PeftConfig& config = adapters.back().second;
  const nlohmann::json* listed = config.find("adapters");
  if (listed == nullptr || !listed->is_object() || listed->empty()) {
    throw Error(ErrorCode::InvalidConfigValue, config.source(),
                "X-LoRA's 'adapters' must map names to the folders of its LoRA experts");
  }
  Adapters experts;
  std::vector<std::string> folders;
  for (const auto& [name, path] : listed->items()) {
    if (!path.is_string()) {
      throw Error(ErrorCode::InvalidConfigValue, config.source(),
                  fmt::format("X-LoRA adapter '{}' must be a folder path", name));
    }
    folders.push_back((options.adapter_folder / path.get<std::string>()).string());
    experts.emplace_back(std::to_string(experts.size()), PeftConfig::load(folders.back()));
  }
  PeftModel lora = tuner_model(base, experts, options);
  lora.adapters = experts;
  for (std::size_t i = 0; i < experts.size(); ++i) {
    SetStateDictOptions load;
    load.adapter_name = experts[i].first;
    set_peft_model_state_dict(lora, load_peft_weights(folders[i]), load);
  }
  PeftModel model;
  const std::string inner = "base_model.model.";
  for (const auto& [key, tensor] : lora.state) {
    model.state.set(
        key.starts_with(inner) ? "base_model.lora_model.model." + key.substr(inner.size()) : key,
        tensor);
  }
  const DType dtype = base.empty() ? DType::F32 : base.begin()->second.dtype();
  add_classifier(config, experts.size(), xlora_layers(lora.state), dtype, model.state);
  return model;
}

}  // namespace peft::injection
