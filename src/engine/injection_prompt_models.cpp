// The models of the methods that are not tuners: prompt learning ("base_model.<key>",
// then each adapter's prompt encoder, then the word embeddings PEFT keeps a reference to)
// and adaption prompt (the last attention modules wrapped, their own tensors moved under
// `.model`).
#include <fmt/format.h>

#include <algorithm>

#include "engine/injection_walks.hpp"
#include "methods/registry.hpp"
#include "peft/error.hpp"

namespace peft::injection {
namespace {

bool is_module_path(const std::string& key, const std::string& path) {
  return key.size() > path.size() && key.starts_with(path) && key[path.size()] == '.';
}

// The word embeddings PEFT's _setup_prompt_encoder finds: the first parameter with
// vocab_size rows; without vocab_size, the input embedding's weight.
Module word_embeddings(const StateDict& base, const InjectionOptions& options) {
  const auto& facts = options.facts;
  for (const auto& [key, tensor] : base) {
    const bool found = facts.vocab_size
                           ? tensor.rank() >= 1 &&
                                 tensor.shape()[0] == static_cast<std::uint64_t>(*facts.vocab_size)
                           : facts.input_embedding && key == *facts.input_embedding + ".weight";
    if (found) return {key.substr(0, key.rfind('.')), {{"weight", tensor}}};
  }
  throw Error(ErrorCode::MissingKey, "",
              facts.vocab_size
                  ? fmt::format("prompt learning: no base tensor has vocab_size ({}) rows to "
                                "serve as word embeddings",
                                *facts.vocab_size)
                  : std::string("prompt learning needs the base model's vocab_size or input "
                                "embedding to find its word embeddings"));
}

const methods::InjectionRule& rule_of(const PeftConfig& config) {
  return methods::method(config.peft_type()).injection;
}

}  // namespace

PeftModel prompt_learning_model(const StateDict& base, const Adapters& adapters,
                                const InjectionOptions& options) {
  // Modules to save (a sequence classifier's head) are wrapped as for tuners.
  PeftModel model;
  for (const Module& module : modules_of(base)) {
    std::vector<std::string> savers;
    for (const auto& [name, config] : adapters) {
      if (is_saved(module.path, saved_module_names(config))) savers.push_back(name);
    }
    const std::string prefix = "base_model." + (module.path.empty() ? "" : module.path + ".");
    if (!savers.empty()) {
      add_saved_module(module, savers, prefix, model.state);
    } else {
      for (const auto& [name, tensor] : module.params) model.state.set(prefix + name, tensor);
    }
  }
  const Module words = word_embeddings(base, options);
  const Layer layer{&words, "Embedding"};
  for (const Context& ctx : contexts_of(adapters, options))
    rule_of(ctx.config).slots(layer, ctx, model.state);
  model.state.set("word_embeddings.weight", words.params.front().second);
  return model;
}

// Only the active adapter (the last one added) is in the model: PEFT swaps the others'
// attention modules out.
PeftModel adaption_prompt_model(const StateDict& base, const Adapters& adapters,
                                const InjectionOptions& options) {
  const std::vector<Context> contexts = contexts_of(adapters, options);
  const Context& ctx = contexts.back();
  const nlohmann::json* target = ctx.config.find("target_modules");
  if (target == nullptr || !target->is_string()) {
    throw Error(ErrorCode::InvalidConfigValue, ctx.config.source(),
                "adaption prompt needs 'target_modules' naming the attention modules");
  }
  const std::string suffix = "." + target->get<std::string>();
  // Modules named "...<target_modules>", in named_modules() order.
  std::vector<std::string> attention;
  for (const auto& [key, tensor] : base) {
    for (std::size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
      const std::string path = key.substr(0, dot);
      if (path.ends_with(suffix) &&
          std::find(attention.begin(), attention.end(), path) == attention.end())
        attention.push_back(path);
    }
  }
  const auto layers = static_cast<std::size_t>(ctx.config.get_int("adapter_layers", 0));
  if (attention.size() < layers || layers == 0) {
    throw Error(ErrorCode::InvalidConfigValue, ctx.config.source(),
                fmt::format("adapter_layers is {} but the base model has {} modules named "
                            "'*{}'",
                            layers, attention.size(), suffix));
  }
  attention.erase(attention.begin(), attention.end() - static_cast<std::ptrdiff_t>(layers));

  // Each adapted module with its tensors named relative to it.
  std::vector<Module> adapted;
  for (const auto& path : attention) adapted.push_back({path, {}});
  std::vector<std::ptrdiff_t> owner;  // per base key: its adapted module, or -1
  owner.reserve(base.size());
  for (const auto& [key, tensor] : base) {
    // (clang 14, which builds the fuzz targets, cannot capture a structured binding.)
    const std::string& name = key;
    const auto it = std::find_if(adapted.begin(), adapted.end(),
                                 [&](const Module& m) { return is_module_path(name, m.path); });
    owner.push_back(it == adapted.end() ? -1 : it - adapted.begin());
    if (it != adapted.end()) it->params.emplace_back(key.substr(it->path.size() + 1), tensor);
  }
  PeftModel model;
  const std::string root = "base_model.model.";
  std::ptrdiff_t open = -1;  // the adapted module whose tensors are being written
  std::size_t index = 0;
  for (const auto& [key, tensor] : base) {
    const std::ptrdiff_t at = owner[index++];
    if (at < 0) {
      model.state.set(root + key, tensor);
      continue;
    }
    const Module& module = adapted[static_cast<std::size_t>(at)];
    if (at != open) {
      open = at;
      StateDict own;
      rule_of(ctx.config).slots(Layer{&module, "Attention"}, ctx, own);
      for (const auto& [k, t] : own) model.state.set(root + k, t);
    }
    model.state.set(root + module.path + ".model." + key.substr(module.path.size() + 1), tensor);
  }
  return model;
}

}  // namespace peft::injection
