// inject_adapters: picks the model shape of the adapters' method (its registry row) and
// holds what every shape shares. The shapes are in injection_tuner.cpp and
// injection_prompt_models.cpp; each method's own tensors come from its rule
// (methods/registry.hpp, methods/injection_*.cpp).
#include "peft/injection.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <unordered_map>

#include "engine/injection_walks.hpp"
#include "methods/registry.hpp"
#include "peft/error.hpp"
#include "peft/module_match.hpp"

namespace peft {
namespace injection {

const Tensor& Layer::weight() const {
  for (const auto& [name, tensor] : module->params) {
    if (name == "weight") return tensor;
  }
  throw Error(ErrorCode::Unsupported, module->path,
              "a targeted module without a weight cannot be adapted");
}

const Tensor& Layer::param_tensor(std::string_view name) const {
  for (const auto& [local, tensor] : module->params) {
    if (local == name) return tensor;
  }
  throw Error(ErrorCode::MissingKey, module->path, fmt::format("the module has no '{}'", name));
}

bool Layer::is_conv() const {
  return cls.starts_with("Conv") && cls != "Conv1D";
}

std::uint64_t Layer::in_features() const {
  const Shape& w = weight().shape();
  return cls == "Conv1D" ? w.at(0) : w.at(1);
}

std::uint64_t Layer::out_features() const {
  const Shape& w = weight().shape();
  return cls == "Conv1D" ? w.at(1) : w.at(0);
}

void Layer::refuse(std::string_view method) const {
  throw Error(
      ErrorCode::Unsupported, module->path,
      fmt::format("{} cannot adapt a {} layer", method, cls.empty() ? "parameterless" : cls));
}

void Layer::require(std::string_view method,
                    std::initializer_list<std::string_view> classes) const {
  if (std::find(classes.begin(), classes.end(), cls) == classes.end()) refuse(method);
}

DType SlotMaker::dtype(const Tensor& like) const {
  if (!is_floating(like.dtype())) return DType::F32;
  const bool half = like.dtype() == DType::F16 || like.dtype() == DType::BF16;
  return autocast && half ? DType::F32 : like.dtype();
}

Tensor SlotMaker::zeros(const Tensor& like, Shape shape) const {
  return Tensor::zeros(dtype(like), std::move(shape));
}

Tensor SlotMaker::filled(const Tensor& like, Shape shape, float value) const {
  std::vector<float> values(shape_numel(shape), value);
  return Tensor::from_floats(dtype(like), std::move(shape), values);
}

Tensor SlotMaker::from_floats(const Tensor& like, Shape shape,
                              std::span<const float> values) const {
  return Tensor::from_floats(dtype(like), std::move(shape), values);
}

void put(StateDict& out, const Layer& layer, const Context& ctx, std::string_view part,
         Tensor tensor, std::string_view suffix) {
  out.set(fmt::format("base_model.model.{}.{}.{}{}", layer.key_path(), part, ctx.adapter, suffix),
          std::move(tensor));
}

std::vector<Module> modules_of(const StateDict& base) {
  std::vector<Module> modules;
  std::unordered_map<std::string, std::size_t> index;
  for (const auto& [key, tensor] : base) {
    const auto dot = key.rfind('.');
    const std::string path = dot == std::string::npos ? "" : key.substr(0, dot);
    auto [it, inserted] = index.emplace(path, modules.size());
    if (inserted) modules.push_back({path, {}});
    modules[it->second].params.emplace_back(key.substr(dot + 1), tensor);
  }
  return modules;
}

std::string class_of(const Module& module, const ModuleClasses& classes) {
  if (const auto it = classes.find(module.path); it != classes.end()) return it->second;
  for (const auto& [name, tensor] : module.params) {
    if (name != "weight") continue;
    switch (tensor.rank()) {
      case 3:
        return "Conv1d";
      case 4:
        return "Conv2d";
      case 5:
        return "Conv3d";
      default:
        return "Linear";
    }
  }
  return "";
}

std::vector<std::string> saved_module_names(const PeftConfig& config) {
  std::vector<std::string> names = config.modules_to_save().value_or(std::vector<std::string>{});
  std::vector<std::string> heads;
  if (const auto task = config.task_type()) {
    if (*task == TaskType::SEQ_CLS || *task == TaskType::TOKEN_CLS) heads = {"classifier", "score"};
    if (*task == TaskType::QUESTION_ANS) heads = {"qa_outputs"};
  }
  for (auto& head : heads) {
    if (std::find(names.begin(), names.end(), head) == names.end()) names.push_back(head);
  }
  return names;
}

bool is_saved(const std::string& path, const std::vector<std::string>& names) {
  return !path.empty() && std::any_of(names.begin(), names.end(), [&](const std::string& name) {
    return path.ends_with(name);
  });
}

void add_saved_module(const Module& module, const std::vector<std::string>& adapters,
                      const std::string& prefix, StateDict& out) {
  for (const auto& [name, tensor] : module.params)
    out.set(prefix + "original_module." + name, tensor);
  for (const auto& adapter : adapters) {
    for (const auto& [name, tensor] : module.params)
      out.set(prefix + "modules_to_save." + adapter + "." + name, tensor.clone());
  }
}

std::vector<Context> contexts_of(const Adapters& adapters, const InjectionOptions& options) {
  std::vector<Context> contexts;
  contexts.reserve(adapters.size());
  for (const auto& [name, config] : adapters)
    contexts.push_back({config, name, SlotMaker{options.autocast_adapter_dtype}, {}});
  return contexts;
}

namespace {

const methods::InjectionRule& rule_for(const PeftConfig& config) {
  const PeftType type = config.peft_type();
  const methods::InjectionRule& rule = methods::method(type).injection;
  if (rule.slots != nullptr || rule.shape == ModelShape::XLora) return rule;
  throw Error(
      ErrorCode::Unsupported, config.source(),
      fmt::format("creating {} adapter tensors from a plain base model is not implemented; load "
                  "into a model that already holds them",
                  to_string(type)));
}

// PeftModel holds adapters of one type (mixing needs PEFT's PeftMixedModel).
void require_one_type(const Adapters& adapters) {
  if (adapters.empty()) throw Error(ErrorCode::InvalidArgument, "", "no adapter to inject");
  for (const auto& [name, config] : adapters) {
    if (config.peft_type() != adapters.front().second.peft_type()) {
      throw Error(ErrorCode::Unsupported, config.source(),
                  fmt::format("adapter '{}' is {} but '{}' is {}: one PEFT model holds adapters "
                              "of one type",
                              name, to_string(config.peft_type()), adapters.front().first,
                              to_string(adapters.front().second.peft_type())));
    }
  }
}

}  // namespace
}  // namespace injection

PeftModel inject_adapters(const StateDict& base,
                          const std::vector<std::pair<std::string, PeftConfig>>& adapters,
                          const InjectionOptions& options) {
  using namespace injection;
  require_one_type(adapters);
  const PeftConfig& first = adapters.front().second;
  return annotate_errors(first.source(), [&]() -> PeftModel {
    // The builder of each model shape, in ModelShape order.
    using Builder = PeftModel (*)(const StateDict&, const Adapters&, const InjectionOptions&);
    static constexpr std::array<Builder, 4> kBuilders = {tuner_model, prompt_learning_model,
                                                         adaption_prompt_model, xlora_model};
    PeftModel model =
        kBuilders.at(static_cast<std::size_t>(rule_for(first).shape))(base, adapters, options);
    model.adapters = adapters;
    model.facts = options.facts;
    make_writable(model.state);
    return model;
  });
}

PeftModel inject_adapter(const StateDict& base, const std::string& adapter_name,
                         const PeftConfig& config, const ModuleClasses& classes,
                         bool autocast_adapter_dtype) {
  InjectionOptions options;
  options.classes = classes;
  options.autocast_adapter_dtype = autocast_adapter_dtype;
  return inject_adapters(base, {{adapter_name, config}}, options);
}

}  // namespace peft
