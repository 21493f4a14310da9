// peft/checkpoint.hpp — base-model checkpoints as transformers stores them, and merging an
// adapter into one (or taking it out again) shard by shard.
//
// A checkpoint is (docs/formats.md "Sharded checkpoints"):
//   * a single .safetensors file, or a folder holding model.safetensors;
//   * a folder holding model.safetensors.index.json, whose "weight_map" names the shard file
//     of every tensor and whose "metadata"."total_size" sums their bytes;
//   * a Hub repository id resolved through the local cache (either of the above).
// The index is authoritative: every shard it names must exist and hold the tensors mapped to
// it; tensors a shard holds without being mapped are ignored (as transformers does) and
// reported.
//
// Writing follows transformers' save_pretrained: one file "model.safetensors", or shards
// "model-00001-of-0000N.safetensors" plus "model.safetensors.index.json" (indent 2, sorted
// keys, trailing newline), each file replaced atomically.
//
// merge_checkpoint streams: one shard is mapped at a time, only the tensors the adapters
// change are computed (in `threads` threads), untouched tensors go from the mapping to the
// output file without a copy, and every output shard is written before the next is read, so
// the anonymous memory stays near the tensors in flight plus the adapters.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "peft/adapter_io.hpp"
#include "peft/diagnostic.hpp"
#include "peft/dtype.hpp"
#include "peft/export.hpp"
#include "peft/merge.hpp"
#include "peft/safetensors.hpp"
#include "peft/state_dict.hpp"

namespace peft {

struct PEFT_API CheckpointShard {
  std::filesystem::path path;      // the file on disk
  std::string file_name;           // as the index names it ("model-00001-of-00002.safetensors")
  std::vector<std::string> names;  // the mapped tensors, in the file's data order
  std::uint64_t bytes = 0;         // their byte sizes summed
  std::uint64_t file_size = 0;
  // safetensors' __metadata__ ({"format": "pt"} for a PyTorch file): kept when the output
  // keeps the shard boundaries.
  std::optional<Metadata> metadata;
};

// Where a checkpoint's tensors are. Every shard header has been read and validated.
struct PEFT_API CheckpointLayout {
  std::string source;            // what was given (path or Hub id)
  std::filesystem::path folder;  // the folder whose non-weight files are copied; "" for a file
  // config.json: the folder's, or the one next to a single .safetensors file.
  std::optional<std::filesystem::path> config;
  std::optional<std::filesystem::path> index;     // model.safetensors.index.json, when sharded
  std::vector<CheckpointShard> shards;            // in index order (sorted file names)
  std::vector<std::string> unmapped;              // "<shard>: <name>" present but not mapped
  Diagnostics warnings;                           // e.g. total_size disagreeing with the shards
  std::optional<std::uint64_t> total_parameters;  // the index's, when it has one

  std::size_t tensor_count() const;
  std::uint64_t total_bytes() const;
  std::vector<std::string> names() const;  // state-dict order: shard by shard
};

// Reads a checkpoint given as a .safetensors file, a folder (model.safetensors.index.json
// preferred over model.safetensors) or a Hub id found in the cache. Throws NotFound listing
// what was tried, InvalidJson for a broken index, NotFound for a shard the index names that
// does not exist, MissingKey for names mapped to a shard that does not hold them.
PEFT_API CheckpointLayout open_checkpoint(const std::string& path_or_id,
                                          const AdapterLocation& location = {});
// Reads a sharded checkpoint from its index file; shards are looked up next to it.
PEFT_API CheckpointLayout read_checkpoint_index(const std::filesystem::path& index_file);
// The whole checkpoint as zero-copy views (small models, tests).
PEFT_API StateDict load_checkpoint(const CheckpointLayout& layout);

// The base's config.json (nullopt without one): tie_word_embeddings says that
// lm_head.weight shares the input embedding's storage. An absent flag counts as tied only
// when the checkpoint stores an input embedding and no lm_head.weight (transformers' default
// is True and save_pretrained drops the tied copy).
PEFT_API std::vector<std::pair<std::string, std::string>> tied_weight_keys(
    const CheckpointLayout& layout);

// transformers' convert_file_size_to_int: "5GB" = 5 * 10^9, "500MB", "10KB", "2GiB" = 2 *
// 2^30, "MiB", "KiB"; a lower-case final "b" means bits ("5Gb" = 5 * 10^9 / 8); a plain
// integer is bytes. Throws InvalidArgument for anything else.
PEFT_API std::uint64_t parse_shard_size(std::string_view text);
// "model.safetensors" when count == 1, else "model-00001-of-00004.safetensors" (1-based i).
PEFT_API std::string shard_file_name(std::size_t index, std::size_t count);
// model.safetensors.index.json as transformers writes it.
PEFT_API std::string checkpoint_index_json(
    const std::vector<std::pair<std::string, std::string>>& weight_map, std::uint64_t total_size,
    std::optional<std::uint64_t> total_parameters = {});
// True for files that hold weights (not copied next to merged weights): *.safetensors,
// *.bin, *.pt, *.pth, *.ckpt, *.h5, *.msgpack, *.gguf, *.onnx and *.index.json.
PEFT_API bool is_weight_file(std::string_view file_name);

struct PEFT_API CheckpointProgress {
  std::size_t tensors_done = 0;
  std::size_t tensors_total = 0;
  std::uint64_t bytes_done = 0;  // output bytes written
  std::uint64_t bytes_total = 0;
};

struct PEFT_API CheckpointWriteOptions {
  // Re-shard with transformers' algorithm; nullopt keeps the base's shard boundaries.
  std::optional<std::uint64_t> max_shard_size;
  // Cast floating tensors as from_pretrained(torch_dtype=...) does: before the merge.
  std::optional<DType> dtype;
  unsigned threads = 0;  // 0: every core
  // Estimated bytes of changed tensors in flight (their float64 working copies included)
  // before a thread waits for the writer; 0: the largest input shard. A tensor is always
  // allowed to start when nothing else is in flight.
  std::uint64_t memory_budget = 0;
  // Called from the calling thread after each tensor is written.
  std::function<void(const CheckpointProgress&)> progress;
  bool force = false;  // write into an existing non-empty folder
  bool copy_non_weight_files = true;
  bool durable = false;  // fsync every file
};

struct PEFT_API CheckpointWriteResult {
  std::vector<std::string> files;   // weight files written (shards, index)
  std::vector<std::string> copied;  // non-weight files copied from the base folder
  std::size_t tensors = 0;
  std::size_t changed = 0;  // tensors the adapters changed
  std::uint64_t bytes = 0;  // tensor bytes written
  Diagnostics warnings;
};

// Writes `state` as transformers' save_pretrained does (a single file when everything fits
// in one shard). For small models and tests; merge_checkpoint streams instead.
PEFT_API CheckpointWriteResult save_checkpoint(const StateDict& state,
                                               const std::filesystem::path& out_dir,
                                               std::uint64_t max_shard_size,
                                               const CheckpointWriteOptions& options = {});

// merge_and_unload() on a checkpoint, written to `out_dir`. The base's tie_word_embeddings is
// added to options.tied_keys when these are empty. Throws MissingKey naming the tensors an
// adapter changes that no shard holds (before anything is written), InvalidArgument for an
// output folder that is not empty (unless force) or is the base folder.
PEFT_API CheckpointWriteResult merge_checkpoint(const CheckpointLayout& base,
                                                std::vector<MergeAdapter> adapters,
                                                const MergeOptions& options,
                                                const std::filesystem::path& out_dir,
                                                const CheckpointWriteOptions& write = {});
PEFT_API CheckpointWriteResult merge_checkpoint(const std::string& base_path_or_id,
                                                std::vector<MergeAdapter> adapters,
                                                const MergeOptions& options,
                                                const std::filesystem::path& out_dir,
                                                const CheckpointWriteOptions& write = {});
// The inverse: the base weights from merged ones, or Unsupported where the adapter and the
// merged weights do not determine them.
PEFT_API CheckpointWriteResult unmerge_checkpoint(const CheckpointLayout& merged,
                                                  std::vector<MergeAdapter> adapters,
                                                  const MergeOptions& options,
                                                  const std::filesystem::path& out_dir,
                                                  const CheckpointWriteOptions& write = {});
PEFT_API CheckpointWriteResult unmerge_checkpoint(const std::string& merged_path_or_id,
                                                  std::vector<MergeAdapter> adapters,
                                                  const MergeOptions& options,
                                                  const std::filesystem::path& out_dir,
                                                  const CheckpointWriteOptions& write = {});

}  // namespace peft
