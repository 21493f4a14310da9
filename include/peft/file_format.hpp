// peft/file_format.hpp — what a file is, decided from its whole structure.
//
// One place decides whether bytes are a safetensors file, a torch.save file (zip or the
// legacy pickle stream), a GGUF file or JSON text. A single magic byte is not enough:
// a safetensors file starts with its header length, and about one such file in 256 has
// a length whose low byte is 0x80 (the pickle PROTO opcode), one in 65,536 starts with
// "PK". So each format is recognised by structure:
//   - safetensors: an 8-byte little-endian length N with 8 + N <= file size, then '{';
//   - torch.save zip (PyTorch >= 1.6): "PK\3\4" at the start *and* a zip end record
//     ("PK\5\6") at the end whose comment length reaches exactly the end of the file;
//   - legacy torch.save (PyTorch < 1.6): a pickle PROTO (2..5), an optional FRAME, then
//     the pickled magic number 0x1950a86a20f9469cfc6c;
//   - the tar format of PyTorch <= 0.3 ("ustar" at byte 257), GGUF ("GGUF"), JSON text
//     (a '{' or '[' after optional whitespace), empty files.
// When the content matches several formats, the file name's extension breaks the tie;
// when it matches none, readers report the error of the format the name suggests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include "peft/export.hpp"
#include "peft/state_dict.hpp"

namespace peft {

enum class FileFormat {
  Unknown,
  Empty,
  Safetensors,
  TorchZip,
  TorchLegacy,
  TorchTar,
  Gguf,
  Json,
};

// "safetensors", "torch zip", ... for messages.
PEFT_API std::string_view to_string(FileFormat format) noexcept;

// The format the extension names (.safetensors, .bin/.pt/.pth, .gguf, .json), or Unknown.
PEFT_API FileFormat format_from_extension(const std::filesystem::path& path);

// Detection from the bytes of a file: `head` is its first bytes (at least 64 when the
// file is that long), `tail` its last bytes (up to 65,557: a zip end record plus the
// longest comment), `file_size` its length. `name_hint` (may be empty) breaks ties.
PEFT_API FileFormat detect_file_format(std::span<const std::byte> head,
                                       std::span<const std::byte> tail, std::uint64_t file_size,
                                       const std::filesystem::path& name_hint = {});

// The same for a whole file held in memory.
PEFT_API FileFormat detect_file_format(std::span<const std::byte> whole,
                                       const std::filesystem::path& name_hint = {});

// Reads the head and tail of `path` and detects its format. Throws peft::Error (Io,
// NotFound) when the file cannot be read.
PEFT_API FileFormat detect_file_format(const std::filesystem::path& path);

// The reader for a weights file: Safetensors, or one of the torch.save formats. JSON
// and GGUF files are refused with an error that says what the file is; a file whose
// bytes match no format gets the reader its name suggests (.safetensors, .bin/.pt/
// .pth; else by its first bytes), so that reader's error explains what is wrong.
PEFT_API FileFormat weights_reader_for(const std::filesystem::path& path);

struct PEFT_API WeightsReadOptions {
  bool use_mmap = true;
  bool verify_crc = false;  // torch zip records: check CRC-32 (see TorchReadOptions)
};

// Reads a weights file (safetensors or torch.save) with weights_reader_for's reader.
PEFT_API StateDict read_weights_file(const std::filesystem::path& path,
                                     const WeightsReadOptions& options = {});

}  // namespace peft
