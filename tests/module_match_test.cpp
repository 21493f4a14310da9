// PEFT's targeting rules: hand-written cases for each rule, then every peft-ref case: the
// modules PEFT wrapped (trained_model.modules entries with a "<name>.base_layer" child)
// must be exactly the ones is_targeted()/is_parameter_targeted() pick, and the saved
// LoRA/AdaLoRA tensors must have the rank rank_for() gives.
#include "peft/module_match.hpp"

#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <set>

#include "peft/safetensors.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

PeftConfig config_from(const json& value) {
  return PeftConfig::from_json(value, "test.json");
}

PeftConfig lora(json fields) {
  fields["peft_type"] = "LORA";
  return config_from(fields);
}

// --- rules ----------------------------------------------------------------------------

TEST(ModuleMatch, ListEntriesMatchWholeNamesOrDottedSuffixes) {
  const auto config = lora({{"target_modules", {"q_proj", "mlp.fc"}}});
  EXPECT_TRUE(is_targeted(config, "q_proj"));
  EXPECT_TRUE(is_targeted(config, "model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(is_targeted(config, "model.mlp.fc"));
  EXPECT_FALSE(is_targeted(config, "model.layers.0.self_attn.xq_proj"));
  EXPECT_FALSE(is_targeted(config, "model.layers.0.self_attn.q_proj.inner"));
  EXPECT_FALSE(is_targeted(config, "model.fc"));
  EXPECT_FALSE(is_targeted(config, ""));
  EXPECT_FALSE(is_targeted(lora({{"target_modules", json::array()}}), "q_proj"));
}

TEST(ModuleMatch, StringTargetsArePythonFullMatches) {
  const auto config = lora({{"target_modules", R"(.*\.(q|v)_proj)"}});
  EXPECT_TRUE(is_targeted(config, "model.layers.0.q_proj"));
  EXPECT_FALSE(is_targeted(config, "model.layers.0.q_proj.lora"));
  EXPECT_FALSE(is_targeted(config, "q_proj"));
  EXPECT_TRUE(is_targeted(lora({{"target_modules", "a|ab"}}), "ab"));  // fullmatch backtracks
  EXPECT_FALSE(is_targeted(lora({{"target_modules", "q_proj"}}), "model.q_proj"));
  // Python spellings PCRE2 would read differently.
  EXPECT_TRUE(is_targeted(lora({{"target_modules", R"(.*q_proj\Z)"}}), "a.q_proj"));
  EXPECT_FALSE(is_targeted(lora({{"target_modules", R"(.*q_proj\Z)"}}), "a.q_proj\n"));
  EXPECT_TRUE(is_targeted(lora({{"target_modules", R"(x{,2}y)"}}), "xxy"));
  EXPECT_TRUE(is_targeted(lora({{"target_modules", R"((?P<n>a)\.(?P=n))"}}), "a.a"));
  EXPECT_TRUE(
      is_targeted(lora({{"target_modules", R"(\u00e9t\U0001F600)"}}), "\xC3\xA9t\xF0\x9F\x98\x80"));
  EXPECT_TRUE(is_targeted(lora({{"target_modules", R"(l\d)"}}), "l\xD9\xA3"));  // Unicode \d
  EXPECT_TRUE(is_targeted(lora({{"target_modules", R"([]a]+)"}}), "]a]"));
}

TEST(ModuleMatch, InvalidRegexNamesFieldAndPattern) {
  EXPECT_PEFT_ERROR(is_targeted(lora({{"target_modules", "(q_proj"}}), "q_proj"),
                    ErrorCode::InvalidConfigValue,
                    "test.json: invalid_config_value: field 'target_modules': invalid regular "
                    "expression '(q_proj'");
  EXPECT_PEFT_ERROR(is_targeted(lora({{"target_modules", {"q"}}, {"exclude_modules", "[a"}}), "q"),
                    ErrorCode::InvalidConfigValue, "'exclude_modules'");
  EXPECT_PEFT_ERROR(rank_for(lora({{"rank_pattern", {{"lin(", 2}}}}), "lin1"),
                    ErrorCode::InvalidConfigValue, "'rank_pattern'");
}

TEST(ModuleMatch, ExcludeModulesWin) {
  const auto list = lora({{"target_modules", {"proj"}}, {"exclude_modules", {"k_proj", "x.proj"}}});
  EXPECT_EQ(match_target(list, "a.x.proj"), TargetMatch::Excluded);
  EXPECT_EQ(match_target(list, "x.proj"), TargetMatch::Excluded);
  EXPECT_EQ(match_target(list, "a.y.proj"), TargetMatch::Targeted);
  const auto regex = lora({{"target_modules", ".*proj"}, {"exclude_modules", ".*\\.1\\..*"}});
  EXPECT_EQ(match_target(regex, "layers.1.proj"), TargetMatch::Excluded);
  EXPECT_EQ(match_target(regex, "layers.0.proj"), TargetMatch::Targeted);
  // An empty exclusion excludes nothing.
  EXPECT_TRUE(is_targeted(lora({{"target_modules", {"p"}}, {"exclude_modules", ""}}), "p"));
}

TEST(ModuleMatch, ModulesToSaveAreNeverAdapted) {
  const auto config =
      lora({{"target_modules", {"dense", "classifier"}}, {"modules_to_save", {"classifier"}}});
  EXPECT_EQ(match_target(config, "classifier"), TargetMatch::Excluded);
  EXPECT_EQ(match_target(config, "model.classifier"), TargetMatch::Excluded);
  EXPECT_EQ(match_target(config, "model.classifier.dense"), TargetMatch::Excluded);
  EXPECT_EQ(match_target(config, "model.my_classifier.dense"), TargetMatch::Targeted);
}

TEST(ModuleMatch, LayersToTransformRestrictSuffixMatches) {
  const auto list = lora({{"target_modules", {"q_proj"}}, {"layers_to_transform", {1, 3}}});
  EXPECT_TRUE(is_targeted(list, "model.layers.1.self_attn.q_proj"));
  EXPECT_TRUE(is_targeted(list, "model.layers.3.self_attn.q_proj"));
  EXPECT_FALSE(is_targeted(list, "model.layers.0.self_attn.q_proj"));
  // The default pattern needs a component before the layer list ("x.<list>.<n>.").
  EXPECT_FALSE(is_targeted(list, "layers.1.q_proj"));
  EXPECT_TRUE(is_targeted(lora({{"target_modules", {"q_proj"}}, {"layers_to_transform", 1}}),
                          "model.layers.1.q_proj"));
  // An empty list does not restrict.
  EXPECT_TRUE(is_targeted(
      lora({{"target_modules", {"q_proj"}}, {"layers_to_transform", json::array()}}), "q.q_proj"));
  // A named pattern.
  const auto named =
      lora({{"target_modules", {"c_attn"}}, {"layers_to_transform", {0}}, {"layers_pattern", "h"}});
  EXPECT_TRUE(is_targeted(named, "transformer.h.0.attn.c_attn"));
  EXPECT_FALSE(is_targeted(named, "transformer.blocks.0.attn.c_attn"));
  const auto patterns = lora({{"target_modules", {"c_attn"}},
                              {"layers_to_transform", {0}},
                              {"layers_pattern", {"blocks", "h"}}});
  EXPECT_TRUE(is_targeted(patterns, "transformer.blocks.0.attn.c_attn"));
  // The greedy ".*" takes the last number that follows a component.
  EXPECT_FALSE(is_targeted(list, "model.layers.1.experts.0.q_proj"));
  // An exact entry skips the layer check.
  EXPECT_TRUE(
      is_targeted(lora({{"target_modules", {"model.layers.0.q"}}, {"layers_to_transform", {1}}}),
                  "model.layers.0.q"));
}

TEST(ModuleMatch, TypesWithoutModuleTargets) {
  for (const char* type : {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "XLORA", "CPT"}) {
    EXPECT_FALSE(is_targeted(config_from({{"peft_type", type}, {"target_modules", {"q"}}}), "q"))
        << type;
  }
  EXPECT_PEFT_ERROR(
      is_targeted(config_from({{"peft_type", "ADAPTION_PROMPT"}, {"target_modules", "self_attn"}}),
                  "model.layers.0.self_attn"),
      ErrorCode::Unsupported, "ADAPTION_PROMPT");
  EXPECT_PEFT_ERROR(is_targeted(lora({{"target_modules", "all-linear"}}), "q"),
                    ErrorCode::Unsupported, "all-linear");
  EXPECT_PEFT_ERROR(is_targeted(lora({}), "q"), ErrorCode::Unsupported, "model type");
  // Excluded modules are decided even for "all-linear".
  EXPECT_EQ(match_target(lora({{"target_modules", "all-linear"}, {"exclude_modules", {"q"}}}), "q"),
            TargetMatch::Excluded);
}

TEST(ModuleMatch, FieldsTheTypeDoesNotDeclareAreIgnoredLikePeftDropsThem) {
  // VeRA declares neither exclude_modules nor target_parameters: PEFT drops them on load.
  const auto vera = config_from({{"peft_type", "VERA"},
                                 {"target_modules", {"q"}},
                                 {"exclude_modules", {"q"}},
                                 {"target_parameters", {"q.weight"}}});
  EXPECT_TRUE(is_targeted(vera, "a.q"));
  EXPECT_FALSE(is_parameter_targeted(vera, "q.weight"));
  // TRAINABLE_TOKENS declares no modules_to_save.
  const auto tokens = config_from({{"peft_type", "TRAINABLE_TOKENS"},
                                   {"target_modules", {"emb"}},
                                   {"modules_to_save", {"emb"}}});
  EXPECT_TRUE(is_targeted(tokens, "emb"));
  // A later type: the file is all we know.
  const auto later =
      config_from({{"peft_type", "HIRA"}, {"target_modules", {"q"}}, {"exclude_modules", {"q"}}});
  EXPECT_EQ(match_target(later, "a.q"), TargetMatch::Excluded);
}

TEST(ModuleMatch, TargetParameters) {
  const auto config = lora({{"target_parameters", {"lin0.weight", "experts.gate_up_proj"}}});
  EXPECT_FALSE(is_targeted(config, "lin0"));
  EXPECT_TRUE(is_parameter_targeted(config, "lin0.weight"));
  EXPECT_TRUE(is_parameter_targeted(config, "model.layers.0.mlp.experts.gate_up_proj"));
  EXPECT_FALSE(is_parameter_targeted(config, "lin0.bias"));
  EXPECT_FALSE(is_parameter_targeted(config, "xlin0.weight"));
  EXPECT_FALSE(is_parameter_targeted(lora({{"target_modules", {"a"}}}), "a.weight"));
}

TEST(ModuleMatch, PatternKeysFollowGetPatternKey) {
  const auto config = PeftConfig::from_json_text(
      R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16,
          "rank_pattern": {"layers.0.q": 4, "q": 2, "a+b": 5, "^model\\.v$": 6},
          "alpha_pattern": {"q": 3.5}})",
      "test.json");
  EXPECT_EQ(pattern_key(config, "rank_pattern", "model.layers.0.q"), "layers.0.q");
  EXPECT_EQ(rank_for(config, "model.layers.0.q"), 4);
  EXPECT_EQ(rank_for(config, "model.layers.1.q"), 2);
  EXPECT_EQ(rank_for(config, "q"), 2);
  EXPECT_EQ(rank_for(config, "model.xq"), 8);  // a key matches a whole component suffix
  EXPECT_EQ(rank_for(config, "model.q.k"), 8);
  EXPECT_EQ(rank_for(config, "aab"), 5);  // keys are regular expressions ...
  EXPECT_EQ(rank_for(config, "a+b"), 5);  // ... and PEFT falls back to a literal lookup
  EXPECT_EQ(rank_for(config, "model.v"), 6);
  EXPECT_EQ(pattern_key(config, "rank_pattern", "k"), std::nullopt);
  EXPECT_EQ(alpha_for(config, "model.layers.0.q"), 3.5);
  EXPECT_EQ(alpha_for(config, "model.k"), 16.0);

  // The first key in the file's order wins, as it does for the Python dict.
  const auto first = PeftConfig::from_json_text(
      R"({"peft_type": "LORA", "rank_pattern": {"q": 2, "layers.0.q": 4}})", "test.json");
  EXPECT_EQ(rank_for(first, "model.layers.0.q"), 2);
}

TEST(ModuleMatch, RanksAndAlphasPerMethod) {
  const auto loha = PeftConfig::from_json_text(
      R"({"peft_type": "LOHA", "r": 4, "alpha": 2, "rank_pattern": {"fc": 6},
          "alpha_pattern": {"fc": 1}})",
      "test.json");
  EXPECT_EQ(rank_for(loha, "m.fc"), 6);
  EXPECT_EQ(alpha_for(loha, "m.fc"), 1.0);
  EXPECT_EQ(alpha_for(loha, "m.gc"), 2.0);
  const auto ada = PeftConfig::from_json_text(
      R"({"peft_type": "ADALORA", "init_r": 6, "lora_alpha": 4, "alpha_pattern": {"lin0": 9},
          "rank_pattern": {"lin0.lora_E": [true, false, true], "lin1.lora_E.default": [1, 0, 0]}})",
      "test.json");
  EXPECT_EQ(rank_for(ada, "lin0"), 2);
  EXPECT_EQ(rank_for(ada, "lin1"), 1);
  EXPECT_EQ(rank_for(ada, "lin2"), 6);
  EXPECT_EQ(alpha_for(ada, "lin0"), 4.0);  // AdaLoRA ignores alpha_pattern
  EXPECT_EQ(rank_for(PeftConfig::make(PeftType::ADALORA), "x"), 12);
  EXPECT_EQ(rank_for(PeftConfig::make(PeftType::VERA), "x"), 256);
  EXPECT_PEFT_ERROR(rank_for(PeftConfig::make(PeftType::OSF), "x"), ErrorCode::Unsupported, "OSF");
  EXPECT_PEFT_ERROR(rank_for(PeftConfig::make(PeftType::IA3), "x"), ErrorCode::MissingKey, "'r'");
}

// --- the oracle's module tables -----------------------------------------------------------

struct ModuleTable {
  std::vector<std::string> names;
  std::map<std::string, std::string> classes;
  std::set<std::string> wrappers;  // tuner layers: they have a "base_layer" child
  std::string prefix;              // where the base model sits in the PEFT model

  explicit ModuleTable(const json& modules) {
    for (const auto& entry : modules) {
      names.push_back(entry[0].get<std::string>());
      classes[names.back()] = entry[1].get<std::string>();
    }
    const std::string suffix = ".base_layer";
    for (const auto& name : names) {
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        wrappers.insert(name.substr(0, name.size() - suffix.size()));
      }
    }
    // PeftModel -> tuner -> model; X-LoRA puts its LoRA tuner in between.
    prefix = classes.count("base_model.lora_model.model") ? "base_model.lora_model.model"
                                                          : "base_model.model";
  }

  std::string class_of(const std::string& name) const {
    const auto it = classes.find(name);
    return it == classes.end() ? std::string() : it->second;
  }

  // Modules PEFT created inside a wrapper (adapter weights, dropout, saved copies, the
  // trainable-token layer), as opposed to the base model's own modules.
  bool is_internal(const std::string& name) const {
    std::string ancestor;
    std::size_t start = 0;
    while (true) {
      const std::size_t dot = name.find('.', start);
      if (dot == std::string::npos) return false;
      ancestor = name.substr(0, dot);
      const std::size_t next = name.find('.', dot + 1);
      const std::string child =
          name.substr(dot + 1, next == std::string::npos ? next : next - dot - 1);
      if (wrappers.count(ancestor) && child != "base_layer") return true;
      if (class_of(ancestor) == "ModulesToSaveWrapper" && child != "original_module") return true;
      if (class_of(ancestor) == "TrainableTokensWrapper") return true;
      start = dot + 1;
    }
  }

  // The base model's name for a module: relative to `prefix`, without the wrappers'
  // "base_layer"/"original_module" steps. nullopt outside the base model.
  std::optional<std::string> unwrapped(const std::string& name) const {
    if (name != prefix && name.rfind(prefix + ".", 0) != 0) return std::nullopt;
    std::string full, out;
    std::size_t start = 0;
    while (start <= name.size()) {
      const std::size_t dot = name.find('.', start);
      const std::string part = name.substr(start, dot == std::string::npos ? dot : dot - start);
      const bool skip = (part == "base_layer" && wrappers.count(full)) ||
                        (part == "original_module" && class_of(full) == "ModulesToSaveWrapper");
      full += (full.empty() ? "" : ".") + part;
      if (full.size() > prefix.size() && !skip) out += (out.empty() ? "" : ".") + part;
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    return out;
  }
};

TEST(ModuleMatch, PeftRefWrappedModulesAreTheTargetedOnes) {
  const auto case_files = testing::find_files(testing::peft_ref_root(), "case.json");
  ASSERT_GT(case_files.size(), 30u);
  std::size_t checked = 0, skipped = 0;
  for (const auto& case_file : case_files) {
    const fs::path dir = case_file.parent_path();
    const std::string case_name = dir.filename().string();
    SCOPED_TRACE(case_name);
    const auto meta = json::parse(testing::read_text(case_file));
    if (!meta.contains("trained_model") || !meta.contains("configs_in_memory")) continue;
    const ModuleTable table(meta["trained_model"]["modules"]);

    // What PEFT wrapped.
    std::set<std::string> wrapped;
    for (const auto& wrapper : table.wrappers) {
      if (table.is_internal(wrapper)) continue;  // e.g. the trainable-token layer
      const auto name = table.unwrapped(wrapper);
      if (!name) continue;
      // A tuner layer inside another one's base layer, under another name, was made by
      // the outer layer class itself (LoRA's MultiheadAttention wraps its out_proj).
      bool nested = false;
      for (const auto& outer : table.wrappers) {
        if (outer != wrapper && wrapper.rfind(outer + ".base_layer.", 0) == 0 &&
            table.unwrapped(outer) != name) {
          nested = true;
        }
      }
      if (nested) {
        std::cout << "[ NOTE     ] " << case_name << ": " << *name << " is wrapped by its "
                  << table.class_of(wrapper.substr(0, wrapper.rfind(".base_layer.")))
                  << " parent\n";
        continue;
      }
      wrapped.insert(*name);
    }

    // The base model's modules and parameters.
    std::set<std::string> modules;
    for (const auto& name : table.names) {
      if (table.is_internal(name)) continue;
      const auto base = table.unwrapped(name);
      if (base && !base->empty()) modules.insert(*base);
    }
    std::vector<std::string> parameter_paths;  // "<module>.<parameter>" of base modules
    const fs::path state = dir / "model_state.safetensors";
    if (fs::exists(state)) {
      const auto file = SafetensorsFile::open(state);
      for (const auto& info : file.tensors()) {
        const std::size_t dot = info.name.rfind('.');
        if (dot == std::string::npos) continue;
        const std::string owner = info.name.substr(0, dot);
        if (table.is_internal(owner)) continue;
        const auto base = table.unwrapped(owner);
        if (!base) continue;
        const std::string parameter = info.name.substr(dot + 1);
        parameter_paths.push_back(base->empty() ? parameter : *base + "." + parameter);
      }
    }

    // What the configs say.
    std::set<std::string> predicted;
    std::string skip_reason;
    for (const auto& [adapter, value] : meta["configs_in_memory"].items()) {
      const auto config = PeftConfig::from_json(value, case_name + "/" + adapter);
      try {
        for (const auto& module : modules) {
          if (is_targeted(config, module)) predicted.insert(module);
        }
      } catch (const Error& error) {
        if (error.code() != ErrorCode::Unsupported) throw;
        skip_reason = error.detail();
        break;
      }
      for (const auto& path : parameter_paths) {
        if (is_parameter_targeted(config, path)) predicted.insert(path.substr(0, path.rfind('.')));
      }
    }
    if (!skip_reason.empty()) {
      std::cout << "[ SKIP     ] " << case_name << ": " << skip_reason << "\n";
      ++skipped;
      continue;
    }
    EXPECT_EQ(predicted, wrapped);
    ++checked;
  }
  std::cout << "[ NOTE     ] " << checked << " cases compared with PEFT's wrapped modules, "
            << skipped << " skipped\n";
  EXPECT_GT(checked, 50u);
}

TEST(ModuleMatch, PeftRefLoraRanksMatchTheSavedTensors) {
  std::size_t checked = 0;
  for (const auto& case_file : testing::find_files(testing::peft_ref_root(), "case.json")) {
    const fs::path dir = case_file.parent_path();
    SCOPED_TRACE(dir.filename().string());
    const auto meta = json::parse(testing::read_text(case_file));
    bool xlora = false;
    const json types = meta.value("peft_types", json::object());
    for (const auto& [adapter, type] : types.items()) {
      xlora = xlora || type == "XLORA";
    }
    if (xlora) continue;  // its sub-adapter folders hold unrelated tensors (substring rule)
    for (const auto& config_file : testing::find_files(dir, "adapter_config.json")) {
      const fs::path weights = config_file.parent_path() / "adapter_model.safetensors";
      if (!fs::exists(weights)) continue;
      const auto config = PeftConfig::load(config_file);
      if (config.peft_type() != PeftType::LORA && config.peft_type() != PeftType::ADALORA) continue;
      const auto file = SafetensorsFile::open(weights);
      for (const auto& info : file.tensors()) {
        std::string module = info.name;
        bool is_a = false;
        for (const std::string suffix : {".lora_A.weight", ".lora_embedding_A"}) {
          if (module.size() > suffix.size() &&
              module.compare(module.size() - suffix.size(), suffix.size(), suffix) == 0) {
            module.resize(module.size() - suffix.size());
            is_a = true;
          }
        }
        if (!is_a || module.rfind("base_model.model.", 0) != 0) continue;
        module = module.substr(std::string("base_model.model.").size());
        ASSERT_FALSE(info.shape.empty());
        EXPECT_EQ(static_cast<int>(info.shape[0]), rank_for(config, module))
            << info.name << " in " << weights;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 20u);
}

}  // namespace
}  // namespace peft
