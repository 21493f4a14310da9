// peft/convert.hpp — weight files and adapter folders between formats and dtypes, and
// comparisons between two of them.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/dtype.hpp"
#include "peft/state_dict.hpp"

namespace peft {

// Reads a .safetensors or .bin (torch.save) weights file by its content.
StateDict read_weights_file(const std::filesystem::path& path);

struct ConvertOptions {
  std::optional<DType> dtype;  // cast floating tensors (integer tensors are kept)
  bool overwrite = false;      // replace an existing output
};

// file -> file (.safetensors / .bin chosen by the output's extension), or adapter folder
// -> adapter folder (config copied, weights converted; --dtype applies to weights).
// Every output is written atomically; an existing output is refused unless overwrite.
void convert_adapter(const std::filesystem::path& in, const std::filesystem::path& out,
                     const ConvertOptions& options);

struct TensorDifference {
  std::string key;
  std::string what;  // "only in A", "only in B", "dtype", "shape", "values"
  double max_abs = 0;
  double max_rel = 0;
};

struct Comparison {
  std::vector<TensorDifference> tensors;
  std::vector<std::string> config_differences;  // "field: A value -> B value"
  bool identical() const { return tensors.empty() && config_differences.empty(); }
};

// Compares two weight files or two adapter folders.
Comparison compare_adapters(const std::filesystem::path& a, const std::filesystem::path& b);

nlohmann::json to_json(const Comparison& comparison);

}  // namespace peft
