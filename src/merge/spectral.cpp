// FourierFT: a sparse spectrum at fixed positions, W += scaling * Re(ifft2(D)). The
// positions come from torch.randperm at load time; they are an input (MergeAdapter::extras).
// The inverse DFT is evaluated through cos(a + b) = cos a cos b - sin a sin b, i.e. two
// products [out, n] x [n, in].
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"

namespace peft::merge {

void build_fourierft(const ModuleInput& in, std::vector<Op>& ops) {
  const Values spectrum = in.param("fourierft_spectrum").to_doubles();
  const auto idx = in.extra("fourierft_indices").to_ints();
  const double scaling = in.config().get_double("scaling", 150.0);
  const bool fan_in_fan_out = in.config().fan_in_fan_out();
  const std::string origin = in.origin;
  const std::size_t n = spectrum.size();
  if (idx.size() != 2 * n) {
    throw Error(ErrorCode::ShapeMismatch, in.config().source(),
                fmt::format("{}: fourierft_indices must be [2, {}]", origin, n));
  }
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    const Layout layout = natural_layout(shape, fan_in_fan_out);
    const std::size_t out = layout.out, cols = layout.in;
    Mat cr(out, n), sr(out, n), cc(n, cols), sc(n, cols);
    for (std::size_t k = 0; k < n; ++k) {
      const auto row = idx[k], col = idx[n + k];
      if (row < 0 || col < 0 || static_cast<std::size_t>(row) >= out ||
          static_cast<std::size_t>(col) >= cols) {
        throw Error(ErrorCode::ShapeMismatch, "",
                    fmt::format("{}: spectrum position ({}, {}) is outside the [{}, {}] weight",
                                origin, row, col, out, cols));
      }
      const double f = scaling * spectrum[k] / static_cast<double>(out * cols);
      for (std::size_t p = 0; p < out; ++p) {
        const double a = 2.0 * std::numbers::pi * static_cast<double>((p * row) % out) /
                         static_cast<double>(out);
        cr(p, k) = f * std::cos(a);
        sr(p, k) = f * std::sin(a);
      }
      for (std::size_t q = 0; q < cols; ++q) {
        const double b = 2.0 * std::numbers::pi * static_cast<double>((q * col) % cols) /
                         static_cast<double>(cols);
        cc(k, q) = std::cos(b);
        sc(k, q) = std::sin(b);
      }
    }
    Mat d = matmul(cr, cc);
    add_scaled(d, matmul(sr, sc), -1.0);
    return from_out_in(d, layout);
  };
  ops.push_back(std::move(op));
}

}  // namespace peft::merge
