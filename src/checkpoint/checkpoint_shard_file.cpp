#include "checkpoint/checkpoint_shard_file.hpp"

#include <fmt/format.h>

#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/torch_file.hpp"

namespace peft::detail {
namespace fs = std::filesystem;

bool ShardFile::is_torch_file(const fs::path& path) {
  return weights_reader_for(path) != FileFormat::Safetensors;
}

ShardFile ShardFile::open(const fs::path& path) {
  ShardFile out;
  out.source_ = path.string();
  if (is_torch_file(path)) {
    out.torch_ = load_torch_file(path);
    std::error_code ec;
    out.file_size_ = fs::file_size(path, ec);
    for (const auto& [name, tensor] : out.torch_) {
      out.infos_.push_back({name, tensor.dtype(), tensor.shape(), tensor.nbytes()});
    }
  } else {
    out.safetensors_ = SafetensorsFile::open(path);
    out.file_size_ = out.safetensors_->file_size();
    for (const auto& info : out.safetensors_->tensors()) {
      out.infos_.push_back({info.name, info.dtype, info.shape, info.end - info.begin});
    }
  }
  out.index_.reserve(out.infos_.size());
  for (std::size_t i = 0; i < out.infos_.size(); ++i) out.index_.emplace(out.infos_[i].name, i);
  return out;
}

const ShardTensorInfo* ShardFile::info(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &infos_[it->second];
}

Tensor ShardFile::tensor(std::string_view name) const {
  if (safetensors_) return safetensors_->tensor(name);
  const Tensor* found = torch_.find(name);
  if (found == nullptr) {
    throw Error(ErrorCode::MissingKey, source_, fmt::format("no tensor named '{}'", name));
  }
  return *found;
}

std::optional<std::uint64_t> ShardFile::file_offset(std::string_view name) const {
  if (!safetensors_) return std::nullopt;
  const SafetensorsTensorInfo* info = safetensors_->info(name);
  if (info == nullptr) return std::nullopt;
  return 8 + safetensors_->header_length() + info->begin;  // u64 length, header, data
}

std::optional<Metadata> ShardFile::metadata() const {
  if (safetensors_) return safetensors_->metadata();
  return Metadata{{"format", "pt"}};
}

}  // namespace peft::detail
