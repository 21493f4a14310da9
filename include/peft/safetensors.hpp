// peft/safetensors.hpp — reading and writing .safetensors files.
//
// The format (docs/formats.md "Safetensors"), in brief:
//   1. 8 bytes: N, the header length, unsigned little-endian.
//   2. N bytes: a UTF-8 JSON object. Each member but "__metadata__" describes one
//      tensor: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, the
//      offsets relative to the data buffer. "__metadata__" maps strings to strings.
//      The reference writer pads the JSON with spaces to a multiple of 8 bytes.
//   3. The data buffer: every tensor's bytes, little-endian, C order, back to back.
// Offsets must tile the buffer exactly (no gap, overlap or trailing byte), each
// range must hold exactly numel × element size bytes, and the file must end where
// the last tensor ends.
//
// SafetensorsFile maps the file and validates it completely on open (every rule of
// the reference reader, plus duplicate names, a bound on rank and tensor count);
// tensors are then zero-copy views that keep the mapping alive. save_safetensors
// produces the reference writer's bytes and replaces the target atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "peft/export.hpp"
#include "peft/state_dict.hpp"
#include "peft/tensor.hpp"

namespace peft {

// "__metadata__": string → string. Absent and empty are different on disk.
using Metadata = std::map<std::string, std::string>;

struct PEFT_API SafetensorsTensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t begin;  // offsets relative to the data buffer
  std::uint64_t end;
};

struct PEFT_API SafetensorsReadOptions {
  bool use_mmap = true;                          // false: read the file into memory
  std::uint64_t max_header_bytes = 100'000'000;  // the reference reader's cap
  std::size_t max_tensors = 10'000'000;
  std::size_t max_rank = 64;
};

class PEFT_API SafetensorsFile {
 public:
  // Maps (or reads) and validates `path`. Throws peft::Error naming the file.
  static SafetensorsFile open(const std::filesystem::path& path,
                              const SafetensorsReadOptions& options = {});
  // Validates bytes already in memory; `owner` keeps them alive, `source` names
  // them in errors.
  static SafetensorsFile from_bytes(std::span<const std::byte> bytes,
                                    std::shared_ptr<const void> owner, std::string source,
                                    const SafetensorsReadOptions& options = {});

  // Copies share the bytes and rebuild their own name index (it views the names the
  // object holds); moves keep both.
  SafetensorsFile(const SafetensorsFile& other);
  SafetensorsFile& operator=(const SafetensorsFile& other);
  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  ~SafetensorsFile() = default;

  const std::string& source() const noexcept { return source_; }
  const std::optional<Metadata>& metadata() const noexcept { return metadata_; }
  // Every tensor, in data-offset order (the order Python's load_file returns).
  const std::vector<SafetensorsTensorInfo>& tensors() const noexcept { return infos_; }
  std::size_t size() const noexcept { return infos_.size(); }
  bool contains(std::string_view name) const { return index_.count(name) != 0; }
  const SafetensorsTensorInfo* info(std::string_view name) const;

  // Zero-copy view of one tensor; throws TensorNotFound.
  Tensor tensor(std::string_view name) const;
  // Every tensor as zero-copy views, in offset order.
  StateDict state_dict() const;

  std::uint64_t header_length() const noexcept { return header_length_; }  // N
  std::uint64_t file_size() const noexcept { return bytes_.size(); }
  // True when the tensors view a memory mapping rather than a heap copy.
  bool is_mapped() const noexcept { return mapped_; }

 private:
  SafetensorsFile() = default;
  Tensor make_tensor(const SafetensorsTensorInfo& info) const;
  void build_index();

  std::string source_;
  std::shared_ptr<const void> owner_;
  std::span<const std::byte> bytes_;
  std::uint64_t header_length_ = 0;
  std::optional<Metadata> metadata_;
  std::vector<SafetensorsTensorInfo> infos_;
  std::unordered_map<std::string_view, std::size_t> index_;
  bool mapped_ = false;
};

struct PEFT_API SafetensorsWriteOptions {
  // fsync the file and its folder before returning (survives power loss). Off by
  // default, as in the reference writer.
  bool durable = false;
  // Write tensors that alias the same bytes as separate copies instead of refusing.
  bool copy_shared = false;
};

// The header the reference writer produces for these tensors: compact JSON in
// writer order, padded with spaces to a multiple of 8 bytes.
PEFT_API std::string safetensors_header(const StateDict& tensors,
                                        const std::optional<Metadata>& metadata);

// The whole file in memory (small files, tests, fuzzing).
PEFT_API std::vector<std::byte> serialize_safetensors(const StateDict& tensors,
                                                      const std::optional<Metadata>& metadata = {},
                                                      const SafetensorsWriteOptions& options = {});

// Writes `tensors` to `path` through a temporary file in the same folder that is
// renamed over the target, so readers see the old file or the new one, never a mix.
// Tensors may be views of other mapped files: data is streamed, not gathered.
PEFT_API void save_safetensors(const StateDict& tensors, const std::filesystem::path& path,
                               const std::optional<Metadata>& metadata = {},
                               const SafetensorsWriteOptions& options = {});

}  // namespace peft
