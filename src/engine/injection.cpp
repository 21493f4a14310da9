// inject_adapter: the generic part (which modules are wrapped, where base tensors go) and
// each method's own tensors come from its rule (methods/registry.hpp, injection_*.cpp).
#include "peft/injection.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

#include "methods/registry.hpp"
#include "peft/error.hpp"
#include "peft/module_match.hpp"

namespace peft {
namespace injection {

constexpr std::string_view kRoot = "base_model.model.";

const Tensor& Layer::weight() const {
  for (const auto& [name, tensor] : module->params) {
    if (name == "weight") return tensor;
  }
  throw Error(ErrorCode::Unsupported, module->path,
              "a targeted module without a weight cannot be adapted");
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
  out.set(fmt::format("{}{}.{}.{}{}", kRoot, layer.module->path, part, ctx.adapter, suffix),
          std::move(tensor));
}

namespace {

const methods::InjectionRule& rule_for(const PeftConfig& config) {
  const PeftType type = config.peft_type();
  const methods::InjectionRule& rule = methods::method(type).injection;
  if (rule.slots != nullptr) return rule;
  throw Error(
      ErrorCode::Unsupported, config.source(),
      fmt::format("creating {} adapter tensors from a plain base model is not implemented; load "
                  "into a model that already holds them",
                  to_string(type)));
}

// Modules in state order, each with its direct parameters (the key minus its last part).
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

bool saves_module(const PeftConfig& config, const std::string& module) {
  const auto names = config.modules_to_save();
  if (!names) return false;
  for (const auto& entry : *names) {
    if (module.ends_with(entry)) return true;  // a string suffix, as PEFT matches it
  }
  return false;
}

bool is_target(const PeftConfig& config, const Module& module) {
  return !module.path.empty() && match_target(config, module.path) == TargetMatch::Targeted;
}

}  // namespace
}  // namespace injection

PeftModel inject_adapter(const StateDict& base, const std::string& adapter_name,
                         const PeftConfig& config, const ModuleClasses& classes,
                         bool autocast_adapter_dtype) {
  return annotate_errors(config.source(), [&]() -> PeftModel {
    using namespace injection;
    const methods::InjectionRule& method = rule_for(config);
    const std::vector<Module> modules = modules_of(base);
    std::vector<Layer> targets;
    for (const auto& module : modules) {
      if (is_target(config, module)) targets.push_back({&module, class_of(module, classes)});
    }
    Context ctx{config, adapter_name, SlotMaker{autocast_adapter_dtype}, {}};
    if (method.shared != nullptr) ctx.shared = method.shared(targets, ctx);

    PeftModel model;
    model.adapters.emplace_back(adapter_name, config);
    auto target = targets.begin();
    for (const auto& module : modules) {
      const std::string p = std::string(kRoot) + (module.path.empty() ? "" : module.path + ".");
      if (target != targets.end() && target->module == &module) {
        for (const auto& [name, tensor] : module.params)
          model.state.set(p + "base_layer." + name, tensor);
        method.slots(*target++, ctx, model.state);
      } else if (!module.path.empty() && saves_module(config, module.path)) {
        for (const auto& [name, tensor] : module.params)
          model.state.set(p + "original_module." + name, tensor);
        for (const auto& [name, tensor] : module.params) {
          model.state.set(p + "modules_to_save." + adapter_name + "." + name, tensor.clone());
        }
      } else {
        for (const auto& [name, tensor] : module.params) model.state.set(p + name, tensor);
      }
    }
    // Model-level tensors are registered on the tuner after its `model`.
    for (const auto& [name, tensor] : ctx.shared)
      model.state.set("base_model." + name + "." + adapter_name, tensor);
    make_writable(model.state);
    return model;
  });
}

}  // namespace peft
