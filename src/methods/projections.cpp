// Values PEFT draws at load time and does not save: VeRA's vera_A / vera_B and RandLoRA's
// randlora_A / randlora_B, drawn exactly as PEFT draws them (torch's CPU generator,
// reproduced in pycompat/torch_random). Used by injection (from_pretrained on a plain
// base) and by merging adapters saved without their projections.
#include "methods/projections.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "peft/error.hpp"
#include "pycompat/torch_random.hpp"

namespace peft::methods {
namespace {

// The two things the drawing reads of an adapter.
struct AdapterView {
  const PeftConfig& config;
  const StateDict& weights;
};

}  // namespace
}  // namespace peft::methods

namespace peft::methods {
namespace {

constexpr std::string_view kModulePrefix = "base_model.model.";

// PEFT's _find_dim for VeRA and RandLoRA: the largest out and in sizes among the targeted
// layers (Conv1D weights are [in, out]); the layers are those with a `marker` tensor.
// {0, 0} when there are none.
std::pair<std::size_t, std::size_t> largest_layer(const AdapterView& adapter,
                                                  const ShapeLookup& base_shapes,
                                                  std::string_view marker,
                                                  std::string_view method) {
  const bool fan_in_fan_out = adapter.config.fan_in_fan_out();
  std::size_t max_out = 0, max_in = 0;
  for (const auto& [key, tensor] : adapter.weights) {
    if (!key.starts_with(kModulePrefix) || !key.ends_with(marker)) continue;
    const std::string module =
        key.substr(kModulePrefix.size(), key.size() - kModulePrefix.size() - marker.size());
    const std::string weight = module + ".weight";
    const auto shape = base_shapes(weight);
    if (!shape || shape->size() != 2) {
      throw Error(ErrorCode::MissingKey, adapter.config.source(),
                  fmt::format("{} saved without its projections (save_projection=false) needs "
                              "the base weight '{}' to size them, and the base has no 2-D tensor "
                              "of that name",
                              method, weight));
    }
    // A 2-D weight is [out, in], or [in, out] for GPT-2's Conv1D (fan_in_fan_out).
    const auto out = static_cast<std::size_t>((*shape)[fan_in_fan_out ? 1 : 0]);
    const auto in = static_cast<std::size_t>((*shape)[fan_in_fan_out ? 0 : 1]);
    max_out = std::max(max_out, out);
    max_in = std::max(max_in, in);
  }
  return {max_out, max_in};
}

// The config's r, checked before it sizes the drawn projections: at least 1, and equal to
// the rank the saved `<module>.<rank_tensor>` tensors carry in `rank_dim` (a mismatched or
// hostile config must not allocate, or divide, with a wrong r).
std::size_t projection_rank(const AdapterView& adapter, std::int64_t fallback,
                            std::string_view rank_tensor, std::size_t rank_dim) {
  const std::int64_t r = adapter.config.get_int("r", fallback);
  for (const auto& [key, tensor] : adapter.weights) {
    if (!key.starts_with(kModulePrefix) || !key.ends_with(rank_tensor)) continue;
    const Shape& shape = tensor.shape();
    if (r < 1 || rank_dim >= shape.size() || static_cast<std::int64_t>(shape[rank_dim]) != r) {
      throw Error(ErrorCode::InvalidConfigValue, adapter.config.source(),
                  fmt::format("r is {} but '{}' is {}: the projections cannot be drawn", r, key,
                              shape_to_string(shape)));
    }
    break;  // PEFT checks one rank for all layers; the merge checks every layer's shapes
  }
  if (r < 1) {
    throw Error(ErrorCode::InvalidConfigValue, adapter.config.source(),
                fmt::format("r must be at least 1, got {}", r));
  }
  return static_cast<std::size_t>(r);
}

numeric::TorchGenerator projection_generator(const PeftConfig& config) {
  return numeric::TorchGenerator(
      static_cast<std::uint64_t>(config.get_int("projection_prng_key", 0)));
}

// values / std(values), each quotient rounded to bfloat16 when the tensor is bfloat16
// (torch rounds the std to the tensor's dtype through float, then divides in float).
void divide_by_std(std::vector<float>& values, bool bf16) {
  auto std_value = static_cast<float>(numeric::torch_std(values));
  if (bf16) std_value = numeric::round_to_bf16(std_value);
  for (float& v : values) v = bf16 ? numeric::round_to_bf16(v / std_value) : v / std_value;
}

// RandLoRA's dense bases: kaiming_uniform_(a=sqrt(5)) on bfloat16 (PEFT's choice wherever
// bfloat16 is available, which includes every CPU), A [r, 1, lo] then B as num_bases
// [hi, 1, r] draws concatenated along dim 1, each divided by its std.
std::pair<std::vector<float>, std::vector<float>> randlora_dense(
    std::size_t r, std::size_t hi, std::size_t lo, std::size_t bases,
    numeric::TorchGenerator& generator) {
  const double a = std::sqrt(5.0);
  std::vector<float> av = numeric::torch_kaiming_uniform_bf16(r * lo, lo, a, generator);
  std::vector<float> bv(hi * bases * r);
  for (std::size_t j = 0; j < bases; ++j) {
    const auto draw = numeric::torch_kaiming_uniform_bf16(hi * r, r, a, generator);
    for (std::size_t o = 0; o < hi; ++o) {
      std::copy_n(&draw[o * r], r, &bv[(o * bases + j) * r]);
    }
  }
  divide_by_std(av, true);
  divide_by_std(bv, true);
  return {std::move(av), std::move(bv)};
}

// RandLoRA's sparse bases: torch.rand A [r, 1, lo] then B [hi, bases, r] in float32, mapped
// to -1 below 1/(2 sparsity), 1 above 1 - 1/(2 sparsity), 0 between, each divided by its std.
std::pair<std::vector<float>, std::vector<float>> randlora_sparse(
    std::size_t r, std::size_t hi, std::size_t lo, std::size_t bases, double sparsity,
    numeric::TorchGenerator& generator) {
  // torch compares a float32 tensor with a Python float in float32.
  const auto low = static_cast<float>(1.0 / (2.0 * sparsity));
  const auto high = static_cast<float>(1.0 - 1.0 / (2.0 * sparsity));
  const auto ternary = [&](std::vector<float> values) {
    for (float& v : values) v = v < low ? -1.0f : v > high ? 1.0f : 0.0f;
    divide_by_std(values, false);
    return values;
  };
  auto av = numeric::torch_rand(r * lo, generator);
  auto bv = numeric::torch_rand(hi * bases * r, generator);
  return {ternary(std::move(av)), ternary(std::move(bv))};
}

}  // namespace

// VeRA: vera_A = kaiming [r, in], vera_B = kaiming [out, r] (gain sqrt(2), float32) drawn
// in that order from one generator seeded with projection_prng_key.
void draw_vera_projections(const PeftConfig& config, StateDict& weights,
                           const ShapeLookup& base_shapes) {
  if (config.peft_type() != PeftType::VERA || weights.contains("base_model.vera_A")) {
    return;
  }
  const auto [max_out, max_in] =
      largest_layer({config, weights}, base_shapes, ".vera_lambda_b", "VeRA");
  if (max_out == 0) return;  // no VeRA module: nothing to draw
  const std::size_t r = projection_rank({config, weights}, 256, ".vera_lambda_d", 0);
  auto generator = projection_generator(config);
  const auto a = numeric::torch_kaiming_uniform(r, max_in, generator);
  const auto b = numeric::torch_kaiming_uniform(max_out, r, generator);
  weights.set("base_model.vera_A", Tensor::from_floats(DType::F32, {r, max_in}, a));
  weights.set("base_model.vera_B", Tensor::from_floats(DType::F32, {max_out, r}, b));
}

// RandLoRA: randlora_A [r, 1, lo] and randlora_B [hi, num_bases, r], lo and hi being the
// smaller and larger of _find_dim's sizes and num_bases = ceil(lo / r); dense, sparse
// (sparsity 3) or very_sparse (sparsity sqrt(lo)). Stored as float32, as PEFT's
// autocast_adapter_dtype leaves them.
void draw_randlora_projections(const PeftConfig& config, StateDict& weights,
                               const ShapeLookup& base_shapes) {
  if (config.peft_type() != PeftType::RANDLORA || weights.contains("base_model.randlora_A")) {
    return;
  }
  const auto [max_out, max_in] =
      largest_layer({config, weights}, base_shapes, ".randlora_lambda", "RandLoRA");
  if (max_out == 0) return;  // no RandLoRA module: nothing to draw
  const std::size_t hi = std::max(max_out, max_in), lo = std::min(max_out, max_in);
  const std::size_t r = projection_rank({config, weights}, 32, ".randlora_lambda", 0);
  const std::size_t bases = (lo + r - 1) / r;  // enough bases for full rank
  auto generator = projection_generator(config);
  auto [a, b] =
      config.get_bool("very_sparse", false)
          ? randlora_sparse(r, hi, lo, bases, std::sqrt(static_cast<double>(lo)), generator)
      : config.get_bool("sparse", false) ? randlora_sparse(r, hi, lo, bases, 3.0, generator)
                                         : randlora_dense(r, hi, lo, bases, generator);
  weights.set("base_model.randlora_A", Tensor::from_floats(DType::F32, {r, 1, lo}, a));
  weights.set("base_model.randlora_B", Tensor::from_floats(DType::F32, {hi, bases, r}, b));
}

}  // namespace peft::methods
