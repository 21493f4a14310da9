// Additive rules with a fixed structure instead of a low-rank product: SHiRA (a sparse set
// of entries), C3A (block-circulant), DeLoRA (normalised low rank times the base column
// norms) and MiSS/Bone (a block repeated across the weight; "bat" mode is multiplicative).
#include <cmath>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"
#include "peft/module_match.hpp"

namespace peft::merge {
namespace {

std::size_t dim(const Tensor& t, std::size_t i) {
  return static_cast<std::size_t>(t.shape().at(i));
}

[[noreturn]] void misfit(const std::string& origin, const std::string& what, const Shape& shape) {
  throw Error(
      ErrorCode::ShapeMismatch, "",
      fmt::format("{}: {} does not fit the weight {}", origin, what, shape_to_string(shape)));
}

// "bat": every r x r tile W_ac of row block a becomes W_ac + W_ac @ M_a + M_a.
void miss_bat(Values& w, const Shape& shape, const Values& m, std::size_t r, bool undo,
              const std::string& origin) {
  const Layout layout = natural_layout(shape, false);
  if (r == 0 || layout.out % r != 0 || layout.in % r != 0 || m.size() != layout.out * r) {
    misfit(origin, "the bat block", shape);
  }
  Mat full = to_out_in(w, layout);
  for (std::size_t a = 0; a < layout.out / r; ++a) {
    Mat block(r, r);
    for (std::size_t i = 0; i < r * r; ++i) block.v[i] = m[a * r * r + i];
    Mat factor = identity(r);
    add_scaled(factor, block, 1.0);
    const Mat inv = undo ? inverse(factor) : Mat();
    for (std::size_t c = 0; c < layout.in / r; ++c) {
      Mat tile(r, r);
      for (std::size_t i = 0; i < r; ++i) {
        for (std::size_t j = 0; j < r; ++j) tile(i, j) = full(a * r + i, c * r + j);
      }
      if (undo) {
        add_scaled(tile, block, -1.0);
        tile = matmul(tile, inv);
      } else {
        tile = matmul(tile, factor);
        add_scaled(tile, block, 1.0);
      }
      for (std::size_t i = 0; i < r; ++i) {
        for (std::size_t j = 0; j < r; ++j) full(a * r + i, c * r + j) = tile(i, j);
      }
    }
  }
  w = from_out_in(full, layout);
}

}  // namespace

void build_shira(const ModuleInput& in, std::vector<Op>& ops) {
  const auto idx = in.param("shira_indices").to_ints();
  const Values values = in.param("shira_weight").to_doubles();
  const std::string origin = in.origin;
  if (idx.size() != 2 * values.size()) {
    throw Error(ErrorCode::ShapeMismatch, in.config().source(),
                fmt::format("{}: shira_indices must be [2, {}]", origin, values.size()));
  }
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    const Layout layout = natural_layout(shape, false);
    Values d(shape_numel(shape), 0.0);
    for (std::size_t k = 0; k < values.size(); ++k) {
      const auto row = static_cast<std::size_t>(idx[k]);
      const auto col = static_cast<std::size_t>(idx[values.size() + k]);
      if (idx[k] < 0 || idx[values.size() + k] < 0 || row >= layout.out || col >= layout.in) {
        misfit(origin, fmt::format("SHiRA index ({}, {})", idx[k], idx[values.size() + k]), shape);
      }
      d[row * layout.in + col] += values[k];
    }
    return d;
  };
  ops.push_back(std::move(op));
}

void build_c3a(const ModuleInput& in, std::vector<Op>& ops) {
  const Tensor kernel = in.param("c3a_kernel");  // [out/b, in/b, b]
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    const Layout layout = natural_layout(shape, false);
    const std::size_t bo = dim(kernel, 0), bi = dim(kernel, 1), b = dim(kernel, 2);
    if (bo * b != layout.out || bi * b != layout.in) misfit(origin, "c3a_kernel", shape);
    const Values k = kernel.to_doubles();
    Mat d(layout.out, layout.in);
    for (std::size_t i = 0; i < bo; ++i) {
      for (std::size_t j = 0; j < bi; ++j) {
        for (std::size_t p = 0; p < b; ++p) {
          for (std::size_t q = 0; q < b; ++q) {
            d(i * b + p, j * b + q) =
                k[(i * bi + j) * b + (q + b - p) % b] / static_cast<double>(layout.in);
          }
        }
      }
    }
    return d.v;
  };
  ops.push_back(std::move(op));
}

void build_delora(const ModuleInput& in, std::vector<Op>& ops) {
  Mat a = as_matrix(in.param("delora_A"));  // [r, in]
  Mat b = as_matrix(in.param("delora_B"));  // [out, r]
  const double lambda = scalar_of(in.param("delora_lambda"), in.origin + ": delora_lambda");
  const Values w_norm = in.param("delora_w_norm").to_doubles();
  const double r = rank_for(in.config(), in.module);
  for (std::size_t k = 0; k < a.rows; ++k) {
    double na = 0.0, nb = 0.0;
    for (std::size_t i = 0; i < a.cols; ++i) na += a(k, i) * a(k, i);
    for (std::size_t o = 0; o < b.rows; ++o) nb += b(o, k) * b(o, k);
    const double f = lambda / r / (std::max(std::sqrt(na), 1e-4) * std::max(std::sqrt(nb), 1e-4));
    for (std::size_t i = 0; i < a.cols; ++i) a(k, i) *= f;
  }
  Mat d = matmul(b, a);
  if (w_norm.size() != d.cols) misfit(in.origin, "delora_w_norm", {d.rows, d.cols});
  for (std::size_t o = 0; o < d.rows; ++o) {
    for (std::size_t i = 0; i < d.cols; ++i) d(o, i) *= w_norm[i];
  }
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) { return delta_in_layout(d, shape, false, origin); };
  ops.push_back(std::move(op));
}

void build_miss(const ModuleInput& in, std::vector<Op>& ops) {
  const bool bone = in.config().peft_type() == PeftType::BONE;
  const Tensor block = in.param(bone ? "bone_block" : "miss_block");
  const auto init = in.config().find("init_weights");
  const std::string mode = init != nullptr && init->is_string() ? init->get<std::string>() : "";
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  if (mode == "bat") {
    const std::size_t r = dim(block, block.rank() - 1);
    const Values m = block.to_doubles();
    op.transform = [=](Values& w, const Shape& s) { miss_bat(w, s, m, r, false, origin); };
    op.inverse = [=](Values& w, const Shape& s) { miss_bat(w, s, m, r, true, origin); };
  } else {
    // [r, out] (or [r, mini_r] tiled along the output axis): W[o, c] += block[c mod r, o].
    const Mat m = as_matrix(block);
    op.delta = [=](const Shape& shape) {
      const Layout layout = natural_layout(shape, false);
      if (m.cols == 0 || m.rows == 0 || (m.cols != layout.out && layout.out % m.cols != 0)) {
        misfit(origin, "the MiSS block", shape);
      }
      Values d(layout.out * layout.in);
      for (std::size_t o = 0; o < layout.out; ++o) {
        for (std::size_t c = 0; c < layout.in; ++c)
          d[o * layout.in + c] = m(c % m.rows, o % m.cols);
      }
      return d;
    };
  }
  ops.push_back(std::move(op));
}

}  // namespace peft::merge
