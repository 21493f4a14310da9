// peft/gguf_export.hpp — a PEFT LoRA adapter as llama.cpp's GGUF LoRA file (`--lora`),
// without Python. docs/gguf.md describes the conventions.
//
// The base model is needed only for its config.json (architecture, head counts, tied
// embeddings), never its weights. Names follow llama.cpp's converter
// (convert_hf_to_gguf.py): "model.layers.3.self_attn.q_proj" -> "blk.3.attn_q.weight",
// with the tensors "<name>.lora_a" / "<name>.lora_b". llama.cpp scales every tensor by
// adapter.lora.alpha / r (r read from lora_b); PEFT's own scale of each module (rsLoRA's
// alpha / sqrt(r), rank_pattern, alpha_pattern) is reached by folding the ratio into
// lora_b in float32, with one rounding into the output type.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "peft/adapter_io.hpp"
#include "peft/dtype.hpp"
#include "peft/export.hpp"

namespace peft {

enum class GgufOutType : std::uint8_t { F32, F16, BF16, Q8_0 };

// "f32", "f16", "bf16", "q8_0" and the dtype aliases of every dtype option; nullopt
// otherwise.
PEFT_API std::optional<GgufOutType> gguf_out_type_from_name(std::string_view name);

struct PEFT_API GgufExportOptions {
  AdapterLocation adapter_location;
  AdapterLocation base_location;
  GgufOutType out_type = GgufOutType::F32;
  bool overwrite = false;
};

struct PEFT_API GgufExportResult {
  std::string architecture;  // llama.cpp's name, e.g. "llama"
  std::size_t tensors = 0;   // lora_a + lora_b tensors written
  std::uint64_t bytes = 0;   // file size
  float alpha = 0;           // adapter.lora.alpha
};

// The architectures export_gguf knows: Hugging Face class -> llama.cpp name.
PEFT_API std::vector<std::pair<std::string, std::string>> gguf_architectures();

// Writes the adapter `adapter` (folder or Hub id) for the base model `base` (folder or
// Hub id holding config.json) to `out`, atomically. Throws Unsupported for what llama.cpp's
// format cannot express (methods other than LoRA, DoRA, trained biases, modules_to_save,
// trainable tokens, LoRA on tied output embeddings, architectures it does not know), naming
// the reason and suggesting `peftcpp merge`.
PEFT_API GgufExportResult export_gguf(const std::string& adapter, const std::string& base,
                                      const std::filesystem::path& out,
                                      const GgufExportOptions& options = {});

}  // namespace peft
