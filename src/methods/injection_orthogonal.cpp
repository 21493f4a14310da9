// Injection rules of the orthogonal / block methods: OFT, BOFT, HRA, Bone, MiSS, OSF.
#include <fmt/format.h>

#include <algorithm>

#include "methods/injection_methods.hpp"
#include "peft/error.hpp"
#include "pycompat/python_regex.hpp"

namespace peft::injection {
namespace {

// The size OFT, BOFT and HRA rotate: in_features, times kernel_size[0] squared for a
// Conv2d (PEFT uses the first kernel dimension twice).
std::uint64_t rotated_dim(const Layer& layer) {
  const Shape& w = layer.weight().shape();
  return layer.cls == "Conv2d" ? w.at(1) * w.at(2) * w.at(2) : layer.in_features();
}

// OFT's adjust_oft_parameters: the divisor of `dim` nearest to `value` (lower on ties).
std::uint64_t nearest_divisor(std::uint64_t dim, std::uint64_t value) {
  if (value >= dim) return dim;
  std::uint64_t higher = value;
  while (higher <= dim && dim % higher != 0) ++higher;
  std::uint64_t lower = value;
  while (lower > 1 && dim % lower != 0) --lower;
  return value - lower <= higher - value ? lower : higher;
}

[[noreturn]] void bad_blocks(const Layer& layer, std::string message) {
  throw Error(ErrorCode::InvalidConfigValue, layer.module->path, std::move(message));
}

// Bone / MiSS: one block matrix, shaped by the init_weights variant.
Shape block_shape(const Layer& layer, const Context& ctx, std::string_view method) {
  layer.require(method, {"Linear"});
  const auto r = static_cast<std::uint64_t>(ctx.config.r());
  const std::uint64_t in = layer.in_features(), out = layer.out_features();
  const nlohmann::json* init_field = ctx.config.find("init_weights");  // bool or a variant name
  const std::string init =
      init_field != nullptr && init_field->is_string() ? init_field->get<std::string>() : "";
  if (init == "bat") {
    if (in % r != 0 || out % r != 0)
      bad_blocks(layer, "the weight matrix must be fully divisible into [r, r] blocks");
    return {out / r, r, r};
  }
  if (init == "mini" && method == "MiSS") {
    const auto mini_r = static_cast<std::uint64_t>(ctx.config.get_int("mini_r", 1));
    if (mini_r == 0 || out % mini_r != 0) bad_blocks(layer, "out_features must divide by mini_r");
    return {r, mini_r};
  }
  return {r, out};
}

}  // namespace

// OFT: r blocks (one when shared) of block_size x block_size skew-symmetric parameters,
// stored as their strict upper triangles; the non-persistent index buffers are not state.
void oft_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("OFT", {"Linear", "Conv2d"});
  const std::uint64_t dim = rotated_dim(layer);
  auto r = static_cast<std::uint64_t>(ctx.config.r());
  auto block = static_cast<std::uint64_t>(ctx.config.get_int("oft_block_size", 0));
  if (r == 0 && block != 0) {
    if (dim % block != 0 || block > dim) block = nearest_divisor(dim, block);
    r = dim / block;
  } else if (r != 0 && block == 0) {
    if (dim % r != 0 || r > dim) r = nearest_divisor(dim, r);
    block = dim / r;
  } else {
    bad_blocks(layer, "OFT needs exactly one of r and oft_block_size to be non-zero");
  }
  const std::uint64_t blocks = ctx.config.get_bool("block_share", false) ? 1 : r;
  put(out, layer, ctx, "oft_R", ctx.make.zeros(layer.weight(), {blocks, block * (block - 1) / 2}),
      ".weight");
}

// BOFT: butterfly factors of block rotations plus an output scale. Without PEFT's CUDA
// extension (CPU, as the reference fixtures were made) PEFT forces one butterfly factor.
void boft_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("BOFT", {"Linear", "Conv2d"});
  const std::uint64_t dim = rotated_dim(layer);
  auto size = static_cast<std::uint64_t>(ctx.config.get_int("boft_block_size", 4));
  auto count = static_cast<std::uint64_t>(ctx.config.get_int("boft_block_num", 0));
  if (size == 0 && count != 0) {
    if (dim % count != 0) bad_blocks(layer, fmt::format("{} must divide by boft_block_num", dim));
    size = dim / count;
  } else if (size != 0 && count == 0) {
    if (dim % size != 0) bad_blocks(layer, fmt::format("{} must divide by boft_block_size", dim));
    count = dim / size;
  } else {
    bad_blocks(layer, "BOFT needs exactly one of boft_block_size and boft_block_num non-zero");
  }
  const Tensor& weight = layer.weight();
  const std::uint64_t out_features = layer.out_features();
  put(out, layer, ctx, "boft_R", ctx.make.zeros(weight, {1, count, size, size}));
  const Shape scale = layer.cls == "Conv2d" ? Shape{1, out_features} : Shape{out_features, 1};
  put(out, layer, ctx, "boft_s", ctx.make.ones(weight, scale));
}

// HRA: r Householder vectors over the rotated dimension.
void hra_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("HRA", {"Linear", "Conv2d"});
  const auto r = static_cast<std::uint64_t>(ctx.config.r());
  put(out, layer, ctx, "hra_u", ctx.make.zeros(layer.weight(), {rotated_dim(layer), r}));
}

void bone_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  put(out, layer, ctx, "bone_block",
      ctx.make.zeros(layer.weight(), block_shape(layer, ctx, "Bone")));
}

void miss_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  put(out, layer, ctx, "miss_block",
      ctx.make.zeros(layer.weight(), block_shape(layer, ctx, "MiSS")));
}

namespace {

// OSF's effective_rank (or a rank_pattern value): a fraction in (0, 1] of the smaller
// weight dimension, a count, or null for half of it; clamped to [0, min_dim].
std::uint64_t osf_rank(const nlohmann::json* value, std::uint64_t min_dim) {
  if (value == nullptr || value->is_null()) return min_dim / 2;
  std::int64_t r = 0;
  if (value->is_number_float() && value->get<double>() > 0 && value->get<double>() <= 1) {
    r = static_cast<std::int64_t>(static_cast<double>(min_dim) * value->get<double>());
  } else if (value->is_number()) {
    r = static_cast<std::int64_t>(value->get<double>());
  }
  return static_cast<std::uint64_t>(
      std::clamp<std::int64_t>(r, 0, static_cast<std::int64_t>(min_dim)));
}

// The frozen top-k of the module's spectrum: rank_pattern's first key found in the
// module path (re.search), else effective_rank.
std::uint64_t osf_high_rank(const Layer& layer, const Context& ctx, std::uint64_t min_dim) {
  if (const auto* patterns = ctx.config.find("rank_pattern"); patterns && patterns->is_object()) {
    for (const auto& [pattern, rank] : patterns->items()) {
      try {
        if (detail::python_regex_matches(pattern, layer.module->path, detail::RegexMode::Search))
          return osf_rank(&rank, min_dim);
      } catch (const detail::RegexError& e) {
        throw Error(ErrorCode::InvalidConfigValue, ctx.config.source(),
                    fmt::format("rank_pattern key '{}': {}", pattern, e.what()));
      }
    }
  }
  return osf_rank(ctx.config.find("effective_rank"), min_dim);
}

}  // namespace

// OSF splits the weight's SVD: the top effective_rank triplets stay frozen in buffers
// that are not saved; the rest are the trainable U_low, S_low, V_low (placeholders here,
// overwritten by the load).
bool osf_wraps(const Layer& layer) {
  for (const auto& [name, tensor] : layer.module->params) {
    if (name == "weight") return tensor.rank() == 2;
  }
  return false;
}

void osf_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  const Tensor& weight = layer.weight();
  const std::uint64_t rows = weight.shape()[0], cols = weight.shape()[1];
  const std::uint64_t min_dim = std::min(rows, cols);
  const std::uint64_t low = min_dim - osf_high_rank(layer, ctx, min_dim);
  // A ParameterDict built from a plain dict holds its entries sorted by name.
  put(out, layer, ctx, "osf_svd_params", ctx.make.zeros(weight, {low}), ".S_low");
  put(out, layer, ctx, "osf_svd_params", ctx.make.zeros(weight, {rows, low}), ".U_low");
  put(out, layer, ctx, "osf_svd_params", ctx.make.zeros(weight, {low, cols}), ".V_low");
}

}  // namespace peft::injection
