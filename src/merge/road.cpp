// RoAd: the outputs are rotated in pairs (p, p + g/2) inside groups of g features,
// y[p] = c1[p] y[p] - c2[p] y[p+h] (first half), y[p] = c1[p] y[p] + c2[p] y[p-h] (second
// half), with c1 = alpha cos(theta), c2 = alpha sin(theta). Merging applies the same map to
// the weight rows and the bias; unmerging inverts each 2x2 pair.
#include <cmath>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"

namespace peft::merge {
namespace {

struct Coefficients {
  Values c1, c2;
  std::size_t group = 0;
};

// Per-feature c1/c2 for the variant: road_1 shares a half-group's values between both
// halves, road_2 has one per feature, road_4 stores per group g values for c1 then g for c2.
Coefficients coefficients(const ModuleInput& in, std::size_t out) {
  const Values theta = in.param("road_theta").to_doubles();
  const Values alpha = in.param("road_alpha").to_doubles();
  const std::string variant = in.config().get_string("variant").value_or("road_1");
  const auto g = static_cast<std::size_t>(in.config().get_int("group_size", 64));
  const std::size_t h = g / 2;
  Coefficients c{Values(out), Values(out), g};
  const std::size_t expected = variant == "road_1" ? out / 2 : variant == "road_2" ? out : 2 * out;
  if (g < 2 || g % 2 != 0 || out % g != 0 || theta.size() != expected || alpha.size() != expected) {
    throw Error(ErrorCode::ShapeMismatch, in.config().source(),
                fmt::format("{}: {} with group_size {} needs {} values for {} outputs, got {}",
                            in.origin, variant, g, expected, out, theta.size()));
  }
  for (std::size_t p = 0; p < out; ++p) {
    const std::size_t grp = p / g, t = p % g;
    std::size_t i1 = p, i2 = p;
    if (variant == "road_1") {
      i1 = i2 = grp * h + t % h;
    } else if (variant == "road_4") {
      i1 = grp * 2 * g + t;
      i2 = grp * 2 * g + g + t;
    }
    c.c1[p] = alpha[i1] * std::cos(theta[i1]);
    c.c2[p] = alpha[i2] * std::sin(theta[i2]);
  }
  return c;
}

void rotate(Values& w, std::size_t out, const Coefficients& c, bool undo) {
  const std::size_t cols = w.size() / out;
  const std::size_t h = c.group / 2;
  for (std::size_t p = 0; p < out; ++p) {
    if (p % c.group >= h) continue;
    const std::size_t q = p + h;
    // [y_p; y_q] = [[c1p, -c2p], [c2q, c1q]] [x_p; x_q]
    double m00 = c.c1[p], m01 = -c.c2[p], m10 = c.c2[q], m11 = c.c1[q];
    if (undo) {
      const double det = m00 * m11 - m01 * m10;
      const double i00 = m11 / det, i01 = -m01 / det, i10 = -m10 / det, i11 = m00 / det;
      m00 = i00, m01 = i01, m10 = i10, m11 = i11;
    }
    for (std::size_t j = 0; j < cols; ++j) {
      const double x = w[p * cols + j], y = w[q * cols + j];
      w[p * cols + j] = m00 * x + m01 * y;
      w[q * cols + j] = m10 * x + m11 * y;
    }
  }
}

}  // namespace

void build_road(const ModuleInput& in, std::vector<Op>& ops) {
  // The output count is the number of features: road_2 stores one value per output.
  const std::string variant = in.config().get_string("variant").value_or("road_1");
  const std::size_t n = static_cast<std::size_t>(in.param("road_theta").numel());
  const std::size_t out = variant == "road_1" ? 2 * n : variant == "road_2" ? n : n / 2;
  const Coefficients c = coefficients(in, out);
  const std::string origin = in.origin;
  for (const bool is_bias : {false, true}) {
    Op op = in.op(is_bias ? in.bias_key() : in.weight_key());
    op.optional = is_bias;
    auto apply = [=](Values& w, const Shape& shape, bool undo) {
      if (shape.empty() || shape[0] != out) {
        throw Error(ErrorCode::ShapeMismatch, "",
                    fmt::format("{}: RoAd rotates {} outputs but the tensor is {}", origin, out,
                                shape_to_string(shape)));
      }
      rotate(w, out, c, undo);
    };
    op.transform = [=](Values& w, const Shape& s) { apply(w, s, false); };
    op.inverse = [=](Values& w, const Shape& s) { apply(w, s, true); };
    ops.push_back(std::move(op));
  }
}

}  // namespace peft::merge
