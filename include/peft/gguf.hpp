// peft/gguf.hpp — what a GGUF file holds (llama.cpp's models and LoRA adapters), for
// inspecting files export_gguf wrote or others made. Reads the header only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/export.hpp"

namespace peft {

struct PEFT_API GgufTensorSummary {
  std::string name;
  std::string type;               // ggml's name: "F32", "F16", "BF16", "Q8_0", ...
  std::vector<std::uint64_t> ne;  // GGUF order: ne[0] fastest-varying
  std::uint64_t bytes = 0;
};

struct PEFT_API GgufSummary {
  std::filesystem::path file;
  std::uint32_t version = 0;
  std::uint64_t file_bytes = 0;
  // Metadata in file order: key -> value (arrays as JSON arrays).
  std::vector<std::pair<std::string, nlohmann::json>> metadata;
  std::vector<GgufTensorSummary> tensors;
};

// Throws InvalidGguf naming the file and the field for a file that breaks the format.
PEFT_API GgufSummary inspect_gguf_file(const std::filesystem::path& file);

// {"file", "format": "gguf", "version", "bytes", "metadata": {...}, "tensor_count",
//  "tensors": [{"name", "type", "ne", "bytes"}] (with_tensors only)}.
PEFT_API nlohmann::json to_json(const GgufSummary& summary, bool with_tensors);

}  // namespace peft
