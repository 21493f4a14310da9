// validate tells the truth: every adapter PEFT itself wrote validates clean (unless PEFT's
// own load of it reports unexpected keys or fails), and the problems users hit are found.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "peft/adapter_io.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "peft/validate.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;

// Where validate has something true to say about an adapter PEFT wrote: in a case tagged
// "quirk" (PEFT v0.18.0 writing something broken on purpose of the fixture), every folder
// PEFT does not load back cleanly — its load reported unexpected keys or failed, or it is
// never loaded at all (X-LoRA's inner folders). Everything else must validate clean.
struct Exemptions {
  bool quirk = false;
  std::set<std::string> loaded_cleanly;  // sub folders ("" = root)
  bool exempt(const std::string& sub) const { return quirk && !loaded_cleanly.count(sub); }
};

Exemptions exemptions_of(const fs::path& case_dir) {
  Exemptions out;
  const auto json = nlohmann::json::parse(testing::read_text(case_dir / "case.json"));
  for (const auto& tag : json.value("tags", nlohmann::json::array())) out.quirk |= tag == "quirk";
  for (const auto& step : json.value("load_steps", nlohmann::json::array())) {
    const bool unexpected = step.contains("unexpected_keys") && !step["unexpected_keys"].empty();
    const bool error = step.contains("error") && !step["error"].is_null();
    if (!unexpected && !error) out.loaded_cleanly.insert(step.value("source", ""));
  }
  return out;
}

TEST(Validate, EveryAdapterPeftWroteIsClean) {
  std::size_t checked = 0;
  for (const auto& entry : fs::directory_iterator(testing::peft_ref_root())) {
    if (!fs::exists(entry.path() / "case.json") ||
        !fs::exists(entry.path() / "adapter_config.json"))
      continue;
    const auto exemptions = exemptions_of(entry.path());
    for (const auto& p : validate_adapter_folder(entry.path())) {
      const fs::path where = fs::path(p.source.substr(0, p.source.find(": ")));
      const fs::path folder = fs::is_directory(where) ? where : where.parent_path();
      const std::string sub = fs::relative(folder, entry.path()).lexically_normal().string();
      const std::string key = sub == "." ? "" : sub;
      if (exemptions.exempt(key)) continue;
      // PEFT accepts target names that match nothing as long as one matches: a true warning,
      // not an alarm, and a fixture set may well contain such a config.
      if (p.code == "targeted_without_weights") continue;
      ADD_FAILURE() << entry.path().filename() << ": " << p.source << " [" << p.code << "] "
                    << p.message;
    }
    ++checked;
  }
  EXPECT_GT(checked, 50u);
}

TEST(Validate, SharedBanksAndProjectionsAreNotModules) {
  for (const char* name : {"vblora_full", "vblora_topk", "randlora"}) {
    const fs::path c = testing::peft_ref_root() / name;
    if (!fs::exists(c)) GTEST_SKIP() << c << " is absent from this fixture set";
    for (const auto& p : validate_adapter_folder(c)) {
      EXPECT_NE(p.code, "untargeted_module") << name << ": " << p.source;
    }
  }
}

TEST(Validate, AStaleBinNextToTheSafetensorsFileIsReported) {
  testing::TempDir dir;
  const fs::path c = testing::peft_ref_root() / "lora_linear";
  fs::copy_file(c / "adapter_config.json", dir / "adapter_config.json");
  fs::copy_file(c / "adapter_model.safetensors", dir / "adapter_model.safetensors");
  fs::copy_file(c / "adapter_model.bin", dir / "adapter_model.bin");
  EXPECT_TRUE(validate_adapter_folder(dir.path()).empty());  // the same tensors: fine
  StateDict other = load_torch_file(c / "adapter_model.bin");
  StateDict changed;
  for (const auto& [key, tensor] : other)
    changed.set(key, Tensor::zeros(tensor.dtype(), tensor.shape()));
  save_torch_file(changed, dir / "adapter_model.bin");
  const auto problems = validate_adapter_folder(dir.path());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].code, "stale_weights_file");
  EXPECT_EQ(problems[0].severity, Severity::Warning);
  EXPECT_NE(problems[0].message.find("PEFT loads only adapter_model.safetensors"),
            std::string::npos);
}

TEST(Validate, AdaptersInMemory) {
  const fs::path c = testing::peft_ref_root() / "lora_linear";
  const PeftConfig config = load_adapter_config(c.string());
  const StateDict weights = load_peft_weights(c.string());
  EXPECT_TRUE(validate_adapter(config, weights, "mem").empty());
  EXPECT_EQ(validate_adapter(config, {}, "mem").at(0).code, "empty_weights");
  // Full keys (with the adapter name) are not saved keys.
  StateDict full;
  for (const auto& [key, tensor] : weights) {
    std::string k = key;
    const auto at = k.rfind(".weight");
    full.set(k.substr(0, at) + ".default" + k.substr(at), tensor);
  }
  bool named = false;
  for (const auto& p : validate_adapter(config, full, "mem"))
    named |= p.code == "adapter_name_in_key";
  EXPECT_TRUE(named);
}

}  // namespace
}  // namespace peft

namespace peft {
namespace {

TEST(Validate, EveryDeclaredFieldIsTypeChecked) {
  testing::TempDir dir;
  const fs::path c = testing::peft_ref_root() / "lora_linear";
  fs::copy_file(c / "adapter_model.safetensors", dir / "adapter_model.safetensors");
  std::ofstream(dir / "adapter_config.json")
      << R"({"peft_type": "LORA", "r": "sixteen", "lora_alpha": [1], "target_modules": 5,
            "use_dora": 1, "init_lora_weights": "gaussian", "lora_dropout": 0.5,
            "alpha_pattern": {"x": 0.5}})";
  std::map<std::string, std::pair<std::string, Severity>> found;  // field -> code, severity
  for (const auto& p : validate_adapter_folder(dir.path())) {
    if (p.code.starts_with("field_type"))
      found[p.source.substr(p.source.rfind(": ") + 2)] = {p.code, p.severity};
  }
  EXPECT_EQ(found["r"].first, "field_type");
  EXPECT_EQ(found["lora_alpha"].first, "field_type");
  EXPECT_EQ(found["target_modules"].first, "field_type");
  EXPECT_EQ(found["use_dora"], std::make_pair(std::string("field_type_truthy"), Severity::Warning));
  EXPECT_FALSE(found.count("init_lora_weights"));  // a boolean or a string, as PEFT allows
  EXPECT_FALSE(found.count("lora_dropout"));
  EXPECT_EQ(found.size(), 4u);
}

}  // namespace
}  // namespace peft

namespace peft {
namespace {

TEST(Validate, FractionsOnlyWhereTheyCount) {
  testing::TempDir dir;
  fs::copy_file(testing::peft_ref_root() / "lora_linear" / "adapter_model.safetensors",
                dir / "adapter_model.safetensors");
  std::ofstream(dir / "adapter_config.json")
      << R"({"peft_type": "LORA", "r": 8.5, "lora_alpha": 0.5, "target_modules": ["lin0"]})";
  std::vector<std::string> codes;
  for (const auto& p : validate_adapter_folder(dir.path())) {
    if (p.code.starts_with("field_type")) codes.push_back(p.code + " " + p.source);
  }
  ASSERT_EQ(codes.size(), 1u) << ::testing::PrintToString(codes);
  EXPECT_TRUE(codes[0].starts_with("field_type_float")) << codes[0];
  EXPECT_TRUE(codes[0].ends_with(": r")) << codes[0];
}

}  // namespace
}  // namespace peft

namespace peft {
namespace {

std::vector<Problem> config_problems(const std::string& text) {
  testing::TempDir dir;
  std::ofstream(dir / "adapter_config.json") << text;
  return validate_file(dir / "adapter_config.json");
}

const Problem* find_code(const std::vector<Problem>& problems, std::string_view code) {
  for (const auto& p : problems) {
    if (p.code == code) return &p;
  }
  return nullptr;
}

TEST(Validate, NewerPeftFieldsAreHarmlessOnlyAtTheirDefault) {
  const auto at_default =
      config_problems(R"({"peft_type": "LORA", "target_modules": ["q_proj"], "use_bdlora": null})");
  const Problem* harmless = find_code(at_default, "newer_field_at_default");
  ASSERT_NE(harmless, nullptr);
  EXPECT_EQ(harmless->severity, Severity::Warning);
  EXPECT_TRUE(harmless->source.ends_with(": use_bdlora")) << harmless->source;
  EXPECT_EQ(find_code(at_default, "unknown_field"), nullptr);

  const auto in_use = config_problems(
      R"({"peft_type": "LORA", "target_modules": ["q_proj"], "use_bdlora": {"nblocks": 2}})");
  const Problem* wrong = find_code(in_use, "newer_field_in_use");
  ASSERT_NE(wrong, nullptr);
  EXPECT_EQ(wrong->severity, Severity::Error);
  EXPECT_NE(wrong->message.find("nblocks"), std::string::npos) << wrong->message;

  // A field no PEFT version is known to declare stays a plain unknown field.
  const auto unknown =
      config_problems(R"({"peft_type": "LORA", "target_modules": ["q_proj"], "made_up": 1})");
  ASSERT_NE(find_code(unknown, "unknown_field"), nullptr);
  EXPECT_EQ(find_code(unknown, "unknown_field")->severity, Severity::Warning);
}

TEST(Validate, TargetModulesOfSeveralArchitecturesAreAWarning) {
  const auto mixed = config_problems(
      R"({"peft_type": "LORA", "target_modules": ["q_proj", "v_proj", "c_attn", "query"]})");
  const Problem* p = find_code(mixed, "mixed_architectures");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->severity, Severity::Warning);
  EXPECT_NE(p->message.find("3 architecture families"), std::string::npos) << p->message;

  const auto one = config_problems(
      R"({"peft_type": "LORA", "target_modules": ["q_proj", "v_proj", "gate_proj", "lin0"]})");
  EXPECT_EQ(find_code(one, "mixed_architectures"), nullptr);
}

}  // namespace
}  // namespace peft
