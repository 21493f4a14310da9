// Methods whose factors come (partly) from a bank shared by all layers: VeRA (frozen
// random A/B scaled by trained vectors), RandLoRA (frozen random bases mixed by trained
// lambda/gamma) and VB-LoRA (rows of a vector bank mixed by top-k softmax weights). All
// are additive, W += delta.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "merge/shared_bases.hpp"
#include "methods/projections.hpp"
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

void regenerate_vera_projections(MergeAdapter& adapter, const BaseShapes& base_shapes) {
  methods::draw_vera_projections(adapter.config, adapter.weights, base_shapes);
}

void regenerate_randlora_projections(MergeAdapter& adapter, const BaseShapes& base_shapes) {
  methods::draw_randlora_projections(adapter.config, adapter.weights, base_shapes);
}

}  // namespace peft
