// add_weighted_adapter beyond the fixtures: the pruning and sign-election rules on small
// hand-worked tensors, PEFT's refusals, and the options whose effect no fixture shows
// (module order of DARE masks, density >= 1, a single source, svd_full_matrices).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "merge/task_arithmetic.hpp"
#include "peft/error.hpp"
#include "peft/merge.hpp"
#include "test_support.hpp"

namespace peft {
namespace {

using merge::Pruning;
using merge::SignMethod;
using merge::TaskMix;

TEST(TaskArithmetic, MagnitudePruningKeepsTheLargestEntries) {
  std::vector<double> v{0.1, -0.5, 0.3, -0.2, 0.0};
  merge::prune_magnitude(v, 0.4);  // int(0.4 * 5) = 2 entries kept
  EXPECT_EQ(v, (std::vector<double>{0.0, -0.5, 0.3, 0.0, 0.0}));
  std::vector<double> none{1.0, 2.0};
  merge::prune_magnitude(none, 0.49);  // int(0.98) = 0
  EXPECT_EQ(none, (std::vector<double>{0.0, 0.0}));
}

TEST(TaskArithmetic, RandomPruningIsTorchBernoulli) {
  // torch.bernoulli(p) on float32: one 32-bit output per element, kept when its low 24 bits
  // as a fraction of 2^24 are below p.
  std::vector<double> v(1000, 1.0);
  numeric::TorchGenerator generator(1234);
  merge::prune_random(v, 0.3, generator);
  std::mt19937 reference(1234);
  int kept = 0;
  for (double x : v) {
    const bool expect = static_cast<double>(reference() & 0xFFFFFF) / 16777216.0 < 0.3;
    EXPECT_EQ(x, expect ? 1.0 : 0.0);
    kept += x != 0.0;
  }
  EXPECT_GT(kept, 230);  // about 300, and not all
  EXPECT_LT(kept, 370);
}

TEST(TaskArithmetic, SignElectionAndDisjointMean) {
  const std::vector<std::vector<double>> tensors{{1.0, -2.0, 0.0}, {-3.0, -1.0, 0.0}};
  const std::vector<double> weights{1.0, 2.0};
  TaskMix mix;
  mix.elect_sign = true;
  // total: sums -2, -3, 0 elect -, -, +; entry 2 has no agreeing (non-zero) value.
  EXPECT_EQ(merge::mix_task_tensors(tensors, weights, mix),
            (std::vector<double>{-6.0, (-2.0 - 2.0) / 2, 0.0}));
  // frequency: sign sums 0, -2, 0 elect +, -, +.
  mix.sign_method = SignMethod::Frequency;
  EXPECT_EQ(merge::mix_task_tensors(tensors, weights, mix),
            (std::vector<double>{1.0, (-2.0 - 2.0) / 2, 0.0}));
  mix.elect_sign = false;
  EXPECT_EQ(merge::mix_task_tensors(tensors, weights, mix), (std::vector<double>{-5.0, -4.0, 0.0}));
}

// A LoRA adapter on `modules`, rank r, with pseudo-random factors [r, 6] and [5, r].
MergeAdapter source(const std::string& name, int r, const std::vector<std::string>& modules,
                    std::uint32_t seed) {
  PeftConfig config = PeftConfig::make(PeftType::LORA);
  config.mutable_json()["r"] = r;
  config.mutable_json()["lora_alpha"] = 2 * r;
  config.mutable_json()["target_modules"] = modules;
  config.mutable_json()["init_lora_weights"] = false;
  std::mt19937 random(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto fill = [&](Shape shape) {
    std::vector<float> v(shape_numel(shape));
    for (float& x : v) x = uniform(random);
    return Tensor::from_floats(DType::F32, std::move(shape), v);
  };
  StateDict w;
  const auto rank = static_cast<std::uint64_t>(r);
  for (const auto& m : modules) {
    w.set("base_model.model." + m + ".lora_A.weight", fill({rank, 6}));
    w.set("base_model.model." + m + ".lora_B.weight", fill({5, rank}));
  }
  return MergeAdapter{name, config, w, {}};
}

WeightedAdapterOptions with(std::string type) {
  WeightedAdapterOptions o;
  o.combination_type = std::move(type);
  return o;
}

TEST(Weighted, RefusesWhatPeftRefuses) {
  const std::vector<MergeAdapter> sources{source("a", 2, {"lin"}, 1), source("b", 3, {"lin"}, 2)};
  const std::vector<double> weights{0.5, 0.5};
  auto ties = with("ties");
  ties.density = 0.5;
  EXPECT_PEFT_ERROR(add_weighted_adapter(sources, weights, "c", ties), ErrorCode::InvalidArgument,
                    "equal rank");
  const std::vector<MergeAdapter> equal{source("a", 2, {"lin"}, 1), source("b", 2, {"lin"}, 2)};
  EXPECT_PEFT_ERROR(add_weighted_adapter(equal, weights, "c", with("dare_linear")),
                    ErrorCode::InvalidArgument, "density");
  auto unseeded = with("dare_ties");
  unseeded.density = 0.5;
  EXPECT_PEFT_ERROR(add_weighted_adapter(equal, weights, "c", unseeded), ErrorCode::InvalidArgument,
                    "torch_seed");
  auto negative = with("magnitude_prune");
  negative.density = -0.1;
  EXPECT_PEFT_ERROR(add_weighted_adapter(equal, weights, "c", negative), ErrorCode::InvalidArgument,
                    ">= 0");
  auto sign = with("ties");
  sign.density = 0.5;
  sign.majority_sign_method = "most";
  EXPECT_PEFT_ERROR(add_weighted_adapter(equal, weights, "c", sign), ErrorCode::InvalidArgument,
                    "'most'");
  auto driver = with("svd");
  driver.svd_driver = "gesvd";
  EXPECT_PEFT_ERROR(add_weighted_adapter(sources, weights, "c", driver), ErrorCode::InvalidArgument,
                    "CUDA");
  auto clamp = with("svd");
  clamp.svd_clamp = 1.5;
  EXPECT_PEFT_ERROR(add_weighted_adapter(sources, weights, "c", clamp), ErrorCode::InvalidArgument,
                    "quantile");
  // The svd family accepts different ranks, cat too.
  EXPECT_NO_THROW(add_weighted_adapter(sources, weights, "c", with("svd")));
  EXPECT_NO_THROW(add_weighted_adapter(sources, weights, "c", with("cat")));
}

TEST(Weighted, RefusesConv1dInTheSvdFamily) {
  std::vector<MergeAdapter> sources{source("a", 2, {}, 1), source("b", 2, {}, 2)};
  for (auto& s : sources) {
    s.weights.set("base_model.model.conv.lora_A.weight",
                  Tensor::zeros(DType::F32, {2, 3, 3}));  // Conv1d: [r, in, k]
    s.weights.set("base_model.model.conv.lora_B.weight", Tensor::zeros(DType::F32, {4, 2, 1}));
  }
  const std::vector<double> weights{0.5, 0.5};
  auto ties_svd = with("ties_svd");
  ties_svd.density = 0.5;
  EXPECT_PEFT_ERROR(add_weighted_adapter(sources, weights, "c", ties_svd), ErrorCode::Unsupported,
                    "conv");
  EXPECT_NO_THROW(add_weighted_adapter(sources, weights, "c", with("linear")));
}

TEST(Weighted, OneSourceIsCombinedAsLinear) {
  const std::vector<MergeAdapter> one{source("a", 2, {"lin"}, 1)};
  const std::vector<double> weight{0.8};
  Diagnostics warnings;
  auto dare = with("dare_ties");
  dare.warnings = &warnings;  // no density, no seed: PEFT switches to linear first
  const MergeAdapter got = add_weighted_adapter(one, weight, "c", dare);
  const MergeAdapter linear = add_weighted_adapter(one, weight, "c", with("linear"));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].code, "single_source_linear");
  for (const auto& [key, t] : linear.weights) EXPECT_TRUE(got.weights.at(key).equals(t)) << key;
}

TEST(Weighted, DensityOneDrawsNothingAndPrunesNothing) {
  const std::vector<MergeAdapter> sources{source("a", 2, {"lin"}, 1), source("b", 2, {"lin"}, 2)};
  const std::vector<double> weights{0.7, -0.4};
  Diagnostics warnings;
  auto dare = with("dare_linear");
  dare.density = 1.0;  // no torch_seed needed: nothing is drawn
  dare.warnings = &warnings;
  const MergeAdapter got = add_weighted_adapter(sources, weights, "c", dare);
  const MergeAdapter linear = add_weighted_adapter(sources, weights, "c", with("linear"));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].code, "density_no_pruning");
  for (const auto& [key, t] : linear.weights) EXPECT_TRUE(got.weights.at(key).equals(t)) << key;
}

TEST(Weighted, DareMasksFollowTheModuleOrder) {
  const std::vector<std::string> modules{"layers.10.q", "layers.2.q"};
  const std::vector<MergeAdapter> sources{source("a", 2, modules, 1), source("b", 2, modules, 2)};
  const std::vector<double> weights{0.5, 0.5};
  auto dare = with("dare_linear");
  dare.density = 0.5;
  dare.torch_seed = 7;
  const MergeAdapter natural = add_weighted_adapter(sources, weights, "c", dare);
  dare.module_order = {"layers.2.q", "layers.10.q"};  // the same order, given
  const MergeAdapter given = add_weighted_adapter(sources, weights, "c", dare);
  dare.module_order = {"layers.10.q", "layers.2.q"};
  const MergeAdapter reversed = add_weighted_adapter(sources, weights, "c", dare);
  const std::string key = "base_model.model.layers.2.q.lora_A.weight";
  EXPECT_TRUE(natural.weights.at(key).equals(given.weights.at(key)));
  EXPECT_FALSE(natural.weights.at(key).equals(reversed.weights.at(key)));
  dare.torch_seed = 8;
  EXPECT_FALSE(natural.weights.at(key).equals(
      add_weighted_adapter(sources, weights, "c", dare).weights.at(key)));
}

TEST(Weighted, SvdRankAboveTheMatrixRankNeedsThinMatrices) {
  // The deltas are [5, 6]: at most rank 5.
  const std::vector<MergeAdapter> sources{source("a", 4, {"lin"}, 1), source("b", 4, {"lin"}, 2)};
  const std::vector<double> weights{0.5, 0.5};
  auto svd = with("svd");
  svd.svd_rank = 6;
  EXPECT_PEFT_ERROR(add_weighted_adapter(sources, weights, "c", svd), ErrorCode::InvalidArgument,
                    "svd_full_matrices");
  svd.svd_full_matrices = false;
  const MergeAdapter thin = add_weighted_adapter(sources, weights, "c", svd);
  EXPECT_EQ(thin.weights.at("base_model.model.lin.lora_A.weight").shape(), (Shape{5, 6}));
  EXPECT_EQ(thin.weights.at("base_model.model.lin.lora_B.weight").shape(), (Shape{5, 5}));
}

TEST(Weighted, CombinationTypesAreListed) {
  const auto types = weighted_combination_types();
  EXPECT_EQ(types.size(), 11u);
  for (const auto type : types) {
    EXPECT_EQ(combination_draws_masks(type), type.starts_with("dare")) << type;
  }
}

}  // namespace
}  // namespace peft
