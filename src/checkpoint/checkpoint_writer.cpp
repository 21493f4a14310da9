// A safetensors shard written tensor by tensor: the header the reference writer would
// produce, then each tensor's bytes as they arrive (from a mapping or a fresh buffer).
#include <algorithm>

#include <fmt/format.h>

#include "checkpoint/checkpoint_output.hpp"
#include "formats/safetensors_header.hpp"
#include "peft/error.hpp"

namespace peft::detail {

namespace {

std::string header_bytes(const std::vector<ShardEntry>& entries,
                         const std::optional<Metadata>& metadata, const std::string& target) {
  std::vector<formats::HeaderEntry> header;
  header.reserve(entries.size());
  for (const auto& entry : entries)
    header.push_back({entry.name, entry.dtype, &entry.shape, entry.bytes});
  return formats::serialize_header(metadata, header, target);
}

}  // namespace

std::vector<ShardEntry> writer_order(std::vector<ShardEntry> entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const ShardEntry& a, const ShardEntry& b) {
    return formats::writes_before(dtype_rank(a.dtype), a.name, dtype_rank(b.dtype), b.name);
  });
  return entries;
}

ShardWriter::ShardWriter(const std::filesystem::path& path, std::vector<ShardEntry> entries,
                         const std::optional<Metadata>& metadata, bool durable)
    : file_(path, durable), entries_(std::move(entries)) {
  const std::string header = header_bytes(entries_, metadata, path.string());
  file_.write(header);
  std::uint64_t position = header.size();
  for (const ShardEntry& entry : entries_) {
    positions_.push_back(position);
    position += entry.bytes;
  }
}

void ShardWriter::write_part(std::size_t index, std::uint64_t offset,
                             std::span<const std::byte> bytes) const {
  if (index >= entries_.size() || offset + bytes.size() > entries_[index].bytes) {
    throw Error(
        ErrorCode::InvalidArgument, file_.target().string(),
        fmt::format("internal: {} bytes at {} do not fit tensor {}", bytes.size(), offset, index));
  }
  file_.write_at(positions_[index] + offset, bytes);
}

void ShardWriter::skip(std::size_t index) {
  if (index != next_ || index >= entries_.size()) {
    throw Error(ErrorCode::InvalidArgument, file_.target().string(),
                fmt::format("internal: tensor {} skipped out of order", index));
  }
  file_.skip(entries_[index].bytes);
  ++next_;
}

void ShardWriter::write(std::size_t index, std::span<const std::byte> bytes) {
  if (index != next_ || index >= entries_.size() || bytes.size() != entries_[index].bytes) {
    throw Error(ErrorCode::InvalidArgument, file_.target().string(),
                fmt::format("internal: tensor {} written out of order or with {} bytes", index,
                            bytes.size()));
  }
  file_.write(bytes);
  ++next_;
}

void ShardWriter::copy(std::size_t index, int in_fd, std::uint64_t offset,
                       const std::string& in_name) {
  if (index != next_ || index >= entries_.size()) {
    throw Error(ErrorCode::InvalidArgument, file_.target().string(),
                fmt::format("internal: tensor {} copied out of order", index));
  }
  file_.copy_from(in_fd, offset, entries_[index].bytes, in_name);
  ++next_;
}

void ShardWriter::commit() {
  if (next_ != entries_.size()) {
    throw Error(ErrorCode::InvalidArgument, file_.target().string(),
                fmt::format("internal: {} of {} tensors written", next_, entries_.size()));
  }
  file_.commit();
}

}  // namespace peft::detail
