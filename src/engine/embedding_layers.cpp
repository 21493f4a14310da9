// save_embedding_layers: when and which embedding weights travel with the adapter
// (docs/peft-rules.md §2.8).
#include "engine/embedding_layers.hpp"

#include <fstream>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pycompat/python_regex.hpp"

namespace peft::detail {
namespace {

constexpr std::string_view kEmbeddingNames[] = {"embed_tokens", "lm_head"};

// Module paths of the user's model, derived from the keys (every dotted prefix).
std::vector<std::string> module_names(const PeftModel& model, std::string_view root) {
  std::vector<std::string> names;
  std::unordered_set<std::string> seen;
  for (const auto& [key, tensor] : model.state) {
    if (!key.starts_with(root)) continue;
    std::string_view rest = std::string_view(key).substr(root.size());
    for (auto dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.', dot + 1)) {
      std::string name(rest.substr(0, dot));
      if (seen.insert(name).second) names.push_back(std::move(name));
    }
  }
  return names;
}

bool ends_with_embedding_name(std::string_view name) {
  for (const auto embedding : kEmbeddingNames) {
    if (name == embedding || name.ends_with("." + std::string(embedding))) return true;
  }
  return false;
}

// A tuner layer whose base layer is a Linear or an Embedding keeps "<path>.base_layer.weight".
bool is_tuner_layer(const PeftModel& model, const std::string& path) {
  return model.state.contains(path + ".base_layer.weight");
}

std::optional<std::int64_t> base_vocab_size(const PeftModel& model, const std::string& model_id,
                                            bool& found) {
  const auto config_path = model.facts.working_directory / model_id / "config.json";
  std::ifstream in(config_path);
  found = static_cast<bool>(in);
  if (!found) return std::nullopt;
  const auto json = nlohmann::json::parse(in, nullptr, false);
  if (json.is_object() && json.contains("vocab_size") && json["vocab_size"].is_number_integer()) {
    return json["vocab_size"].get<std::int64_t>();
  }
  return std::nullopt;
}

}  // namespace

bool embedding_is_targeted(const PeftModel& model, const PeftConfig& config) {
  if (!config.declares("target_modules") && config.find("target_modules") == nullptr) return false;
  const TargetModules targets = config.target_modules();
  if (targets.kind == TargetModules::Kind::Regex) {
    if (targets.is_all_linear()) return false;
    const std::string root = config.is_prompt_learning() ? "base_model." : "base_model.model.";
    for (const auto& name : module_names(model, root)) {
      if (ends_with_embedding_name(name) &&
          python_regex_matches(targets.regex, name, RegexMode::FullMatch)) {
        return true;
      }
    }
    return false;
  }
  if (targets.kind == TargetModules::Kind::List) {
    for (const auto& name : targets.names) {
      for (const auto embedding : kEmbeddingNames) {
        if (name == embedding) return true;
      }
    }
  }
  return false;
}

bool resolve_save_embedding_layers(const PeftModel& model, const PeftConfig& config,
                                   SaveEmbeddingLayers requested, bool targeted,
                                   Diagnostics* warnings) {
  const auto warn = [warnings](std::string code, std::string message) {
    report_warning(warnings, std::move(code), std::move(message));
  };
  if (requested != SaveEmbeddingLayers::Auto) return requested == SaveEmbeddingLayers::Yes;
  const bool trainable_tokens = config.peft_type() == PeftType::TRAINABLE_TOKENS ||
                                config.trainable_token_indices().has_value();
  if (targeted && !trainable_tokens) {
    warn(
        "save_embedding_layers",
        "Setting `save_embedding_layers` to `True` as embedding layers found in `target_modules`.");
    return true;
  }
  const auto model_id = config.base_model_name_or_path();
  bool has_base_config = false;
  std::optional<std::int64_t> base_vocab;
  if (model_id) {
    base_vocab = base_vocab_size(model, *model_id, has_base_config);
    if (!has_base_config) {
      // Python would ask the Hub; offline, PEFT's answer is "unknown", and so is ours.
      warn("base_config_missing",
           fmt::format("Could not find a config file in {} - will assume that the vocabulary was "
                       "not modified.",
                       *model_id));
    }
  }
  const bool vocab = model.facts.vocab_size.has_value() && *model.facts.vocab_size != 0;
  if (vocab && model_id && !model_id->empty() && has_base_config &&
      base_vocab != model.facts.vocab_size) {
    warn("save_embedding_layers",
         "Setting `save_embedding_layers` to `True` as the embedding layer has been resized "
         "during finetuning.");
    return true;
  }
  return false;
}

void add_embedding_layers(const PeftModel& model, const PeftConfig& config, bool targeted,
                          StateDict& out, Diagnostics* warnings) {
  if (!model.facts.has_embedding_accessors) {
    report_warning(warnings, "embedding_layers_unknown",
                   "Could not identify embedding layer(s) because the model is not a 🤗 "
                   "transformers model.");
    return;
  }
  const std::string root = config.is_prompt_learning() ? "base_model." : "base_model.model.";
  for (const auto& layer : {model.facts.input_embedding, model.facts.output_embedding}) {
    if (!layer) continue;
    const std::string path = root + *layer;
    const bool tuner = is_tuner_layer(model, path);
    if (targeted && !tuner) continue;
    const std::string name = targeted ? path + ".base_layer" : path;
    // Every key containing the module path, as a substring (docs/peft-rules.md §2.8).
    for (const auto& [key, tensor] : model.state) {
      if (key.find(name) != std::string::npos) out.set(key, tensor);
    }
  }
}

}  // namespace peft::detail
