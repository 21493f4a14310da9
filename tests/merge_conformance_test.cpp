// Conformance of merging with real PEFT v0.18.0: every case folder of the peft-merge
// fixtures (tests/data/peft-merge, or $PEFTCPP_MERGE_FIXTURES for another set of the same
// layout and case names).
//
// "ok" cases: every merged_*.safetensors output must have the base's keys and dtypes and
// values within the case's suggested_tolerance (|ours - expected| <= atol + rtol*|expected|);
// unmerging our merge must restore the base (1e-4 of the tensor's largest value, one ulp
// scale for half precision) or refuse with Unsupported where the merged weights do not
// determine it. "skipped" cases: peftcpp must refuse what PEFT cannot merge, with a clear
// error. Nothing depends on the sizes, names or values of one fixture set.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "peft/error.hpp"
#include "peft/merge.hpp"
#include "peft/safetensors.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// Cases the port cannot do yet, each with its reason. The issue is done when this is empty.
const std::map<std::string, std::string>& known_gaps() {
  static const std::map<std::string, std::string> gaps = {};
  return gaps;
}

// Cases whose unmerge peftcpp refuses: the merged weights and the adapter do not determine
// the base there (PEFT restores them only from values it cached in memory, or not at all).
const std::map<std::string, std::string>& unmerge_refused() {
  static const std::map<std::string, std::string> refused = {
      {"dora_linear", "DoRA norms"},
      {"dora_conv1d", "DoRA norms"},
      {"dora_conv2d", "DoRA norms"},
      {"dora_embedding", "DoRA norms"},
      {"tf_gpt2_dora", "DoRA norms"},
      {"lora_bias_all", "trained biases replace the base ones"},
      {"lora_modules_to_save", "modules_to_save copies replace the base modules"},
      {"ln_tuning", "the trained LayerNorm replaces the base one"},
      {"osf", "PEFT refuses to unmerge OSF"},
      {"tf_llama_trainable_tokens", "trainable tokens overwrite rows"},
      {"tf_llama_lora_trainable_token_indices", "trainable tokens overwrite rows"},
      {"tf_gpt2_trainable_token_indices_tied", "trainable tokens overwrite rows"},
      {"tf_llama_tied_all_linear_embed", "the saved embedding replaces the base one"},
  };
  return refused;
}

json read_json(const fs::path& path) {
  return json::parse(testing::read_text(path));
}

StateDict read_tensors(const fs::path& path) {
  return SafetensorsFile::open(path).state_dict();
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  std::error_code ec;
  const fs::path root = testing::peft_merge_root();
  if (!fs::is_directory(root, ec)) return names;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory() && fs::exists(entry.path() / "case.json")) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The outcome of one case, without gtest assertions so that the summary can rerun it.
struct Outcome {
  enum class Kind { Passed, Failed, Gap };
  Kind kind = Kind::Passed;
  std::vector<std::string> failures;
  std::string gap;
  void fail(std::string message) {
    kind = Kind::Failed;
    failures.push_back(std::move(message));
  }
};

std::vector<MergeAdapter> load_adapters(const fs::path& dir, const json& spec) {
  std::vector<MergeAdapter> adapters;
  StateDict extras;
  if (fs::exists(dir / "reference_extras.safetensors")) {
    extras = read_tensors(dir / "reference_extras.safetensors");
  }
  for (const auto& [name, unused] : spec["adapters"].items()) {
    const fs::path folder = name == "default" ? dir / "adapter" : dir / "adapter" / name;
    adapters.push_back(MergeAdapter{name, PeftConfig::load(folder),
                                    read_tensors(folder / "adapter_model.safetensors"), extras});
  }
  return adapters;
}

// tie_word_embeddings: lm_head.weight shares the input embedding's storage.
std::vector<std::pair<std::string, std::string>> tied_keys(const fs::path& dir,
                                                           const StateDict& base) {
  if (!fs::exists(dir / "config.json")) return {};
  const json config = read_json(dir / "config.json");
  if (!config.value("tie_word_embeddings", false)) return {};
  for (const char* embed : {"model.embed_tokens.weight", "transformer.wte.weight"}) {
    if (base.contains(embed)) return {{"lm_head.weight", embed}};
  }
  return {};
}

MergeOptions options_for(const json& merge_args) {
  MergeOptions options;
  if (merge_args.contains("adapter_names") && merge_args["adapter_names"].is_array()) {
    options.adapter_names = merge_args["adapter_names"].get<std::vector<std::string>>();
  }
  options.safe_merge = merge_args.value("safe_merge", false);
  options.autocast_adapter_dtype = merge_args.value("autocast_adapter_dtype_on_load", true);
  return options;
}

// add_weighted_adapter's arguments as the case gives them: every field of `weighted` (the
// Python keyword arguments, plus torch_seed, the torch.manual_seed run before the call).
// A field this function does not know fails the case, so none is silently dropped.
WeightedAdapterOptions weighted_options(const json& w) {
  WeightedAdapterOptions o;
  for (const auto& [field, value] : w.items()) {
    if (field == "adapters" || field == "weights" || field == "adapter_name") continue;
    if (value.is_null()) continue;  // PEFT's default
    if (field == "combination_type") {
      o.combination_type = value.get<std::string>();
    } else if (field == "svd_rank") {
      o.svd_rank = value.get<int>();
    } else if (field == "svd_clamp") {
      o.svd_clamp = value.get<double>();
    } else if (field == "svd_full_matrices") {
      o.svd_full_matrices = value.get<bool>();
    } else if (field == "svd_driver") {
      o.svd_driver = value.get<std::string>();
    } else if (field == "density") {
      o.density = value.get<double>();
    } else if (field == "majority_sign_method") {
      o.majority_sign_method = value.get<std::string>();
    } else if (field == "torch_seed") {
      o.torch_seed = value.get<std::uint64_t>();
    } else {
      throw std::runtime_error("weighted." + field + " is not passed to add_weighted_adapter");
    }
  }
  return o;
}

std::vector<MergeAdapter> weighted_sources(const json& w, const std::vector<MergeAdapter>& all) {
  std::vector<MergeAdapter> sources;
  for (const auto& name : w["adapters"]) {
    for (const auto& a : all) {
      if (a.name == name.get<std::string>()) sources.push_back(a);
    }
  }
  return sources;
}

void add_weighted(const json& spec, std::vector<MergeAdapter>& adapters) {
  if (!spec.contains("weighted") || spec["weighted"].is_null()) return;
  const json& w = spec["weighted"];
  const auto sources = weighted_sources(w, adapters);
  const auto weights = w["weights"].get<std::vector<double>>();
  adapters.push_back(add_weighted_adapter(sources, weights, w["adapter_name"].get<std::string>(),
                                          weighted_options(w)));
}

std::string compare(const StateDict& ours, const StateDict& expected, double atol, double rtol) {
  if (ours.keys() != expected.keys()) {
    auto a = ours.keys(), b = expected.keys();
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) return "key sets differ";
  }
  for (const auto& [key, want] : expected) {
    const Tensor& got = ours.at(key);
    if (got.dtype() != want.dtype()) {
      return fmt::format("{}: dtype {} instead of {}", key, dtype_name(got.dtype()),
                         dtype_name(want.dtype()));
    }
    if (got.shape() != want.shape()) {
      return fmt::format("{}: shape {} instead of {}", key, shape_to_string(got.shape()),
                         shape_to_string(want.shape()));
    }
    if (!is_floating(want.dtype())) {
      if (!got.equals(want)) return fmt::format("{}: integer values differ", key);
      continue;
    }
    const auto g = got.to_doubles();
    const auto e = want.to_doubles();
    for (std::size_t i = 0; i < e.size(); ++i) {
      if (!(std::abs(g[i] - e[i]) <= atol + rtol * std::abs(e[i]))) {
        return fmt::format("{}[{}]: {} instead of {} (atol {}, rtol {})", key, i, g[i], e[i], atol,
                           rtol);
      }
    }
  }
  return {};
}

double max_abs(const Tensor& t) {
  double m = 0.0;
  for (double x : t.to_doubles()) m = std::max(m, std::abs(x));
  return m;
}

// Unmerged vs base: 1e-4 of each tensor's largest value (IA3 divides by ia3_l + 1e-8),
// a few ulps of that scale for half precision.
std::string compare_restored(const StateDict& ours, const StateDict& base) {
  for (const auto& [key, want] : base) {
    const Tensor& got = ours.at(key);
    if (got.dtype() != want.dtype()) return key + ": dtype changed";
    if (!is_floating(want.dtype())) continue;
    const double rel = want.dtype() == DType::BF16  ? 0x1p-6
                       : want.dtype() == DType::F16 ? 0x1p-9
                                                    : 1e-4;
    const double tol = rel * max_abs(want) + 1e-7;
    const auto g = got.to_doubles();
    const auto e = want.to_doubles();
    for (std::size_t i = 0; i < e.size(); ++i) {
      if (!(std::abs(g[i] - e[i]) <= tol)) {
        return fmt::format("{}[{}]: restored {} instead of {}", key, i, g[i], e[i]);
      }
    }
  }
  return {};
}

void check_unmerge(const std::string& name, const fs::path& dir, const json& spec,
                   const StateDict& base, Outcome& outcome) {
  if (!spec.contains("unmerge") || spec["unmerge"].is_null() || spec.contains("weighted")) return;
  auto adapters = load_adapters(dir, spec);
  MergeOptions options;
  options.tied_keys = tied_keys(dir, base);
  const auto refused = unmerge_refused().find(name);
  try {
    const StateDict merged = merge_adapters(base, adapters, options);
    const StateDict restored = unmerge_adapters(merged, adapters, options);
    if (refused != unmerge_refused().end()) {
      outcome.fail("unmerge: expected a refusal (" + refused->second + ")");
      return;
    }
    if (auto message = compare_restored(restored, base); !message.empty()) {
      outcome.fail("unmerge vs base: " + message);
    }
    const bool peft_restores = spec["unmerge"].value("restores_base_within_1e-4_relative", false);
    if (peft_restores && fs::exists(dir / "unmerged_state.safetensors")) {
      const StateDict peft_state = read_tensors(dir / "unmerged_state.safetensors");
      if (auto message = compare_restored(restored, peft_state); !message.empty()) {
        outcome.fail("unmerge vs unmerged_state.safetensors: " + message);
      }
    }
  } catch (const Error& e) {
    if (refused == unmerge_refused().end() || e.code() != ErrorCode::Unsupported) {
      outcome.fail(std::string("unmerge: ") + e.what());
    }
  }
}

// Inputs for the cases PEFT cannot merge: a config from case.json and a few made-up
// tensors of consistent shapes.
PeftConfig skip_config(const json& spec) {
  const json& adapter = spec["adapters"]["default"];
  PeftType type = PeftType::LORA;
  if (spec.contains("peft_types") && spec["peft_types"].is_object()) {
    type = *peft_type_from_string(spec["peft_types"]["default"].get<std::string>());
  } else if (adapter["class"].is_null()) {
    type = PeftType::XLORA;
  }
  PeftConfig config = PeftConfig::make(type);
  for (const auto& [k, v] : adapter["kwargs"].items()) {
    config.mutable_json()[k] = nlohmann::json::parse(v.dump());
  }
  return config;
}

Tensor ramp(Shape shape) {
  std::vector<float> values(shape_numel(shape));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.01f * static_cast<float>(i % 17);
  return Tensor::from_floats(DType::F32, std::move(shape), values);
}

// Made-up source adapters for a weighted skip case: each adapter of case.json with its own
// config, factors of pseudo-random values (full rank) on each of its target modules.
std::vector<MergeAdapter> made_up_sources(const json& spec) {
  std::vector<MergeAdapter> sources;
  std::uint32_t state = 12345;
  auto fill = [&](Shape shape) {
    std::vector<float> v(shape_numel(shape));
    for (float& x : v) {
      state = state * 1664525u + 1013904223u;
      x = static_cast<float>(state >> 8) / static_cast<float>(1u << 24) - 0.5f;
    }
    return Tensor::from_floats(DType::F32, std::move(shape), v);
  };
  for (const auto& [name, adapter] : spec["adapters"].items()) {
    PeftConfig config = PeftConfig::make(PeftType::LORA);
    for (const auto& [k, v] : adapter["kwargs"].items()) {
      config.mutable_json()[k] = nlohmann::json::parse(v.dump());
    }
    const auto r = static_cast<std::uint64_t>(config.r());
    StateDict weights;
    for (const auto& target : adapter["kwargs"]["target_modules"]) {
      const std::string prefix = "base_model.model." + target.get<std::string>();
      const bool conv1d = target.get<std::string>().find("conv") != std::string::npos;
      weights.set(prefix + ".lora_A.weight", conv1d ? fill({r, 3, 3}) : fill({r, 7}));
      weights.set(prefix + ".lora_B.weight", conv1d ? fill({5, r, 1}) : fill({6, r}));
    }
    sources.push_back(MergeAdapter{name, config, weights, {}});
  }
  return sources;
}

// torch.quantile(values, q), linear interpolation, written out independently of the library.
double reference_quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] * (1.0 - (pos - static_cast<double>(lo))) + v[hi] * (pos - static_cast<double>(lo));
}

// svd_clamp has no fixture (the result depends on the SVD's sign choices): check ours
// against its definition. Without the clamp our factors are U' = U diag(S) (lora_B) and
// Vh' (lora_A); with it both must be clamp(x, -hi, hi), hi the svd_clamp quantile of all
// entries of U' and Vh' together.
void check_svd_clamp(const json& w, const std::vector<MergeAdapter>& sources, Outcome& outcome) {
  const auto weights = w["weights"].get<std::vector<double>>();
  WeightedAdapterOptions clamped = weighted_options(w);
  WeightedAdapterOptions plain = clamped;
  plain.svd_clamp.reset();
  const MergeAdapter with = add_weighted_adapter(sources, weights, "c", clamped);
  const MergeAdapter without = add_weighted_adapter(sources, weights, "c", plain);
  int changed = 0;
  for (const auto& [key, a] : without.weights) {
    if (!key.ends_with("lora_A.weight")) continue;
    const std::string b_key = key.substr(0, key.size() - 13) + "lora_B.weight";
    std::vector<double> all = without.weights.at(b_key).to_doubles();
    const auto av = a.to_doubles();
    all.insert(all.end(), av.begin(), av.end());
    const double hi = reference_quantile(all, *clamped.svd_clamp);
    for (const auto& k : {key, b_key}) {
      const auto before = without.weights.at(k).to_doubles();
      const auto after = with.weights.at(k).to_doubles();
      for (std::size_t i = 0; i < before.size(); ++i) {
        const double want = static_cast<float>(std::min(std::max(before[i], -hi), hi));
        if (std::abs(after[i] - want) > 1e-6 * std::max(1.0, std::abs(hi))) {
          outcome.fail(fmt::format("svd_clamp: {}[{}] = {}, clamp({}, -{}, {}) = {}", k, i,
                                   after[i], before[i], hi, hi, want));
          return;
        }
        changed += before[i] != after[i];
      }
    }
  }
  if (changed == 0) outcome.fail("svd_clamp changed no entry (the check would not see a bug)");
}

// Weighted combinations PEFT refuses (or accepts without a reproducible result).
void check_weighted_skip(const std::string& name, const json& spec, Outcome& outcome) {
  const json& w = spec["weighted"];
  const auto sources = made_up_sources(spec);
  if (w.contains("svd_clamp")) {
    check_svd_clamp(w, sources, outcome);
    return;
  }
  const auto weights = w["weights"].get<std::vector<double>>();
  // What PEFT's refusal is about, as it says in skip_reason.
  const bool ranks = spec.value("skip_reason", std::string()).find("same r") != std::string::npos;
  const ErrorCode code = ranks ? ErrorCode::InvalidArgument : ErrorCode::Unsupported;
  try {
    add_weighted_adapter(sources, weights, "combined", weighted_options(w));
    outcome.fail(
        name + ": combined although PEFT refuses it: " + spec.value("skip_reason", std::string()));
  } catch (const Error& e) {
    const std::string what = e.what();
    const std::string fragment = ranks ? "equal rank" : "svd";
    if (e.code() != code || what.find(fragment) == std::string::npos) {
      outcome.fail(
          fmt::format("expected {} mentioning '{}', got: {}", to_string(code), fragment, what));
    }
  }
}

void check_skip(const std::string& name, const json& spec, Outcome& outcome) {
  PeftConfig config = skip_config(spec);
  StateDict base;
  StateDict weights;
  auto expect_refusal = [&](auto&& run, ErrorCode code, const std::string& fragment) {
    try {
      run();
      outcome.fail("merge succeeded although PEFT refuses it: " +
                   spec.value("skip_reason", std::string()));
    } catch (const Error& e) {
      const std::string what = e.what();
      if (e.code() != code || what.find(fragment) == std::string::npos) {
        outcome.fail(
            fmt::format("expected {} mentioning '{}', got: {}", to_string(code), fragment, what));
      }
    }
  };
  const int r = static_cast<int>(config.get_int("r", 4));
  const auto rank = static_cast<std::uint64_t>(r);
  if (name == "skip_lora_bias_without_base_bias") {
    base.set("lin0.weight", ramp({6, 5}));
    weights.set("base_model.model.lin0.lora_A.weight", ramp({rank, 5}));
    weights.set("base_model.model.lin0.lora_B.weight", ramp({6, rank}));
    weights.set("base_model.model.lin0.lora_B.bias", ramp({6}));
    std::vector<MergeAdapter> adapters{{"default", config, weights, {}}};
    expect_refusal([&] { merge_adapters(base, adapters); }, ErrorCode::MissingKey, "bias");
  } else if (name == "skip_lora_conv_groups") {
    base.set("conv.weight", ramp({4, 2, 3, 3}));  // groups = 2, in = 4
    weights.set("base_model.model.conv.lora_A.weight", ramp({rank, 4, 3, 3}));
    weights.set("base_model.model.conv.lora_B.weight", ramp({4, rank / 2, 1, 1}));
    std::vector<MergeAdapter> adapters{{"default", config, weights, {}}};
    expect_refusal([&] { merge_adapters(base, adapters); }, ErrorCode::Unsupported, "group");
  } else if (spec.contains("weighted")) {
    check_weighted_skip(name, spec, outcome);
  } else {
    // Whole-method refusals (prompt learning, Poly, X-LoRA) and layer_replication.
    std::vector<MergeAdapter> adapters{{"default", config, weights, {}}};
    expect_refusal([&] { PreparedMerge prepared(adapters, {}); }, ErrorCode::Unsupported,
                   "cannot be merged");
  }
}

Outcome run_case(const std::string& name) {
  Outcome outcome;
  const fs::path dir = testing::peft_merge_root() / name;
  const json spec = read_json(dir / "case.json");
  if (const auto gap = known_gaps().find(name); gap != known_gaps().end()) {
    outcome.kind = Outcome::Kind::Gap;
    outcome.gap = gap->second;
    return outcome;
  }
  try {
    if (spec.value("status", std::string()) != "ok") {
      check_skip(name, spec, outcome);
      return outcome;
    }
    const StateDict base = read_tensors(dir / "base_model.safetensors");
    for (const auto& [file, record] : spec["outputs"].items()) {
      auto adapters = load_adapters(dir, spec);
      add_weighted(spec, adapters);
      MergeOptions options = options_for(record["merge_args"]);
      options.tied_keys = tied_keys(dir, base);
      const StateDict merged = merge_adapters(base, adapters, options);
      const auto& tol = record["suggested_tolerance"];
      const std::string message = compare(merged, read_tensors(dir / file),
                                          tol["atol"].get<double>(), tol["rtol"].get<double>());
      if (!message.empty()) outcome.fail(file + ": " + message);
    }
    check_unmerge(name, dir, spec, base, outcome);
  } catch (const std::exception& e) {
    outcome.fail(std::string("threw: ") + e.what());
  }
  return outcome;
}

class MergeConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(MergeConformance, MatchesPeft) {
  const Outcome outcome = run_case(GetParam());
  if (outcome.kind == Outcome::Kind::Gap) GTEST_SKIP() << "known gap: " << outcome.gap;
  for (const auto& failure : outcome.failures) ADD_FAILURE() << GetParam() << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(Cases, MergeConformance, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(MergeConformance);

TEST(MergeConformanceSummary, AllCases) {
  const auto names = case_names();
  if (names.empty()) GTEST_SKIP() << "no fixtures under " << testing::peft_merge_root();
  int passed = 0, failed = 0, gaps = 0;
  for (const auto& name : names) {
    const Outcome outcome = run_case(name);
    switch (outcome.kind) {
      case Outcome::Kind::Passed:
        ++passed;
        break;
      case Outcome::Kind::Failed:
        ++failed;
        std::printf("  failed: %s: %s\n", name.c_str(), outcome.failures.front().c_str());
        break;
      case Outcome::Kind::Gap:
        ++gaps;
        std::printf("  known gap: %s: %s\n", name.c_str(), outcome.gap.c_str());
        break;
    }
  }
  std::printf("peft-merge conformance: %d passed, %d failed, %d known gaps\n", passed, failed,
              gaps);
  EXPECT_EQ(failed, 0);
}

}  // namespace
}  // namespace peft
