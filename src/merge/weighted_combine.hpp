// The three ways add_weighted_adapter builds the combined factors of one module
// (weighted.cpp chooses one per combination type).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "merge/dense.hpp"
#include "merge/task_arithmetic.hpp"
#include "peft/tensor.hpp"

namespace peft::merge {

// One source's LoRA factors in one module.
struct SourceFactors {
  std::string a_key, b_key;  // adapter keys (Linear/Conv "lora_A.weight", Embedding ...)
  Tensor a, b;
  double scaling = 1.0;
  bool embedding = false;
  // The base weight is [in, out] (fan_in_fan_out, embeddings): PEFT's delta, which the
  // per-delta types prune, is (B @ A)^T there.
  bool transposed = false;
};

// Combined factors: A [rank, in'] and B [out, rank].
struct CombinedFactors {
  Mat a, b;
};

// The present sources of a module with their add_weighted_adapter weights.
struct ModuleSources {
  std::string path;
  std::vector<const SourceFactors*> parts;  // present sources only, in the call's order
  std::vector<double> weights;              // w_i of those sources
  std::size_t new_rank = 0;                 // rows of the combined A
};

// A stacked [w_i s_i A_i], B = [B_i] side by side: delta = sum w_i s_i B_i A_i.
CombinedFactors combine_cat(const ModuleSources& m);

// A = mix(A_i), B = mix(B_i) with weights sign(w_i s_i) sqrt(|w_i s_i|) (linear, ties,
// dare_*, magnitude_prune); random masks are drawn for every A_i, then every B_i.
CombinedFactors combine_per_factor(const ModuleSources& m, const TaskMix& mix);

struct SvdRequest {
  std::size_t rank = 0;
  std::optional<double> clamp;
  bool full_matrices = true;
};

// The best rank-k approximation of mix(D_i) with D_i = s_i B_i A_i (in the base weight's
// layout) and weights w_i s_i (the svd family: s_i twice, as PEFT 0.18.0 does), optionally
// clamped at a quantile of the factors' entries.
CombinedFactors combine_per_delta(const ModuleSources& m, const TaskMix& mix,
                                  const SvdRequest& svd);

// torch.quantile(values, q) with linear interpolation; values are copied and sorted.
double quantile(std::vector<double> values, double q);
// Both factors clamped to [-hi, hi], hi the q-quantile of their concatenated entries.
void clamp_factors(CombinedFactors& f, double q);

}  // namespace peft::merge
