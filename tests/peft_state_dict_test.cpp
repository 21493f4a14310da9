// get/set_peft_model_state_dict on small hand-built models: the errors PEFT raises and
// the settings that have no fixture.
#include <gtest/gtest.h>

#include "peft/peft_state_dict.hpp"
#include "test_support.hpp"

namespace peft {
namespace {

Tensor ones(Shape shape) {
  std::vector<float> values(shape_numel(shape), 1.0f);
  return Tensor::from_floats(DType::F32, shape, values);
}

PeftModel tiny_lora(const std::string& extra_json = "") {
  PeftModel model;
  model.state.set("base_model.model.lin0.base_layer.weight", ones({4, 4}));
  model.state.set("base_model.model.lin0.base_layer.bias", ones({4}));
  model.state.set("base_model.model.lin0.lora_A.default.weight", ones({2, 4}));
  model.state.set("base_model.model.lin0.lora_B.default.weight", ones({4, 2}));
  model.state.set("base_model.model.lin1.weight", ones({4, 4}));
  make_writable(model.state);
  model.adapters.emplace_back(
      "default",
      PeftConfig::from_json_text(R"({"peft_type": "LORA", "r": 2)" + extra_json + "}", "test"));
  return model;
}

TEST(PeftStateDict, UnknownBiasModeIsAnError) {
  PeftModel model = tiny_lora(R"(, "bias": "everything")");
  EXPECT_PEFT_ERROR(get_peft_model_state_dict(model), ErrorCode::InvalidConfigValue, "everything");
}

TEST(PeftStateDict, UnknownAdapterNamesTheKnownOnes) {
  PeftModel model = tiny_lora();
  GetStateDictOptions options;
  options.adapter_name = "nope";
  EXPECT_PEFT_ERROR(get_peft_model_state_dict(model, options), ErrorCode::NotFound, "default");
}

TEST(PeftStateDict, SizeMismatchCopiesTheRestThenFails) {
  PeftModel model = tiny_lora();
  StateDict saved;
  saved.set("base_model.model.lin0.lora_A.weight", ones({3, 4}));  // wrong rank
  std::vector<float> twos(8, 2.0f);
  saved.set("base_model.model.lin0.lora_B.weight", Tensor::from_floats(DType::F32, {4, 2}, twos));
  EXPECT_PEFT_ERROR(set_peft_model_state_dict(model, saved), ErrorCode::SizeMismatch,
                    "size mismatch for base_model.model.lin0.lora_A.default.weight");
  EXPECT_EQ(model.state.at("base_model.model.lin0.lora_B.default.weight").to_floats()[0], 2.0f);

  SetStateDictOptions ignore;
  ignore.ignore_mismatched_sizes = true;
  Diagnostics warnings;
  ignore.warnings = &warnings;
  const LoadResult result = set_peft_model_state_dict(model, saved, ignore);
  ASSERT_EQ(result.mismatched_keys.size(), 1u);
  EXPECT_EQ(result.mismatched_keys[0].key, "base_model.model.lin0.lora_A.default.weight");
  ASSERT_EQ(warnings.size(), 1u);
}

TEST(PeftStateDict, LoadConvertsToTheModelsDtypeAndKeepsAliases) {
  PeftModel model = tiny_lora();
  // An alias of lora_B, as tied weights are in PyTorch.
  model.state.set("base_model.model.alias",
                  model.state.at("base_model.model.lin0.lora_B.default.weight"));
  StateDict saved;
  std::vector<float> values(8, 0.5f);
  saved.set("base_model.model.lin0.lora_B.weight",
            Tensor::from_floats(DType::BF16, {4, 2}, values));
  const LoadResult result = set_peft_model_state_dict(model, saved);
  EXPECT_EQ(model.state.at("base_model.model.lin0.lora_B.default.weight").dtype(), DType::F32);
  EXPECT_EQ(model.state.at("base_model.model.alias").to_floats()[3], 0.5f);
  EXPECT_EQ(result.adapter_missing_keys,
            std::vector<std::string>{"base_model.model.lin0.lora_A.default.weight"});
}

TEST(PeftStateDict, PTuningLstmIsRefusedClearly) {
  PeftModel model;
  model.state.set("prompt_encoder.default.embedding.weight", ones({4, 8}));
  model.adapters.emplace_back(
      "default", PeftConfig::from_json_text(
                     R"({"peft_type": "P_TUNING", "num_virtual_tokens": 4, "token_dim": 8,
                         "num_transformer_submodules": 1, "inference_mode": false,
                         "encoder_reparameterization_type": "LSTM"})",
                     "test"));
  EXPECT_PEFT_ERROR(get_peft_model_state_dict(model), ErrorCode::Unsupported, "LSTM");
  // In inference mode the raw table is saved, whatever the encoder.
  model.config("default").mutable_json()["inference_mode"] = true;
  EXPECT_EQ(get_peft_model_state_dict(model).keys(), std::vector<std::string>{"prompt_embeddings"});
}

TEST(PeftStateDict, MissingPromptEmbeddingIsAnError) {
  PeftModel model;
  model.state.set("prompt_encoder.default.embedding.weight", ones({4, 8}));
  model.adapters.emplace_back(
      "default", PeftConfig::from_json_text(
                     R"({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4})", "t"));
  EXPECT_PEFT_ERROR(set_peft_model_state_dict(model, StateDict{}), ErrorCode::MissingKey,
                    "prompt_embeddings");
  StateDict wrong;
  wrong.set("prompt_embeddings", ones({5, 8}));
  EXPECT_PEFT_ERROR(set_peft_model_state_dict(model, wrong), ErrorCode::SizeMismatch,
                    "size mismatch");
}

TEST(PeftStateDict, TypesAfterPeft018AreRefusedClearly) {
  PeftModel model = tiny_lora();
  model.adapters[0].second = PeftConfig::from_json_text(R"({"peft_type": "UNILORA"})", "t");
  EXPECT_PEFT_ERROR(get_peft_model_state_dict(model), ErrorCode::Unsupported, "UNILORA");
}

}  // namespace
}  // namespace peft
