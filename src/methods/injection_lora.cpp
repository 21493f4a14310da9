// Injection rules of the LoRA family: LoRA (DoRA, lora_bias), AdaLoRA, LoHa, LoKr, IA3.
#include <fmt/format.h>

#include <algorithm>

#include "methods/injection_methods.hpp"
#include "peft/error.hpp"
#include "peft/module_match.hpp"

namespace peft::injection {
namespace {

std::uint64_t rank_of(const Layer& layer, const Context& ctx) {
  return static_cast<std::uint64_t>(rank_for(ctx.config, layer.module->path));
}

// The product of a conv weight's kernel dimensions (1 for Linear).
std::uint64_t kernel_numel(const Shape& w) {
  std::uint64_t kernel = 1;
  for (std::size_t d = 2; d < w.size(); ++d) kernel *= w[d];
  return kernel;
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

bool is_feedforward(const PeftConfig& config, const std::string& module) {
  const TargetModules ff = config.feedforward_modules();
  if (ff.kind == TargetModules::Kind::List) {
    for (const auto& entry : ff.names) {
      if (module == entry || module.ends_with("." + entry)) return true;
    }
  }
  return false;
}

}  // namespace

namespace {

// LoRA on a parameter (PEFT's ParamWrapper): a 2-D [out, in] weight, or 3-D experts [E, in, out]
// whose factors stack the experts' ranks.
void lora_parameter_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  const Tensor& param = layer.param_tensor(layer.param);
  const Shape& p = param.shape();
  if (p.size() != 2 && p.size() != 3) {
    throw Error(ErrorCode::Unsupported, layer.module->path + "." + layer.param,
                fmt::format("LoRA wraps 2-D or 3-D parameters, not {}", shape_to_string(p)));
  }
  const std::uint64_t experts = p.size() == 3 ? p[0] : 1;
  const std::uint64_t in = p[1], out_features = p.size() == 3 ? p[2] : p[0];
  const std::uint64_t r = rank_of(layer, ctx) * experts;
  put(out, layer, ctx, "lora_A", ctx.make.zeros(param, {r, in}), ".weight");
  put(out, layer, ctx, "lora_B", ctx.make.zeros(param, {out_features, r}), ".weight");
  if (ctx.config.lora_bias())
    put(out, layer, ctx, "lora_B", ctx.make.zeros(param, {out_features}), ".bias");
}

}  // namespace

// LoRA (and DoRA, lora_bias) tensors of one module, in the order PEFT registers them.
void lora_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  if (!layer.param.empty()) return lora_parameter_slots(layer, ctx, out);
  const Tensor& weight = layer.weight();
  const auto& make = ctx.make;
  const auto r = rank_of(layer, ctx);
  const Shape& w = weight.shape();
  const bool dora = ctx.config.use_dora(), bias = ctx.config.lora_bias();
  if (layer.cls == "Embedding") {
    put(out, layer, ctx, "lora_embedding_A", make.zeros(weight, {r, w[0]}));
    put(out, layer, ctx, "lora_embedding_B", make.zeros(weight, {w[1], r}));
    if (dora) put(out, layer, ctx, "lora_magnitude_vector", make.ones(weight, {w[1]}), ".weight");
    return;
  }
  if (layer.is_conv()) {
    Shape a{r, w[1]}, b{w[0], r}, magnitude{1, w[0]};
    for (std::size_t d = 2; d < w.size(); ++d) {
      a.push_back(w[d]);
      b.push_back(1);
      magnitude.push_back(1);
    }
    put(out, layer, ctx, "lora_A", make.zeros(weight, a), ".weight");
    put(out, layer, ctx, "lora_B", make.zeros(weight, b), ".weight");
    if (bias) put(out, layer, ctx, "lora_B", make.zeros(weight, {w[0]}), ".bias");
    if (dora)
      put(out, layer, ctx, "lora_magnitude_vector", make.ones(weight, magnitude), ".weight");
    return;
  }
  if (w.size() != 2) {
    throw Error(ErrorCode::Unsupported, layer.module->path,
                fmt::format("cannot adapt a {} with weight {}", layer.cls, shape_to_string(w)));
  }
  const std::uint64_t in = layer.in_features(), out_features = layer.out_features();
  put(out, layer, ctx, "lora_A", make.zeros(weight, {r, in}), ".weight");
  put(out, layer, ctx, "lora_B", make.zeros(weight, {out_features, r}), ".weight");
  if (bias) put(out, layer, ctx, "lora_B", make.zeros(weight, {out_features}), ".bias");
  if (dora)
    put(out, layer, ctx, "lora_magnitude_vector", make.ones(weight, {out_features}), ".weight");
}

// AdaLoRA: the SVD triplet at init_r ranks (a saved rank_pattern shrinks them on load)
// and `ranknum`, a frozen parameter holding init_r that the saved file does not carry.
void adalora_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("AdaLoRA", {"Linear", "Conv1D"});
  const Tensor& weight = layer.weight();
  const auto r = static_cast<std::uint64_t>(ctx.config.get_int("init_r", 12));
  put(out, layer, ctx, "lora_A", ctx.make.zeros(weight, {r, layer.in_features()}));
  put(out, layer, ctx, "lora_B", ctx.make.zeros(weight, {layer.out_features(), r}));
  put(out, layer, ctx, "lora_E", ctx.make.zeros(weight, {r, 1}));
  put(out, layer, ctx, "ranknum", ctx.make.filled(weight, {1}, static_cast<float>(r)));
}

// LoHa: two Hadamard-multiplied low-rank pairs (CP-decomposed kernels for effective conv).
void loha_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  const Tensor& weight = layer.weight();
  const Shape& w = weight.shape();
  const auto r = rank_of(layer, ctx);
  const auto zeros = [&](Shape shape) { return ctx.make.zeros(weight, std::move(shape)); };
  const std::uint64_t kernel = kernel_numel(w);
  const bool conv = layer.is_conv() && w.size() >= 3;
  if (conv && ctx.config.get_bool("use_effective_conv2d", false) && kernel != 1) {
    const Shape t = w.size() == 4 ? Shape{r, r, w[2], w[3]} : Shape{r, r, w[2], 1};
    put(out, layer, ctx, "hada_w1_a", zeros({r, w[0]}));
    put(out, layer, ctx, "hada_w1_b", zeros({r, w[1]}));
    put(out, layer, ctx, "hada_w2_a", zeros({r, w[0]}));
    put(out, layer, ctx, "hada_w2_b", zeros({r, w[1]}));
    put(out, layer, ctx, "hada_t1", zeros(t));
    put(out, layer, ctx, "hada_t2", zeros(t));
    return;
  }
  const std::uint64_t rows = w[0], cols = conv ? w[1] * kernel : w[1];
  put(out, layer, ctx, "hada_w1_a", zeros({rows, r}));
  put(out, layer, ctx, "hada_w1_b", zeros({r, cols}));
  put(out, layer, ctx, "hada_w2_a", zeros({rows, r}));
  put(out, layer, ctx, "hada_w2_b", zeros({r, cols}));
}

// LoKr: a Kronecker product of two factors, each full or low-rank.
void lokr_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  const Tensor& weight = layer.weight();
  const Shape& w = weight.shape();
  const auto r = rank_of(layer, ctx);
  const auto zeros = [&](Shape shape) { return ctx.make.zeros(weight, std::move(shape)); };
  const std::int64_t factor = ctx.config.get_int("decompose_factor", -1);
  const bool conv = layer.is_conv() && w.size() >= 3;
  const auto [in_m, in_n] = factorization(w[1], factor);
  const auto [out_l, out_k] = factorization(w[0], factor);
  const double rr = static_cast<double>(r);
  const bool use_w1 = !(ctx.config.get_bool("decompose_both", false) &&
                        rr < static_cast<double>(std::max(out_l, in_m)) / 2);
  const bool use_w2 = rr >= static_cast<double>(std::max(out_k, in_n)) / 2;
  const std::uint64_t kernel = kernel_numel(w);
  const bool effective = conv && ctx.config.get_bool("use_effective_conv2d", false) && kernel != 1;
  StateDict slots;  // filled in creation order, written in the layer's registration order
  if (use_w1) {
    slots.set("w1", zeros({out_l, in_m}));
  } else {
    slots.set("w1_a", zeros({out_l, r}));
    slots.set("w1_b", zeros({r, in_m}));
  }
  if (conv && use_w2) {
    Shape shape{out_k, in_n};
    for (std::size_t d = 2; d < w.size(); ++d) shape.push_back(w[d]);
    slots.set("w2", zeros(shape));
  } else if (conv && effective) {
    slots.set("t2", zeros(w.size() == 4 ? Shape{r, r, w[2], w[3]} : Shape{r, r, w[2], 1}));
    slots.set("w2_a", zeros({r, out_k}));
    slots.set("w2_b", zeros({r, in_n}));
  } else if (use_w2) {
    slots.set("w2", zeros({out_k, in_n}));
  } else {
    slots.set("w2_a", zeros({out_k, r}));
    slots.set("w2_b", zeros({r, conv ? in_n * kernel : in_n}));
  }
  for (const char* part : {"w1", "w1_a", "w1_b", "w2", "w2_a", "w2_b", "t2"}) {
    if (const Tensor* slot = slots.find(part))
      put(out, layer, ctx, std::string("lokr_") + part, *slot);
  }
}

// IA3: one scaling vector, over inputs for feed-forward modules, else over outputs.
void ia3_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  const Tensor& weight = layer.weight();
  const Shape& w = weight.shape();
  const bool ff = is_feedforward(ctx.config, layer.module->path);
  if (layer.is_conv()) {
    Shape shape{1, ff ? w[1] : w[0]};
    for (std::size_t d = 2; d < w.size(); ++d) shape.push_back(1);
    put(out, layer, ctx, "ia3_l", ctx.make.ones(weight, shape));
    return;
  }
  const Shape shape = ff ? Shape{1, layer.in_features()} : Shape{layer.out_features(), 1};
  put(out, layer, ctx, "ia3_l", ctx.make.ones(weight, shape));
}

}  // namespace peft::injection
