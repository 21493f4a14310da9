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

// LoHa: two Hadamard-multiplied low-rank pairs (CP-decomposed kernels for effective conv).
void loha_slots(const Module& module, const std::string& cls, const PeftConfig& config,
                const std::string& name, const SlotMaker& make, StateDict& out) {
  const Tensor& weight = weight_of(module);
  const Shape& w = weight.shape();
  const std::string p = std::string(kRoot) + module.path + ".hada_";
  const auto r = static_cast<std::uint64_t>(rank_for(config, module.path));
  std::uint64_t kernel = 1;
  for (std::size_t d = 2; d < w.size(); ++d) kernel *= w[d];
  const bool conv = cls.starts_with("Conv") && cls != "Conv1D" && w.size() >= 3;
  if (conv && config.get_bool("use_effective_conv2d", false) && kernel != 1) {
    const Shape t = w.size() == 4 ? Shape{r, r, w[2], w[3]} : Shape{r, r, w[2], 1};
    out.set(p + "w1_a." + name, make.zeros(weight, {r, w[0]}));
    out.set(p + "w1_b." + name, make.zeros(weight, {r, w[1]}));
    out.set(p + "w2_a." + name, make.zeros(weight, {r, w[0]}));
    out.set(p + "w2_b." + name, make.zeros(weight, {r, w[1]}));
    out.set(p + "t1." + name, make.zeros(weight, t));
    out.set(p + "t2." + name, make.zeros(weight, t));
    return;
  }
  const std::uint64_t rows = w[0], cols = conv ? w[1] * kernel : w[1];
  out.set(p + "w1_a." + name, make.zeros(weight, {rows, r}));
  out.set(p + "w1_b." + name, make.zeros(weight, {r, cols}));
  out.set(p + "w2_a." + name, make.zeros(weight, {rows, r}));
  out.set(p + "w2_b." + name, make.zeros(weight, {r, cols}));
}

// LoKr's split of a dimension into two factors (m <= n), as PEFT's factorization().
std::pair<std::uint64_t, std::uint64_t> factorization(std::uint64_t dimension,
                                                      std::int64_t factor) {
  if (factor > 0 && dimension % static_cast<std::uint64_t>(factor) == 0) {
    return {static_cast<std::uint64_t>(factor), dimension / static_cast<std::uint64_t>(factor)};
  }
  const std::uint64_t limit =
      factor == -1 ? dimension : static_cast<std::uint64_t>(std::max<std::int64_t>(factor, 0));
  std::uint64_t m = 1, n = dimension;
  const std::uint64_t length = m + n;
  while (m < n) {
    std::uint64_t new_m = m + 1;
    while (dimension % new_m != 0) ++new_m;
    const std::uint64_t new_n = dimension / new_m;
    if (new_m + new_n > length || new_m > limit) break;
    m = new_m;
    n = new_n;
  }
  if (m > n) std::swap(m, n);
  return {m, n};
}

// LoKr: a Kronecker product of two factors, each full or low-rank.
void lokr_slots(const Module& module, const std::string& cls, const PeftConfig& config,
                const std::string& name, const SlotMaker& make, StateDict& out) {
  const Tensor& weight = weight_of(module);
  const Shape& w = weight.shape();
  const std::string p = std::string(kRoot) + module.path + ".lokr_";
  const auto r = static_cast<std::uint64_t>(rank_for(config, module.path));
  const std::int64_t factor = config.get_int("decompose_factor", -1);
  const bool conv = cls.starts_with("Conv") && cls != "Conv1D" && w.size() >= 3;
  const auto [in_m, in_n] = factorization(w[1], factor);
  const auto [out_l, out_k] = factorization(w[0], factor);
  const double rr = static_cast<double>(r);
  const bool use_w1 = !(config.get_bool("decompose_both", false) &&
                        rr < static_cast<double>(std::max(out_l, in_m)) / 2);
  const bool use_w2 = rr >= static_cast<double>(std::max(out_k, in_n)) / 2;
  std::uint64_t kernel = 1;
  for (std::size_t d = 2; d < w.size(); ++d) kernel *= w[d];
  const bool effective = conv && config.get_bool("use_effective_conv2d", false) && kernel != 1;
  StateDict slots;  // filled in creation order, written in the layer's registration order
  if (use_w1) {
    slots.set("w1", make.zeros(weight, {out_l, in_m}));
  } else {
    slots.set("w1_a", make.zeros(weight, {out_l, r}));
    slots.set("w1_b", make.zeros(weight, {r, in_m}));
  }
  if (conv && use_w2) {
    Shape shape{out_k, in_n};
    for (std::size_t d = 2; d < w.size(); ++d) shape.push_back(w[d]);
    slots.set("w2", make.zeros(weight, shape));
  } else if (conv && effective) {
    slots.set("t2",
              make.zeros(weight, w.size() == 4 ? Shape{r, r, w[2], w[3]} : Shape{r, r, w[2], 1}));
    slots.set("w2_a", make.zeros(weight, {r, out_k}));
    slots.set("w2_b", make.zeros(weight, {r, in_n}));
  } else if (use_w2) {
    slots.set("w2", make.zeros(weight, {out_k, in_n}));
  } else {
    slots.set("w2_a", make.zeros(weight, {out_k, r}));
    slots.set("w2_b", make.zeros(weight, {r, conv ? in_n * kernel : in_n}));
  }
  for (const char* part : {"w1", "w1_a", "w1_b", "w2", "w2_a", "w2_b", "t2"}) {
    if (const Tensor* slot = slots.find(part)) out.set(p + part + "." + name, *slot);
  }
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
  if (type != PeftType::LORA && type != PeftType::IA3 && type != PeftType::LOHA &&
      type != PeftType::LOKR) {
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
      switch (type) {
        case PeftType::LORA:
          lora_slots(module, cls, config, adapter_name, make, model.state);
          break;
        case PeftType::LOHA:
          loha_slots(module, cls, config, adapter_name, make, model.state);
          break;
        case PeftType::LOKR:
          lokr_slots(module, cls, config, adapter_name, make, model.state);
          break;
        default:
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
