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

// add_weighted_adapter, as the case describes it.
void add_weighted(const json& spec, std::vector<MergeAdapter>& adapters) {
  if (!spec.contains("weighted") || spec["weighted"].is_null()) return;
  const json& w = spec["weighted"];
  std::vector<MergeAdapter> sources;
  for (const auto& name : w["adapters"]) {
    for (const auto& a : adapters) {
      if (a.name == name.get<std::string>()) sources.push_back(a);
    }
  }
  const auto weights = w["weights"].get<std::vector<double>>();
  adapters.push_back(add_weighted_adapter(sources, weights,
                                          w["combination_type"].get<std::string>(),
                                          w["adapter_name"].get<std::string>()));
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
  } else if (name == "skip_lora_weighted_svd_conv1d") {
    weights.set("base_model.model.conv1d.lora_A.weight", ramp({rank, 3, 3}));
    weights.set("base_model.model.conv1d.lora_B.weight", ramp({5, rank, 1}));
    std::vector<MergeAdapter> sources{{"default", config, weights, {}},
                                      {"other", config, weights, {}}};
    const std::vector<double> w{0.5, 0.5};
    expect_refusal([&] { add_weighted_adapter(sources, w, "svd", "combined"); },
                   ErrorCode::Unsupported, "svd");
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
