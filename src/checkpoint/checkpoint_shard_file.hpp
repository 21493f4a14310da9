// One input shard of a base checkpoint: a safetensors file, or a PyTorch file
// (pytorch_model*.bin) read through the restricted unpickler. Both give zero-copy views of
// a mapping, so the merge streams either kind with the same memory bound.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "peft/safetensors.hpp"
#include "peft/state_dict.hpp"

namespace peft::detail {

struct ShardTensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t nbytes = 0;
};

class ShardFile {
 public:
  // Reads the file's header (safetensors) or its pickle (PyTorch). PyTorch files are told
  // apart by their extension (.bin, .pt, .pth) or their first bytes (zip or pickle).
  static ShardFile open(const std::filesystem::path& path);
  static bool is_torch_file(const std::filesystem::path& path);

  const std::string& source() const noexcept { return source_; }
  std::uint64_t file_size() const noexcept { return file_size_; }
  // Tensors in data order (safetensors' offsets; the pickle's order for PyTorch files).
  const std::vector<ShardTensorInfo>& tensors() const noexcept { return infos_; }
  const ShardTensorInfo* info(std::string_view name) const;
  bool contains(std::string_view name) const { return info(name) != nullptr; }
  Tensor tensor(std::string_view name) const;
  // Where a safetensors tensor's bytes start in the file; nullopt for PyTorch files.
  std::optional<std::uint64_t> file_offset(std::string_view name) const;
  // safetensors' __metadata__; what save_pretrained writes ({"format": "pt"}) for others.
  std::optional<Metadata> metadata() const;

 private:
  ShardFile() = default;

  std::string source_;
  std::uint64_t file_size_ = 0;
  std::vector<ShardTensorInfo> infos_;
  std::unordered_map<std::string, std::size_t> index_;
  std::optional<SafetensorsFile> safetensors_;
  StateDict torch_;  // views of the PyTorch file's mapping
};

}  // namespace peft::detail
