#include "pycompat/torch_random.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "peft/dtype.hpp"

namespace peft::numeric {

float TorchGenerator::uniform_float(float from, float to) {
  constexpr std::uint32_t kMask = (1u << 24) - 1;
  const float fraction =
      static_cast<float>(random() & kMask) * (1.0f / static_cast<float>(1u << 24));
  return std::fma(fraction, to - from, from);
}

float TorchGenerator::uniform_bf16(float from, float to) {
  constexpr std::uint32_t kMask = (1u << 8) - 1;
  const float fraction = static_cast<float>(random() & kMask) * (1.0f / 256.0f);
  // to - from is a bfloat16 operation; the 8-bit by 8-bit product is exact in float, so
  // only the sum and the final conversion round.
  return round_to_bf16(fraction * round_to_bf16(to - from) + from);
}

float round_to_bf16(float value) {
  return bf16_to_f32(f32_to_bf16(value));
}

std::vector<float> torch_kaiming_uniform_bf16(std::size_t count, std::size_t fan_in,
                                              double negative_slope, TorchGenerator& generator) {
  // torch.nn.init computes the bound in double; uniform_ converts it to bfloat16 via float.
  const double gain = std::sqrt(2.0 / (1.0 + negative_slope * negative_slope));
  const double bound = std::sqrt(3.0) * (gain / std::sqrt(static_cast<double>(fan_in)));
  const float from = round_to_bf16(static_cast<float>(-bound));
  const float to = round_to_bf16(static_cast<float>(bound));
  std::vector<float> out(count);
  for (float& value : out) value = generator.uniform_bf16(from, to);
  return out;
}

std::vector<float> torch_rand(std::size_t count, TorchGenerator& generator) {
  std::vector<float> out(count);
  for (float& value : out) value = generator.uniform_float(0.0f, 1.0f);
  return out;
}

double torch_std(std::span<const float> values) {
  if (values.size() < 2) return std::numeric_limits<double>::quiet_NaN();
  double mean = 0.0;
  for (float v : values) mean += v;
  mean /= static_cast<double>(values.size());
  double squares = 0.0;
  for (float v : values) squares += (v - mean) * (v - mean);
  return std::sqrt(squares / static_cast<double>(values.size() - 1));
}

std::vector<float> torch_kaiming_uniform(std::size_t rows, std::size_t cols,
                                         TorchGenerator& generator) {
  // Python computes the bound in double; uniform_ receives it as float.
  const double bound = std::sqrt(3.0) * (std::sqrt(2.0) / std::sqrt(static_cast<double>(cols)));
  const auto from = static_cast<float>(-bound), to = static_cast<float>(bound);
  std::vector<float> out(rows * cols);
  for (float& value : out) value = generator.uniform_float(from, to);
  return out;
}

std::vector<std::int64_t> torch_randperm_prefix(std::uint64_t n, std::uint64_t seed,
                                                std::size_t count) {
  count = static_cast<std::size_t>(std::min<std::uint64_t>(count, n));
  TorchGenerator generator(seed);
  const bool wide = n >= std::numeric_limits<std::uint32_t>::max() / 20;
  // The shuffled array, stored only where a swap changed it (element i is i otherwise).
  std::unordered_map<std::uint64_t, std::uint64_t> moved;
  moved.reserve(2 * count);
  const auto at = [&](std::uint64_t i) {
    const auto it = moved.find(i);
    return it == moved.end() ? i : it->second;
  };
  std::vector<std::int64_t> out;
  out.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t draw = wide ? generator.random64() : generator.random();
    // torch stops at n - 1 steps; the last element is then already in place.
    const std::uint64_t j = i + 1 < n ? i + draw % (n - i) : i;
    const std::uint64_t value = at(j);
    moved[j] = at(i);
    moved[i] = value;
    out.push_back(static_cast<std::int64_t>(value));
  }
  return out;
}

}  // namespace peft::numeric
