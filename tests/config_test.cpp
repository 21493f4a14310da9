// adapter_config.json on hand-written inputs: Python's JSON bytes (float repr, escaping,
// NaN, key order), Python-compatible field values, legacy and foreign files, the default
// tables behind make(), validate()'s refusals, and the PeftType/TaskType names.
#include "peft/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "pycompat/python_json.hpp"
#include "test_support.hpp"

namespace peft {
namespace {

using nlohmann::json;

PeftConfig parse(std::string_view text) {
  return PeftConfig::from_json_text(text, "test.json");
}

bool any_warning_contains(const PeftConfig& config, std::string_view fragment) {
  return std::any_of(config.warnings().begin(), config.warnings().end(), [&](const Diagnostic& w) {
    return to_text(w).find(fragment) != std::string::npos;
  });
}

// --- PeftType / TaskType --------------------------------------------------------------

TEST(PeftType, NamesRoundTripInDeclarationOrder) {
  const auto types = all_peft_types();
  ASSERT_EQ(types.size(), kPeftTypeCount);
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < types.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(types[i]), i);
    const auto name = to_string(types[i]);
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_EQ(peft_type_from_string(name), types[i]);
    EXPECT_EQ(in_peft_0_18_0(types[i]), i < kPeftTypeCountV0_18_0) << name;
  }
  EXPECT_EQ(to_string(PeftType::LORA), "LORA");
  EXPECT_EQ(to_string(PeftType::TRAINABLE_TOKENS), "TRAINABLE_TOKENS");
  EXPECT_EQ(to_string(PeftType::DELORA), "DELORA");
  EXPECT_EQ(to_string(PeftType::SUPERTUNING), "SUPERTUNING");
  EXPECT_EQ(peft_type_from_string("lora"), std::nullopt);  // case-sensitive like PEFT
  EXPECT_EQ(peft_type_from_string(""), std::nullopt);
  EXPECT_EQ(peft_type_from_string("UNKNOWN"), std::nullopt);
}

TEST(PeftType, PromptLearningTypes) {
  std::set<PeftType> expected = {PeftType::PROMPT_TUNING, PeftType::MULTITASK_PROMPT_TUNING,
                                 PeftType::P_TUNING,      PeftType::PREFIX_TUNING,
                                 PeftType::CPT,           PeftType::CARTRIDGE};
  for (const PeftType type : all_peft_types()) {
    EXPECT_EQ(is_prompt_learning(type), expected.count(type) == 1) << to_string(type);
  }
  EXPECT_FALSE(is_prompt_learning(PeftType::ADAPTION_PROMPT));
}

TEST(PeftType, TaskTypes) {
  ASSERT_EQ(all_task_types().size(), kTaskTypeCount);
  for (const TaskType task : all_task_types()) {
    EXPECT_EQ(task_type_from_string(to_string(task)), task);
  }
  EXPECT_EQ(to_string(TaskType::SEQ_2_SEQ_LM), "SEQ_2_SEQ_LM");
  EXPECT_EQ(task_type_from_string("causal_lm"), std::nullopt);
}

// --- Python's JSON text ---------------------------------------------------------------

TEST(ConfigJson, FloatsAreWrittenAsPythonRepr) {
  const std::pair<double, const char*> cases[] = {
      {1e-05, "1e-05"},
      {0.1, "0.1"},
      {150.0, "150.0"},
      {1e16, "1e+16"},
      {1e22, "1e+22"},
      {0.0001, "0.0001"},
      {6e-05, "6e-05"},
      {1.5e-07, "1.5e-07"},
      {-0.0, "-0.0"},
      {0.0, "0.0"},
      {1234567890123456.0, "1234567890123456.0"},
      {12345678901234567.0, "1.2345678901234568e+16"},
      {9999999999999998.0, "9999999999999998.0"},
      {1e15, "1000000000000000.0"},
      {123.456, "123.456"},
      {5e-324, "5e-324"},
      {1.7976931348623157e+308, "1.7976931348623157e+308"},
      {0.85, "0.85"},
      {2.0, "2.0"},
      {-1e-100, "-1e-100"},
      {1e100, "1e+100"},
      {2.0 / 3.0, "0.6666666666666666"},
      {0.001, "0.001"},
      {1e-4 * 3, "0.00030000000000000003"},
      {std::numeric_limits<double>::quiet_NaN(), "NaN"},
      {std::numeric_limits<double>::infinity(), "Infinity"},
      {-std::numeric_limits<double>::infinity(), "-Infinity"},
  };
  for (const auto& [value, text] : cases) {
    EXPECT_EQ(detail::python_float_repr(value), text);
  }
}

TEST(ConfigJson, IntegersAndFloatsKeepTheirKind) {
  const auto config = parse(R"({"peft_type": "LORA", "a": 8, "b": 8.0, "c": -3, "d": 1e2,
                                "e": 18446744073709551615, "f": -9223372036854775808})");
  const std::string text = config.to_json_text();
  EXPECT_NE(text.find("\"a\": 8,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"b\": 8.0,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"c\": -3,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"d\": 100.0,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"e\": 18446744073709551615,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"f\": -9223372036854775808,"), std::string::npos) << text;
}

TEST(ConfigJson, LayoutEscapingAndNonFiniteMatchJsonDumps) {
  // Expected bytes produced by Python: json.dumps(obj, indent=2, sort_keys=True).
  const auto config = parse(
      "{\"peft_type\": \"LORA\", \"s\": \"\xC3\xA9\xE6\x97\xA5\xE6\x9C\xAC\xF0\x9F\x98\x80"
      "\\u0001\\u001f\x7f\\\"\\\\/\\n\\t\\b\\f\\r\", \"k\\u00e9\": [], \"a\": {}, "
      "\"b\": [1, {\"z\": null, \"y\": true}], \"c\": NaN, \"d\": Infinity, \"e\": -Infinity}");
  const std::string expected = R"({
  "a": {},
  "b": [
    1,
    {
      "y": true,
      "z": null
    }
  ],
  "c": NaN,
  "d": Infinity,
  "e": -Infinity,
  "k\u00e9": [],
  "peft_type": "LORA",
  "s": "\u00e9\u65e5\u672c\ud83d\ude00\u0001\u001f\u007f\"\\/\n\t\b\f\r"
})";
  EXPECT_EQ(config.to_json_text(), expected);
}

TEST(ConfigJson, SurrogateEscapesSurviveARoundTrip) {
  const auto config =
      parse(R"({"peft_type": "LORA", "x": "\ud800x\udc00\ud83d\ude00", "y": "\uD83D\uDE00"})");
  const std::string text = config.to_json_text();
  EXPECT_NE(text.find(R"("x": "\ud800x\udc00\ud83d\ude00")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("y": "\ud83d\ude00")"), std::string::npos) << text;
  EXPECT_EQ(parse(text).to_json_text(), text);
}

TEST(ConfigJson, RepeatedKeysKeepTheLastValue) {
  const auto config = parse(R"({"peft_type": "LORA", "r": 4, "r": 16})");
  EXPECT_EQ(config.r(), 16);
}

TEST(ConfigJson, AcceptsAnyWhitespaceCrlfAndByteOrderMark) {
  const auto crlf = parse("{\r\n    \"peft_type\": \"LORA\",\r\n    \"r\": 4\r\n}\r\n");
  EXPECT_EQ(crlf.r(), 4);
  EXPECT_EQ(crlf.to_json_text(), "{\n  \"peft_type\": \"LORA\",\n  \"r\": 4\n}");
  const auto bom = parse("\xEF\xBB\xBF{\"peft_type\": \"IA3\"}");
  EXPECT_EQ(bom.peft_type(), PeftType::IA3);
  EXPECT_TRUE(any_warning_contains(bom, "byte order mark"));
}

TEST(ConfigJson, InvalidJsonNamesTheFileAndPlace) {
  const char* broken[] = {
      "",
      "{",
      "{\"peft_type\": \"LORA\",}",
      "{'peft_type': 'LORA'}",
      "{\"peft_type\": \"LO\nRA\"}",
      "{\"r\": 01}",
      "{\"r\": 1.}",
      "{\"r\": .5}",
      "{\"r\": +1}",
      "{\"peft_type\": \"LORA\"} x",
      "{\"s\": \"\\x41\"}",
      "{\"s\": \"\\u12\"}",
      "{\"s\": \"\xC3\x28\"}",
      "{\"s\": \"\xED\xA0\x80\"}",
      "[1, 2",
      "nan",
  };
  for (const char* text : broken) {
    SCOPED_TRACE(text);
    EXPECT_PEFT_ERROR(parse(text), ErrorCode::InvalidJson, "test.json: invalid_json: ");
  }
  EXPECT_PEFT_ERROR(parse("{\n  \"r\": tru\n}"), ErrorCode::InvalidJson, "line 2 column 8");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "r": 123456789012345678901234567890})"),
                    ErrorCode::Unsupported, "64 bits");
}

TEST(ConfigJson, HugeAndTinyFloatsBehaveLikePythonFloat) {
  const auto config = parse(R"({"peft_type": "LORA", "a": 1e400, "b": -1e400, "c": 1e-400})");
  EXPECT_TRUE(std::isinf(config.json()["a"].get<double>()));
  EXPECT_NE(config.to_json_text().find("\"a\": Infinity"), std::string::npos);
  EXPECT_NE(config.to_json_text().find("\"b\": -Infinity"), std::string::npos);
  EXPECT_NE(config.to_json_text().find("\"c\": 0.0"), std::string::npos);
}

TEST(ConfigJson, PatternKeysKeepTheFileOrder) {
  const auto config =
      parse(R"({"peft_type": "LORA", "rank_pattern": {"zeta": 2, "alpha": 4, "mid": 3}})");
  EXPECT_EQ(config.member_keys("rank_pattern"), (std::vector<std::string>{"zeta", "alpha", "mid"}));
  // Written sorted all the same.
  EXPECT_NE(config.to_json_text().find("\"alpha\": 4,\n    \"mid\": 3,\n    \"zeta\": 2"),
            std::string::npos);
  // Built in memory: sorted order.
  const auto built = PeftConfig::from_json(config.json(), "memory");
  EXPECT_EQ(built.member_keys("rank_pattern"), (std::vector<std::string>{"alpha", "mid", "zeta"}));
  EXPECT_TRUE(config.member_keys("r").empty());
}

// --- structure: what is and is not a PEFT config ---------------------------------------

TEST(ConfigLoad, MlxAdapterConfigIsNotAPeftConfig) {
  const char* mlx = R"({
  "fine_tune_type": "lora",
  "num_layers": 16,
  "lora_parameters": {"rank": 16, "scale": 1.0, "dropout": 0.0, "keys": ["self_attn.q_proj"]}
})";
  EXPECT_PEFT_ERROR(parse(mlx), ErrorCode::NotAPeftConfig, "MLX");
  EXPECT_PEFT_ERROR(parse(mlx), ErrorCode::NotAPeftConfig,
                    "test.json: not_a_peft_config: no 'peft_type'");
  EXPECT_PEFT_ERROR(parse("[1, 2]"), ErrorCode::NotAPeftConfig, "list, not an object");
  EXPECT_PEFT_ERROR(parse("{\"peft_type\": 3}"), ErrorCode::NotAPeftConfig, "integer 3");
  EXPECT_PEFT_ERROR(parse("{\"peft_type\": null}"), ErrorCode::NotAPeftConfig, "peft_type");
}

TEST(ConfigLoad, UnknownPeftTypeNamesTheValueAndTheFile) {
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "SUPER_LORA"})"), ErrorCode::UnknownPeftType,
                    "test.json: unknown_peft_type: unknown peft_type 'SUPER_LORA'");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "lora"})"), ErrorCode::UnknownPeftType, "'lora'");
}

TEST(ConfigLoad, LaterPeftTypesLoadWithAWarning) {
  const auto config = parse(R"({"peft_type": "HIRA", "r": 32, "target_modules": ["q_proj"]})");
  EXPECT_EQ(config.peft_type(), PeftType::HIRA);
  EXPECT_EQ(config.r(), 32);
  EXPECT_TRUE(config.unknown_fields().empty());
  EXPECT_TRUE(any_warning_contains(config, "added after PEFT v0.18.0"));
  EXPECT_PEFT_ERROR(config.validate(), ErrorCode::Unsupported, "HIRA");
  EXPECT_PEFT_ERROR(config.lora_alpha(), ErrorCode::MissingKey, "lora_alpha");
  EXPECT_PEFT_ERROR(PeftConfig::make(PeftType::HIRA), ErrorCode::Unsupported, "HIRA");
  const auto cartridge = parse(R"({"peft_type": "CARTRIDGE"})");
  EXPECT_TRUE(cartridge.is_prompt_learning());
}

TEST(ConfigLoad, BoneLoadsWithTheDeprecationWarning) {
  const auto config = parse(R"({"peft_type": "BONE", "r": 4, "init_weights": "bat"})");
  EXPECT_EQ(config.peft_type(), PeftType::BONE);
  EXPECT_TRUE(any_warning_contains(config, "MISS"));
  EXPECT_NO_THROW(config.validate());
}

TEST(ConfigLoad, RuntimeConfigIsDroppedWithAWarning) {
  const auto config =
      parse(R"({"peft_type": "LORA", "r": 4, "runtime_config": {"ephemeral_gpu_offload": true}})");
  EXPECT_FALSE(config.json().contains("runtime_config"));
  EXPECT_EQ(config.to_json_text().find("runtime_config"), std::string::npos);
  EXPECT_TRUE(any_warning_contains(config, "test.json: runtime_config: "));
  EXPECT_TRUE(config.unknown_fields().empty());
}

TEST(ConfigLoad, UnknownFieldsAreKeptAndReported) {
  const auto config =
      parse(R"({"peft_type": "LORA", "r": 4, "use_bdlora": false, "lora_ga_config": null})");
  EXPECT_EQ(config.unknown_fields(), (std::vector<std::string>{"lora_ga_config", "use_bdlora"}));
  EXPECT_TRUE(any_warning_contains(config, "lora_ga_config, use_bdlora"));
  const std::string text = config.to_json_text();
  EXPECT_NE(text.find("\"use_bdlora\": false"), std::string::npos);
  EXPECT_NE(text.find("\"lora_ga_config\": null"), std::string::npos);
  EXPECT_TRUE(config.declares("use_dora"));
  EXPECT_FALSE(config.declares("use_bdlora"));
}

TEST(ConfigLoad, LegacyConfigsLoadWithDefaultsForMissingFields) {
  const auto config = parse(R"({
  "base_model_name_or_path": "bigscience/bloom-560m",
  "bias": "none",
  "enable_lora": [true, false, true],
  "fan_in_fan_out": true,
  "inference_mode": true,
  "lora_alpha": 16,
  "lora_dropout": 0.05,
  "merge_weights": false,
  "modules_to_save": null,
  "peft_type": "LORA",
  "r": 8,
  "target_modules": ["query_key_value"],
  "task_type": "CAUSAL_LM"
})");
  EXPECT_EQ(config.unknown_fields(), (std::vector<std::string>{"enable_lora", "merge_weights"}));
  EXPECT_TRUE(any_warning_contains(config, "PEFT <= 0.2"));
  EXPECT_EQ(config.r(), 8);
  EXPECT_EQ(config.lora_alpha(), 16.0);
  EXPECT_TRUE(config.fan_in_fan_out());
  EXPECT_FALSE(config.use_dora());
  EXPECT_FALSE(config.use_rslora());
  EXPECT_FALSE(config.lora_bias());
  EXPECT_EQ(config.peft_version(), std::nullopt);
  EXPECT_TRUE(config.rank_pattern().empty());
  EXPECT_EQ(config.layers_to_transform(), std::nullopt);
  EXPECT_EQ(config.task_type(), TaskType::CAUSAL_LM);
  EXPECT_EQ(config.base_model_name_or_path(), "bigscience/bloom-560m");
  EXPECT_EQ(std::get<bool>(config.init_lora_weights()), true);
  EXPECT_NO_THROW(config.validate());

  // What PEFT v0.18.0 writes after loading it: every field, the loader's version; the
  // legacy fields are still kept by us.
  const PeftConfig full = config.completed();
  for (const auto& field : PeftConfig::declared_fields(PeftType::LORA)) {
    EXPECT_TRUE(full.json().contains(field)) << field;
  }
  EXPECT_EQ(full.peft_version(), "0.18.0");
  EXPECT_TRUE(full.json().contains("enable_lora"));
  EXPECT_EQ(full.json()["lora_dropout"], 0.05);
}

TEST(ConfigLoad, LoadsAFolderOrAFileAndSavesAtomically) {
  testing::TempDir dir;
  EXPECT_PEFT_ERROR(PeftConfig::load(dir.path()), ErrorCode::NotFound, "no adapter_config.json");
  EXPECT_PEFT_ERROR(PeftConfig::load(dir / "nope.json"), ErrorCode::NotFound, "no such file");
  auto config = PeftConfig::make(PeftType::IA3);
  config.mutable_json()["target_modules"] = json::array({"k", "v"});
  config.save(dir.path());
  const std::string written = testing::read_text(dir / "adapter_config.json");
  EXPECT_EQ(written, config.to_json_text());
  EXPECT_NE(written.back(), '\n');
  const auto loaded = PeftConfig::load(dir.path());
  EXPECT_EQ(loaded.source(), (dir / "adapter_config.json").string());
  EXPECT_EQ(loaded.json(), config.json());
  config.save(dir / "copy.json");
  EXPECT_EQ(PeftConfig::load(dir / "copy.json").to_json_text(), written);
  testing::write_bytes(dir / "adapter_config.json", {});
  EXPECT_PEFT_ERROR(PeftConfig::load(dir.path()), ErrorCode::InvalidJson,
                    (dir / "adapter_config.json").string());
}

// --- typed fields ----------------------------------------------------------------------

TEST(ConfigFields, PythonCompatibleBooleansAndNumbers) {
  const auto config = parse(R"({"peft_type": "LORA", "use_dora": 1, "fan_in_fan_out": 0,
      "inference_mode": 1, "use_rslora": null, "lora_bias": false, "r": 4, "lora_alpha": 16,
      "init_lora_weights": 0})");
  EXPECT_TRUE(config.use_dora());
  EXPECT_FALSE(config.fan_in_fan_out());
  EXPECT_TRUE(config.inference_mode());
  EXPECT_FALSE(config.use_rslora());
  EXPECT_EQ(config.lora_alpha(), 16.0);
  EXPECT_EQ(std::get<bool>(config.init_lora_weights()), false);
  // The file is kept as it is: 0/1 stay integers.
  EXPECT_NE(config.to_json_text().find("\"use_dora\": 1"), std::string::npos);
}

TEST(ConfigFields, WrongTypesNameFileFieldAndExpectedType) {
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "r": "8"})").r(), ErrorCode::ConfigFieldType,
                    "test.json: config_field_type: field 'r' must be an integer, got string \"8\"");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "r": 8.0})").r(), ErrorCode::ConfigFieldType,
                    "got float 8.0");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "r": true})").r(), ErrorCode::ConfigFieldType,
                    "'r'");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "lora_alpha": "16"})").lora_alpha(),
                    ErrorCode::ConfigFieldType, "'lora_alpha' must be a number");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "use_dora": "true"})").use_dora(),
                    ErrorCode::ConfigFieldType, "'use_dora' must be a boolean");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "use_dora": 1.0})").use_dora(),
                    ErrorCode::ConfigFieldType, "'use_dora'");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "target_modules": 5})").target_modules(),
                    ErrorCode::ConfigFieldType, "'target_modules'");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "target_modules": ["a", 1]})").target_modules(),
                    ErrorCode::ConfigFieldType, "list of strings");
  EXPECT_PEFT_ERROR(
      parse(R"({"peft_type": "LORA", "layers_to_transform": "1"})").layers_to_transform(),
      ErrorCode::ConfigFieldType, "'layers_to_transform'");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "bias": null})").bias(),
                    ErrorCode::ConfigFieldType, "'bias' must be a string");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "rank_pattern": {"a": 2.5}})").rank_pattern(),
                    ErrorCode::ConfigFieldType, "rank_pattern[\"a\"]");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "r": 99999999999})").r(),
                    ErrorCode::InvalidConfigValue, "out of range");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "LORA", "task_type": "CLS"})").task_type(),
                    ErrorCode::InvalidConfigValue, "task_type 'CLS'");
  EXPECT_PEFT_ERROR(parse(R"({"peft_type": "IA3"})").r(), ErrorCode::MissingKey,
                    "IA3 configs have no field 'r'");
}

TEST(ConfigFields, DefaultsComeFromTheMethodsTable) {
  EXPECT_EQ(parse(R"({"peft_type": "LORA"})").r(), 8);
  EXPECT_EQ(parse(R"({"peft_type": "VERA"})").r(), 256);
  EXPECT_EQ(parse(R"({"peft_type": "MISS"})").r(), 64);
  EXPECT_EQ(parse(R"({"peft_type": "OFT"})").r(), 0);
  EXPECT_EQ(parse(R"({"peft_type": "LOHA"})").lora_alpha(), 8.0);
  EXPECT_EQ(parse(R"({"peft_type": "LOKR", "alpha": 3})").lora_alpha(), 3.0);
  EXPECT_TRUE(parse(R"({"peft_type": "VERA"})").save_projection());
  EXPECT_EQ(parse(R"({"peft_type": "VBLORA"})").num_vectors(), 256);
  EXPECT_EQ(parse(R"({"peft_type": "VBLORA"})").topk(), 2);
  EXPECT_FALSE(parse(R"({"peft_type": "VBLORA"})").save_only_topk_weights());
  EXPECT_EQ(parse(R"({"peft_type": "P_TUNING"})").encoder_reparameterization_type(), "MLP");
  EXPECT_FALSE(parse(R"({"peft_type": "PREFIX_TUNING"})").prefix_projection());
  EXPECT_EQ(parse(R"({"peft_type": "PREFIX_TUNING"})").num_virtual_tokens(), std::nullopt);
  EXPECT_EQ(parse(R"({"peft_type": "OFT"})").get_double("eps", 0), 6e-05);
  EXPECT_EQ(parse(R"({"peft_type": "LORA"})").bias(), "none");
  EXPECT_FALSE(parse(R"({"peft_type": "LORA"})").inference_mode());
  EXPECT_EQ(parse(R"({"peft_type": "IA3"})").bias(), "none");
}

TEST(ConfigFields, TargetModulesKinds) {
  const auto none = parse(R"({"peft_type": "LORA"})").target_modules();
  EXPECT_EQ(none.kind, TargetModules::Kind::None);
  const auto list = parse(R"({"peft_type": "LORA", "target_modules": ["v", "q"]})");
  EXPECT_EQ(list.target_modules().kind, TargetModules::Kind::List);
  EXPECT_EQ(list.target_modules().names, (std::vector<std::string>{"v", "q"}));
  const auto regex = parse(R"({"peft_type": "LORA", "target_modules": ".*\\.(q|v)_proj"})");
  EXPECT_EQ(regex.target_modules().kind, TargetModules::Kind::Regex);
  EXPECT_EQ(regex.target_modules().regex, R"(.*\.(q|v)_proj)");
  EXPECT_FALSE(regex.target_modules().is_all_linear());
  EXPECT_TRUE(parse(R"({"peft_type": "LORA", "target_modules": "ALL-Linear"})")
                  .target_modules()
                  .is_all_linear());
  const auto ia3 = parse(R"({"peft_type": "IA3", "feedforward_modules": ["fc"]})");
  EXPECT_EQ(ia3.feedforward_modules().names, (std::vector<std::string>{"fc"}));
  EXPECT_EQ(ia3.exclude_modules().kind, TargetModules::Kind::None);
}

TEST(ConfigFields, LayersTokensAndReplication) {
  const auto config = parse(R"({"peft_type": "LORA", "layers_to_transform": 3,
      "layers_pattern": "layers", "trainable_token_indices": {"embed_tokens": [0, 3]},
      "layer_replication": [[0, 2], [1, 3]], "modules_to_save": ["classifier", "score"],
      "target_parameters": ["experts.gate_up_proj"]})");
  EXPECT_EQ(config.layers_to_transform(), (std::vector<int>{3}));
  EXPECT_EQ(config.layers_pattern(), (std::vector<std::string>{"layers"}));
  const auto tokens = config.trainable_token_indices();
  ASSERT_TRUE(tokens);
  const auto& by_layer = std::get<1>(*tokens);
  EXPECT_EQ(by_layer.at("embed_tokens"), (std::vector<std::int64_t>{0, 3}));
  EXPECT_EQ(config.layer_replication(), (std::vector<std::vector<int>>{{0, 2}, {1, 3}}));
  EXPECT_EQ(config.modules_to_save(), (std::vector<std::string>{"classifier", "score"}));
  EXPECT_EQ(config.target_parameters(), (std::vector<std::string>{"experts.gate_up_proj"}));

  const auto list = parse(R"({"peft_type": "LORA", "layers_to_transform": [0, 2],
      "layers_pattern": ["h", "layers"], "trainable_token_indices": [5, 6]})");
  EXPECT_EQ(list.layers_to_transform(), (std::vector<int>{0, 2}));
  EXPECT_EQ(list.layers_pattern(), (std::vector<std::string>{"h", "layers"}));
  EXPECT_EQ(std::get<0>(*list.trainable_token_indices()), (std::vector<std::int64_t>{5, 6}));
  EXPECT_EQ(parse(R"({"peft_type": "LORA", "layers_pattern": ""})").layers_pattern(),
            std::vector<std::string>{});
  EXPECT_EQ(parse(R"({"peft_type": "TRAINABLE_TOKENS", "token_indices": [1, 2]})").token_indices(),
            (std::vector<std::int64_t>{1, 2}));
}

TEST(ConfigFields, RankAndAlphaPatterns) {
  const auto lora = parse(
      R"({"peft_type": "LORA", "rank_pattern": {"lin1": 2}, "alpha_pattern": {"lin1": 3.5}})");
  EXPECT_EQ(lora.rank_pattern(), (std::map<std::string, int>{{"lin1", 2}}));
  EXPECT_EQ(lora.alpha_pattern(), (std::map<std::string, double>{{"lin1", 3.5}}));
  const auto ada =
      parse(R"({"peft_type": "ADALORA", "rank_pattern": {"lin0.lora_E": [true, 0, 1]}})");
  EXPECT_PEFT_ERROR(ada.rank_pattern(), ErrorCode::InvalidArgument, "adalora_rank_masks");
  EXPECT_EQ(ada.adalora_rank_masks().at("lin0.lora_E"), (std::vector<bool>{true, false, true}));
  EXPECT_TRUE(parse(R"({"peft_type": "ADALORA"})").adalora_rank_masks().empty());
}

// --- make(): every field PEFT writes, at its default ------------------------------------

TEST(ConfigMake, LoraMatchesPeftsDefaultFile) {
  // json.dumps of LoraConfig() as save_pretrained writes it (before inference_mode is set).
  const std::string expected = R"({
  "alora_invocation_tokens": null,
  "alpha_pattern": {},
  "arrow_config": null,
  "auto_mapping": null,
  "base_model_name_or_path": null,
  "bias": "none",
  "corda_config": null,
  "ensure_weight_tying": false,
  "eva_config": null,
  "exclude_modules": null,
  "fan_in_fan_out": false,
  "inference_mode": false,
  "init_lora_weights": true,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 8,
  "lora_bias": false,
  "lora_dropout": 0.0,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "peft_type": "LORA",
  "peft_version": "0.18.0",
  "qalora_group_size": 16,
  "r": 8,
  "rank_pattern": {},
  "revision": null,
  "target_modules": null,
  "target_parameters": null,
  "task_type": null,
  "trainable_token_indices": null,
  "use_dora": false,
  "use_qalora": false,
  "use_rslora": false
})";
  EXPECT_EQ(PeftConfig::make(PeftType::LORA).to_json_text(), expected);
}

TEST(ConfigMake, EveryV018TypeHasItsDeclaredFieldsAndLoadsBack) {
  for (const PeftType type : all_peft_types()) {
    if (!in_peft_0_18_0(type)) continue;
    SCOPED_TRACE(std::string(to_string(type)));
    const auto config = PeftConfig::make(type);
    EXPECT_EQ(config.peft_type(), type);
    std::vector<std::string> keys;
    for (const auto& [key, value] : config.json().items()) keys.push_back(key);
    EXPECT_EQ(keys, PeftConfig::declared_fields(type));
    EXPECT_TRUE(config.unknown_fields().empty());
    const bool no_version = type == PeftType::RANDLORA || type == PeftType::CPT;
    EXPECT_EQ(config.peft_version(),
              no_version ? std::nullopt : std::optional<std::string>("0.18.0"));
    const auto again = PeftConfig::from_json_text(config.to_json_text(), "again");
    EXPECT_EQ(again.to_json_text(), config.to_json_text());
    EXPECT_EQ(again.json(), config.json());
    if (type == PeftType::ADALORA) {
      EXPECT_PEFT_ERROR(config.validate(), ErrorCode::InvalidConfigValue, "total_step");
    } else {
      EXPECT_NO_THROW(config.validate());
    }
  }
}

TEST(ConfigMake, TypeSpecificDefaults) {
  EXPECT_EQ(PeftConfig::make(PeftType::OFT).json()["eps"].dump(), "6e-05");
  EXPECT_NE(PeftConfig::make(PeftType::OFT).to_json_text().find("\"eps\": 6e-05,"),
            std::string::npos);
  EXPECT_NE(PeftConfig::make(PeftType::FOURIERFT).to_json_text().find("\"scaling\": 150.0,"),
            std::string::npos);
  EXPECT_NE(PeftConfig::make(PeftType::DELORA).to_json_text().find("\"delora_lambda\": 15,"),
            std::string::npos);
  EXPECT_EQ(PeftConfig::make(PeftType::ADALORA).json()["rank_pattern"], nullptr);
  EXPECT_EQ(PeftConfig::make(PeftType::C3A).json()["init_weights"], "xavier_uniform");
  EXPECT_EQ(PeftConfig::make(PeftType::PROMPT_TUNING).json()["prompt_tuning_init"], "RANDOM");
  EXPECT_EQ(PeftConfig::make(PeftType::TRAINABLE_TOKENS).json()["token_indices"], json::array());
  const auto xlora = PeftConfig::make(PeftType::XLORA);
  EXPECT_EQ(xlora.json()["hidden_size"], 4096);
  EXPECT_EQ(xlora.json()["adapters"], json::object());
  const auto cpt = PeftConfig::make(PeftType::CPT);
  EXPECT_EQ(cpt.task_type(), TaskType::CAUSAL_LM);
  EXPECT_EQ(cpt.num_virtual_tokens(), 1);
  EXPECT_EQ(cpt.json()["cpt_token_ids"], json::array({0}));
  EXPECT_TRUE(cpt.is_prompt_learning());
  for (const auto& field : {"num_virtual_tokens", "token_dim", "num_transformer_submodules",
                            "num_attention_heads", "num_layers", "modules_to_save"}) {
    EXPECT_TRUE(PeftConfig::make(PeftType::P_TUNING).json().contains(field)) << field;
  }
  EXPECT_FALSE(PeftConfig::make(PeftType::LN_TUNING).json().contains("num_layers"));
  EXPECT_FALSE(PeftConfig::make(PeftType::LORA).json().contains("runtime_config"));
}

// --- validate(): PEFT v0.18.0's refusals ------------------------------------------------

TEST(ConfigValidate, RefusesWhatPeftRefuses) {
  struct Case {
    const char* text;
    const char* fragment;
  };
  const Case cases[] = {
      {R"({"peft_type": "LORA", "task_type": "CLS"})", "task_type 'CLS'"},
      {R"({"peft_type": "LORA", "target_modules": "q", "layers_to_transform": [0]})", "C10"},
      {R"({"peft_type": "LORA", "target_modules": "q", "layers_pattern": "h"})", "C12"},
      {R"({"peft_type": "LORA", "layers_pattern": "h"})", "C11"},
      {R"({"peft_type": "LORA", "layers_pattern": "h", "layers_to_transform": 0})", "C11"},
      {R"({"peft_type": "LORA", "use_dora": true, "megatron_config": {"a": 1}})", "C13"},
      {R"({"peft_type": "LORA", "init_lora_weights": "loftq"})", "C14"},
      {R"({"peft_type": "LORA", "lora_bias": true, "init_lora_weights": "pissa"})", "C17"},
      {R"({"peft_type": "LORA", "lora_bias": true, "use_dora": true})", "C17"},
      {R"({"peft_type": "LORA", "target_parameters": "w"})", "C18"},
      {R"({"peft_type": "ADALORA", "total_step": 10, "use_dora": true})", "C21"},
      {R"({"peft_type": "ADALORA"})", "total_step > 0"},
      {R"({"peft_type": "ADALORA", "total_step": 10, "tinit": 5, "tfinal": 5})", "tinit"},
      {R"({"peft_type": "OFT", "r": 4})", "C8"},
      {R"({"peft_type": "OFT", "r": 4, "oft_block_size": 4})", "C23"},
      {R"({"peft_type": "OFT", "r": 0, "oft_block_size": 0})", "C23"},
      {R"({"peft_type": "BOFT", "boft_block_size": 4, "boft_block_num": 2})", "C24"},
      {R"({"peft_type": "IA3", "target_modules": ["a"], "feedforward_modules": ["b"]})", "C25"},
      {R"({"peft_type": "ROAD", "variant": "road_3"})", "C28"},
      {R"({"peft_type": "ROAD", "group_size": 3})", "C28"},
      {R"({"peft_type": "WAVEFT", "wavelet_family": "haar"})", "C29"},
      {R"({"peft_type": "CPT"})", "C30"},
      {R"({"peft_type": "CPT", "task_type": "CAUSAL_LM", "cpt_token_ids": [1, 2],
          "cpt_mask": [1]})",
       "C30"},
      {R"({"peft_type": "PROMPT_TUNING", "prompt_tuning_init": "TEXT"})", "C31"},
      {R"({"peft_type": "PROMPT_TUNING", "tokenizer_kwargs": {"a": 1}})", "C31"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_PEFT_ERROR(parse(c.text).validate(), ErrorCode::InvalidConfigValue, c.fragment);
  }
  const char* accepted[] = {
      R"({"peft_type": "LORA", "lora_bias": true, "init_lora_weights": 0})",
      R"({"peft_type": "ADALORA", "total_step": 10, "loftq_config": {"loftq_bits": 4}})",
      R"({"peft_type": "OFT", "r": 0, "oft_block_size": 32})",
      R"({"peft_type": "WAVEFT", "wavelet_family": "sym20"})",
      R"({"peft_type": "RANDLORA", "task_type": "whatever"})",
      R"({"peft_type": "CPT", "task_type": "CAUSAL_LM", "cpt_token_ids": [1, 2]})",
      R"({"peft_type": "IA3", "target_modules": "x", "feedforward_modules": ["b"]})",
  };
  for (const char* text : accepted) {
    SCOPED_TRACE(text);
    EXPECT_NO_THROW(parse(text).validate());
  }
}

TEST(ConfigValidate, LoadWarningsFollowPeft) {
  EXPECT_TRUE(any_warning_contains(
      parse(R"({"peft_type": "OFT", "oft_block_size": 32, "use_cayley_neumann": true})"),
      "oft_cayley_neumann"));
  EXPECT_TRUE(any_warning_contains(parse(R"({"peft_type": "OFT", "oft_block_size": 32,
      "use_cayley_neumann": true, "peft_version": "0.18.0rc0"})"),
                                   "oft_cayley_neumann"));
  EXPECT_FALSE(any_warning_contains(parse(R"({"peft_type": "OFT", "oft_block_size": 32,
      "use_cayley_neumann": true, "peft_version": "0.18.2.dev0@UNKNOWN"})"),
                                    "oft_cayley_neumann"));
  EXPECT_TRUE(any_warning_contains(parse(R"({"peft_type": "OFT", "use_cayley_neumann": true,
      "peft_version": null})"),
                                   "fails to load"));
  EXPECT_TRUE(any_warning_contains(parse(R"({"peft_type": "VERA", "save_projection": false})"),
                                   "save_projection"));
  EXPECT_TRUE(any_warning_contains(
      parse(R"({"peft_type": "LORA", "loftq_config": {"loftq_bits": 4}})"), "loftq_config"));
  EXPECT_TRUE(parse(R"({"peft_type": "LORA"})").warnings().empty());
  EXPECT_TRUE(PeftConfig::make(PeftType::LORA).warnings().empty());
}

}  // namespace
}  // namespace peft
