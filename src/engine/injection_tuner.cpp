// The model of a tuner method (LoRA and relatives): each module in base order, wrapped by
// the adapters that target it. A targeted module's own tensors move under `base_layer`
// and are followed by the adapters' tensors grouped as PEFT's ModuleDicts group them
// (lora_A.<a>, lora_A.<b>, lora_B.<a>, ...). Modules no adapter targets may be wrapped
// by modules_to_save or trainable tokens (PEFT's auxiliary wrappers, set after the
// injection); model-level tensors shared by the layers come last.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "engine/injection_walks.hpp"
#include "methods/registry.hpp"
#include "peft/error.hpp"
#include "peft/module_match.hpp"

namespace peft::injection {
namespace {

constexpr std::string_view kRoot = "base_model.model.";

// ---- layer_replication -------------------------------------------------------------

// The decoder layers PEFT's replicate_layers finds: "<model.>*[bert.](layers|encoder.layer|h).N".
const std::regex& layer_key() {
  static const std::regex pattern(
      R"(^((?:model\.)*(?:bert\.)?(?:layers|encoder\.layer|h)\.)(\d+)((?:\..*)?)$)");
  return pattern;
}

// Stacks layers as `layer_replication` says ([[start, end), ...]); copies share the
// original's tensors, as PEFT's clone_module(share_weights=True) does.
std::vector<Module> replicate_layers(std::vector<Module> modules, const PeftConfig& config) {
  const auto map = config.layer_replication();
  if (!map || map->empty()) return modules;
  std::string prefix;
  std::map<int, std::vector<const Module*>> layers;
  std::size_t first = modules.size(), last = 0;
  for (std::size_t i = 0; i < modules.size(); ++i) {
    std::smatch m;
    if (!std::regex_match(modules[i].path, m, layer_key())) continue;
    if (prefix.empty()) prefix = m[1];
    if (m[1] != prefix) continue;
    layers[std::stoi(m[2])].push_back(&modules[i]);
    first = std::min(first, i);
    last = i;
  }
  if (layers.empty()) {
    throw Error(ErrorCode::Unsupported, config.source(),
                "layer_replication: no decoder layers (model.layers.N, encoder.layer.N or h.N) "
                "in the base model");
  }
  std::vector<Module> stacked;
  int next = 0;
  for (const auto& range : *map) {
    if (range.size() != 2 || range[0] >= range[1] || !layers.count(range[0]) ||
        !layers.count(range[1] - 1)) {
      throw Error(ErrorCode::InvalidConfigValue, config.source(),
                  fmt::format("layer_replication: [{}] is not a range [start, end) of the {} "
                              "layers",
                              fmt::join(range, ", "), layers.size()));
    }
    for (int original = range[0]; original < range[1]; ++original, ++next) {
      for (const Module* module : layers.at(original)) {
        std::smatch m;
        std::regex_match(module->path, m, layer_key());
        Module copy = *module;
        copy.path = fmt::format("{}{}{}", prefix, next, m[3].str());
        stacked.push_back(std::move(copy));
      }
    }
  }
  std::vector<Module> result(modules.begin(), modules.begin() + static_cast<std::ptrdiff_t>(first));
  result.insert(result.end(), stacked.begin(), stacked.end());
  result.insert(result.end(), modules.begin() + static_cast<std::ptrdiff_t>(last) + 1,
                modules.end());
  return result;
}

// ---- which adapters wrap which module ----------------------------------------------

// One adapter's view of a module it wraps.
struct Wrap {
  std::size_t adapter;
  std::string param;  // target_parameters: the wrapped parameter
};

struct Plan {
  std::vector<std::vector<Wrap>> wraps;               // per module
  std::vector<std::vector<std::size_t>> saves;        // per module: modules_to_save adapters
  std::vector<std::map<std::size_t, Tensor>> tokens;  // per module: adapter -> delta
  std::set<std::size_t> absorbed;                     // MHA out_proj modules
};

std::optional<std::size_t> find_module(const std::vector<Module>& modules, std::string_view path) {
  for (std::size_t i = 0; i < modules.size(); ++i) {
    if (modules[i].path == path) return i;
  }
  return std::nullopt;
}

// Modules whose path ends with `name` (PEFT's _set_trainable); none is an error there.
std::vector<std::size_t> modules_ending_with(const std::vector<Module>& modules,
                                             const std::string& name, const PeftConfig& config) {
  std::vector<std::size_t> found;
  for (std::size_t i = 0; i < modules.size(); ++i) {
    if (!modules[i].path.empty() && modules[i].path.ends_with(name)) found.push_back(i);
  }
  if (found.empty()) {
    throw Error(
        ErrorCode::InvalidConfigValue, config.source(),
        fmt::format("trainable_token_indices: no module named '{}' in the base model", name));
  }
  return found;
}

// trainable_token_indices: each listed embedding (a plain list: the input embedding) gets
// a delta holding its rows; with tied embeddings the output embedding shares that delta.
void plan_tokens(std::vector<Module>& modules, Plan& plan, std::size_t a, const Context& ctx,
                 const InjectionOptions& options) {
  const auto indices = ctx.config.trainable_token_indices();
  if (!indices) return;
  std::map<std::string, std::vector<std::int64_t>> targets;
  if (const auto* list = std::get_if<std::vector<std::int64_t>>(&*indices)) {
    targets[options.facts.input_embedding.value_or("embed_tokens")] = *list;
  } else {
    targets = std::get<std::map<std::string, std::vector<std::int64_t>>>(*indices);
  }
  const auto saved = saved_module_names(ctx.config);
  std::optional<Tensor> input_delta;
  const std::string input = options.facts.input_embedding.value_or("embed_tokens");
  for (const auto& [name, tokens] : targets) {
    if (std::find(saved.begin(), saved.end(), name) != saved.end()) {
      throw Error(ErrorCode::InvalidConfigValue, ctx.config.source(),
                  fmt::format("'{}' is in both modules_to_save and trainable_token_indices", name));
    }
    for (const std::size_t i : modules_ending_with(modules, name, ctx.config)) {
      const Layer layer{&modules[i], "Embedding"};
      plan.tokens[i][a] = token_rows(layer, ctx, tokens);
      if (modules[i].path == input || modules[i].path.ends_with("." + input))
        input_delta = plan.tokens[i][a];
    }
  }
  const auto& output = options.facts.output_embedding;
  if (!options.tie_word_embeddings || !output || !input_delta) return;
  auto at = find_module(modules, *output);
  if (!at) {  // a tied output embedding is often absent from checkpoints: it is the input's
    for (const auto& module : modules) {
      if (module.path == input || module.path.ends_with("." + input)) {
        modules.push_back({*output, module.params});
        break;
      }
    }
    plan.wraps.resize(modules.size());
    plan.saves.resize(modules.size());
    plan.tokens.resize(modules.size());
    at = modules.size() - 1;
  }
  plan.tokens[*at][a] = *input_delta;
}

bool is_mha(const std::string& cls) {
  return cls == "MultiheadAttention";
}

Plan plan_wraps(std::vector<Module>& modules, const Adapters& adapters,
                const std::vector<Context>& contexts, const InjectionOptions& options) {
  Plan plan;
  plan.wraps.resize(modules.size());
  plan.saves.resize(modules.size());
  plan.tokens.resize(modules.size());
  for (std::size_t a = 0; a < adapters.size(); ++a) {
    const PeftConfig& config = adapters[a].second;
    const auto& rule = methods::method(config.peft_type()).injection;
    const auto saved = saved_module_names(config);
    const auto params = config.target_parameters();
    for (std::size_t i = 0; i < modules.size(); ++i) {
      const Module& module = modules[i];
      if (module.path.empty()) continue;
      const Layer probe{&module, class_of(module, options.classes)};
      if (match_target(config, module.path) == TargetMatch::Targeted &&
          (rule.wraps == nullptr || rule.wraps(probe))) {
        plan.wraps[i].push_back({a, ""});
        if (is_mha(probe.cls)) {
          if (auto out = find_module(modules, module.path + ".out_proj"))
            plan.absorbed.insert(*out);
        }
        continue;
      }
      if (params) {
        for (const auto& [name, tensor] : module.params) {
          if (!is_parameter_targeted(config, module.path + "." + name)) continue;
          if (!plan.wraps[i].empty() && plan.wraps[i].back().adapter == a) {
            throw Error(ErrorCode::Unsupported, config.source(),
                        fmt::format("target_parameters: several parameters of '{}' are "
                                    "targeted; nested wrappers are not supported",
                                    module.path));
          }
          plan.wraps[i].push_back({a, name});
        }
        if (!plan.wraps[i].empty() && plan.wraps[i].back().adapter == a) continue;
      }
      if (is_saved(module.path, saved)) plan.saves[i].push_back(a);
    }
    plan_tokens(modules, plan, a, contexts[a], options);
  }
  return plan;
}

// ---- emitting the state ------------------------------------------------------------

// The part of an adapter key under `prefix`: "lora_A" in "<prefix>lora_A.<adapter>.weight".
std::string part_of(std::string_view rest, const std::string& adapter) {
  const std::string marker = "." + adapter;
  for (std::size_t at = rest.find(marker); at != std::string_view::npos;
       at = rest.find(marker, at + 1)) {
    const std::size_t end = at + marker.size();
    if (end == rest.size() || rest[end] == '.') return std::string(rest.substr(0, at));
  }
  return std::string(rest);
}

// Appends the adapters' tensors grouped by part (first appearance), adapters in order
// within a part, as ModuleDicts hold them.
void add_grouped(const std::vector<std::pair<std::string, StateDict>>& per_adapter,
                 const std::string& prefix, StateDict& out) {
  std::vector<std::string> parts;
  std::map<std::string, std::vector<std::pair<std::string, Tensor>>> grouped;
  for (const auto& [adapter, slots] : per_adapter) {
    for (const auto& [key, tensor] : slots) {
      const std::string part = part_of(std::string_view(key).substr(prefix.size()), adapter);
      if (!grouped.count(part)) parts.push_back(part);
      grouped[part].emplace_back(key, tensor);
    }
  }
  for (const auto& part : parts) {
    for (const auto& [key, tensor] : grouped[part]) out.set(key, tensor);
  }
}

// MultiheadAttention's parameters as PEFT's LoRA layer leaves them: the weight is
// registered again after the other parameters.
void add_weight_last(const Module& module, const std::string& prefix, std::string_view weight,
                     StateDict& out) {
  for (const auto& [name, tensor] : module.params) {
    if (name != weight) out.set(prefix + name, tensor);
  }
  for (const auto& [name, tensor] : module.params) {
    if (name == weight) out.set(prefix + name, tensor);
  }
}

class Emitter {
 public:
  Emitter(const std::vector<Module>& modules, const std::vector<Context>& contexts,
          const InjectionOptions& options)
      : modules_(modules), contexts_(contexts), options_(options) {}

  void layer(std::size_t i, const std::vector<Wrap>& wraps, StateDict& out) const {
    const Module& module = modules_[i];
    const std::string cls = class_of(module, options_.classes);
    if (is_mha(cls)) return mha(module, wraps, out);
    const std::string p = std::string(kRoot) + module.path + ".";
    for (const auto& [name, tensor] : module.params) out.set(p + "base_layer." + name, tensor);
    slots(module, cls, wraps, "", out);
  }

  void tokens(const Module& module, const std::map<std::size_t, Tensor>& deltas,
              StateDict& out) const {
    const std::string p = std::string(kRoot) + module.path + ".token_adapter.";
    for (const auto& [name, tensor] : module.params) out.set(p + "base_layer." + name, tensor);
    for (const auto& [a, delta] : deltas)
      out.set(p + "trainable_tokens_delta." + contexts_[a].adapter, delta);
  }

  void saved(const Module& module, const std::vector<std::size_t>& adapters, StateDict& out) const {
    std::vector<std::string> names;
    for (const std::size_t a : adapters) names.push_back(contexts_[a].adapter);
    add_saved_module(module, names, std::string(kRoot) + module.path + ".", out);
  }

 private:
  // The adapters' tensors of one wrapped module, keyed at `key_path` (empty: its own).
  void slots(const Module& module, const std::string& cls, const std::vector<Wrap>& wraps,
             const std::string& key_path, StateDict& out) const {
    std::vector<std::pair<std::string, StateDict>> per_adapter;
    for (const Wrap& wrap : wraps) {
      const Context& ctx = contexts_[wrap.adapter];
      const Layer layer{&module, cls, wrap.param, key_path};
      StateDict tensors;
      methods::method(ctx.config.peft_type()).injection.slots(layer, ctx, tensors);
      per_adapter.emplace_back(ctx.adapter, std::move(tensors));
    }
    const std::string& path = key_path.empty() ? module.path : key_path;
    add_grouped(per_adapter, std::string(kRoot) + path + ".", out);
  }

  // LoRA on nn.MultiheadAttention: in_proj adapted as a Linear on the MHA itself, and
  // out_proj wrapped as a LoRA Linear inside the base layer, with the same r and alpha.
  void mha(const Module& module, const std::vector<Wrap>& wraps, StateDict& out) const {
    for (const Wrap& wrap : wraps) {
      const PeftConfig& config = contexts_[wrap.adapter].config;
      if (config.peft_type() != PeftType::LORA || config.use_dora()) {
        throw Error(ErrorCode::Unsupported, module.path,
                    "only LoRA without DoRA adapts nn.MultiheadAttention (as in PEFT)");
      }
    }
    const std::string p = std::string(kRoot) + module.path + ".base_layer.";
    add_weight_last(module, p, "in_proj_weight", out);
    if (const auto at = find_module(modules_, module.path + ".out_proj")) {
      const Module out_proj{module.path, modules_[*at].params};  // ranks looked up as the MHA's
      add_weight_last(out_proj, p + "out_proj.base_layer.", "weight", out);
      slots(out_proj, "Linear", wraps, module.path + ".base_layer.out_proj", out);
    }
    Module in_proj{module.path, {}};
    for (const auto& [name, tensor] : module.params) {
      if (name == "in_proj_weight") in_proj.params.emplace_back("weight", tensor);
    }
    slots(in_proj, "Linear", wraps, "", out);
  }

  const std::vector<Module>& modules_;
  const std::vector<Context>& contexts_;
  const InjectionOptions& options_;
};

// Model-level tensors ("base_model.<name>.<adapter>"), grouped by name.
void add_shared(const std::vector<Context>& contexts, StateDict& out) {
  std::vector<std::pair<std::string, StateDict>> per_adapter;
  for (const Context& ctx : contexts) {
    StateDict keyed;
    for (const auto& [name, tensor] : ctx.shared)
      keyed.set("base_model." + name + "." + ctx.adapter, tensor);
    per_adapter.emplace_back(ctx.adapter, std::move(keyed));
  }
  add_grouped(per_adapter, "base_model.", out);
}

}  // namespace

PeftModel tuner_model(const StateDict& base, const Adapters& adapters,
                      const InjectionOptions& options) {
  std::vector<Module> modules = modules_of(base);
  for (const auto& [name, config] : adapters)
    modules = replicate_layers(std::move(modules), config);
  std::vector<Context> contexts = contexts_of(adapters, options);
  const Plan plan = plan_wraps(modules, adapters, contexts, options);
  for (std::size_t a = 0; a < adapters.size(); ++a) {
    const auto& rule = methods::method(adapters[a].second.peft_type()).injection;
    if (rule.shared == nullptr) continue;
    std::vector<Layer> targets;
    for (std::size_t i = 0; i < modules.size(); ++i) {
      for (const Wrap& wrap : plan.wraps[i]) {
        if (wrap.adapter == a)
          targets.push_back({&modules[i], class_of(modules[i], options.classes), wrap.param});
      }
    }
    contexts[a].shared = rule.shared(targets, contexts[a]);
  }
  const Emitter emit(modules, contexts, options);
  PeftModel model;
  for (std::size_t i = 0; i < modules.size(); ++i) {
    const Module& module = modules[i];
    if (plan.absorbed.count(i)) continue;
    if (!plan.wraps[i].empty()) {
      emit.layer(i, plan.wraps[i], model.state);
    } else if (!plan.tokens[i].empty()) {
      emit.tokens(module, plan.tokens[i], model.state);
    } else if (!plan.saves[i].empty()) {
      emit.saved(module, plan.saves[i], model.state);
    } else {
      const std::string p = std::string(kRoot) + (module.path.empty() ? "" : module.path + ".");
      for (const auto& [name, tensor] : module.params) model.state.set(p + name, tensor);
    }
  }
  add_shared(contexts, model.state);
  return model;
}

}  // namespace peft::injection
