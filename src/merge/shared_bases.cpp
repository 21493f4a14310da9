// Methods whose factors come (partly) from a bank shared by all layers: VeRA (frozen
// random A/B scaled by trained vectors), RandLoRA (frozen random bases mixed by trained
// lambda/gamma) and VB-LoRA (rows of a vector bank mixed by top-k softmax weights). All
// are additive, W += delta.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "numeric/torch_random.hpp"
#include "peft/error.hpp"

namespace peft::merge {
namespace {

std::size_t dim(const Tensor& t, std::size_t i) {
  return static_cast<std::size_t>(t.shape().at(i));
}

// The first `rows` x `cols` corner of a matrix.
Mat corner(const Mat& m, std::size_t rows, std::size_t cols, const std::string& what) {
  if (rows > m.rows || cols > m.cols) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("{} is [{}, {}], smaller than the [{}, {}] this layer needs", what,
                            m.rows, m.cols, rows, cols));
  }
  Mat out(rows, cols);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) out(r, c) = m(r, c);
  }
  return out;
}

// One VB-LoRA vector: the bank rows at `indices` weighted by `weights`.
void mix(const Mat& bank, const std::int64_t* indices, const double* weights, std::size_t k,
         double* out) {
  std::fill(out, out + bank.cols, 0.0);
  for (std::size_t j = 0; j < k; ++j) {
    const auto row = static_cast<std::size_t>(indices[j]);
    for (std::size_t c = 0; c < bank.cols; ++c) out[c] += weights[j] * bank(row, c);
  }
}

// logits [..., num_vectors] -> [..., L] (or the saved top-k indices and k-1 weights).
Values vblora_vectors(const ModuleInput& in, const std::string& name, const Mat& bank,
                      std::size_t k) {
  Values out;
  std::vector<std::int64_t> indices;
  Values weights;
  if (const Tensor* logits = in.find(name)) {
    const std::size_t nv = dim(*logits, logits->rank() - 1);
    const Values v = logits->to_doubles();
    for (std::size_t start = 0; start < v.size(); start += nv) {
      std::vector<std::int64_t> order(nv);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](std::int64_t a, std::int64_t b) { return v[start + a] > v[start + b]; });
      const double top = v[start + order[0]];
      double sum = 0.0;
      for (std::size_t j = 0; j < k; ++j) sum += std::exp(v[start + order[j]] - top);
      for (std::size_t j = 0; j < k; ++j) {
        indices.push_back(order[j]);
        weights.push_back(std::exp(v[start + order[j]] - top) / sum);
      }
    }
  } else {
    indices = in.param(name + "_topk_indices").to_ints();
    const Values saved = in.param(name + "_topk_weights").to_doubles();
    for (std::size_t i = 0; i * (k - 1) < saved.size(); ++i) {
      double sum = 0.0;
      for (std::size_t j = 0; j + 1 < k; ++j) {
        weights.push_back(saved[i * (k - 1) + j]);
        sum += saved[i * (k - 1) + j];
      }
      weights.push_back(1.0 - sum);
    }
  }
  const std::size_t count = weights.size() / k;
  out.assign(count * bank.cols, 0.0);
  for (std::size_t i = 0; i < count; ++i) {
    for (std::size_t j = 0; j < k; ++j) {
      if (indices[i * k + j] < 0 || static_cast<std::size_t>(indices[i * k + j]) >= bank.rows) {
        throw Error(ErrorCode::ShapeMismatch, "",
                    fmt::format("{}: vector index {} is outside the bank of {}", in.origin,
                                indices[i * k + j], bank.rows));
      }
    }
    mix(bank, &indices[i * k], &weights[i * k], k, &out[i * bank.cols]);
  }
  return out;
}

const Tensor& logits_shape(const ModuleInput& in, const std::string& name) {
  if (const Tensor* t = in.find(name)) return *t;
  return in.param(name + "_topk_indices");
}

}  // namespace

void build_vera(const ModuleInput& in, std::vector<Op>& ops) {
  const Values lb = in.param("vera_lambda_b").to_doubles();
  const Values ld = in.param("vera_lambda_d").to_doubles();
  const Mat a = as_matrix(in.shared_tensor("vera_A"));
  const Mat b = as_matrix(in.shared_tensor("vera_B"));
  const bool fan_in_fan_out = in.config().fan_in_fan_out();
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    const std::size_t out = lb.size();
    const std::size_t in_features = shape_numel(shape) / std::max<std::size_t>(out, 1);
    Mat bs = corner(b, out, ld.size(), origin + ": vera_B");
    Mat as = corner(a, ld.size(), in_features, origin + ": vera_A");
    for (std::size_t o = 0; o < out; ++o) {
      for (std::size_t k = 0; k < bs.cols; ++k) bs(o, k) *= lb[o];
    }
    for (std::size_t k = 0; k < as.rows; ++k) {
      for (std::size_t i = 0; i < as.cols; ++i) as(k, i) *= ld[k];
    }
    return delta_in_layout(matmul(bs, as), shape, fan_in_fan_out, origin);
  };
  ops.push_back(std::move(op));
}

void build_randlora(const ModuleInput& in, std::vector<Op>& ops) {
  const Tensor lambda = in.param("randlora_lambda");  // [r, nb]
  const Tensor gamma = in.param("randlora_gamma");    // [nb, min]
  const Tensor a = in.find("randlora_A") ? in.param("randlora_A") : in.shared_tensor("randlora_A");
  const Tensor b = in.find("randlora_B") ? in.param("randlora_B") : in.shared_tensor("randlora_B");
  const std::size_t r = dim(lambda, 0);
  const std::size_t nb = dim(lambda, 1);
  const double scale = in.config().get_double("randlora_alpha", 640.0) / static_cast<double>(r);
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    const Layout layout = natural_layout(shape, false);
    const std::size_t lo = std::min(layout.out, layout.in);
    const std::size_t hi = std::max(layout.out, layout.in);
    const Values lv = lambda.to_doubles(), gv = gamma.to_doubles();
    const Values av = a.to_doubles(), bv = b.to_doubles();
    const std::size_t a_bases = dim(a, 1), a_len = dim(a, 2);
    const std::size_t b_bases = dim(b, 1), b_rank = dim(b, 2);
    if (dim(gamma, 1) != lo || a_len < lo || dim(b, 0) < hi || b_bases < nb || b_rank != r ||
        dim(gamma, 0) != nb) {
      throw Error(ErrorCode::ShapeMismatch, "",
                  fmt::format("{}: RandLoRA factors do not fit the weight {}", origin,
                              shape_to_string(shape)));
    }
    // a: [r * nb, lo] in (rank, basis) order; b: [hi, nb * r] in (basis, rank) order.
    Mat am(r * nb, lo);
    for (std::size_t k = 0; k < r; ++k) {
      for (std::size_t j = 0; j < nb; ++j) {
        const std::size_t aj = a_bases == 1 ? 0 : j;
        for (std::size_t c = 0; c < lo; ++c) {
          am(k * nb + j, c) = lv[k * nb + j] * av[(k * a_bases + aj) * a_len + c] * gv[j * lo + c];
        }
      }
    }
    Mat bm(hi, nb * r);
    for (std::size_t o = 0; o < hi; ++o) {
      for (std::size_t j = 0; j < nb; ++j) {
        for (std::size_t k = 0; k < r; ++k) bm(o, j * r + k) = bv[(o * b_bases + j) * b_rank + k];
      }
    }
    Mat d = matmul(bm, am);  // [hi, lo]
    if (layout.in > layout.out) d = transpose(d);
    scale_values(d.v, scale);
    return from_out_in(d, layout);
  };
  ops.push_back(std::move(op));
}

void build_vblora(const ModuleInput& in, std::vector<Op>& ops) {
  const Mat bank = as_matrix(in.shared_tensor("vblora_vector_bank"));
  const std::size_t k = static_cast<std::size_t>(in.config().topk());
  const Tensor& la = logits_shape(in, "vblora_logits_A");  // [r, in/L, ...]
  const Tensor& lb = logits_shape(in, "vblora_logits_B");  // [out/L, r, ...]
  const std::size_t r = dim(la, 0), in_blocks = dim(la, 1), out_blocks = dim(lb, 0);
  const std::size_t len = bank.cols;
  const Values av = vblora_vectors(in, "vblora_logits_A", bank, k);  // [r, in/L, L]
  const Values bv = vblora_vectors(in, "vblora_logits_B", bank, k);  // [out/L, r, L]
  Mat a(r, in_blocks * len);
  a.v = av;
  Mat b(out_blocks * len, r);
  for (std::size_t ob = 0; ob < out_blocks; ++ob) {
    for (std::size_t k2 = 0; k2 < r; ++k2) {
      for (std::size_t l = 0; l < len; ++l) b(ob * len + l, k2) = bv[(ob * r + k2) * len + l];
    }
  }
  const Mat delta = matmul(b, a);
  const bool fan_in_fan_out = in.config().fan_in_fan_out();
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    return delta_in_layout(delta, shape, fan_in_fan_out, origin);
  };
  ops.push_back(std::move(op));
}

}  // namespace peft::merge

namespace peft {
namespace {

constexpr std::string_view kModulePrefix = "base_model.model.";

// PEFT's _find_dim for VeRA and RandLoRA: the largest out and in sizes among the targeted
// layers (Conv1D weights are [in, out]); the layers are those with a `marker` tensor.
// {0, 0} when there are none.
std::pair<std::size_t, std::size_t> largest_layer(const MergeAdapter& adapter,
                                                  const BaseShapes& base_shapes,
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
    const merge::Layout layout = merge::natural_layout(*shape, fan_in_fan_out);
    max_out = std::max(max_out, layout.out);
    max_in = std::max(max_in, layout.in);
  }
  return {max_out, max_in};
}

// The config's r, checked before it sizes the drawn projections: at least 1, and equal to
// the rank the saved `<module>.<rank_tensor>` tensors carry in `rank_dim` (a mismatched or
// hostile config must not allocate, or divide, with a wrong r).
std::size_t projection_rank(const MergeAdapter& adapter, std::int64_t fallback,
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
void regenerate_vera_projections(MergeAdapter& adapter, const BaseShapes& base_shapes) {
  const PeftConfig& config = adapter.config;
  if (config.peft_type() != PeftType::VERA || adapter.weights.contains("base_model.vera_A")) {
    return;
  }
  const auto [max_out, max_in] = largest_layer(adapter, base_shapes, ".vera_lambda_b", "VeRA");
  if (max_out == 0) return;  // no VeRA module: nothing to draw
  const std::size_t r = projection_rank(adapter, 256, ".vera_lambda_d", 0);
  auto generator = projection_generator(config);
  const auto a = numeric::torch_kaiming_uniform(r, max_in, generator);
  const auto b = numeric::torch_kaiming_uniform(max_out, r, generator);
  adapter.weights.set("base_model.vera_A", Tensor::from_floats(DType::F32, {r, max_in}, a));
  adapter.weights.set("base_model.vera_B", Tensor::from_floats(DType::F32, {max_out, r}, b));
}

// RandLoRA: randlora_A [r, 1, lo] and randlora_B [hi, num_bases, r], lo and hi being the
// smaller and larger of _find_dim's sizes and num_bases = ceil(lo / r); dense, sparse
// (sparsity 3) or very_sparse (sparsity sqrt(lo)). Stored as float32, as PEFT's
// autocast_adapter_dtype leaves them.
void regenerate_randlora_projections(MergeAdapter& adapter, const BaseShapes& base_shapes) {
  const PeftConfig& config = adapter.config;
  if (config.peft_type() != PeftType::RANDLORA ||
      adapter.weights.contains("base_model.randlora_A")) {
    return;
  }
  const auto [max_out, max_in] =
      largest_layer(adapter, base_shapes, ".randlora_lambda", "RandLoRA");
  if (max_out == 0) return;  // no RandLoRA module: nothing to draw
  const std::size_t hi = std::max(max_out, max_in), lo = std::min(max_out, max_in);
  const std::size_t r = projection_rank(adapter, 32, ".randlora_lambda", 0);
  const std::size_t bases = (lo + r - 1) / r;  // enough bases for full rank
  auto generator = projection_generator(config);
  auto [a, b] =
      config.get_bool("very_sparse", false)
          ? randlora_sparse(r, hi, lo, bases, std::sqrt(static_cast<double>(lo)), generator)
      : config.get_bool("sparse", false) ? randlora_sparse(r, hi, lo, bases, 3.0, generator)
                                         : randlora_dense(r, hi, lo, bases, generator);
  adapter.weights.set("base_model.randlora_A", Tensor::from_floats(DType::F32, {r, 1, lo}, a));
  adapter.weights.set("base_model.randlora_B", Tensor::from_floats(DType::F32, {hi, bases, r}, b));
}

}  // namespace peft
