// The LyCORIS family. LoHa: W += (alpha/r) * (w1_a @ w1_b) ⊙ (w2_a @ w2_b). LoKr:
// W += (alpha/r) * kron(w1, w2). Factors may be stored whole, as a low-rank pair, or (conv,
// use_effective_conv2d) as a Tucker core t with two projections. The product is reshaped
// to the weight's shape.
#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"
#include "peft/module_match.hpp"

namespace peft::merge {
namespace {

// A factor as a flat array with its shape.
struct Factor {
  Shape shape;
  Values v;
};

// F[p, q, h, w] = sum_ij t[i, j, h, w] * a[i, p] * b[j, q] (a [r, P], b [r, Q]).
Factor tucker(const Tensor& t, const Tensor& a, const Tensor& b) {
  const Mat am = as_matrix(a);
  const Mat bm = as_matrix(b);
  const Values tv = t.to_doubles();
  const std::size_t r1 = static_cast<std::size_t>(t.shape().at(0));
  const std::size_t r2 = static_cast<std::size_t>(t.shape().at(1));
  const std::size_t k = static_cast<std::size_t>(t.numel()) / (r1 * r2);
  Factor f;
  f.shape = {am.cols, bm.cols};
  for (std::size_t i = 2; i < t.rank(); ++i) f.shape.push_back(t.shape()[i]);
  f.v.assign(am.cols * bm.cols * k, 0.0);
  for (std::size_t i = 0; i < r1; ++i) {
    for (std::size_t j = 0; j < r2; ++j) {
      for (std::size_t p = 0; p < am.cols; ++p) {
        for (std::size_t q = 0; q < bm.cols; ++q) {
          const double c = am(i, p) * bm(j, q);
          for (std::size_t x = 0; x < k; ++x) {
            f.v[(p * bm.cols + q) * k + x] += c * tv[(i * r2 + j) * k + x];
          }
        }
      }
    }
  }
  return f;
}

Factor product(const Tensor& a, const Tensor& b) {
  const Mat m = matmul(as_matrix(a), as_matrix(b));
  return Factor{{m.rows, m.cols}, m.v};
}

Factor whole(const Tensor& t) {
  return Factor{t.shape(), t.to_doubles()};
}

// The factor `name` (1 or 2) in whichever form the file stores it.
Factor factor(const ModuleInput& in, const std::string& prefix, const std::string& n) {
  if (const Tensor* w = in.find(prefix + "w" + n)) return whole(*w);
  const Tensor& a = in.param(prefix + "w" + n + "_a");
  const Tensor& b = in.param(prefix + "w" + n + "_b");
  if (const Tensor* t = in.find(prefix + "t" + n)) return tucker(*t, a, b);
  return product(a, b);
}

// kron(x, y); a 2-D x against a 4-D y gets two trailing singleton axes.
Factor kron(Factor x, const Factor& y) {
  while (x.shape.size() < y.shape.size()) x.shape.push_back(1);
  Factor out;
  const std::size_t rank = x.shape.size();
  if (y.shape.size() != rank) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("LoKr factors {} and {} cannot be combined", shape_to_string(x.shape),
                            shape_to_string(y.shape)));
  }
  out.shape.resize(rank);
  for (std::size_t d = 0; d < rank; ++d) out.shape[d] = x.shape[d] * y.shape[d];
  out.v.assign(shape_numel(out.shape), 0.0);
  std::vector<std::size_t> ix(rank), iy(rank);
  const std::size_t nx = x.v.size(), ny = y.v.size();
  for (std::size_t fx = 0; fx < nx; ++fx) {
    std::size_t rem = fx;
    for (std::size_t d = rank; d-- > 0;) {
      ix[d] = rem % x.shape[d];
      rem /= x.shape[d];
    }
    for (std::size_t fy = 0; fy < ny; ++fy) {
      std::size_t r2 = fy;
      for (std::size_t d = rank; d-- > 0;) {
        iy[d] = r2 % y.shape[d];
        r2 /= y.shape[d];
      }
      std::size_t flat = 0;
      for (std::size_t d = 0; d < rank; ++d)
        flat = flat * out.shape[d] + ix[d] * y.shape[d] + iy[d];
      out.v[flat] = x.v[fx] * y.v[fy];
    }
  }
  return out;
}

void push_delta(const ModuleInput& in, Factor f, double scale, std::vector<Op>& ops) {
  scale_values(f.v, scale);
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    if (f.v.size() != shape_numel(shape)) {
      throw Error(ErrorCode::ShapeMismatch, "",
                  fmt::format("{}: the update {} does not fit the weight {}", origin,
                              shape_to_string(f.shape), shape_to_string(shape)));
    }
    return f.v;
  };
  ops.push_back(std::move(op));
}

double lycoris_scale(const ModuleInput& in) {
  return alpha_for(in.config(), in.module) / rank_for(in.config(), in.module);
}

}  // namespace

void build_loha(const ModuleInput& in, std::vector<Op>& ops) {
  Factor f1 = factor(in, "hada_", "1");
  const Factor f2 = factor(in, "hada_", "2");
  if (f1.v.size() != f2.v.size()) {
    throw Error(ErrorCode::ShapeMismatch, in.config().source(),
                fmt::format("{}: LoHa factors {} and {} differ in size", in.origin,
                            shape_to_string(f1.shape), shape_to_string(f2.shape)));
  }
  for (std::size_t i = 0; i < f1.v.size(); ++i) f1.v[i] *= f2.v[i];
  push_delta(in, std::move(f1), lycoris_scale(in), ops);
}

void build_lokr(const ModuleInput& in, std::vector<Op>& ops) {
  push_delta(in, kron(factor(in, "lokr_", "1"), factor(in, "lokr_", "2")), lycoris_scale(in), ops);
}

}  // namespace peft::merge
