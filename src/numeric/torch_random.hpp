// Values PyTorch draws from its CPU generator that PEFT does not save, reproduced exactly
// so that such adapters merge without Python.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace peft::numeric {

// torch.Generator().manual_seed(seed) on the CPU: the standard 32-bit Mersenne Twister
// seeded with the seed's low 32 bits; random64 is two draws, high half first.
class TorchGenerator {
 public:
  explicit TorchGenerator(std::uint64_t seed) : engine_(static_cast<std::uint32_t>(seed)) {}
  std::uint32_t random() { return engine_(); }
  std::uint64_t random64() {
    const std::uint64_t high = engine_();
    return (high << 32) | engine_();
  }
  // One float32 of tensor.uniform_(from, to): the low 24 bits of a draw as a fraction of
  // 2^24, times (to - from), plus from, fused as torch's vectorised CPU kernels compile it
  // (checked bit for bit against VeRA projections PEFT saved).
  float uniform_float(float from, float to);

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

}  // namespace peft::numeric
