#include "merge/task_arithmetic.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace peft::merge {
namespace {

int sign_of(double x) {
  return (x > 0.0) - (x < 0.0);
}

void prune(std::vector<double>& values, const TaskMix& mix) {
  // PEFT skips pruning (and draws nothing) from a density of 1 on.
  if (mix.pruning == Pruning::None || mix.density >= 1.0) return;
  if (mix.pruning == Pruning::Magnitude) {
    prune_magnitude(values, mix.density);
  } else {
    prune_random(values, mix.density, *mix.generator);
  }
}

// +1 or -1 per element: the sign of the sum of the values ("total") or of their signs
// ("frequency"); a zero sum elects +.
std::vector<int> elected_signs(const std::vector<std::vector<double>>& pruned, SignMethod method) {
  std::vector<int> elected(pruned.front().size());
  for (std::size_t e = 0; e < elected.size(); ++e) {
    double total = 0.0;
    for (const auto& t : pruned) {
      total += method == SignMethod::Total ? t[e] : static_cast<double>(sign_of(t[e]));
    }
    elected[e] = total >= 0.0 ? 1 : -1;
  }
  return elected;
}

}  // namespace

void prune_magnitude(std::vector<double>& values, double density) {
  // Python's int(density * numel): truncation of the double product.
  const auto keep = static_cast<std::size_t>(density * static_cast<double>(values.size()));
  std::vector<std::size_t> order(values.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  const auto by_magnitude = [&](std::size_t a, std::size_t b) {
    return std::abs(values[a]) > std::abs(values[b]) ||
           (std::abs(values[a]) == std::abs(values[b]) && a < b);
  };
  std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(),
                   by_magnitude);
  std::vector<bool> kept(values.size(), false);
  for (std::size_t k = 0; k < keep; ++k) kept[order[k]] = true;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!kept[i]) values[i] = 0.0;
  }
}

void prune_random(std::vector<double>& values, double density, numeric::TorchGenerator& generator) {
  // torch.bernoulli on a float32 probability tensor: a uniform float from the low 24 bits
  // of one 32-bit output, compared with p.
  const auto p = static_cast<float>(density);
  constexpr std::uint32_t kLow24 = (1u << 24) - 1;
  for (double& v : values) {
    const float u = static_cast<float>(generator.random() & kLow24) * 0x1p-24f;
    if (!(u < p)) v = 0.0;
  }
}

std::vector<double> mix_task_tensors(std::vector<std::vector<double>> tensors,
                                     std::span<const double> weights, const TaskMix& mix) {
  for (auto& t : tensors) prune(t, mix);
  const std::size_t n = tensors.front().size();
  std::vector<double> out(n, 0.0);
  if (!mix.elect_sign) {
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      for (std::size_t e = 0; e < n; ++e) out[e] += weights[i] * tensors[i][e];
    }
    return out;
  }
  const std::vector<int> elected = elected_signs(tensors, mix.sign_method);
  for (std::size_t e = 0; e < n; ++e) {
    int agreeing = 0;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      // Pruned zeros have sign 0 and never agree with an elected +1/-1.
      if (sign_of(tensors[i][e]) != elected[e]) continue;
      out[e] += weights[i] * tensors[i][e];
      ++agreeing;
    }
    out[e] /= std::max(1, agreeing);
  }
  return out;
}

}  // namespace peft::merge
