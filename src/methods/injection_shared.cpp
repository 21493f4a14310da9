// Injection rules of the methods whose layers share model-level tensors: VeRA and
// RandLoRA (frozen random projections), VB-LoRA (the trainable vector bank). PEFT's layers
// hold the very tensors the tuner holds, so the same Tensor (one storage) goes under
// every key and a load into one of them is seen by all.
#include <fmt/format.h>

#include <algorithm>

#include "methods/injection_methods.hpp"
#include "methods/projections.hpp"
#include "peft/error.hpp"

namespace peft::injection {
namespace {

constexpr std::string_view kRoot = "base_model.model.";

// The frozen projections PEFT draws from projection_prng_key, sized by the largest
// targeted Linear / Conv1D (its _find_dim); `draw` is the method's drawing.
using DrawFn = void (*)(const PeftConfig&, StateDict&, const methods::ShapeLookup&);
StateDict random_projections(const std::vector<Layer>& targets, const Context& ctx,
                             std::string_view marker, std::string_view name, DrawFn draw) {
  if (!ctx.config.save_projection()) return {};  // non-persistent buffers: not state
  StateDict weights;
  std::map<std::string, Shape> shapes;  // "<module>.weight" -> as natural_layout reads it
  const bool fan_in_fan_out = ctx.config.fan_in_fan_out();
  const Tensor* first_weight = nullptr;
  const auto rank = static_cast<std::uint64_t>(std::max<std::int64_t>(ctx.config.r(), 1));
  for (const Layer& layer : targets) {
    if (layer.cls != "Linear" && layer.cls != "Conv1D") continue;
    if (first_weight == nullptr) first_weight = &layer.weight();
    const std::uint64_t in = layer.in_features(), out = layer.out_features();
    shapes[layer.module->path + ".weight"] = fan_in_fan_out ? Shape{in, out} : Shape{out, in};
    // A stand-in for the layer's tensor that marks it targeted, [r, 1] like the rank-carrying
    // randlora_lambda (the drawing checks r against it).
    weights.set(fmt::format("{}{}{}", kRoot, layer.module->path, marker),
                Tensor::zeros(DType::F32, {rank, 1}));
  }
  if (first_weight == nullptr) {
    throw Error(ErrorCode::Unsupported, ctx.config.source(),
                fmt::format("no layer type compatible with {} is targeted", name));
  }
  draw(ctx.config, weights, [&](std::string_view key) -> std::optional<Shape> {
    const auto it = shapes.find(std::string(key));
    return it == shapes.end() ? std::nullopt : std::optional<Shape>(it->second);
  });
  // Cast like the layers' own tensors (the first layer's base dtype decides).
  const DType dtype = ctx.make.dtype(*first_weight);
  StateDict shared;
  for (const auto& [key, tensor] : weights) {
    if (!key.starts_with(kRoot))
      shared.set(key.substr(std::string("base_model.").size()), tensor.to(dtype));
  }
  return shared;
}

// The layer's references to the shared tensors, when they are state.
void put_shared(const Layer& layer, const Context& ctx, StateDict& out,
                std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (const Tensor* tensor = ctx.shared.find(name)) put(out, layer, ctx, name, *tensor);
  }
}

}  // namespace

StateDict vera_shared(const std::vector<Layer>& targets, const Context& ctx) {
  return random_projections(targets, ctx, ".vera_lambda_b", "VeRA", methods::draw_vera_projections);
}

// VeRA: per-layer scaling vectors over the shared vera_A [r, max_in] / vera_B [max_out, r].
void vera_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("VeRA", {"Linear", "Conv1D"});
  const Tensor& weight = layer.weight();
  const auto r = static_cast<std::uint64_t>(ctx.config.r());
  put(out, layer, ctx, "vera_lambda_b", ctx.make.ones(weight, {layer.out_features()}));
  put(out, layer, ctx, "vera_lambda_d", ctx.make.zeros(weight, {r}));
  put_shared(layer, ctx, out, {"vera_A", "vera_B"});
}

StateDict randlora_shared(const std::vector<Layer>& targets, const Context& ctx) {
  return random_projections(targets, ctx, ".randlora_lambda", "RandLoRA",
                            methods::draw_randlora_projections);
}

// RandLoRA: per-layer lambda [r, bases] and gamma [bases, min(in, out)], bases being
// enough rank-r random bases to reach full rank.
void randlora_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("RandLoRA", {"Linear", "Conv1D"});
  const Tensor& weight = layer.weight();
  const auto r = static_cast<std::uint64_t>(ctx.config.r());
  const std::uint64_t low = std::min(layer.in_features(), layer.out_features());
  const std::uint64_t bases = (low + r - 1) / r;
  put(out, layer, ctx, "randlora_lambda", ctx.make.zeros(weight, {r, bases}));
  put(out, layer, ctx, "randlora_gamma", ctx.make.zeros(weight, {bases, low}));
  put_shared(layer, ctx, out, {"randlora_A", "randlora_B"});
}

// VB-LoRA: the vector bank [num_vectors, vector_length] is a trainable parameter, always
// saved, so its initial values do not matter.
StateDict vblora_shared(const std::vector<Layer>& targets, const Context& ctx) {
  if (targets.empty()) return {};
  const auto vectors = static_cast<std::uint64_t>(ctx.config.num_vectors());
  const auto length = static_cast<std::uint64_t>(ctx.config.get_int("vector_length", 256));
  StateDict shared;
  shared.set("vblora_vector_bank", ctx.make.zeros(targets.front().weight(), {vectors, length}));
  return shared;
}

// VB-LoRA: logits choosing bank vectors for each sub-vector of A and B.
void vblora_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("VB-LoRA", {"Linear", "Conv1D"});
  const Tensor& weight = layer.weight();
  const auto r = static_cast<std::uint64_t>(ctx.config.r());
  const auto vectors = static_cast<std::uint64_t>(ctx.config.num_vectors());
  const auto length = static_cast<std::uint64_t>(ctx.config.get_int("vector_length", 256));
  const std::uint64_t in = layer.in_features(), out_features = layer.out_features();
  if (length == 0 || in % length != 0 || out_features % length != 0) {
    throw Error(ErrorCode::InvalidConfigValue, layer.module->path,
                fmt::format("in_features {} and out_features {} must divide by vector_length {}",
                            in, out_features, length));
  }
  put(out, layer, ctx, "vblora_logits_A", ctx.make.zeros(weight, {r, in / length, vectors}));
  put(out, layer, ctx, "vblora_logits_B",
      ctx.make.zeros(weight, {out_features / length, r, vectors}));
  put_shared(layer, ctx, out, {"vblora_vector_bank"});
}

}  // namespace peft::injection
