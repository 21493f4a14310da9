// FourierFT: a sparse spectrum at fixed positions, W += scaling * Re(ifft2(D)). The
// positions come from torch.randperm at load time: given in MergeAdapter::extras, or drawn
// the same way (spectrum_positions).
//
// D is real, so Re(ifft2(D)) = ifft2(H) with H[k, l] = (D[k, l] + D[-k, -l]) / 2, its
// Hermitian part (the rest transforms to a purely imaginary matrix). H is Hermitian, so
// FFTW's complex-to-real transform computes the result from half of H, in O(MN log MN).
#include <memory>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "merge/numeric_libs.hpp"
#include "merge/plan.hpp"
#include "peft/error.hpp"

namespace peft::merge {
namespace {

// FFTW's planner is not thread-safe (fftw_execute is); tensors merge in parallel.
std::mutex& fftw_planner_mutex() {
  static std::mutex mutex;
  return mutex;
}

struct FftwFree {
  void operator()(void* p) const { numeric::fftw().free(p); }
};

// Re(ifft2(dense)) of a real [rows, cols] matrix given as its nonzero entries, scaled by
// `factor` / (rows * cols) like torch.fft.ifft2 (norm="backward").
Mat real_inverse_dft(std::size_t rows, std::size_t cols, const std::vector<std::int64_t>& idx,
                     const Values& values, double factor) {
  const std::size_t half = cols / 2 + 1;
  std::unique_ptr<fftw_complex[], FftwFree> spectrum(
      static_cast<fftw_complex*>(numeric::fftw().malloc(sizeof(fftw_complex) * rows * half)));
  Mat out(rows, cols);
  if (!spectrum) throw std::bad_alloc();
  std::fill_n(&spectrum[0][0], 2 * rows * half, 0.0);
  // torch's indexed assignment: of repeated positions, the last value counts.
  const std::size_t n = values.size();
  std::unordered_map<std::size_t, std::size_t> last_entry_at;
  for (std::size_t e = 0; e < n; ++e) {
    last_entry_at[static_cast<std::size_t>(idx[e]) * cols + static_cast<std::size_t>(idx[n + e])] =
        e;
  }
  // D[k, l] gives half to H[k, l] and half to H[-k, -l]; only columns <= cols / 2 are stored.
  for (const auto& [position, e] : last_entry_at) {
    const std::size_t k = position / cols, l = position % cols;
    const std::size_t mk = (rows - k) % rows, ml = (cols - l) % cols;
    if (l < half) spectrum[k * half + l][0] += 0.5 * values[e];
    if (ml < half) spectrum[mk * half + ml][0] += 0.5 * values[e];
  }
  fftw_plan plan = nullptr;
  {
    const std::lock_guard lock(fftw_planner_mutex());
    plan = numeric::fftw().plan_dft_c2r_2d(static_cast<int>(rows), static_cast<int>(cols),
                                           spectrum.get(), out.v.data(), FFTW_ESTIMATE);
  }
  if (plan == nullptr)
    throw Error(ErrorCode::InvalidArgument, "", "FFTW could not plan the transform");
  numeric::fftw().execute(plan);
  {
    const std::lock_guard lock(fftw_planner_mutex());
    numeric::fftw().destroy_plan(plan);
  }
  const double scale = factor / static_cast<double>(rows * cols);
  for (double& v : out.v) v *= scale;
  return out;
}

}  // namespace

void build_fourierft(const ModuleInput& in, std::vector<Op>& ops) {
  const Values spectrum = in.param("fourierft_spectrum").to_doubles();
  const double scaling = in.config().get_double("scaling", 150.0);
  const bool fan_in_fan_out = in.config().fan_in_fan_out();
  const std::size_t n = spectrum.size();
  const SpectrumPositions positions = spectrum_positions(in, "fourierft_indices");
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    const Layout layout = natural_layout(shape, fan_in_fan_out);
    const auto idx = positions.resolve(n, layout.out, layout.in);
    for (std::size_t k = 0; k < n; ++k) {
      const auto row = idx[k], col = idx[n + k];
      if (row < 0 || col < 0 || static_cast<std::size_t>(row) >= layout.out ||
          static_cast<std::size_t>(col) >= layout.in) {
        throw Error(ErrorCode::ShapeMismatch, "",
                    fmt::format("{}: spectrum position ({}, {}) is outside the [{}, {}] weight",
                                origin, row, col, layout.out, layout.in));
      }
    }
    return from_out_in(real_inverse_dft(layout.out, layout.in, idx, spectrum, scaling), layout);
  };
  ops.push_back(std::move(op));
}

}  // namespace peft::merge
