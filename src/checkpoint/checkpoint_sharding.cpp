// How transformers splits a checkpoint into shards and names them (huggingface_hub's
// split_state_dict_into_shards and parse_size_to_int, transformers' save_pretrained).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoint/shard_plan.hpp"
#include "peft/checkpoint.hpp"
#include "peft/error.hpp"
#include "pycompat/python_json.hpp"

namespace peft {

namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

[[noreturn]] void bad_size(std::string_view text, std::string_view why) {
  throw Error(ErrorCode::InvalidArgument, "max_shard_size",
              fmt::format("'{}' {}: expected a number of bytes or a number followed by KB, MB, "
                          "GB, TB (decimal) or KiB, MiB, GiB, TiB (binary), e.g. \"5GB\", "
                          "\"500MiB\"",
                          text, why));
}

}  // namespace

std::uint64_t parse_shard_size(std::string_view text) {
  const std::string_view t = trim(text);
  if (!t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return std::isdigit(c); })) {
    errno = 0;
    const unsigned long long bytes = std::strtoull(std::string(t).c_str(), nullptr, 10);
    if (errno == ERANGE) bad_size(text, "is too large");
    if (bytes == 0) bad_size(text, "is not a positive size");
    return bytes;
  }
  if (t.size() < 2) bad_size(text, "has no unit");
  // parse_size_to_int: the unit is the last two characters, upper-cased; the value is
  // float() of the rest, truncated after multiplication. transformers also accepts the
  // binary units KiB, MiB, GiB (and TiB here), three characters long.
  std::string unit(t.substr(t.size() - std::min<std::size_t>(t.size(), 3)));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double multiplier = 0;
  std::size_t unit_length = 3;
  if (unit == "KIB") multiplier = 0x1p10;
  if (unit == "MIB") multiplier = 0x1p20;
  if (unit == "GIB") multiplier = 0x1p30;
  if (unit == "TIB") multiplier = 0x1p40;
  if (multiplier == 0) {
    unit.erase(0, unit.size() - 2);
    unit_length = 2;
    if (unit == "KB") multiplier = 1e3;
    if (unit == "MB") multiplier = 1e6;
    if (unit == "GB") multiplier = 1e9;
    if (unit == "TB") multiplier = 1e12;
  }
  if (multiplier == 0) bad_size(text, fmt::format("has the unit '{}'", unit));
  const std::string number(trim(t.substr(0, t.size() - unit_length)));
  char* end = nullptr;
  const double value = number.empty() ? NAN : std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size() || !std::isfinite(value)) {
    bad_size(text, "has no valid number");
  }
  const double bytes = std::trunc(value * multiplier);
  if (bytes < 1) bad_size(text, "is not a positive size");
  if (bytes >= 0x1p64) bad_size(text, "is too large");
  return static_cast<std::uint64_t>(bytes);
}

std::vector<std::vector<std::size_t>> plan_shards(const std::vector<std::uint64_t>& sizes,
                                                  std::uint64_t max_shard_size) {
  std::vector<std::vector<std::size_t>> shards;
  std::vector<std::size_t> current;
  std::uint64_t current_size = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    // Too big for any shard: a shard of its own, appended before the one being filled.
    if (sizes[i] > max_shard_size) {
      shards.push_back({i});
      continue;
    }
    if (current_size + sizes[i] > max_shard_size) {
      shards.push_back(std::move(current));
      current.clear();
      current_size = 0;
    }
    current.push_back(i);
    current_size += sizes[i];
  }
  if (!current.empty()) shards.push_back(std::move(current));
  return shards;
}

std::string shard_file_name(std::size_t index, std::size_t count) {
  if (count == 1) return "model.safetensors";
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, count);
}

std::string checkpoint_index_json(
    const std::vector<std::pair<std::string, std::string>>& weight_map, std::uint64_t total_size,
    std::optional<std::uint64_t> total_parameters) {
  nlohmann::json index;
  index["metadata"]["total_size"] = total_size;
  if (total_parameters) index["metadata"]["total_parameters"] = *total_parameters;
  index["weight_map"] = nlohmann::json::object();
  for (const auto& [name, file] : weight_map) index["weight_map"][name] = file;
  // json.dumps(index, indent=2, sort_keys=True) + "\n"
  return detail::dump_python_json(index) + "\n";
}

bool is_weight_file(std::string_view name) {
  for (std::string_view ext : {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack",
                               ".gguf", ".onnx", ".index.json"}) {
    if (name.ends_with(ext)) return true;
  }
  return false;
}

}  // namespace peft
