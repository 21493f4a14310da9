#include "numeric/torch_random.hpp"

#include <algorithm>
#include <limits>
#include <random>
#include <unordered_map>

namespace peft::numeric {

std::vector<std::int64_t> torch_randperm_prefix(std::uint64_t n, std::uint64_t seed,
                                                std::size_t count) {
  count = static_cast<std::size_t>(std::min<std::uint64_t>(count, n));
  std::mt19937 engine(static_cast<std::uint32_t>(seed));
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
    std::uint64_t draw = engine();
    if (wide) draw = (draw << 32) | engine();
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
