// The task-tensor merges of PEFT's utils/merge_utils.py that add_weighted_adapter uses:
// pruning (by magnitude or with a random mask), sign election and the weighted (disjoint)
// sum. Tensors are flat float64 values in row-major order, since both the magnitude order
// and the random masks depend only on that order.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pycompat/torch_random.hpp"

namespace peft::merge {

enum class Pruning : std::uint8_t { None, Magnitude, Random };
enum class SignMethod : std::uint8_t { Total, Frequency };

struct TaskMix {
  Pruning pruning = Pruning::None;
  bool elect_sign = false;  // TIES: keep only entries agreeing with the elected sign
  double density = 1.0;     // fraction kept by pruning; >= 1 keeps everything
  SignMethod sign_method = SignMethod::Total;
  // Random pruning draws its masks from here, in call order (torch.bernoulli's order).
  numeric::TorchGenerator* generator = nullptr;
};

// Keeps the int(density * n) entries of largest magnitude (the lower index first among
// equal magnitudes), zeroes the others.
void prune_magnitude(std::vector<double>& values, double density);

// Multiplies by a torch.bernoulli mask of probability `density` (rounded to float32, as
// torch.full_like makes it), one generator output per element. PEFT v0.18.0 does not
// rescale the kept values by 1/density (it computes the division and drops it).
void prune_random(std::vector<double>& values, double density, numeric::TorchGenerator& generator);

// Prunes each tensor (in order, so random masks are drawn as PEFT draws them), then returns
// sum_i weights[i] * P_i, or with sign election the sum over the entries whose sign is the
// elected one divided by how many of them there are (at least 1). The election looks at
// the pruned, unweighted tensors, as PEFT's does.
std::vector<double> mix_task_tensors(std::vector<std::vector<double>> tensors,
                                     std::span<const double> weights, const TaskMix& mix);

}  // namespace peft::merge
