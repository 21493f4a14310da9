// The method registry (methods/registry.hpp, config/method_config.hpp): every prefix is
// PEFT's, every v0.18.0 method has its rules, and the saved keys of every reference case
// carry the prefix of their method.
#include "methods/registry.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "peft/config.hpp"
#include "peft/safetensors.hpp"
#include "peft_ref_case.hpp"
#include "test_support.hpp"

namespace peft {
namespace {

// PEFT v0.18.0's PEFT_TYPE_TO_PREFIX_MAPPING (peft/utils/constants.py, built from each
// tuner's `prefix`), transcribed independently of the registry.
const std::map<std::string, std::string> kPeftPrefixes = {
    {"PROMPT_TUNING", "prompt_tuning_"},
    {"MULTITASK_PROMPT_TUNING", "multitask_prompt_tuning_"},
    {"P_TUNING", "p_tuning_"},
    {"PREFIX_TUNING", "prefix_tuning_"},
    {"LORA", "lora_"},
    {"ADALORA", "lora_"},
    {"BOFT", "boft_"},
    {"ADAPTION_PROMPT", "adaption_prompt_"},
    {"IA3", "ia3_"},
    {"LOHA", "hada_"},
    {"LOKR", "lokr_"},
    {"OFT", "oft_"},
    {"POLY", "poly_"},
    {"LN_TUNING", "ln_tuning_"},
    {"VERA", "vera_lambda_"},
    {"FOURIERFT", "fourierft_"},
    {"XLORA", "xlora_"},
    {"HRA", "hra_"},
    {"VBLORA", "vblora_"},
    {"CPT", "cpt_"},
    {"BONE", "bone_"},
    {"MISS", "miss_"},
    {"RANDLORA", "randlora_"},
    {"ROAD", "road_"},
    {"TRAINABLE_TOKENS", "trainable_tokens_"},
    {"SHIRA", "shira_"},
    {"C3A", "c3a_"},
    {"WAVEFT", "waveft_"},
    {"OSF", "osf_"},
    {"DELORA", "delora_"},
};

TEST(Registry, EveryPrefixIsPeftsMapping) {
  ASSERT_EQ(kPeftPrefixes.size(), kPeftTypeCountV0_18_0);
  for (const methods::MethodDescriptor& row : methods::kRegistry) {
    const std::string name(to_string(row.type));
    const auto it = kPeftPrefixes.find(name);
    if (!in_peft_0_18_0(row.type)) {
      EXPECT_TRUE(row.prefix.empty()) << name;
      continue;
    }
    ASSERT_NE(it, kPeftPrefixes.end()) << name;
    EXPECT_EQ(row.prefix, it->second) << name;
    EXPECT_EQ(methods::prefix_of(row.type), it->second) << name;
  }
}

TEST(Registry, ConfigRowsAndMethodRowsDescribeTheSameTypes) {
  for (const methods::MethodDescriptor& row : methods::kRegistry) {
    EXPECT_EQ(row.config().type, row.type);
    EXPECT_EQ(row.config().name, to_string(row.type));
    EXPECT_EQ(row.config().prompt_learning, is_prompt_learning(row.type));
    const bool known = in_peft_0_18_0(row.type);
    EXPECT_EQ(!PeftConfig::declared_fields(row.type).empty(), known) << to_string(row.type);
    if (known) {
      EXPECT_NE(row.state_dict.select, nullptr) << to_string(row.type);
      EXPECT_NE(row.state_dict.remap, nullptr) << to_string(row.type);
    } else {
      EXPECT_EQ(row.state_dict.select, nullptr) << to_string(row.type);
      EXPECT_PEFT_ERROR(methods::state_dict_rules(row.type, "x.json"), ErrorCode::Unsupported,
                        to_string(row.type));
    }
  }
}

// What real PEFT saved: for every method that selects its tensors by prefix, each case's
// weights file holds keys containing that prefix.
TEST(Registry, ReferenceCasesSaveKeysWithTheirPrefix) {
  std::size_t checked = 0;
  for (const std::string& name : testing::peft_ref_case_names()) {
    const std::filesystem::path dir = testing::peft_ref_root() / name;
    if (!std::filesystem::exists(dir / "adapter_config.json") ||
        !std::filesystem::exists(dir / "adapter_model.safetensors")) {
      continue;
    }
    const PeftConfig config = PeftConfig::load(dir);
    const PeftType type = config.peft_type();
    // Prompt learning and adaption prompt select by other rules (prompt_embeddings,
    // adaption_prompt/adaption_gate), not by their prefix.
    if (config.is_prompt_learning() || type == PeftType::ADAPTION_PROMPT) continue;
    const auto file = SafetensorsFile::open(dir / "adapter_model.safetensors");
    const std::string_view prefix = methods::prefix_of(type);
    bool any = false;
    for (const auto& tensor : file.tensors()) {
      any = any || tensor.name.find(prefix) != std::string::npos;
    }
    EXPECT_TRUE(any) << name << ": no saved key contains '" << prefix << "'";
    ++checked;
  }
  EXPECT_GT(checked, 0U) << "no reference case with a weights file under "
                         << testing::peft_ref_root();
}

}  // namespace
}  // namespace peft
