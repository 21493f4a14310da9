#include "peft/injection.hpp"

#include <fmt/format.h>

#include <unordered_map>

#include "peft/error.hpp"
#include "peft/module_match.hpp"

namespace peft {
namespace {

constexpr std::string_view kRoot = "base_model.model.";

struct Module {
  std::string path;
  std::vector<std::pair<std::string, Tensor>> params;  // local name -> tensor, in order
};

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

const Tensor& weight_of(const Module& module) {
  for (const auto& [name, tensor] : module.params) {
    if (name == "weight") return tensor;
  }
  throw Error(ErrorCode::Unsupported, module.path,
              "a targeted module without a weight cannot be adapted");
}

// New adapter tensors: float32 under PEFT's default autocast, else the weight's dtype.
struct SlotMaker {
  bool autocast;
  DType dtype(const Tensor& like) const {
    return autocast || !is_floating(like.dtype()) ? DType::F32 : like.dtype();
  }
  Tensor zeros(const Tensor& like, Shape shape) const {
    return Tensor::zeros(dtype(like), std::move(shape));
  }
  Tensor ones(const Tensor& like, Shape shape) const {
    std::vector<float> values(shape_numel(shape), 1.0f);
    return Tensor::from_floats(dtype(like), std::move(shape), values);
  }
};

// LoRA (and DoRA, lora_bias) tensors of one module, in the order PEFT registers them.
void lora_slots(const Module& module, const std::string& cls, const PeftConfig& config,
                const std::string& name, const SlotMaker& make, StateDict& out) {
  const Tensor& weight = weight_of(module);
  const std::string p = std::string(kRoot) + module.path + ".";
  const auto r = static_cast<std::uint64_t>(rank_for(config, module.path));
  const Shape& w = weight.shape();
  if (cls == "Embedding") {
    out.set(p + "lora_embedding_A." + name, make.zeros(weight, {r, w[0]}));
    out.set(p + "lora_embedding_B." + name, make.zeros(weight, {w[1], r}));
    if (config.use_dora())
      out.set(p + "lora_magnitude_vector." + name + ".weight", make.ones(weight, {w[1]}));
    return;
  }
  if (cls.starts_with("Conv") && cls != "Conv1D") {
    Shape a{r, w[1]}, b{w[0], r};
    for (std::size_t d = 2; d < w.size(); ++d) {
      a.push_back(w[d]);
      b.push_back(1);
    }
    out.set(p + "lora_A." + name + ".weight", make.zeros(weight, a));
    out.set(p + "lora_B." + name + ".weight", make.zeros(weight, b));
    if (config.lora_bias()) out.set(p + "lora_B." + name + ".bias", make.zeros(weight, {w[0]}));
    if (config.use_dora()) {
      Shape magnitude{1, w[0]};
      for (std::size_t d = 2; d < w.size(); ++d) magnitude.push_back(1);
      out.set(p + "lora_magnitude_vector." + name + ".weight", make.ones(weight, magnitude));
    }
    return;
  }
  if (w.size() != 2) {
    throw Error(ErrorCode::Unsupported, module.path,
                fmt::format("cannot adapt a {} with weight {}", cls, shape_to_string(w)));
  }
  // GPT-2's Conv1D stores its weight as [in, out].
  const bool transposed = cls == "Conv1D";
  const std::uint64_t in = transposed ? w[0] : w[1], out_features = transposed ? w[1] : w[0];
  out.set(p + "lora_A." + name + ".weight", make.zeros(weight, {r, in}));
  out.set(p + "lora_B." + name + ".weight", make.zeros(weight, {out_features, r}));
  if (config.lora_bias())
    out.set(p + "lora_B." + name + ".bias", make.zeros(weight, {out_features}));
  if (config.use_dora())
    out.set(p + "lora_magnitude_vector." + name + ".weight", make.ones(weight, {out_features}));
}

bool is_feedforward(const PeftConfig& config, const std::string& module) {
  const TargetModules ff = config.feedforward_modules();
  if (ff.kind == TargetModules::Kind::List) {
    for (const auto& entry : ff.names) {
      if (module == entry || module.ends_with("." + entry)) return true;
    }
  }
  return false;
}

void ia3_slots(const Module& module, const std::string& cls, const PeftConfig& config,
               const std::string& name, const SlotMaker& make, StateDict& out) {
  const Tensor& weight = weight_of(module);
  const Shape& w = weight.shape();
  const bool ff = is_feedforward(config, module.path);
  const std::string key = std::string(kRoot) + module.path + ".ia3_l." + name;
  if (cls.starts_with("Conv") && cls != "Conv1D") {
    Shape shape{1, ff ? w[1] : w[0]};
    for (std::size_t d = 2; d < w.size(); ++d) shape.push_back(1);
    out.set(key, make.ones(weight, shape));
    return;
  }
  const bool transposed = cls == "Conv1D";
  const std::uint64_t in = transposed ? w[0] : w[1], out_features = transposed ? w[1] : w[0];
  out.set(key, make.ones(weight, ff ? Shape{1, in} : Shape{out_features, 1}));
}

bool saves_module(const PeftConfig& config, const std::string& module) {
  const auto names = config.modules_to_save();
  if (!names) return false;
  for (const auto& entry : *names) {
    if (module.ends_with(entry)) return true;  // a string suffix, as PEFT matches it
  }
  return false;
}

}  // namespace

PeftModel inject_adapter(const StateDict& base, const std::string& adapter_name,
                         const PeftConfig& config, const ModuleClasses& classes,
                         bool autocast_adapter_dtype) {
  const SlotMaker make{autocast_adapter_dtype};
  const PeftType type = config.peft_type();
  if (type != PeftType::LORA && type != PeftType::IA3) {
    throw Error(
        ErrorCode::Unsupported, config.source(),
        fmt::format("creating {} adapter tensors from a plain base model is not implemented; load "
                    "into a model that already holds them",
                    to_string(type)));
  }
  PeftModel model;
  model.adapters.emplace_back(adapter_name, config);
  for (const auto& module : modules_of(base)) {
    const std::string cls = class_of(module, classes);
    const std::string p = std::string(kRoot) + (module.path.empty() ? "" : module.path + ".");
    const bool targeted =
        !module.path.empty() && match_target(config, module.path) == TargetMatch::Targeted;
    if (targeted) {
      for (const auto& [name, tensor] : module.params)
        model.state.set(p + "base_layer." + name, tensor);
      if (type == PeftType::LORA) {
        lora_slots(module, cls, config, adapter_name, make, model.state);
      } else {
        ia3_slots(module, cls, config, adapter_name, make, model.state);
      }
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
  make_writable(model.state);
  return model;
}

}  // namespace peft
