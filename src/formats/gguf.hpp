// GGUF, the file format of the ggml project (llama.cpp), version 3, read and written.
//
//   "GGUF" | u32 version (3) | u64 tensor_count | u64 kv_count
//   kv_count     x { string key | u32 value type | value }
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset }
//   zero padding to the alignment (general.alignment, 32 when absent)
//   tensor data: each tensor at `offset` from here, offsets multiples of the alignment
//
// Little-endian throughout. A string is a u64 byte length and the bytes (UTF-8, no
// terminator); an array is a u32 element type, a u64 count and the elements. ne[0] is the
// fastest-varying dimension: a row-major PyTorch tensor of shape [rows, cols] has
// ne = {cols, rows}. At most 4 dimensions (GGML_MAX_DIMS).
//
// The reader is for inspecting files (peftcpp inspect) and testing the writer: it checks
// every count, length, type and offset against the bytes it was given and the bounds
// below, and throws InvalidGguf naming the file and the field otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace peft::formats {

enum class GgufValueType : std::uint32_t {
  UInt8 = 0,
  Int8 = 1,
  UInt16 = 2,
  Int16 = 3,
  UInt32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  UInt64 = 10,
  Int64 = 11,
  Float64 = 12,
};

// The tensor types peftcpp writes, and the ones the reader knows the size of.
enum class GgmlType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q8_0 = 8,
  BF16 = 30,
};

inline constexpr std::uint32_t kGgufVersion = 3;
inline constexpr std::uint64_t kGgufAlignment = 32;
inline constexpr std::size_t kQ8BlockSize = 32;  // values per Q8_0 block (+ an f16 scale)

std::string_view ggml_type_name(std::uint32_t type) noexcept;  // "F32", ..., "?"
std::string_view gguf_value_type_name(GgufValueType type) noexcept;

// One metadata entry. `value` holds a number, bool or string, or for arrays a JSON array;
// `element_type` is the type of an array's elements.
struct GgufKeyValue {
  std::string key;
  GgufValueType type = GgufValueType::String;
  nlohmann::json value;
  GgufValueType element_type = GgufValueType::UInt8;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::uint64_t> ne;  // ne[0] fastest-varying
  std::uint32_t type = 0;         // a ggml type
  std::uint64_t offset = 0;       // from the start of the data section
  std::uint64_t nbytes = 0;
};

struct GgufContents {
  std::uint32_t version = 0;
  std::uint64_t alignment = kGgufAlignment;
  std::vector<GgufKeyValue> metadata;
  std::vector<GgufTensorInfo> tensors;
  std::uint64_t data_offset = 0;  // of the data section, in the file

  const GgufKeyValue* find(std::string_view key) const;
};

// Parses `bytes` (a whole file); `source` names it in errors.
GgufContents read_gguf(std::span<const std::byte> bytes, const std::string& source);

// What the header says of a tensor: its name, ggml type and dimensions (ne order).
struct GgufTensorHeader {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<std::uint64_t> ne;
};

// A tensor to write: its header and encoded bytes, which must be exactly the size the type
// and dimensions give.
struct GgufTensor : GgufTensorHeader {
  std::span<const std::byte> bytes;
};

// Everything before the tensor data: header, metadata in the given order, tensor infos in
// the given order, padding to the alignment. Each tensor's bytes then follow, each padded
// to the alignment (gguf_padding). Throws InvalidArgument for a value that does not fit
// its type, a tensor of more than 4 dimensions or whose bytes do not match its type and
// dimensions.
// Writers that stream the data compute it from the headers alone.
std::vector<std::byte> serialize_gguf_header(const std::vector<GgufKeyValue>& metadata,
                                             const std::vector<GgufTensorHeader>& tensors);
// The zero bytes that follow `size` bytes of tensor data.
std::span<const std::byte> gguf_padding(std::uint64_t size);
// The whole file in memory (header and data).
std::vector<std::byte> serialize_gguf(const std::vector<GgufKeyValue>& metadata,
                                      const std::vector<GgufTensor>& tensors);

// Bytes of a tensor of `type` and `ne`; throws InvalidGguf (naming `what`) when the row
// length does not fit the type's blocks or the size overflows.
std::uint64_t ggml_nbytes(std::uint32_t type, const std::vector<std::uint64_t>& ne,
                          const std::string& what);

// ggml's reference Q8_0 quantization: blocks of 32 values, each an f16 scale
// d = max|x| / 127 and 32 int8 round(x / d). values.size() must be a multiple of 32.
std::vector<std::byte> quantize_q8_0(std::span<const float> values);

}  // namespace peft::formats
