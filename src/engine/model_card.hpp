// The README.md model card save_pretrained writes or updates (docs/peft-rules.md §1.6):
// YAML front matter (library_name, tags, pipeline_tag, base_model) and the
// framework-versions line.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace peft {

struct ModelCardFacts {
  std::optional<std::string> base_model;  // config _name_or_path ("" is a value)
  bool is_transformers_model = false;
  bool lora = false;         // the active adapter is a LoRA
  std::string pipeline_tag;  // "text-generation" for causal LMs, else empty
};

// Creates README.md, or updates the one that exists (its other content is kept).
void write_model_card(const std::filesystem::path& path, const ModelCardFacts& facts);

// The text write_model_card would write over `existing` (empty: a fresh card).
std::string model_card_text(const std::string& existing, const ModelCardFacts& facts);

}  // namespace peft
