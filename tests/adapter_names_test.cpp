// The two key rewrites of PEFT v0.18.0, on the worked examples of docs/peft-rules.md §7
// and on the edge cases its string rules produce.
#include <gtest/gtest.h>

#include "methods/adapter_names.hpp"
#include "peft/peft_state_dict.hpp"

namespace peft {
namespace {

TEST(AdapterNames, RemovalStripsOnlyTheLastOrSecondToLastComponent) {
  EXPECT_EQ(
      remove_adapter_name("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
                          "default"),
      "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(remove_adapter_name("base_model.model.model.embed_tokens.lora_embedding_A.default",
                                "default"),
            "base_model.model.model.embed_tokens.lora_embedding_A");
  EXPECT_EQ(remove_adapter_name("base_model.vera_A.default", "default"), "base_model.vera_A");
  EXPECT_EQ(remove_adapter_name("base_model.model.lin0.osf_svd_params.default.U_low", "default"),
            "base_model.model.lin0.osf_svd_params.U_low");
  // A module named like the adapter elsewhere in the path is untouched.
  EXPECT_EQ(remove_adapter_name("base_model.model.default.lin.lora_A.default.weight", "default"),
            "base_model.model.default.lin.lora_A.weight");
  // Keys without a dot and keys without the adapter pass through.
  EXPECT_EQ(remove_adapter_name("prompt_embeddings", "default"), "prompt_embeddings");
  EXPECT_EQ(remove_adapter_name("base_model.model.lin2.bias", "default"),
            "base_model.model.lin2.bias");
  // ...unless a component happens to equal the adapter name (bias="all" wrapper copies).
  EXPECT_EQ(
      remove_adapter_name("base_model.model.classifier.modules_to_save.default.bias", "default"),
      "base_model.model.classifier.modules_to_save.bias");
  // Another adapter's keys keep their name ("default" does not match "default_v2").
  EXPECT_EQ(remove_adapter_name("base_model.model.lin1.lora_A.default_v2.weight", "default"),
            "base_model.model.lin1.lora_A.default_v2.weight");
}

TEST(AdapterNames, VbloraTopkKeys) {
  EXPECT_EQ(remove_adapter_name("base_model.model.lin0.vblora_logits_A.default_topk_indices",
                                "default", true),
            "base_model.model.lin0.vblora_logits_A_topk_indices");
  EXPECT_EQ(remove_adapter_name("base_model.model.lin0.vblora_logits_A.default_topk_indices",
                                "default", false),
            "base_model.model.lin0.vblora_logits_A.default_topk_indices");
}

TEST(AdapterNames, InsertionAfterTheLastPrefix) {
  EXPECT_EQ(insert_adapter_name("base_model.model.q_proj.lora_A.weight", "other", "lora_"),
            "base_model.model.q_proj.lora_A.other.weight");
  EXPECT_EQ(insert_adapter_name("base_model.model.emb.lora_embedding_A", "x", "lora_"),
            "base_model.model.emb.lora_embedding_A.x");
  EXPECT_EQ(insert_adapter_name("base_model.model.lin0.osf_svd_params.U_low", "a", "osf_"),
            "base_model.model.lin0.osf_svd_params.a.U_low");
  EXPECT_EQ(insert_adapter_name("base_model.model.lin0.shira_indices", "default", "shira_"),
            "base_model.model.lin0.shira_indices.default");
  // Keys without the prefix are unchanged.
  EXPECT_EQ(insert_adapter_name("base_model.model.lin2.weight", "default", "lora_"),
            "base_model.model.lin2.weight");
  EXPECT_EQ(insert_adapter_name("base_model.vera_A", "default", "vera_lambda_"),
            "base_model.vera_A");
  // A module whose name contains the prefix is mangled, as v0.18.0 does (docs/peft-rules.md §3.2).
  EXPECT_EQ(insert_adapter_name("base_model.model.lora_block.dense.bias", "default", "lora_"),
            "base_model.model.lora_block.default.dense.bias");
}

}  // namespace
}  // namespace peft
