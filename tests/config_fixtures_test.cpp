// Every adapter_config.json of the fixture sets: the oracle ones (written by PEFT v0.18.0)
// load with the right type and every declared field, reproduce their bytes, pass
// validate(), and match the configs PEFT held in memory; the real-world ones load with
// the type they name, or fail with the clear error when they are not PEFT configs.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <set>

#include "peft/config.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

bool keys_sorted(const ordered_json& value) {
  if (value.is_object()) {
    std::string previous;
    bool first = true;
    for (const auto& [key, member] : value.items()) {
      if (!first && !(previous < key)) return false;
      first = false;
      previous = key;
      if (!keys_sorted(member)) return false;
    }
  } else if (value.is_array()) {
    for (const auto& element : value) {
      if (!keys_sorted(element)) return false;
    }
  }
  return true;
}

// The shape of Python's json.dumps(indent=2, sort_keys=True), judged without our writer:
// ASCII, "{\n  \"" start, no CR, no trailing newline, keys sorted at every level.
bool looks_written_by_peft(const std::string& text) {
  if (text.empty() || text.back() == '\n' || text.find('\r') != std::string::npos) return false;
  if (text.rfind("{\n  \"", 0) != 0) return false;
  if (std::any_of(text.begin(), text.end(), [](char c) { return (c & 0x80) != 0; })) return false;
  const auto parsed = ordered_json::parse(text, nullptr, false);
  return !parsed.is_discarded() && keys_sorted(parsed);
}

// Equal texts, or equal once the fields PEFT writes from Python sets are sorted in both.
::testing::AssertionResult same_config_text(const std::string& ours, const std::string& theirs) {
  if (ours == theirs) return ::testing::AssertionSuccess();
  const auto normalized = [](const std::string& text) {
    auto config = PeftConfig::from_json_text(text, "compare");
    for (const char* field : {"target_modules", "exclude_modules", "feedforward_modules"}) {
      auto& value = config.mutable_json()[field];
      if (value.is_array()) std::sort(value.begin(), value.end());
    }
    return config.to_json_text();
  };
  if (normalized(ours) == normalized(theirs)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "ours:\n" << ours << "\nfile:\n" << theirs;
}

std::string peft_type_in(const fs::path& file) {
  const auto value = json::parse(testing::read_text(file), nullptr, false);
  return value.is_object() && value.contains("peft_type") && value["peft_type"].is_string()
             ? value["peft_type"].get<std::string>()
             : std::string();
}

TEST(ConfigFixtures, PeftRefConfigsLoadRoundTripAndValidate) {
  const auto files = testing::find_files(testing::peft_ref_root(), "adapter_config.json");
  ASSERT_GT(files.size(), 30u) << "peft-ref fixtures missing under " << testing::peft_ref_root();
  std::set<PeftType> seen;
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const std::string text = testing::read_text(path);
    const auto config = PeftConfig::load(path);
    EXPECT_EQ(to_string(config.peft_type()), peft_type_in(path));
    seen.insert(config.peft_type());
    EXPECT_TRUE(looks_written_by_peft(text));
    EXPECT_TRUE(same_config_text(config.to_json_text(), text));
    EXPECT_EQ(config.to_json_text(), text) << "not even the set order differs in a plain reload";
    // Written by PEFT v0.18.0: exactly the declared fields, nothing to warn about.
    std::vector<std::string> keys;
    for (const auto& [key, value] : config.json().items()) keys.push_back(key);
    EXPECT_EQ(keys, PeftConfig::declared_fields(config.peft_type()));
    EXPECT_TRUE(config.unknown_fields().empty());
    EXPECT_NO_THROW(config.validate());
    // Its typed fields read without complaint.
    EXPECT_NO_THROW({
      (void)config.task_type();
      (void)config.peft_version();
      (void)config.modules_to_save();
      (void)config.target_modules();
      (void)config.exclude_modules();
      (void)config.layers_to_transform();
      (void)config.layers_pattern();
      (void)config.trainable_token_indices();
      (void)config.layer_replication();
      (void)config.bias();
      (void)config.use_dora();
      (void)config.fan_in_fan_out();
    });
    if (config.peft_type() == PeftType::LORA) {
      EXPECT_NO_THROW({
        (void)config.r();
        (void)config.lora_alpha();
        (void)config.rank_pattern();
        (void)config.alpha_pattern();
        (void)config.init_lora_weights();
        (void)config.target_parameters();
      });
    }
    if (config.peft_type() == PeftType::ADALORA) EXPECT_NO_THROW((void)config.adalora_rank_masks());
    // Saving writes the same bytes.
    testing::TempDir dir;
    config.save(dir.path());
    EXPECT_EQ(testing::read_text(dir / "adapter_config.json"), text);
  }
  std::cout << "[ NOTE     ] " << files.size() << " peft-ref configs of " << seen.size()
            << " PEFT types round-tripped byte-identically\n";
}

// save_pretrained writes the in-memory config (case.json configs_in_memory) after the
// save-time changes of docs/peft-rules.md §1.1 step 3: inference_mode true, auto_mapping
// computed when task_type is null, base_model_name_or_path filled; AdaLoRA's rank_pattern
// loses the adapter name (docs/peft-rules.md §2.5.5).
TEST(ConfigFixtures, InMemoryConfigsSerializeLikeSavePretrained) {
  std::size_t compared = 0;
  for (const auto& case_file : testing::find_files(testing::peft_ref_root(), "case.json")) {
    const fs::path dir = case_file.parent_path();
    SCOPED_TRACE(case_file.string());
    const auto meta = json::parse(testing::read_text(case_file));
    if (!meta.contains("configs_in_memory") || !meta.contains("saved_adapters")) continue;
    const auto& kwargs = meta["save_pretrained"]["kwargs"];
    if (kwargs.contains("path_initial_model_for_weight_conversion") &&
        !kwargs["path_initial_model_for_weight_conversion"].is_null()) {
      std::cout << "[ SKIP     ] " << dir.filename().string()
                << ": the PiSSA-style conversion rewrites r, lora_alpha and init_lora_weights\n";
      continue;
    }
    for (const auto& [adapter, saved] : meta["saved_adapters"].items()) {
      const fs::path file = dir / saved["subfolder"].get<std::string>() / "adapter_config.json";
      if (!fs::exists(file) || !meta["configs_in_memory"].contains(adapter)) continue;
      const std::string text = testing::read_text(file);
      const auto written = json::parse(text);
      json memory = meta["configs_in_memory"][adapter];
      memory["inference_mode"] = true;
      // The computed auto_mapping names Python classes; take it from the file.
      if (memory["task_type"].is_null()) memory["auto_mapping"] = written["auto_mapping"];
      if (memory["base_model_name_or_path"].is_null()) {
        memory["base_model_name_or_path"] = written["base_model_name_or_path"];
      }
      if (memory["peft_type"] == "ADALORA" && memory["rank_pattern"].is_object()) {
        json renamed = json::object();
        const std::string suffix = "." + adapter;
        for (const auto& [key, value] : memory["rank_pattern"].items()) {
          const bool has = key.size() > suffix.size() &&
                           key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
          renamed[has ? key.substr(0, key.size() - suffix.size()) : key] = value;
        }
        memory["rank_pattern"] = renamed;
      }
      const auto config = PeftConfig::from_json(memory, file.string());
      EXPECT_TRUE(same_config_text(config.to_json_text(), text)) << adapter;
      ++compared;
    }
  }
  EXPECT_GT(compared, 30u);
}

TEST(ConfigFixtures, RealAdapterConfigsLoadOrFailClearly) {
  fs::path root = testing::real_adapters_root();
  if (root.empty()) {
    std::cout << "[ NOTE     ] ../shared/fixtures/real-adapters is absent; using the "
                 "handful of real adapters copied into tests/data\n";
    root = testing::test_data() / "real-adapters";
  }
  const auto files = testing::find_files(root, "adapter_config.json");
  ASSERT_FALSE(files.empty()) << root;
  std::size_t loaded = 0, byte_identical = 0, refused = 0, newer = 0, with_unknown = 0;
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const std::string text = testing::read_text(path);
    // What the file is, judged by a plain JSON parser.
    const auto plain = json::parse(text, nullptr, false);
    const bool is_object = !plain.is_discarded() && plain.is_object();
    const bool has_type =
        is_object && plain.contains("peft_type") && plain["peft_type"].is_string();
    const std::string name = has_type ? plain["peft_type"].get<std::string>() : "";
    if (plain.is_discarded()) {
      try {
        // Python's json accepts more than strict JSON (NaN, Infinity, lone surrogates).
        const auto config = PeftConfig::load(path);
        EXPECT_EQ(PeftConfig::from_json_text(config.to_json_text(), "again").to_json_text(),
                  config.to_json_text());
        std::cout << "[ NOTE     ] " << path << " is Python JSON but not strict JSON\n";
        ++loaded;
      } catch (const Error& error) {
        EXPECT_EQ(error.code(), ErrorCode::InvalidJson) << error.what();
        ++refused;
      }
      continue;
    }
    if (!has_type) {
      EXPECT_PEFT_ERROR(PeftConfig::load(path), ErrorCode::NotAPeftConfig, path.string());
      ++refused;
      continue;
    }
    if (!peft_type_from_string(name)) {
      EXPECT_PEFT_ERROR(PeftConfig::load(path), ErrorCode::UnknownPeftType, "'" + name + "'");
      ++refused;
      continue;
    }
    const auto config = PeftConfig::load(path);
    ++loaded;
    EXPECT_EQ(to_string(config.peft_type()), name);
    if (!in_peft_0_18_0(config.peft_type())) ++newer;
    if (!config.unknown_fields().empty()) ++with_unknown;
    // Lossless: what we write reads back to the same object and is stable.
    const std::string ours = config.to_json_text();
    const auto again = PeftConfig::from_json_text(ours, "again");
    EXPECT_EQ(again.json(), config.json());
    EXPECT_EQ(again.to_json_text(), ours);
    json expected = plain;
    expected.erase("runtime_config");  // dropped on load, as PEFT does
    EXPECT_EQ(json::parse(ours), expected) << "same values as the file";
    if (looks_written_by_peft(text)) {
      EXPECT_TRUE(same_config_text(ours, text));
      ++byte_identical;
    }
  }
  std::cout << "[ NOTE     ] " << files.size() << " real adapter configs under " << root << ": "
            << loaded << " loaded (" << byte_identical << " written by PEFT reproduced byte for "
            << "byte, " << newer << " of types newer than v0.18.0, " << with_unknown
            << " with fields v0.18.0 does not declare), " << refused
            << " refused with a clear error\n";
  EXPECT_GT(loaded, 0u);
}

}  // namespace
}  // namespace peft
