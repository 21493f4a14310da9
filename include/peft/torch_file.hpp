// peft/torch_file.hpp — reading and writing PyTorch .bin files (torch.save).
//
// The format (docs/formats.md "torch.save files"), in brief: a ZIP archive of stored entries under
// one folder `<archive>/`: `data.pkl` (a protocol-2 pickle of the saved dict, whose tensors name
// storages by key), one `data/<key>` record of raw little-endian bytes per storage, and `version`.
// Several tensors may view one storage.
//
// load_torch_file never runs pickle code: data.pkl is interpreted by a restricted
// unpickler that only accepts what a state dict needs (docs/formats.md "The restricted unpickler").
// The result must be a dict (or OrderedDict) of str → tensor; keys keep the pickle's order. Tensors
// are zero-copy views of the mapped file where the data allows it (little-endian, contiguous);
// tensors that share a storage share memory. Non-contiguous views are copied into C order;
// big-endian files are byte-swapped into heap copies. The legacy non-zip format (PyTorch < 1.6) is
// read too; the tar format, the 1.x 'PYTORCH1' preview format and TorchScript archives are refused
// (UnsupportedFormat).
//
// save_torch_file writes what torch.save writes for such a dict (docs/formats.md "torch.save files
// / Writer"), atomically. Tensors that overlap in memory are written as one storage referenced by
// each, so sharing survives a round trip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "peft/export.hpp"
#include "peft/state_dict.hpp"

namespace peft {

struct PEFT_API TorchReadOptions {
  bool use_mmap = true;  // false: read the file into memory
  // Check every record's CRC-32. Off by default, like torch.load (PyTorch builds miniz with
  // MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS): checking reads every byte at load time, which
  // made loading 2.5x slower than reading the safetensors file. `peftcpp inspect` and
  // `validate` turn it on.
  bool verify_crc = false;
  bool allow_legacy = true;                     // read the pre-1.6 non-zip format
  std::size_t max_records = 1'000'000;          // zip entries
  std::uint64_t max_pickle_bytes = 1ULL << 30;  // size of data.pkl
  std::uint64_t max_opcodes = 10'000'000;
  std::size_t max_memo_entries = 1'000'000;
  std::size_t max_stack = 100'000;
  std::size_t max_marks = 10'000;
  std::size_t max_rank = 64;
  // Total bytes that views reading storage elements more than once (stride 0, overlaps)
  // may take once copied into C order: such a view of a tiny storage can be huge. All
  // copies of non-contiguous views together may take at most the file's size plus this.
  std::uint64_t max_expanded_bytes = 256ULL << 20;
};

// Reads a torch.save file as a state dict. Throws peft::Error naming the file.
PEFT_API StateDict load_torch_file(const std::filesystem::path& path,
                                   const TorchReadOptions& options = {});
// The same for bytes already in memory; `owner` keeps them alive for the returned
// views, `source` names them in errors.
PEFT_API StateDict load_torch_bytes(std::span<const std::byte> bytes,
                                    std::shared_ptr<const void> owner, std::string source,
                                    const TorchReadOptions& options = {});

struct PEFT_API TorchWriteOptions {
  // fsync the file and its folder before returning.
  bool durable = false;
  // The archive's top folder; empty: the file name without its last extension, as
  // torch.save does ("archive" for an in-memory buffer or a non-ASCII name).
  std::string archive_name;
};

// Writes `tensors` as torch.save does, through a temporary file renamed over `path`.
// Throws UnsupportedDType for sub-byte dtypes, InvalidArgument for keys that are not
// valid UTF-8.
PEFT_API void save_torch_file(const StateDict& tensors, const std::filesystem::path& path,
                              const TorchWriteOptions& options = {});
// The whole file in memory.
PEFT_API std::vector<std::byte> serialize_torch(const StateDict& tensors,
                                                const TorchWriteOptions& options = {});

}  // namespace peft
