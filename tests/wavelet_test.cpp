// The inverse 2-D wavelet transform behind the WaveFT merge: a hand-computed Haar case, the
// filters PEFT derives, perfect reconstruction of a forward transform written here from the
// decomposition filters, and the merge rule's refusals and use_idwt=false path.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "merge/wavelet.hpp"
#include "peft/error.hpp"
#include "peft/merge.hpp"

namespace peft {
namespace {
using merge::Mat;
using merge::WaveletFilters;

const WaveletFilters& wavelet(const std::string& family) {
  const WaveletFilters* filters = merge::find_peft_wavelet(family);
  if (filters == nullptr) throw std::runtime_error("no filters for " + family);
  return *filters;
}

Mat matrix(std::size_t rows, std::size_t cols, std::vector<double> values) {
  Mat m(rows, cols);
  m.v = std::move(values);
  return m;
}

// Distinct, irregular values so that a misplaced coefficient shows.
Mat sample(std::size_t rows, std::size_t cols) {
  Mat m(rows, cols);
  for (std::size_t i = 0; i < m.v.size(); ++i)
    m.v[i] = std::sin(1.7 * static_cast<double>(i) + 0.3);
  return m;
}

double max_abs_diff(const Mat& a, const Mat& b) {
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  double worst = 0.0;
  for (std::size_t i = 0; i < a.v.size() && i < b.v.size(); ++i) {
    worst = std::max(worst, std::abs(a.v[i] - b.v[i]));
  }
  return worst;
}

// One level of the zero-padded forward transform that waverec2d inverts: pad by the crop
// (2L - 3) // 2, convolve with the decomposition filters, keep every second output.
std::vector<double> analyse(const std::vector<double>& x, const std::vector<double>& dec) {
  const std::size_t taps = dec.size(), pad = (2 * taps - 3) / 2;
  std::vector<double> padded(x.size() + 2 * pad, 0.0);
  std::copy(x.begin(), x.end(), padded.begin() + static_cast<std::ptrdiff_t>(pad));
  std::vector<double> out;
  for (std::size_t start = 0; start + taps <= padded.size(); start += 2) {
    double sum = 0.0;
    for (std::size_t j = 0; j < taps; ++j) sum += padded[start + j] * dec[taps - 1 - j];
    out.push_back(sum);
  }
  return out;
}

Mat analyse_rows(const Mat& m, const std::vector<double>& dec) {
  Mat out;
  for (std::size_t c = 0; c < m.cols; ++c) {
    std::vector<double> column(m.rows);
    for (std::size_t r = 0; r < m.rows; ++r) column[r] = m(r, c);
    const auto bands = analyse(column, dec);
    if (out.rows == 0) out = Mat(bands.size(), m.cols);
    for (std::size_t r = 0; r < bands.size(); ++r) out(r, c) = bands[r];
  }
  return out;
}

Mat transposed(const Mat& m) {
  Mat t(m.cols, m.rows);
  for (std::size_t r = 0; r < m.rows; ++r) {
    for (std::size_t c = 0; c < m.cols; ++c) t(c, r) = m(r, c);
  }
  return t;
}

// Band `row_dec` along rows, `col_dec` along columns.
Mat analyse_2d(const Mat& x, const std::vector<double>& row_dec,
               const std::vector<double>& col_dec) {
  return transposed(analyse_rows(transposed(analyse_rows(x, row_dec)), col_dec));
}

// PEFT's grid: cA | cH over cV | cD, cH high-pass along rows, cV along columns.
Mat forward_dwt2(const Mat& x, const WaveletFilters& w) {
  const Mat blocks[4] = {analyse_2d(x, w.dec_lo, w.dec_lo), analyse_2d(x, w.dec_hi, w.dec_lo),
                         analyse_2d(x, w.dec_lo, w.dec_hi), analyse_2d(x, w.dec_hi, w.dec_hi)};
  const std::size_t h = blocks[0].rows, wd = blocks[0].cols;
  Mat grid(2 * h, 2 * wd);
  for (std::size_t b = 0; b < 4; ++b) {
    for (std::size_t r = 0; r < h; ++r) {
      for (std::size_t c = 0; c < wd; ++c)
        grid(r + (b / 2) * h, c + (b % 2) * wd) = blocks[b](r, c);
    }
  }
  return grid;
}

TEST(Wavelet, HaarFiltersAsPywt) {
  const double s = std::sqrt(0.5);
  const auto& haar = wavelet("db1");
  EXPECT_EQ(haar.rec_lo, (std::vector<double>{s, s}));
  EXPECT_EQ(haar.rec_hi, (std::vector<double>{s, -s}));
  EXPECT_EQ(haar.dec_lo, (std::vector<double>{s, s}));
  EXPECT_EQ(haar.dec_hi, (std::vector<double>{-s, s}));
}

TEST(Wavelet, Db2HighPassMirrorsLowPass) {
  const auto& db2 = wavelet("db2");
  ASSERT_EQ(db2.rec_lo.size(), 4u);
  EXPECT_EQ(db2.padding, 2u);
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(db2.rec_hi[k], (k % 2 == 0 ? 1.0 : -1.0) * db2.rec_lo[3 - k]);
    EXPECT_EQ(db2.dec_lo[k], db2.rec_lo[3 - k]);
  }
}

// One 2 x 2 block per band: out[y][x] = (a ± h ± v ± d) / 2 with h's sign following y
// (high-pass along rows) and v's following x.
TEST(Wavelet, HaarInverseByHand) {
  const Mat grid = matrix(2, 2, {1.0, 2.0, 3.0, 4.0});  // a, h / v, d
  const Mat want = matrix(
      2, 2,
      {(1 + 2 + 3 + 4) / 2.0, (1 + 2 - 3 - 4) / 2.0, (1 - 2 + 3 - 4) / 2.0, (1 - 2 - 3 + 4) / 2.0});
  EXPECT_LT(max_abs_diff(merge::inverse_dwt2(grid, wavelet("db1")), want), 1e-14);
}

TEST(Wavelet, ReconstructedSizes) {
  EXPECT_EQ(merge::reconstructed_size(10, 2), 10u);  // Haar: no crop
  EXPECT_EQ(merge::reconstructed_size(22, 4), 20u);  // db2 loses 2
  EXPECT_EQ(merge::reconstructed_size(40, 20), 22u);
  EXPECT_EQ(merge::reconstructed_size(48, 48), 2u);
  EXPECT_EQ(merge::reconstructed_size(30, 48), 0u);
}

TEST(Wavelet, OddGridRefused) {
  EXPECT_THROW(merge::inverse_dwt2(Mat(3, 4), wavelet("db1")), Error);
}

void expect_perfect_reconstruction(const std::string& family, std::size_t rows, std::size_t cols) {
  SCOPED_TRACE(family);
  const Mat x = sample(rows, cols);
  const Mat back = merge::inverse_dwt2(forward_dwt2(x, wavelet(family)), wavelet(family));
  // PEFT's db3/sym tables mix 17-digit and 60-digit literals, so they are orthogonal to ~1e-12.
  EXPECT_LT(max_abs_diff(back, x), 1e-9);
}

TEST(Wavelet, HaarReconstructsPerfectly) {
  expect_perfect_reconstruction("db1", 6, 8);
}

TEST(Wavelet, LongerFiltersReconstructPerfectly) {
  expect_perfect_reconstruction("db2", 6, 10);
  expect_perfect_reconstruction("sym4", 12, 8);
  expect_perfect_reconstruction("coif2", 8, 14);
}

// Every orthogonal table PEFT carries. Its coif4 (wrong coefficients) and coif5 (48 taps
// instead of 30) are not orthogonal filters; the merge still uses them as PEFT does.
TEST(Wavelet, EveryCorrectPeftFamilyReconstructs) {
  std::vector<std::string> families;
  for (int n = 1; n <= 10; ++n) families.push_back("db" + std::to_string(n));
  for (int n = 2; n <= 10; ++n) families.push_back("sym" + std::to_string(n));
  for (int n = 1; n <= 3; ++n) families.push_back("coif" + std::to_string(n));
  for (const auto& family : families) {
    expect_perfect_reconstruction(family, 10, 12);
    EXPECT_EQ(wavelet(family).padding, wavelet(family).rec_lo.size() - 2) << family;
  }
  ASSERT_NE(merge::find_peft_wavelet("coif4"), nullptr);
  EXPECT_EQ(wavelet("coif5").rec_lo.size(), 48u);
  EXPECT_EQ(wavelet("coif5").padding, 28u);
}

TEST(Wavelet, FamiliesPeftHasNoFiltersFor) {
  for (const char* family : {"db11", "db38", "sym11", "sym20", "coif6", "coif17", "haar"}) {
    EXPECT_EQ(merge::find_peft_wavelet(family), nullptr) << family;
  }
}

// --- through the merge API -------------------------------------------------------------

MergeAdapter waveft_adapter(nlohmann::json settings, std::vector<float> spectrum,
                            std::vector<std::int64_t> positions) {
  PeftConfig config = PeftConfig::make(PeftType::WAVEFT);
  config.mutable_json()["target_modules"] = {"lin"};
  for (const auto& [key, value] : settings.items()) config.mutable_json()[key] = value;
  StateDict weights;
  const std::uint64_t n = spectrum.size();
  weights.set("base_model.model.lin.waveft_spectrum",
              Tensor::from_floats(DType::F32, {n}, spectrum));
  StateDict extras;
  extras.set("lin.waveft_indices", Tensor::from_ints(DType::I64, {2, n}, positions));
  return MergeAdapter{"default", config, weights, extras};
}

StateDict zero_base(std::uint64_t out, std::uint64_t in) {
  StateDict base;
  base.set("lin.weight", Tensor::zeros(DType::F32, {out, in}));
  return base;
}

// A single cH coefficient on a 2 x 2 Haar grid: rows [+1, -1] / 2, times scaling.
TEST(WaveftMerge, HaarByHand) {
  std::vector<MergeAdapter> adapters{waveft_adapter({{"scaling", 10.0}}, {1.0f}, {0, 1})};
  const auto merged = merge_adapters(zero_base(2, 2), adapters).at("lin.weight").to_doubles();
  EXPECT_EQ(merged, (std::vector<double>{5.0, 5.0, -5.0, -5.0}));
}

TEST(WaveftMerge, WithoutTransformScattersScaled) {
  std::vector<MergeAdapter> adapters{
      waveft_adapter({{"scaling", 2.0}, {"use_idwt", false}, {"wavelet_family", "db30"}},
                     {1.5f, -1.0f}, {2, 0, 1, 3})};
  const auto merged = merge_adapters(zero_base(3, 4), adapters).at("lin.weight").to_doubles();
  std::vector<double> want(12, 0.0);
  want[2 * 4 + 1] = 3.0;
  want[0 * 4 + 3] = -2.0;
  EXPECT_EQ(merged, want);
}

TEST(WaveftMerge, UnmergeRestoresBase) {
  std::vector<MergeAdapter> adapters{
      waveft_adapter({{"wavelet_family", "sym3"}}, {0.5f, -0.25f, 0.125f}, {0, 4, 6, 1, 2, 4})};
  StateDict base = zero_base(7, 5);
  const StateDict merged = merge_adapters(base, adapters);
  const auto restored = unmerge_adapters(merged, adapters).at("lin.weight").to_doubles();
  for (double v : restored) EXPECT_LT(std::abs(v), 1e-6);
}

void expect_unsupported(const MergeAdapter& adapter, const std::string& fragment) {
  std::vector<MergeAdapter> adapters{adapter};
  try {
    merge_adapters(zero_base(6, 5), adapters);
    ADD_FAILURE() << "merge succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported);
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(WaveftMerge, RefusesWhatPeftCannotMerge) {
  expect_unsupported(waveft_adapter({{"wavelet_family", "db12"}}, {1.0f}, {0, 0}),
                     "no filters for wavelet_family 'db12'");
  expect_unsupported(waveft_adapter({{"wavelet_family", "coif5"}}, {1.0f}, {0, 0}), "48-tap");
}

TEST(WaveftMerge, PositionOutsideWeight) {
  std::vector<MergeAdapter> adapters{waveft_adapter({}, {1.0f}, {6, 0})};
  EXPECT_THROW(merge_adapters(zero_base(6, 5), adapters), Error);
}

}  // namespace
}  // namespace peft
