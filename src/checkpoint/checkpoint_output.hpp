// Writing a checkpoint folder: safetensors shards streamed tensor by tensor, and the folder
// around them (refusing to overwrite, stale shards, the base's non-weight files).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "formats/atomic_file.hpp"
#include "peft/checkpoint.hpp"
#include "peft/safetensors.hpp"

namespace peft::detail {

struct ShardEntry {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t bytes = 0;
};

// The reference writer's layout (dtype rank descending, then name bytes): the order in
// which a shard's tensors must be given to ShardWriter::write.
std::vector<ShardEntry> writer_order(std::vector<ShardEntry> entries);

// One safetensors file written as its tensors become available, so that a shard never has
// to be whole in memory. The header is written first (offsets follow from dtypes and
// shapes); the file replaces `path` atomically on commit().
class ShardWriter {
 public:
  // `entries` must already be in writer_order.
  ShardWriter(const std::filesystem::path& path, std::vector<ShardEntry> entries,
              const std::optional<Metadata>& metadata, bool durable);
  const std::vector<ShardEntry>& entries() const noexcept { return entries_; }
  // The bytes of entries()[index]; indices must come in order.
  void write(std::size_t index, std::span<const std::byte> bytes);
  // The bytes of entries()[index] copied by the kernel from `in_fd` at `offset` (an
  // unchanged tensor of an input shard: it never passes through user memory).
  void copy(std::size_t index, int in_fd, std::uint64_t offset, const std::string& in_name);
  // Part of entries()[index] (from byte `offset` of the tensor), written ahead of its turn
  // from any thread; once all of it is there, skip(index) takes its turn.
  void write_part(std::size_t index, std::uint64_t offset, std::span<const std::byte> bytes) const;
  void skip(std::size_t index);
  void commit();

 private:
  formats::AtomicFile file_;
  std::vector<ShardEntry> entries_;
  std::vector<std::uint64_t> positions_;  // where each entry's bytes start in the file
  std::size_t next_ = 0;
};

// Creates `out`; refuses (InvalidArgument) a file, a non-empty folder unless `force`, and
// the folder the base checkpoint's files are in. The folder is removed again unless the
// caller commits the returned guard.
formats::OutputFolder prepare_output_folder(const std::filesystem::path& out,
                                            const CheckpointLayout* base, bool force);
// Deletes model.safetensors, model-*-of-*.safetensors and model.safetensors.index.json left
// in `out` by an earlier save and not among `written` (as save_pretrained does).
void remove_stale_weights(const std::filesystem::path& out,
                          const std::vector<std::string>& written);
// Copies the regular files of the base folder that are not weights (config.json, tokenizer
// files, ...). With `dtype`, config.json's "torch_dtype"/"dtype" are updated to it. Returns
// the names copied.
std::vector<std::string> copy_non_weight_files(const CheckpointLayout& base,
                                               const std::filesystem::path& out,
                                               std::optional<DType> dtype, bool durable);

}  // namespace peft::detail
