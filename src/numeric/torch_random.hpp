// Values PyTorch draws from its CPU generator that PEFT does not save, reproduced exactly
// so that such adapters merge without Python.
#pragma once

#include <cstdint>
#include <vector>

namespace peft::numeric {

// The first `count` values of torch.randperm(n, generator=torch.Generator().manual_seed(seed))
// on the CPU. torch's generator is the standard 32-bit Mersenne Twister seeded with the low
// 32 bits of the seed; randperm is a Fisher-Yates shuffle where step i swaps element i with
// element i + r % (n - i), r being one 32-bit draw, or (from torch 2.0, for n of at least
// UINT32_MAX / 20) two draws as high and low halves of 64 bits. Only `count` steps are
// needed for the first `count` values, so this takes O(count) time and memory.
std::vector<std::int64_t> torch_randperm_prefix(std::uint64_t n, std::uint64_t seed,
                                                std::size_t count);

}  // namespace peft::numeric
