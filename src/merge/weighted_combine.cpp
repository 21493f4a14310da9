#include "merge/weighted_combine.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft::merge {
namespace {

Mat rows_of(const Tensor& t) {
  const auto r = static_cast<std::size_t>(t.shape().at(0));
  return as_matrix(t, r, static_cast<std::size_t>(t.numel()) / r, "lora factor");
}

// sign(x) sqrt(|x|): PEFT's weight of each factor, so that the own term B_i A_i gets |w_i s_i|.
double factor_weight(double ws) {
  return std::copysign(std::sqrt(std::abs(ws)), ws);
}

// Mixes one factor (A or B) of every present source; all must have one shape.
Mat mix_factor(const ModuleSources& m, bool a, const TaskMix& mix) {
  std::vector<std::vector<double>> tensors;
  std::vector<double> weights;
  Mat first;
  for (std::size_t i = 0; i < m.parts.size(); ++i) {
    Mat f = rows_of(a ? m.parts[i]->a : m.parts[i]->b);
    if (i == 0) {
      first = f;
    } else if (f.rows != first.rows || f.cols != first.cols) {
      throw Error(ErrorCode::ShapeMismatch, "",
                  fmt::format("add_weighted_adapter: the {} factors of '{}' differ in shape "
                              "([{}, {}] and [{}, {}]); this combination needs equal ranks",
                              a ? "A" : "B", m.path, first.rows, first.cols, f.rows, f.cols));
    }
    tensors.push_back(std::move(f.v));
    weights.push_back(factor_weight(m.weights[i] * m.parts[i]->scaling));
  }
  first.v = mix_task_tensors(std::move(tensors), weights, mix);
  return first;
}

// D_i = s_i B_i A_i as PEFT's get_delta_weight returns it, flattened in the base weight's
// layout (the order random masks and magnitude ties follow).
std::vector<double> delta_values(const SourceFactors& f) {
  Mat d = matmul(rows_of(f.b), rows_of(f.a));
  for (double& x : d.v) x *= f.scaling;
  return f.transposed ? transpose(d).v : d.v;
}

}  // namespace

CombinedFactors combine_cat(const ModuleSources& m) {
  const std::size_t in = rows_of(m.parts.front()->a).cols;
  const std::size_t out = rows_of(m.parts.front()->b).rows;
  CombinedFactors f{Mat(m.new_rank, in), Mat(out, m.new_rank)};
  std::size_t offset = 0;
  for (std::size_t i = 0; i < m.parts.size(); ++i) {
    const Mat ai = rows_of(m.parts[i]->a), bi = rows_of(m.parts[i]->b);
    const double ws = m.weights[i] * m.parts[i]->scaling;
    for (std::size_t k = 0; k < ai.rows; ++k) {
      for (std::size_t c = 0; c < in; ++c) f.a(offset + k, c) = ws * ai(k, c);
      for (std::size_t o = 0; o < out; ++o) f.b(o, offset + k) = bi(o, k);
    }
    offset += ai.rows;
  }
  return f;
}

CombinedFactors combine_per_factor(const ModuleSources& m, const TaskMix& mix) {
  // Order matters for the random masks: every A first, then every B.
  Mat a = mix_factor(m, true, mix);
  Mat b = mix_factor(m, false, mix);
  return {std::move(a), std::move(b)};
}

CombinedFactors combine_per_delta(const ModuleSources& m, const TaskMix& mix,
                                  const SvdRequest& request) {
  const Mat a0 = rows_of(m.parts.front()->a), b0 = rows_of(m.parts.front()->b);
  const std::size_t out = b0.rows, in = a0.cols;
  std::vector<std::vector<double>> deltas;
  std::vector<double> weights;
  for (std::size_t i = 0; i < m.parts.size(); ++i) {
    deltas.push_back(delta_values(*m.parts[i]));
    weights.push_back(m.weights[i] * m.parts[i]->scaling);
  }
  Mat total(m.parts.front()->transposed ? in : out, m.parts.front()->transposed ? out : in);
  total.v = mix_task_tensors(std::move(deltas), weights, mix);
  if (m.parts.front()->transposed) total = transpose(total);
  const std::size_t full = std::min(out, in);
  if (request.rank > full && request.full_matrices) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("add_weighted_adapter: rank {} exceeds min(out, in) = {} of '{}': with "
                            "svd_full_matrices the factors PEFT cuts from the SVD do not fit "
                            "together (pass svd_full_matrices=false to keep rank {})",
                            request.rank, full, m.path, full));
  }
  const Svd d = svd(total);
  const std::size_t k = std::min(request.rank, d.s.size());
  CombinedFactors f{Mat(k, in), Mat(out, k)};
  for (std::size_t x = 0; x < k; ++x) {
    for (std::size_t c = 0; c < in; ++c) f.a(x, c) = d.v(c, x);
    for (std::size_t o = 0; o < out; ++o) f.b(o, x) = d.u(o, x) * d.s[x];
  }
  if (request.clamp) clamp_factors(f, *request.clamp);
  return f;
}

double quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double position = q * static_cast<double>(values.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (values[above] - values[below]) * (position - static_cast<double>(below));
}

void clamp_factors(CombinedFactors& f, double q) {
  std::vector<double> all = f.b.v;  // PEFT concatenates U diag(S), then Vh
  all.insert(all.end(), f.a.v.begin(), f.a.v.end());
  if (all.empty()) return;
  const double hi = quantile(std::move(all), q);
  // torch.clamp(x, -hi, hi) is min(max(x, -hi), hi), also when hi < 0.
  for (Mat* m : {&f.a, &f.b}) {
    for (double& x : m->v) x = std::min(std::max(x, -hi), hi);
  }
}

}  // namespace peft::merge
