// Values PyTorch draws from its CPU generator that PEFT does not save, reproduced exactly
// so that such adapters merge without Python.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace peft::numeric {

// torch.Generator().manual_seed(seed) on the CPU: the standard 32-bit Mersenne Twister
// seeded with the seed's low 32 bits; random64 is two draws, high half first.
class TorchGenerator {
 public:
  explicit TorchGenerator(std::uint64_t seed) : engine_(static_cast<std::uint32_t>(seed)) {}
  std::uint32_t random() {
    return static_cast<std::uint32_t>(engine_());
  }  // mt19937 yields 32 bits
  std::uint64_t random64() {
    const std::uint64_t high = engine_();
    return (high << 32) | engine_();
  }
  // One float32 of tensor.uniform_(from, to): the low 24 bits of a draw as a fraction of
  // 2^24, times (to - from), plus from, fused as torch's vectorised CPU kernels compile it
  // (checked bit for bit against VeRA projections PEFT saved).
  float uniform_float(float from, float to);
  // One value of tensor.uniform_(from, to) on a bfloat16 tensor (from and to already
  // bfloat16): the low 8 bits of a draw as a fraction of 2^8, scaled in float, rounded to
  // bfloat16. Returned widened to float.
  float uniform_bf16(float from, float to);

 private:
  std::mt19937 engine_;
};

// The first `count` values of torch.randperm(n, generator=torch.Generator().manual_seed(seed))
// on the CPU: a Fisher-Yates shuffle where step i swaps element i with element
// i + r % (n - i), r being one 32-bit draw, or (from torch 2.0, for n of at least
// UINT32_MAX / 20) random64. Only `count` steps are needed for the first `count` values,
// so this takes O(count) time and memory.
std::vector<std::int64_t> torch_randperm_prefix(std::uint64_t n, std::uint64_t seed,
                                                std::size_t count);

// torch.empty(rows, cols).uniform_(-bound, bound, generator) with PEFT's VeRA/RandLoRA
// _kaiming_init bound, sqrt(3) * sqrt(2) / sqrt(cols), row-major.
std::vector<float> torch_kaiming_uniform(std::size_t rows, std::size_t cols,
                                         TorchGenerator& generator);

// A float rounded to the nearest bfloat16 (ties to even), as c10::BFloat16 converts.
float round_to_bf16(float value);

// torch.nn.init.kaiming_uniform_(t, a=negative_slope, mode="fan_in",
// nonlinearity="leaky_relu", generator) on a bfloat16 tensor of `count` elements whose
// fan_in is `fan_in` (size(1) times the sizes after it), widened to float.
std::vector<float> torch_kaiming_uniform_bf16(std::size_t count, std::size_t fan_in,
                                              double negative_slope, TorchGenerator& generator);

// torch.rand(count, generator): float32 uniform_(0, 1).
std::vector<float> torch_rand(std::size_t count, TorchGenerator& generator);

// tensor.std() (Bessel-corrected) before rounding to the tensor's dtype: torch accumulates
// float32 and bfloat16 inputs in double.
double torch_std(std::span<const float> values);

}  // namespace peft::numeric
