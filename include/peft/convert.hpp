// peft/convert.hpp — weight files and adapter folders between formats and dtypes, adapter
// folders written from a config and weights (checked first), and comparisons.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/config.hpp"
#include "peft/diagnostic.hpp"
#include "peft/dtype.hpp"
#include "peft/export.hpp"
#include "peft/file_format.hpp"
#include "peft/state_dict.hpp"

namespace peft {

// Whether the file name's extension names a weights format convert can write.
PEFT_API bool is_weights_extension(const std::filesystem::path& path);

struct PEFT_API ConvertOptions {
  std::optional<DType> dtype;  // cast floating tensors (integer tensors are kept)
  bool overwrite = false;      // replace an existing output
};

// file -> file (.safetensors / .bin / .pt / .pth chosen by the output's extension; any
// other name is refused), or adapter folder -> adapter folder (config copied, weights
// converted; --dtype applies to weights). Inputs are recognised by content. Every output
// is written atomically, an output folder created here is removed again on failure, and
// an existing output is refused unless overwrite.
PEFT_API void convert_adapter(const std::filesystem::path& in, const std::filesystem::path& out,
                              const ConvertOptions& options);

struct PEFT_API SaveAdapterOptions {
  bool safe_serialization = true;   // false: adapter_model.bin
  bool overwrite = false;           // replace an adapter already in the folder
  bool durable = false;             // fsync files and folder
  Diagnostics* warnings = nullptr;  // validate's warnings, when given
};

// The common case without a PeftModel: writes `config` and `weights` with saved keys (what
// load_peft_weights returns, e.g. "base_model.model.q_proj.lora_A.weight") as an adapter
// folder PEFT loads: folder/adapter_config.json (inference_mode true, as PEFT saves it)
// and adapter_model.safetensors (or .bin). Before anything is written it refuses
// (InvalidArgument, listing the problems) what validate reports as errors: no tensor,
// keys that still hold an adapter name, tensors for modules the config does not target,
// ranks that contradict the config, a config PEFT refuses. Nothing is left behind on
// failure.
PEFT_API void save_adapter(const std::filesystem::path& folder, const PeftConfig& config,
                           const StateDict& weights, const SaveAdapterOptions& options = {});

struct PEFT_API TensorDifference {
  std::string key;
  std::string what;  // "only in A", "only in B", "dtype", "shape", "values"
  double max_abs = 0;
  double max_rel = 0;
};

struct PEFT_API Comparison {
  std::vector<TensorDifference> tensors;        // differences beyond the tolerance
  std::vector<std::string> config_differences;  // "field: A value -> B value"
  std::size_t compared = 0;                     // tensors present in both
  std::size_t within_tolerance = 0;             // of those, equal only within the tolerance
  bool identical() const { return tensors.empty() && config_differences.empty(); }
};

struct PEFT_API CompareOptions {
  // Values count as equal when |a - b| <= atol + rtol * |b| (numpy.allclose); the default
  // asks for identical bytes.
  double atol = 0;
  double rtol = 0;
};

// Compares two weight files or two adapter folders (configs too), or a folder's weights
// with a file.
PEFT_API Comparison compare_adapters(const std::filesystem::path& a, const std::filesystem::path& b,
                                     const CompareOptions& options = {});

PEFT_API nlohmann::json to_json(const Comparison& comparison);

}  // namespace peft
