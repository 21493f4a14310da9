// inject_adapter against the fresh models real PEFT built: for every case of an injected
// method, the base model's own state (recovered from the fresh model) plus the config must
// give the fresh model's keys, in order, with its shapes and dtypes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "peft/adapter_io.hpp"
#include "peft/injection.hpp"
#include "peft/peft_state_dict.hpp"
#include "peft_ref_case.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
using testing::PeftRefCase;

// Where the base model's keys sit in the PEFT model's state.
std::string root_of(const PeftConfig& config) {
  if (config.is_prompt_learning()) return "base_model.";
  if (config.peft_type() == PeftType::XLORA) return "base_model.lora_model.model.";
  return "base_model.model.";
}

// Module paths (relative to the root) of the given Python classes in the PEFT model.
std::set<std::string> modules_of_class(const PeftRefCase& c, const std::string& root,
                                       const std::string& cls) {
  std::set<std::string> paths;
  for (const auto& module : c.json()["trained_model"]["modules"]) {
    const std::string path = module[0];
    if (module[1] == cls && path.starts_with(root)) paths.insert(path.substr(root.size()));
  }
  return paths;
}

// A key segment naming an adapter (not a layer index: X-LoRA's experts are "0", "1", ...).
bool owned_by_adapter(const std::string& key, const std::vector<std::string>& adapters) {
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const auto dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  static const std::set<std::string> lists = {"layers", "layer", "h", "blocks"};
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (std::find(adapters.begin(), adapters.end(), parts[i]) != adapters.end() &&
        !lists.count(parts[i - 1]))
      return true;
  }
  return key.ends_with(".adaption_prompt") || key.ends_with(".adaption_gate");
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at))
    s.replace(at, from.size(), to);
}

// layer_replication's stacked layer index -> the original layer it copies.
std::map<int, int> replicated_layers(const PeftConfig& config) {
  std::map<int, int> original;
  int next = 0;
  for (const auto& range : config.layer_replication().value_or(std::vector<std::vector<int>>{}))
    for (int i = range.at(0); i < range.at(1); ++i) original[next++] = i;
  return original;
}

// The base model's own state, recovered from PEFT's fresh model: adapter tensors and
// prompt encoders dropped, wrappers unwrapped, replicated layers folded back.
StateDict base_of(const PeftRefCase& c, const PeftModel& fresh) {
  std::vector<std::string> adapters;
  for (const auto& [name, config] : fresh.adapters) adapters.push_back(name);
  const PeftConfig& config = fresh.adapters.front().second;
  if (const auto* experts = config.find("adapters"); experts && experts->is_object()) {
    for (std::size_t i = 0; i < experts->size(); ++i) adapters.push_back(std::to_string(i));
  }
  const std::string root = root_of(config);
  const auto adapted_attention = modules_of_class(c, "base_model.model.", "AdaptedAttention");
  const auto replicated = replicated_layers(config);
  static const std::regex layer(R"(\.(layers|h|layer)\.(\d+)\.)");
  StateDict base;
  for (const auto& [key, tensor] : fresh.state) {
    if (!key.starts_with(root) || owned_by_adapter(key, adapters)) continue;
    std::string k = key.substr(root.size());
    for (const auto& path : adapted_attention) replace_all(k, path + ".model.", path + ".");
    for (const std::string part : {".token_adapter.", ".base_layer.", ".original_module."})
      replace_all(k, part, ".");
    std::smatch m;
    if (!replicated.empty() && std::regex_search(k, m, layer)) {
      k = fmt::format("{}.{}.{}.{}", m.prefix().str(), m[1].str(),
                      replicated.at(std::stoi(m[2].str())), m.suffix().str());
    }
    if (!base.contains(k)) base.set(k, tensor);
  }
  return base;
}

ModuleClasses classes_of(const PeftRefCase& c) {
  ModuleClasses classes;
  const std::string root = "base_model.model.";
  for (const auto& module : c.json()["trained_model"]["modules"]) {
    std::string path = module[0];
    if (!path.starts_with(root)) continue;
    path = path.substr(root.size());
    const bool base_layer = path.ends_with(".base_layer");
    if (base_layer) path = path.substr(0, path.size() - 11);
    if (base_layer || !classes.count(path)) classes[path] = module[1];
  }
  return classes;
}

InjectionOptions options_of(const PeftRefCase& c, const PeftModel& fresh) {
  InjectionOptions options;
  options.classes = classes_of(c);
  const auto& kwargs = c.json()["fresh_get_peft_model_kwargs"];
  options.autocast_adapter_dtype =
      !kwargs.contains("autocast_adapter_dtype") || kwargs["autocast_adapter_dtype"].get<bool>();
  options.facts = fresh.facts;
  options.adapter_folder = c.dir();
  const auto& base = c.json()["base_model"];
  if (base.contains("transformers_config") && base["transformers_config"].is_object()) {
    options.tie_word_embeddings = base["transformers_config"].value("tie_word_embeddings", false);
  }
  return options;
}

// Keys PEFT's model holds in one storage must share storage here too.
void expect_same_aliasing(const PeftRefCase& c, const StateDict& mine) {
  const auto& info = c.json()["files"]["fresh_state.safetensors"];
  if (!info.contains("aliased_in_memory") || info["aliased_in_memory"].is_null()) return;
  for (const auto& group : info["aliased_in_memory"]) {
    const Tensor& first = mine.at(group[0].get<std::string>());
    for (const auto& key : group) {
      EXPECT_EQ(mine.at(key.get<std::string>()).bytes().data(), first.bytes().data())
          << key << " should share storage with " << group[0];
    }
  }
}

// Loaded values equal PEFT's bytes, except VB-LoRA logits rebuilt from saved top-k weights:
// PEFT takes their log in torch's float code, which may differ from ours in the last bits.
bool same_loaded_values(const std::string& key, const Tensor& mine, const Tensor& peft) {
  if (mine.equals(peft)) return true;
  if (key.find("vblora_logits") == std::string::npos || mine.shape() != peft.shape()) return false;
  const auto a = mine.to_doubles(), b = peft.to_doubles();
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]))) continue;
    if (!(std::fabs(a[i] - b[i]) <= 1e-6 + 1e-5 * std::fabs(b[i]))) return false;
  }
  return true;
}

class Injection : public ::testing::TestWithParam<std::string> {};

TEST_P(Injection, RecreatesPeftsFreshModel) {
  const PeftRefCase c(testing::peft_ref_root() / GetParam());
  const PeftModel fresh = c.fresh_model();
  const PeftModel injected =
      inject_adapters(base_of(c, fresh), fresh.adapters, options_of(c, fresh));
  ASSERT_EQ(injected.state.keys(), fresh.state.keys());
  for (const auto& [key, tensor] : fresh.state) {
    const Tensor& mine = injected.state.at(key);
    EXPECT_EQ(mine.shape(), tensor.shape()) << key;
    EXPECT_EQ(mine.dtype(), tensor.dtype()) << key;
  }
  expect_same_aliasing(c, injected.state);
  // ...and loading PEFT's files into it, step by step, gives PEFT's loaded model.
  PeftModel model = injected;
  model.facts = fresh.facts;
  for (const auto& step : c.json()["load_steps"]) {
    if (!step["error"].is_null()) return;
    FromPretrainedOptions options;
    options.location.subfolder = step["source"].get<std::string>();
    options.adapter_name =
        step["set_peft_model_state_dict_args"]["adapter_name"].get<std::string>();
    options.ignore_mismatched_sizes =
        step["set_peft_model_state_dict_args"]["ignore_mismatched_sizes"].get<bool>();
    const auto& pairs = step["load_peft_weights_args"]["key_mapping_pairs"];
    if (pairs.is_array()) {
      for (const auto& pair : pairs) options.key_mapping.emplace_back(pair[0], pair[1]);
    }
    if (!model.has_adapter(options.adapter_name))
      return;  // a load that adds one: PEFT's from_pretrained path
    const PeftModel before = model;
    const LoadResult result = from_pretrained(model, c.dir().string(), options);
    std::set<std::string> kept_fresh;  // dropped mismatches keep PEFT's random initial values
    for (const auto& m : result.mismatched_keys) kept_fresh.insert(m.key);
    for (const auto& [key, tensor] : c.load_state(step["state_after"].get<std::string>())) {
      if (kept_fresh.count(key)) continue;
      // Values the load does not write keep PEFT's random initialisation (a P-tuning MLP
      // head, an adapter a later step loads): ours keep their placeholders.
      if (fresh.state.at(key).equals(tensor) && !before.state.at(key).equals(tensor)) {
        EXPECT_TRUE(model.state.at(key).equals(before.state.at(key))) << key;
        continue;
      }
      EXPECT_TRUE(same_loaded_values(key, model.state.at(key), tensor)) << key;
    }
  }
}

// Cases PEFT loaded with a plain PeftModel.from_pretrained of the root adapter.
bool is_plain_root_load(const PeftRefCase& c) {
  const auto& steps = c.json()["load_steps"];
  return !c.json()["from_pretrained"].contains("skipped") && steps.size() == 1 &&
         steps[0]["error"].is_null() && steps[0]["source"] == "" &&
         c.json()["fresh_model"]["configs"].size() == 1 &&
         steps[0]["load_peft_weights_args"]["key_mapping"].is_null() &&
         !steps[0]["set_peft_model_state_dict_args"]["ignore_mismatched_sizes"].get<bool>();
}

std::vector<std::string> plain_root_load_cases() {
  std::vector<std::string> names;
  for (const auto& name : testing::peft_ref_case_names()) {
    if (is_plain_root_load(PeftRefCase(testing::peft_ref_root() / name))) names.push_back(name);
  }
  return names;
}

class PlainBaseLoad : public ::testing::TestWithParam<std::string> {};

// The one-call form, PeftModel.from_pretrained(base, folder), gives PEFT's loaded model.
TEST_P(PlainBaseLoad, FromPretrainedGivesPeftsLoadedModel) {
  const PeftRefCase c(testing::peft_ref_root() / GetParam());
  const PeftModel fresh = c.fresh_model();
  const auto& step = c.json()["load_steps"][0];
  FromPretrainedOptions options;
  options.adapter_name = step["set_peft_model_state_dict_args"]["adapter_name"].get<std::string>();
  options.is_trainable = !fresh.adapters.front().second.inference_mode();
  const PeftModel model =
      from_pretrained(base_of(c, fresh), c.dir().string(), options, options_of(c, fresh));
  const StateDict loaded = c.load_state(step["state_after"].get<std::string>());
  ASSERT_EQ(model.state.keys(), loaded.keys());
  for (const auto& [key, tensor] : loaded) {
    if (fresh.state.at(key).equals(tensor) && !model.state.at(key).equals(tensor))
      continue;  // PEFT's random initialisation, which the load does not write
    EXPECT_TRUE(same_loaded_values(key, model.state.at(key), tensor)) << key;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PlainBaseLoad, ::testing::ValuesIn(plain_root_load_cases()),
                         [](const auto& info) { return info.param; });

INSTANTIATE_TEST_SUITE_P(Cases, Injection, ::testing::ValuesIn(testing::peft_ref_case_names()),
                         [](const auto& info) { return info.param; });

StateDict tiny_base() {
  StateDict base;
  base.set("lin.weight", Tensor::zeros(DType::F32, {2, 2}));
  return base;
}

TEST(InjectionErrors, MethodsWithoutRulesAreRefusedClearly) {
  const auto config = PeftConfig::from_json_text(R"({"peft_type": "LILY"})", "t");
  EXPECT_PEFT_ERROR(inject_adapter(tiny_base(), "default", config), ErrorCode::Unsupported, "LILY");
}

TEST(InjectionErrors, OneModelHoldsOneType) {
  const auto lora = PeftConfig::from_json_text(
      R"({"peft_type": "LORA", "r": 1, "lora_alpha": 1, "target_modules": ["lin"]})", "a");
  const auto ia3 =
      PeftConfig::from_json_text(R"({"peft_type": "IA3", "target_modules": ["lin"]})", "b");
  EXPECT_PEFT_ERROR(inject_adapters(tiny_base(), {{"a", lora}, {"b", ia3}}), ErrorCode::Unsupported,
                    "one PEFT model holds adapters of one type");
}

TEST(InjectionErrors, XloraNeedsItsExperts) {
  const auto config = PeftConfig::from_json_text(R"({"peft_type": "XLORA", "adapters": {}})", "t");
  EXPECT_PEFT_ERROR(inject_adapter(tiny_base(), "default", config), ErrorCode::InvalidConfigValue,
                    "adapters");
}

TEST(InjectionErrors, PromptLearningNeedsItsDimensions) {
  const auto config = PeftConfig::from_json_text(
      R"({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4, "task_type": "CAUSAL_LM"})", "t");
  InjectionOptions options;
  options.facts.vocab_size = 2;
  EXPECT_PEFT_ERROR(inject_adapters(tiny_base(), {{"default", config}}, options),
                    ErrorCode::InvalidConfigValue, "to build the prompt encoder");
}

TEST(InjectionErrors, LayerReplicationRangesMustExist) {
  StateDict base;
  base.set("model.layers.0.proj.weight", Tensor::zeros(DType::F32, {2, 2}));
  base.set("model.layers.1.proj.weight", Tensor::zeros(DType::F32, {2, 2}));
  const auto config = PeftConfig::from_json_text(
      R"({"peft_type": "LORA", "r": 1, "lora_alpha": 1, "target_modules": ["proj"],
          "layer_replication": [[0, 3]]})",
      "t");
  EXPECT_PEFT_ERROR(inject_adapter(base, "default", config), ErrorCode::InvalidConfigValue,
                    "layer_replication");
}

// Replicated layers share the original's base tensors and get their own adapter tensors.
TEST(InjectionReplication, CopiesShareBaseWeights) {
  StateDict base;
  base.set("model.layers.0.proj.weight", Tensor::zeros(DType::F32, {2, 2}));
  base.set("model.layers.1.proj.weight", Tensor::zeros(DType::F32, {2, 2}));
  base.set("model.norm.weight", Tensor::zeros(DType::F32, {2}));
  const auto config = PeftConfig::from_json_text(
      R"({"peft_type": "LORA", "r": 1, "lora_alpha": 1, "target_modules": ["proj"],
          "layer_replication": [[0, 2], [0, 1]]})",
      "t");
  const PeftModel model = inject_adapter(base, "default", config);
  const std::string root = "base_model.model.model.layers.";
  EXPECT_EQ(model.state.at(root + "2.proj.base_layer.weight").bytes().data(),
            model.state.at(root + "0.proj.base_layer.weight").bytes().data());
  EXPECT_NE(model.state.at(root + "2.proj.lora_A.default.weight").bytes().data(),
            model.state.at(root + "0.proj.lora_A.default.weight").bytes().data());
  EXPECT_TRUE(model.state.contains("base_model.model.model.norm.weight"));
  EXPECT_FALSE(model.state.contains(root + "3.proj.base_layer.weight"));
}

// OSF keeps min(out, in) - effective_rank trainable triplets; effective_rank may be a
// fraction of min(out, in), and rank_pattern keys are searched in the module path.
TEST(InjectionRules, OsfRanks) {
  StateDict base;
  base.set("a.weight", Tensor::zeros(DType::F32, {4, 6}));
  base.set("b.weight", Tensor::zeros(DType::F32, {4, 6}));
  base.set("c.weight", Tensor::zeros(DType::F32, {4, 6, 1}));  // not 2-D: left alone
  const auto config = PeftConfig::from_json_text(
      R"({"peft_type": "OSF", "target_modules": ["a", "b", "c"], "effective_rank": 0.5,
          "rank_pattern": {"^b$": 1}})",
      "t");
  const PeftModel model = inject_adapter(base, "x", config);
  EXPECT_EQ(model.state.at("base_model.model.a.osf_svd_params.x.S_low").shape(), (Shape{2}));
  EXPECT_EQ(model.state.at("base_model.model.b.osf_svd_params.x.U_low").shape(), (Shape{4, 3}));
  EXPECT_EQ(model.state.at("base_model.model.b.osf_svd_params.x.V_low").shape(), (Shape{3, 6}));
  EXPECT_TRUE(model.state.contains("base_model.model.c.weight"));
}

// A 3-D expert parameter [E, in, out]: the factors stack the experts' ranks.
TEST(InjectionRules, TargetParametersOnExperts) {
  StateDict base;
  base.set("moe.experts", Tensor::zeros(DType::BF16, {2, 3, 5}));
  const auto config = PeftConfig::from_json_text(
      R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": [],
          "target_parameters": ["experts"]})",
      "t");
  const PeftModel model = inject_adapter(base, "default", config);
  EXPECT_EQ(model.state.keys(),
            (std::vector<std::string>{"base_model.model.moe.base_layer.experts",
                                      "base_model.model.moe.lora_A.default.weight",
                                      "base_model.model.moe.lora_B.default.weight"}));
  EXPECT_EQ(model.state.at("base_model.model.moe.lora_A.default.weight").shape(), (Shape{8, 3}));
  EXPECT_EQ(model.state.at("base_model.model.moe.lora_B.default.weight").shape(), (Shape{5, 8}));
  EXPECT_EQ(model.state.at("base_model.model.moe.lora_B.default.weight").dtype(), DType::F32);
}

// PeftModelForSequenceClassification wraps the classifier head for every method, prompt
// learning included; the word embeddings share the base's input embedding.
TEST(InjectionRules, PromptLearningClassifierHead) {
  StateDict base;
  base.set("embed.weight", Tensor::zeros(DType::F32, {10, 4}));
  base.set("classifier.weight", Tensor::zeros(DType::F32, {2, 4}));
  const auto config = PeftConfig::from_json_text(
      R"({"peft_type": "PROMPT_TUNING", "task_type": "SEQ_CLS", "num_virtual_tokens": 3,
          "token_dim": 4, "num_transformer_submodules": 1, "num_layers": 1,
          "num_attention_heads": 1})",
      "t");
  InjectionOptions options;
  options.facts.vocab_size = 10;
  const PeftModel model = inject_adapters(base, {{"default", config}}, options);
  EXPECT_EQ(model.state.keys(),
            (std::vector<std::string>{
                "base_model.embed.weight", "base_model.classifier.original_module.weight",
                "base_model.classifier.modules_to_save.default.weight",
                "prompt_encoder.default.embedding.weight", "word_embeddings.weight"}));
  EXPECT_EQ(model.state.at("prompt_encoder.default.embedding.weight").shape(), (Shape{3, 4}));
  EXPECT_EQ(model.state.at("word_embeddings.weight").bytes().data(),
            model.state.at("base_model.embed.weight").bytes().data());
}

}  // namespace
}  // namespace peft
