// WaveFT: a sparse grid of wavelet coefficients at fixed positions, W += scaling * IDWT(grid).
// As in FourierFT the positions come from torch.randperm at load time: given in
// MergeAdapter::extras, or drawn the same way (spectrum_positions). PEFT pads the grid by the
// filter's reach, centres the positions in it, runs one level of waverec2d and crops the centre
// [out, in] of the result.
#include <cstdint>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "merge/wavelet.hpp"
#include "peft/error.hpp"

namespace peft::merge {

// --- the inverse transform ---------------------------------------------------------------

namespace {
// waverec2d crops (2L - 3) // 2 from each border of the transposed convolution.
std::size_t border_crop(std::size_t taps) {
  return (2 * taps - 3) / 2;
}
}  // namespace

std::size_t reconstructed_size(std::size_t grid_size, std::size_t taps) {
  if (grid_size == 0) return 0;
  const std::size_t full = grid_size - 2 + taps;  // stride-2 transposed convolution
  const std::size_t crop = border_crop(taps);
  return full > 2 * crop ? full - 2 * crop : 0;
}

// The transposed convolution is written out by hand rather than as GEMMs: each coefficient
// spreads one L x L outer product of filters, and the grids WaveFT builds are sparse (n
// coefficients among out * in), so visiting the non-zeros costs O(n L^2).
Mat inverse_dwt2(const Mat& grid, const WaveletFilters& filters) {
  if (grid.rows % 2 != 0 || grid.cols % 2 != 0) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("inverse wavelet transform: the coefficient grid [{}, {}] must have "
                            "even sizes",
                            grid.rows, grid.cols));
  }
  const std::size_t taps = filters.rec_lo.size();
  const auto crop = static_cast<std::ptrdiff_t>(border_crop(taps));
  const std::size_t half_rows = grid.rows / 2, half_cols = grid.cols / 2;
  Mat out(reconstructed_size(grid.rows, taps), reconstructed_size(grid.cols, taps));
  const auto out_rows = static_cast<std::ptrdiff_t>(out.rows);
  const auto out_cols = static_cast<std::ptrdiff_t>(out.cols);
  for (std::size_t r = 0; r < grid.rows; ++r) {
    for (std::size_t c = 0; c < grid.cols; ++c) {
      const double value = grid(r, c);
      if (value == 0.0) continue;
      const bool lower = r >= half_rows, right = c >= half_cols;
      // PEFT pairs cA, cH, cV, cD with lo⊗lo, hi⊗lo, lo⊗hi, hi⊗hi (row filter ⊗ column
      // filter): the right-hand blocks are high-pass along rows, the lower ones along columns.
      const auto& row_filter = right ? filters.rec_hi : filters.rec_lo;
      const auto& col_filter = lower ? filters.rec_hi : filters.rec_lo;
      const auto row0 = static_cast<std::ptrdiff_t>(2 * (lower ? r - half_rows : r)) - crop;
      const auto col0 = static_cast<std::ptrdiff_t>(2 * (right ? c - half_cols : c)) - crop;
      for (std::size_t i = 0; i < taps; ++i) {
        const std::ptrdiff_t y = row0 + static_cast<std::ptrdiff_t>(i);
        if (y < 0 || y >= out_rows) continue;
        const double row_weight = value * row_filter[i];
        for (std::size_t j = 0; j < taps; ++j) {
          const std::ptrdiff_t x = col0 + static_cast<std::ptrdiff_t>(j);
          if (x < 0 || x >= out_cols) continue;
          out(static_cast<std::size_t>(y), static_cast<std::size_t>(x)) +=
              row_weight * col_filter[j];
        }
      }
    }
  }
  return out;
}

// --- the merge rule ----------------------------------------------------------------------

namespace {

// The spectrum's positions in the [out, in] weight: rows idx[k], columns idx[n + k].
struct Positions {
  std::vector<std::int64_t> idx;
  std::size_t count = 0;
  std::size_t row(std::size_t k) const { return static_cast<std::size_t>(idx[k]); }
  std::size_t col(std::size_t k) const { return static_cast<std::size_t>(idx[count + k]); }
};

void check_positions(const Positions& pos, std::size_t out, std::size_t in,
                     const std::string& origin) {
  for (std::size_t k = 0; k < pos.count; ++k) {
    const auto row = pos.idx[k], col = pos.idx[pos.count + k];
    if (row < 0 || col < 0 || static_cast<std::size_t>(row) >= out ||
        static_cast<std::size_t>(col) >= in) {
      throw Error(ErrorCode::ShapeMismatch, "",
                  fmt::format("{}: wavelet coefficient position ({}, {}) is outside the [{}, {}] "
                              "weight",
                              origin, row, col, out, in));
    }
  }
}

// The transform needs even sizes, so PEFT rounds the padded grid up.
std::size_t padded_size(std::size_t size, std::size_t padding) {
  const std::size_t padded = size + padding;
  return padded + padded % 2;
}

// A zero [rows, cols] grid with the spectrum assigned at its positions shifted by the offsets
// (an assignment, as PEFT's index_put: a repeated position keeps the last value).
Mat scatter(const Values& spectrum, const Positions& pos, std::size_t rows, std::size_t cols,
            std::size_t row_offset, std::size_t col_offset) {
  Mat grid(rows, cols);
  for (std::size_t k = 0; k < pos.count; ++k) {
    grid(pos.row(k) + row_offset, pos.col(k) + col_offset) = spectrum[k];
  }
  return grid;
}

Mat centre_block(const Mat& m, std::size_t rows, std::size_t cols) {
  const std::size_t top = (m.rows - rows) / 2, left = (m.cols - cols) / 2;
  Mat block(rows, cols);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) block(r, c) = m(top + r, left + c);
  }
  return block;
}

// PEFT's get_delta_weight with use_idwt, before scaling: an [out, in] matrix.
Mat wavelet_delta(const Values& spectrum, const Positions& pos, std::size_t out, std::size_t in,
                  const WaveletFilters& filters, const std::string& family,
                  const std::string& origin) {
  const std::size_t rows = padded_size(out, filters.padding);
  const std::size_t cols = padded_size(in, filters.padding);
  const Mat grid = scatter(spectrum, pos, rows, cols, (rows - out) / 2, (cols - in) / 2);
  const Mat full = inverse_dwt2(grid, filters);
  if (full.rows < out || full.cols < in) {
    throw Error(ErrorCode::Unsupported, "",
                fmt::format("{}: PEFT 0.18.0 cannot merge wavelet_family '{}': its {}-tap filter "
                            "reconstructs a [{}, {}] delta for the [{}, {}] weight (its padding "
                            "assumes {} taps)",
                            origin, family, filters.rec_lo.size(), full.rows, full.cols, out, in,
                            filters.padding + 2));
  }
  return centre_block(full, out, in);
}

const WaveletFilters& filters_for(const ModuleInput& in, const std::string& family) {
  if (const WaveletFilters* filters = find_peft_wavelet(family)) return *filters;
  throw Error(ErrorCode::Unsupported, in.config().source(),
              fmt::format("{}: PEFT 0.18.0 has no filters for wavelet_family '{}' (its wavelet "
                          "table covers db1-db10, sym2-sym10 and coif1-coif5), so it cannot "
                          "compute this adapter's delta",
                          in.origin, family));
}

}  // namespace

void build_waveft(const ModuleInput& in, std::vector<Op>& ops) {
  const Values spectrum = in.param("waveft_spectrum").to_doubles();
  const SpectrumPositions positions = spectrum_positions(in, "waveft_indices");
  const double scaling = in.config().get_double("scaling", 25.0);
  const bool fan_in_fan_out = in.config().fan_in_fan_out();
  const std::string family = in.config().get_string("wavelet_family").value_or("db1");
  // Without the transform the family is never used (PEFT builds no wavelet then).
  const bool use_idwt = in.config().get_bool("use_idwt", true);
  const WaveletFilters* filters = use_idwt ? &filters_for(in, family) : nullptr;
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    const Layout layout = natural_layout(shape, fan_in_fan_out);
    const Positions pos{positions.resolve(spectrum.size(), layout.out, layout.in), spectrum.size()};
    check_positions(pos, layout.out, layout.in, origin);
    Mat delta = filters
                    ? wavelet_delta(spectrum, pos, layout.out, layout.in, *filters, family, origin)
                    : scatter(spectrum, pos, layout.out, layout.in, 0, 0);
    for (double& v : delta.v) v *= scaling;
    return from_out_in(std::move(delta), layout);
  };
  ops.push_back(std::move(op));
}

}  // namespace peft::merge
