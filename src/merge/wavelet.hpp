// The wavelets of PEFT v0.18.0's WaveFT and the one-level inverse 2-D transform its
// get_delta_weight runs (peft/tuners/waveft/waverec2d.py).
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "merge/dense.hpp"

namespace peft::merge {

// The four filters of an orthogonal wavelet, named as pywt names them.
struct WaveletFilters {
  std::vector<double> rec_lo;
  std::vector<double> rec_hi;
  std::vector<double> dec_lo;
  std::vector<double> dec_hi;
  // Rows and columns WaveFT adds to the coefficient grid before the transform
  // (WAVELET_REDUCTIONS); normally rec_lo.size() - 2, see wavelet_filters.cpp for the exception.
  std::size_t padding = 0;
};

// PEFT's filters for `family` ("db2", "sym4", "coif1", ...), or nullptr when PEFT's wavelet
// table has none (its config accepts db11-db38, sym11-sym20 and coif6-coif17, but building
// the wavelet then fails, so PEFT cannot compute their delta).
const WaveletFilters* find_peft_wavelet(std::string_view family);

// Rows (or columns) of the inverse transform of a grid with `grid_size` rows (or columns)
// for a filter of `taps` taps: the transposed convolution's output less the border
// waverec2d crops. Zero when the crop eats everything.
std::size_t reconstructed_size(std::size_t grid_size, std::size_t taps);

// One level of waverec2d: `grid` (even sizes) holds the coefficient blocks cA | cH over
// cV | cD; the result is reconstructed_size() of each side.
Mat inverse_dwt2(const Mat& grid, const WaveletFilters& filters);

}  // namespace peft::merge
