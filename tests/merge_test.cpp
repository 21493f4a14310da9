// Unit tests of the merge API's refusals and messages: shape mismatches, missing base keys,
// unknown adapters and methods, unmerge refusals, streaming entry points.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <numbers>
#include <string>

#include "merge/shared_bases.hpp"
#include "peft/error.hpp"
#include "peft/merge.hpp"
#include "peft/safetensors.hpp"
#include "pycompat/torch_random.hpp"
#include "test_support.hpp"

namespace peft {
namespace {

Tensor filled(Shape shape, float start = 0.1f) {
  std::vector<float> v(shape_numel(shape));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = start + 0.01f * static_cast<float>(i % 13);
  return Tensor::from_floats(DType::F32, std::move(shape), v);
}

PeftConfig lora_config(int r = 2, double alpha = 4) {
  PeftConfig config = PeftConfig::make(PeftType::LORA);
  config.mutable_json()["r"] = r;
  config.mutable_json()["lora_alpha"] = alpha;
  config.mutable_json()["target_modules"] = {"lin"};
  return config;
}

MergeAdapter lora_adapter(std::uint64_t out, std::uint64_t in, std::string name = "default") {
  StateDict w;
  w.set("base_model.model.lin.lora_A.weight", filled({2, in}));
  w.set("base_model.model.lin.lora_B.weight", filled({out, 2}, 0.2f));
  return MergeAdapter{std::move(name), lora_config(), w, {}};
}

TEST(Merge, AddsScaledProduct) {
  StateDict base;
  base.set("lin.weight", Tensor::zeros(DType::F32, {3, 4}));
  base.set("other.weight", filled({2, 2}));
  const StateDict merged = merge_adapters(base, {lora_adapter(3, 4)});
  EXPECT_TRUE(merged.at("other.weight").equals(base.at("other.weight")));
  const auto values = merged.at("lin.weight").to_doubles();
  // s = 4 / 2; W[0,0] = s * sum_k B[0,k] A[k,0].
  const double expected = 2.0 * (0.2f * 0.1f + 0.21f * 0.14f);  // A[1,0] is element 4
  EXPECT_NEAR(values[0], expected, 1e-6);
}

// FourierFT through FFTW against the definition, Re(ifft2(D)) summed term by term, on even
// and odd sizes and with a repeated position (the last value counts, as torch assigns).
TEST(Merge, FourierftMatchesTheDefinitionOnAnySize) {
  for (const auto& [rows, cols] : {std::pair{4, 6}, {5, 7}, {6, 9}, {1, 3}}) {
    const std::vector<std::int64_t> row = {0, rows - 1, rows / 2, 1 % rows, rows - 1};
    const std::vector<std::int64_t> col = {0, cols / 2, cols - 1, 2 % cols, cols / 2};
    const std::vector<float> values = {0.5f, -1.25f, 2.0f, 0.75f, 3.0f};  // #4 repeats #1
    std::vector<std::int64_t> positions = row;
    positions.insert(positions.end(), col.begin(), col.end());
    PeftConfig config = PeftConfig::make(PeftType::FOURIERFT);
    config.mutable_json()["target_modules"] = {"lin"};
    config.mutable_json()["scaling"] = 10.0;
    StateDict weights, extras;
    weights.set("base_model.model.lin.fourierft_spectrum",
                Tensor::from_floats(DType::F32, {5}, values));
    extras.set("lin.fourierft_indices", Tensor::from_ints(DType::I64, {2, 5}, positions));
    StateDict base;
    const auto out = static_cast<std::uint64_t>(rows), in = static_cast<std::uint64_t>(cols);
    base.set("lin.weight", Tensor::zeros(DType::F64, {out, in}));
    const auto merged =
        merge_adapters(base, {MergeAdapter{"default", config, weights, extras}}).at("lin.weight");
    const auto got = merged.to_doubles();
    std::map<std::pair<std::int64_t, std::int64_t>, double> dense;  // the last value counts
    for (std::size_t e = 0; e < values.size(); ++e) dense[{row[e], col[e]}] = values[e];
    for (int p = 0; p < rows; ++p) {
      for (int q = 0; q < cols; ++q) {
        double want = 0;
        for (const auto& [at, value] : dense) {
          const double turns =
              static_cast<double>(p * at.first) / rows + static_cast<double>(q * at.second) / cols;
          want += value * std::cos(2 * std::numbers::pi * turns);
        }
        want *= 10.0 / (rows * cols);
        EXPECT_NEAR(got[static_cast<std::size_t>(p * cols + q)], want, 1e-12)
            << rows << "x" << cols << " at " << p << "," << q;
      }
    }
  }
}

// torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k], printed by Debian's
// python3-torch 1.13 (the same for n below UINT32_MAX / 20 in torch 2.x).
TEST(TorchRandom, RandpermPrefixMatchesTorch) {
  using numeric::torch_randperm_prefix;
  using V = std::vector<std::int64_t>;
  EXPECT_EQ(torch_randperm_prefix(200, 777, 8), (V{135, 123, 63, 99, 19, 187, 39, 107}));
  EXPECT_EQ(torch_randperm_prefix(400, 777, 8), (V{135, 357, 259, 185, 0, 12, 169, 98}));
  EXPECT_EQ(torch_randperm_prefix(10, 0, 10), (V{4, 1, 7, 5, 3, 9, 0, 8, 6, 2}));
  EXPECT_EQ(torch_randperm_prefix(16777216, 777, 8),
            (V{1374311, 8240085, 6766295, 6474818, 14786199, 14783200, 12151563, 8443997}));
  EXPECT_EQ(torch_randperm_prefix(3ULL * 4096 * 4096, 42, 6),
            (V{48356454, 48905719, 6423552, 32871742, 23328102, 26858902}));
  // manual_seed keeps the low 32 bits for the Mersenne Twister.
  EXPECT_EQ(torch_randperm_prefix(200, (1ULL << 32) + 777, 8), torch_randperm_prefix(200, 777, 8));
  EXPECT_EQ(torch_randperm_prefix(1, 123456789, 1), V{0});
  EXPECT_EQ(torch_randperm_prefix(5, 1, 9).size(), 5u);  // at most n values
  EXPECT_TRUE(torch_randperm_prefix(0, 1, 3).empty());
}

// Every peft-merge case that ships reference_extras (positions PEFT drew with torch) merges
// to the same bytes without them: peftcpp draws the same positions.
TEST(TorchRandom, FixtureExtrasAreWhatPeftcppDraws) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testing::peft_merge_root())) {
    const auto dir = entry.path();
    if (!std::filesystem::exists(dir / "reference_extras.safetensors") ||
        !std::filesystem::exists(dir / "adapter" / "adapter_model.safetensors")) {
      continue;
    }
    const StateDict base = SafetensorsFile::open(dir / "base_model.safetensors").state_dict();
    const PeftConfig config = PeftConfig::load(dir / "adapter");
    const StateDict weights =
        SafetensorsFile::open(dir / "adapter" / "adapter_model.safetensors").state_dict();
    const StateDict extras =
        SafetensorsFile::open(dir / "reference_extras.safetensors").state_dict();
    const StateDict with = merge_adapters(base, {MergeAdapter{"default", config, weights, extras}});
    const StateDict without = merge_adapters(base, {MergeAdapter{"default", config, weights, {}}});
    for (const auto& [key, tensor] : with) {
      EXPECT_TRUE(without.at(key).equals(tensor)) << dir.filename() << ": " << key;
    }
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no peft-merge case with reference_extras";
  std::printf("cases with reference extras merged without them: %d\n", checked);
}

// Base shapes for a fixture: base_model.safetensors (peft-merge) names them plainly, the
// PEFT model's state (peft-ref) under base_model.model.<module>.base_layer.
BaseShapes fixture_base_shapes(const StateDict& base) {
  return [&base](std::string_view key) -> std::optional<Shape> {
    const std::string k(key);
    const std::string module = k.substr(0, k.size() - std::string_view(".weight").size());
    for (const std::string& name :
         {k, "base_model.model." + module + ".base_layer.weight", "base_model.model." + k}) {
      if (const Tensor* t = base.find(name)) return t->shape();
    }
    return std::nullopt;
  };
}

// The adapter without any `<...>.<name>` tensor of `names`, shared or per module.
StateDict without(const StateDict& weights, std::initializer_list<std::string_view> names) {
  StateDict out;
  for (const auto& [key, tensor] : weights) {
    const bool drop = std::any_of(names.begin(), names.end(), [&](std::string_view name) {
      return key.ends_with("." + std::string(name));
    });
    if (!drop) out.set(key, tensor);
  }
  return out;
}

// Every fixture of `type` that saved its frozen projections `a_name` / `b_name`: the
// projections `regenerate` draws are bit for bit what PEFT saved, and (peft-merge cases)
// merging without them gives the same bytes. Returns how many fixtures were checked.
int check_redrawn_projections(PeftType type, std::string_view a_name, std::string_view b_name,
                              void (*regenerate)(MergeAdapter&, const BaseShapes&)) {
  int checked = 0;
  const std::string a_key = "base_model." + std::string(a_name);
  const std::string b_key = "base_model." + std::string(b_name);
  for (const auto& root : {testing::peft_merge_root(), testing::peft_ref_root()}) {
    for (const auto& entry : std::filesystem::directory_iterator(root)) {
      const auto dir = entry.path();
      const auto folder = std::filesystem::exists(dir / "adapter") ? dir / "adapter" : dir;
      if (!std::filesystem::exists(folder / "adapter_config.json") ||
          !std::filesystem::exists(folder / "adapter_model.safetensors")) {
        continue;
      }
      const PeftConfig config = PeftConfig::load(folder);
      if (config.peft_type() != type) continue;
      const StateDict saved =
          SafetensorsFile::open(folder / "adapter_model.safetensors").state_dict();
      if (!saved.contains(a_key)) continue;
      const bool merge_case = std::filesystem::exists(dir / "base_model.safetensors");
      const StateDict base = SafetensorsFile::open(merge_case ? dir / "base_model.safetensors"
                                                              : dir / "model_state.safetensors")
                                 .state_dict();
      const StateDict stripped = without(saved, {a_name, b_name});
      MergeAdapter adapter{"default", config, stripped, {}};
      regenerate(adapter, fixture_base_shapes(base));
      for (const std::string& key : {a_key, b_key}) {
        EXPECT_TRUE(adapter.weights.contains(key) && adapter.weights.at(key).equals(saved.at(key)))
            << dir.filename() << ": " << key;
      }
      if (merge_case) {
        const auto with = merge_adapters(base, {MergeAdapter{"default", config, saved, {}}});
        const auto redrawn = merge_adapters(base, {MergeAdapter{"default", config, stripped, {}}});
        for (const auto& [key, tensor] : with) {
          EXPECT_TRUE(redrawn.at(key).equals(tensor)) << dir.filename() << ": " << key;
        }
      }
      ++checked;
    }
  }
  return checked;
}

// VeRA's projections as PEFT saved them (save_projection=true), against what peftcpp draws
// from projection_prng_key.
TEST(TorchRandom, VeraProjectionsAreWhatPeftDrew) {
  const int checked =
      check_redrawn_projections(PeftType::VERA, "vera_A", "vera_B", regenerate_vera_projections);
  if (checked == 0) GTEST_SKIP() << "no VeRA fixture with saved projections";
  std::printf("VeRA fixtures whose projections were redrawn exactly: %d\n", checked);
}

// RandLoRA's bases likewise.
TEST(TorchRandom, RandLoraProjectionsAreWhatPeftDrew) {
  const int checked = check_redrawn_projections(PeftType::RANDLORA, "randlora_A", "randlora_B",
                                                regenerate_randlora_projections);
  if (checked == 0) GTEST_SKIP() << "no RandLoRA fixture with saved projections";
  std::printf("RandLoRA fixtures whose projections were redrawn exactly: %d\n", checked);
}

// A RandLoRA adapter on one layer "lin" of the given base weight shape, without bases.
MergeAdapter randlora_without_bases(int r, int key, const char* variant) {
  PeftConfig config = PeftConfig::make(PeftType::RANDLORA);
  config.mutable_json()["r"] = r;
  config.mutable_json()["projection_prng_key"] = key;
  config.mutable_json()["save_projection"] = false;
  config.mutable_json()["target_modules"] = {"lin"};
  if (variant != nullptr) config.mutable_json()[variant] = true;
  StateDict w;
  w.set("base_model.model.lin.randlora_lambda", filled({static_cast<std::uint64_t>(r), 1}));
  return MergeAdapter{"default", config, w, {}};
}

std::vector<float> redrawn(MergeAdapter adapter, Shape base_shape, const char* key) {
  regenerate_randlora_projections(adapter, [&](std::string_view k) -> std::optional<Shape> {
    if (k == "lin.weight") return base_shape;
    return std::nullopt;
  });
  return adapter.weights.at(key).to_floats();
}

// bfloat16 values as 4 hex digits each.
std::vector<float> from_bf16_hex(std::string_view hex) {
  std::vector<float> out;
  for (std::size_t i = 0; i + 4 <= hex.size(); i += 4) {
    out.push_back(bf16_to_f32(
        static_cast<std::uint16_t>(std::stoul(std::string(hex.substr(i, 4)), nullptr, 16))));
  }
  return out;
}

// Ternary values: '-', '0', '+' times the float32 with bits `scale`.
std::vector<float> from_signs(std::string_view signs, std::uint32_t scale) {
  const float s = std::bit_cast<float>(scale);
  std::vector<float> out;
  for (char c : signs) out.push_back(c == '-' ? -s : c == '+' ? s : 0.0f);
  return out;
}

// Dense bases where num_bases = lo / r is not whole, and the sparse and very_sparse
// variants (no fixture covers them): the expected values were printed by torch 1.13's CPU
// generator running PEFT v0.18.0's draws (bfloat16 kaiming for dense; torch.rand, ternary
// thresholds and std normalisation in float32 for sparse).
TEST(TorchRandom, RandLoraBasesMatchTorch) {
  // r=3, key 1234, base [9, 7]: A [3, 1, 7], B [9, 3, 3].
  const auto dense = randlora_without_bases(3, 1234, nullptr);
  EXPECT_EQ(redrawn(dense, {9, 7}, "base_model.randlora_A"),
            from_bf16_hex("bf8c3f8fbf9bbf813f83be263ea63fd03e4f3f2abfb53fb53eb4bfaa3f143ecf3fbbbd5"
                          "dbfb0be0a3f48"));
  EXPECT_EQ(redrawn(dense, {9, 7}, "base_model.randlora_B"),
            from_bf16_hex("bdd2be523f97bfb33e1e3f553ecb3fc73fcbbf41bf1e3f703f76be2bbe8abf00bf11bf8"
                          "9bc523fc13fd03fc93f85bfbcbfb9bf8fbf393f1abf803fb93fbd3f69bf5f3f393fb2bf"
                          "3f3fcabf2bbf953faebe8a3f173f39bf0a3f11bf9a3efa3fc93eb9bf1abf073f943f89b"
                          "f853f5c3fa93e11bfbdbe1ebed23f21bfb5bf0e00003fadbf2e3e1e3f643fce3f173fa1"
                          "bf95bf1ebfcebfd0be463f9c3fa6be7abf943db9"));
  // sparse (sparsity 3), r=3, key 42, base [9, 7].
  const auto sparse = randlora_without_bases(3, 42, "sparse");
  EXPECT_EQ(redrawn(sparse, {9, 7}, "base_model.randlora_A"),
            from_signs("++0+0000+-+0+000+0000", 0x3fe4526b));
  EXPECT_EQ(redrawn(sparse, {9, 7}, "base_model.randlora_B"),
            from_signs("000-0000-+-+0000+00000+000000-0-+0000+-0-0000+000+0+----00+0-00000-00000"
                       "+-0+00-00",
                       0x3fdcc8d4));
  // very_sparse (sparsity sqrt(5)), r=2, key 7, base [5, 11] (in > out): A [2, 1, 5],
  // B [11, 3, 2].
  const auto very_sparse = randlora_without_bases(2, 7, "very_sparse");
  EXPECT_EQ(redrawn(very_sparse, {5, 11}, "base_model.randlora_A"),
            from_signs("0-0000-00+", 0x3fe17e19));
  EXPECT_EQ(
      redrawn(very_sparse, {5, 11}, "base_model.randlora_B"),
      from_signs("+00-000-+-+00000+00-+0000+0-0-000++0000--++0-00000000-00-00+00000+", 0x3fd74057));
}

// A config whose r disagrees with the saved tensors, or is not positive, is refused before
// anything is drawn (it would size, or divide, the projections).
TEST(TorchRandom, ProjectionRankIsChecked) {
  const BaseShapes shapes = [](std::string_view k) -> std::optional<Shape> {
    if (k == "lin.weight") return Shape{9, 7};
    return std::nullopt;
  };
  MergeAdapter mismatched = randlora_without_bases(3, 1, nullptr);
  mismatched.config.mutable_json()["r"] = 5;
  EXPECT_PEFT_ERROR(regenerate_randlora_projections(mismatched, shapes),
                    ErrorCode::InvalidConfigValue, "r is 5");
  MergeAdapter zero = randlora_without_bases(3, 1, nullptr);
  zero.config.mutable_json()["r"] = 0;
  EXPECT_PEFT_ERROR(regenerate_randlora_projections(zero, shapes), ErrorCode::InvalidConfigValue,
                    "r is 0");
}

TEST(Merge, ShapeMismatchNamesModule) {
  StateDict base;
  base.set("lin.weight", Tensor::zeros(DType::F32, {5, 4}));
  EXPECT_PEFT_ERROR(merge_adapters(base, {lora_adapter(3, 4)}), ErrorCode::ShapeMismatch,
                    "module 'lin'");
}

TEST(Merge, MissingBaseKey) {
  StateDict base;
  base.set("elsewhere.weight", Tensor::zeros(DType::F32, {3, 4}));
  EXPECT_PEFT_ERROR(merge_adapters(base, {lora_adapter(3, 4)}), ErrorCode::MissingKey,
                    "'lin.weight'");
}

TEST(Merge, UnknownAdapterName) {
  MergeOptions options;
  options.adapter_names = {"nope"};
  EXPECT_PEFT_ERROR(PreparedMerge({lora_adapter(3, 4)}, options), ErrorCode::NotFound, "'nope'");
}

TEST(Merge, MethodsPeftCannotMerge) {
  for (PeftType type : {PeftType::PROMPT_TUNING, PeftType::POLY, PeftType::XLORA}) {
    MergeAdapter adapter{"default", PeftConfig::make(type), {}, {}};
    EXPECT_PEFT_ERROR(PreparedMerge({adapter}, {}), ErrorCode::Unsupported, "cannot be merged");
  }
}

TEST(Merge, MissingFactorNamesKey) {
  MergeAdapter adapter = lora_adapter(3, 4);
  adapter.weights.erase("base_model.model.lin.lora_B.weight");
  EXPECT_PEFT_ERROR(PreparedMerge({adapter}, {}), ErrorCode::MissingKey,
                    "base_model.model.lin.lora_B.weight");
}

TEST(Merge, NotAnAdapterKey) {
  MergeAdapter adapter = lora_adapter(3, 4);
  adapter.weights.set("stray", filled({1}));
  EXPECT_PEFT_ERROR(PreparedMerge({adapter}, {}), ErrorCode::InvalidArgument, "'stray'");
}

TEST(Merge, IntegerBaseRefused) {
  const PreparedMerge prepared({lora_adapter(3, 4)}, {});
  EXPECT_PEFT_ERROR(prepared.merge_tensor("lin.weight", Tensor::zeros(DType::I32, {3, 4})),
                    ErrorCode::UnsupportedDType, "I32");
}

TEST(Merge, StreamingMatchesWholeDict) {
  const PreparedMerge prepared({lora_adapter(3, 4)}, {});
  EXPECT_TRUE(prepared.touches("lin.weight"));
  EXPECT_FALSE(prepared.touches("lin.bias"));
  const std::vector<std::string> seen{"lin.bias"};
  EXPECT_EQ(prepared.missing_keys(seen), std::vector<std::string>{"lin.weight"});
  StateDict base;
  base.set("lin.weight", filled({3, 4}));
  const Tensor one = prepared.merge_tensor("lin.weight", base.at("lin.weight"));
  EXPECT_TRUE(one.equals(merge_adapters(base, {lora_adapter(3, 4)}).at("lin.weight")));
}

TEST(Merge, HalfBaseStaysHalf) {
  StateDict base;
  base.set("lin.weight", filled({3, 4}).to(DType::BF16));
  const StateDict merged = merge_adapters(base, {lora_adapter(3, 4)});
  EXPECT_EQ(merged.at("lin.weight").dtype(), DType::BF16);
}

TEST(Unmerge, RestoresLora) {
  StateDict base;
  base.set("lin.weight", filled({3, 4}));
  const StateDict merged = merge_adapters(base, {lora_adapter(3, 4)});
  const StateDict restored = unmerge_adapters(merged, {lora_adapter(3, 4)});
  const auto a = restored.at("lin.weight").to_doubles();
  const auto b = base.at("lin.weight").to_doubles();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6);
}

TEST(Unmerge, RefusesReplacements) {
  MergeAdapter adapter = lora_adapter(3, 4);
  adapter.weights.set("base_model.model.lin.base_layer.bias", filled({3}));
  StateDict base;
  base.set("lin.weight", filled({3, 4}));
  base.set("lin.bias", filled({3}));
  EXPECT_PEFT_ERROR(unmerge_adapters(base, {adapter}), ErrorCode::Unsupported, "lin.bias");
}

TEST(Unmerge, RefusesDora) {
  MergeAdapter adapter = lora_adapter(3, 4);
  adapter.weights.set("base_model.model.lin.lora_magnitude_vector", filled({3}));
  StateDict base;
  base.set("lin.weight", filled({3, 4}));
  EXPECT_PEFT_ERROR(unmerge_adapters(base, {adapter}), ErrorCode::Unsupported, "DoRA");
}

TEST(Weighted, RejectsUnknownCombination) {
  const std::vector<MergeAdapter> sources{lora_adapter(3, 4), lora_adapter(3, 4, "other")};
  const std::vector<double> weights{1.0, 1.0};
  WeightedAdapterOptions options;
  options.combination_type = "tie";
  EXPECT_PEFT_ERROR(add_weighted_adapter(sources, weights, "x", options),
                    ErrorCode::InvalidArgument, "'tie'");
  options.combination_type = "cat";
  const std::vector<double> one{1.0};
  EXPECT_PEFT_ERROR(add_weighted_adapter(sources, one, "x", options), ErrorCode::InvalidArgument,
                    "weights");
}

TEST(Weighted, CatEqualsSumOfDeltas) {
  const std::vector<MergeAdapter> sources{lora_adapter(3, 4), lora_adapter(3, 4, "other")};
  const std::vector<double> weights{0.5, 0.25};
  StateDict base;
  base.set("lin.weight", Tensor::zeros(DType::F32, {3, 4}));
  MergeOptions options;
  options.adapter_names = {"combined"};
  auto adapters = sources;
  adapters.push_back(
      add_weighted_adapter(sources, weights, "combined", {.combination_type = "cat"}));
  const auto combined = merge_adapters(base, adapters, options).at("lin.weight").to_doubles();
  const auto single = merge_adapters(base, {sources[0]}).at("lin.weight").to_doubles();
  for (std::size_t i = 0; i < single.size(); ++i) EXPECT_NEAR(combined[i], 0.75 * single[i], 1e-6);
}

// LoRA on F32/BF16/F16 weights takes the fused float32 path (PEFT's precision on the CPU):
// within one ulp of the weight's dtype of the float64 result, and the same bits through
// merge_tensor, merge_tensor_into and merge_adapters. safe_merge, F64 weights and
// transposed layouts keep the float64 path.
TEST(Merge, FusedFloat32PathForLora) {
  for (const DType dtype : {DType::BF16, DType::F16, DType::F32}) {
    SCOPED_TRACE(dtype_name(dtype));
    StateDict base;
    base.set("lin.weight", filled({3, 4}).to(dtype));
    const MergeAdapter adapter = lora_adapter(3, 4);
    const PreparedMerge fused({adapter}, {});
    EXPECT_TRUE(fused.merges_fused("lin.weight", dtype, {3, 4}));
    MergeOptions safe;
    safe.safe_merge = true;
    const PreparedMerge exact({adapter}, safe);
    EXPECT_FALSE(exact.merges_fused("lin.weight", dtype, {3, 4}));

    const Tensor& w = base.at("lin.weight");
    const Tensor got = fused.merge_tensor("lin.weight", w);
    std::vector<std::byte> into(w.nbytes());
    fused.merge_tensor_into("lin.weight", w, into);
    EXPECT_TRUE(std::equal(into.begin(), into.end(), got.bytes().begin()));
    EXPECT_TRUE(merge_adapters(base, {adapter}).at("lin.weight").equals(got));
    // The float64 reference, W + 2 * B @ A (alpha 4, r 2), rounded once.
    const auto wd = w.to_doubles(),
               a = adapter.weights.at("base_model.model.lin.lora_A.weight").to_doubles(),
               b = adapter.weights.at("base_model.model.lin.lora_B.weight").to_doubles();
    const auto g = got.to_doubles();
    const double ulp = dtype == DType::BF16 ? 0x1p-7 : dtype == DType::F16 ? 0x1p-10 : 0x1p-23;
    for (std::size_t o = 0; o < 3; ++o) {
      for (std::size_t i = 0; i < 4; ++i) {
        const double want = wd[o * 4 + i] + 2.0 * (b[o * 2] * a[i] + b[o * 2 + 1] * a[4 + i]);
        EXPECT_LE(std::abs(g[o * 4 + i] - want), ulp * std::abs(want)) << o << "," << i;
      }
    }
  }
  const PreparedMerge f64({lora_adapter(3, 4)}, {});
  EXPECT_FALSE(f64.merges_fused("lin.weight", DType::F64, {3, 4}));
  MergeAdapter transposed = lora_adapter(3, 4);
  transposed.config.mutable_json()["fan_in_fan_out"] = true;
  const PreparedMerge conv1d({transposed}, {});
  EXPECT_FALSE(conv1d.merges_fused("lin.weight", DType::F32, {4, 3}));
}

}  // namespace
}  // namespace peft
