#include "formats/gguf.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "peft/dtype.hpp"
#include "peft/error.hpp"

namespace peft::formats {
namespace {

constexpr std::size_t kMaxDims = 4;                    // GGML_MAX_DIMS
constexpr std::uint64_t kMaxStringBytes = 1ULL << 26;  // a key, a name or a string value
constexpr std::size_t kMaxArrayDepth = 4;              // arrays of arrays ...
constexpr std::uint64_t kMaxAlignment = 1ULL << 16;

struct TypeSize {
  std::uint32_t type;
  std::string_view name;
  std::uint64_t block_values;
  std::uint64_t block_bytes;
};

// ggml's type traits (ggml.c: type_traits) for the types a LoRA file may hold.
constexpr std::array kTypeSizes = {
    TypeSize{0, "F32", 1, 4},       TypeSize{1, "F16", 1, 2},       TypeSize{2, "Q4_0", 32, 18},
    TypeSize{3, "Q4_1", 32, 20},    TypeSize{6, "Q5_0", 32, 22},    TypeSize{7, "Q5_1", 32, 24},
    TypeSize{8, "Q8_0", 32, 34},    TypeSize{9, "Q8_1", 32, 36},    TypeSize{10, "Q2_K", 256, 84},
    TypeSize{11, "Q3_K", 256, 110}, TypeSize{12, "Q4_K", 256, 144}, TypeSize{13, "Q5_K", 256, 176},
    TypeSize{14, "Q6_K", 256, 210}, TypeSize{15, "Q8_K", 256, 292}, TypeSize{24, "I8", 1, 1},
    TypeSize{25, "I16", 1, 2},      TypeSize{26, "I32", 1, 4},      TypeSize{27, "I64", 1, 8},
    TypeSize{28, "F64", 1, 8},      TypeSize{30, "BF16", 1, 2},
};

const TypeSize* type_size(std::uint32_t type) {
  for (const TypeSize& entry : kTypeSizes) {
    if (entry.type == type) return &entry;
  }
  return nullptr;
}

// Fixed sizes of scalar value types (0 for string and array).
std::uint64_t scalar_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::UInt8:
    case GgufValueType::Int8:
    case GgufValueType::Bool:
      return 1;
    case GgufValueType::UInt16:
    case GgufValueType::Int16:
      return 2;
    case GgufValueType::UInt32:
    case GgufValueType::Int32:
    case GgufValueType::Float32:
      return 4;
    case GgufValueType::UInt64:
    case GgufValueType::Int64:
    case GgufValueType::Float64:
      return 8;
    case GgufValueType::String:
    case GgufValueType::Array:
      return 0;
  }
  return 0;
}

bool known_value_type(std::uint32_t type) {
  return type <= static_cast<std::uint32_t>(GgufValueType::Float64);
}

// A bounds-checked little-endian cursor over the file.
class Reader {
 public:
  Reader(std::span<const std::byte> bytes, const std::string& source)
      : bytes_(bytes), source_(source) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::InvalidGguf, source_, fmt::format("{} (at byte {})", what, pos_));
  }
  std::uint64_t remaining() const { return bytes_.size() - pos_; }
  std::uint64_t position() const { return pos_; }

  template <typename T>
  T scalar(std::string_view what) {
    if (remaining() < sizeof(T)) fail(fmt::format("truncated: {} needs {} bytes", what, sizeof(T)));
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string string(std::string_view what) {
    const auto length = scalar<std::uint64_t>(what);
    if (length > kMaxStringBytes || length > remaining()) {
      fail(fmt::format("{}: a string of {} bytes does not fit the file", what, length));
    }
    std::string out(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return out;
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& source_;
  std::uint64_t pos_ = 0;
};

nlohmann::json read_value(Reader& in, GgufValueType type, const std::string& key, std::size_t depth,
                          GgufValueType* element_type);

nlohmann::json read_array(Reader& in, const std::string& key, std::size_t depth,
                          GgufValueType* element_type) {
  if (depth >= kMaxArrayDepth) in.fail(fmt::format("'{}': arrays nested too deep", key));
  const auto raw = in.scalar<std::uint32_t>("array element type");
  if (!known_value_type(raw)) in.fail(fmt::format("'{}': unknown array element type {}", key, raw));
  const auto type = static_cast<GgufValueType>(raw);
  const auto count = in.scalar<std::uint64_t>("array length");
  // Every element takes at least one byte (eight for strings and arrays): a count the
  // rest of the file cannot hold is refused before anything is allocated.
  const std::uint64_t least = scalar_size(type) == 0 ? 8 : scalar_size(type);
  if (count > in.remaining() / least) {
    in.fail(fmt::format("'{}': an array of {} elements does not fit the file", key, count));
  }
  if (element_type != nullptr) *element_type = type;
  nlohmann::json out = nlohmann::json::array();
  for (std::uint64_t i = 0; i < count; ++i) {
    out.push_back(read_value(in, type, key, depth + 1, nullptr));
  }
  return out;
}

nlohmann::json read_value(Reader& in, GgufValueType type, const std::string& key, std::size_t depth,
                          GgufValueType* element_type) {
  switch (type) {
    case GgufValueType::UInt8:
      return in.scalar<std::uint8_t>(key);
    case GgufValueType::Int8:
      return in.scalar<std::int8_t>(key);
    case GgufValueType::UInt16:
      return in.scalar<std::uint16_t>(key);
    case GgufValueType::Int16:
      return in.scalar<std::int16_t>(key);
    case GgufValueType::UInt32:
      return in.scalar<std::uint32_t>(key);
    case GgufValueType::Int32:
      return in.scalar<std::int32_t>(key);
    case GgufValueType::Float32: {
      const float value = in.scalar<float>(key);
      return std::isfinite(value) ? nlohmann::json(value)
                                  : nlohmann::json(fmt::format("{}", value));
    }
    case GgufValueType::Bool: {
      const auto raw = in.scalar<std::uint8_t>(key);
      if (raw > 1) in.fail(fmt::format("'{}': a bool holds {}", key, raw));
      return raw == 1;
    }
    case GgufValueType::String:
      return in.string(key);
    case GgufValueType::Array:
      return read_array(in, key, depth, element_type);
    case GgufValueType::UInt64:
      return in.scalar<std::uint64_t>(key);
    case GgufValueType::Int64:
      return in.scalar<std::int64_t>(key);
    case GgufValueType::Float64: {
      const double value = in.scalar<double>(key);
      return std::isfinite(value) ? nlohmann::json(value)
                                  : nlohmann::json(fmt::format("{}", value));
    }
  }
  in.fail(fmt::format("'{}': unknown value type", key));
}

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// --- writing -------------------------------------------------------------------------

class Writer {
 public:
  template <typename T>
  void scalar(T value) {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void string(std::string_view text) {
    scalar<std::uint64_t>(text.size());
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    out_.insert(out_.end(), p, p + text.size());
  }
  void pad_to(std::uint64_t alignment) { out_.resize(align_up(out_.size(), alignment)); }
  std::vector<std::byte> take() { return std::move(out_); }
  std::size_t size() const { return out_.size(); }

 private:
  std::vector<std::byte> out_;
};

[[noreturn]] void bad_value(const std::string& key, GgufValueType type,
                            const nlohmann::json& value) {
  throw Error(ErrorCode::InvalidArgument, key,
              fmt::format("GGUF metadata value {} does not fit type {}", value.dump(),
                          gguf_value_type_name(type)));
}

template <typename T>
T checked_number(const std::string& key, GgufValueType type, const nlohmann::json& value) {
  if constexpr (std::is_floating_point_v<T>) {
    if (!value.is_number()) bad_value(key, type, value);
    return value.get<T>();
  } else {
    if (!value.is_number_integer()) bad_value(key, type, value);
    if constexpr (std::is_signed_v<T>) {
      const auto v = value.get<std::int64_t>();
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
        bad_value(key, type, value);
      }
      return static_cast<T>(v);
    } else {
      if (value.is_number_integer() && !value.is_number_unsigned() && value.get<std::int64_t>() < 0)
        bad_value(key, type, value);
      const auto v = value.get<std::uint64_t>();
      if (v > std::numeric_limits<T>::max()) bad_value(key, type, value);
      return static_cast<T>(v);
    }
  }
}

void write_value(Writer& out, const std::string& key, GgufValueType type,
                 const nlohmann::json& value, GgufValueType element_type) {
  switch (type) {
    case GgufValueType::UInt8:
      return out.scalar(checked_number<std::uint8_t>(key, type, value));
    case GgufValueType::Int8:
      return out.scalar(checked_number<std::int8_t>(key, type, value));
    case GgufValueType::UInt16:
      return out.scalar(checked_number<std::uint16_t>(key, type, value));
    case GgufValueType::Int16:
      return out.scalar(checked_number<std::int16_t>(key, type, value));
    case GgufValueType::UInt32:
      return out.scalar(checked_number<std::uint32_t>(key, type, value));
    case GgufValueType::Int32:
      return out.scalar(checked_number<std::int32_t>(key, type, value));
    case GgufValueType::Float32:
      return out.scalar(checked_number<float>(key, type, value));
    case GgufValueType::Bool:
      if (!value.is_boolean()) bad_value(key, type, value);
      return out.scalar<std::uint8_t>(value.get<bool>() ? 1 : 0);
    case GgufValueType::String:
      if (!value.is_string()) bad_value(key, type, value);
      return out.string(value.get_ref<const std::string&>());
    case GgufValueType::Array:
      if (!value.is_array() || element_type == GgufValueType::Array) bad_value(key, type, value);
      out.scalar(static_cast<std::uint32_t>(element_type));
      out.scalar<std::uint64_t>(value.size());
      for (const auto& element : value) write_value(out, key, element_type, element, element_type);
      return;
    case GgufValueType::UInt64:
      return out.scalar(checked_number<std::uint64_t>(key, type, value));
    case GgufValueType::Int64:
      return out.scalar(checked_number<std::int64_t>(key, type, value));
    case GgufValueType::Float64:
      return out.scalar(checked_number<double>(key, type, value));
  }
  bad_value(key, type, value);
}

}  // namespace

std::string_view ggml_type_name(std::uint32_t type) noexcept {
  const TypeSize* entry = type_size(type);
  return entry != nullptr ? entry->name : std::string_view("?");
}

std::string_view gguf_value_type_name(GgufValueType type) noexcept {
  constexpr std::array<std::string_view, 13> kNames = {
      "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
      "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
  const auto index = static_cast<std::size_t>(type);
  return index < kNames.size() ? kNames[index] : std::string_view("?");
}

const GgufKeyValue* GgufContents::find(std::string_view key) const {
  for (const auto& entry : metadata) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

std::uint64_t ggml_nbytes(std::uint32_t type, const std::vector<std::uint64_t>& ne,
                          const std::string& what) {
  const TypeSize* size = type_size(type);
  if (size == nullptr) {
    throw Error(ErrorCode::InvalidGguf, what, fmt::format("unknown ggml type {}", type));
  }
  if (ne.empty() || ne.size() > kMaxDims) {
    throw Error(ErrorCode::InvalidGguf, what,
                fmt::format("{} dimensions (1 to {} expected)", ne.size(), kMaxDims));
  }
  if (ne[0] % size->block_values != 0) {
    throw Error(ErrorCode::InvalidGguf, what,
                fmt::format("a row of {} values does not fill whole {} blocks of {}", ne[0],
                            size->name, size->block_values));
  }
  std::uint64_t bytes = ne[0] / size->block_values * size->block_bytes;
  for (std::size_t i = 1; i < ne.size(); ++i) {
    if (ne[i] != 0 && bytes > std::numeric_limits<std::uint64_t>::max() / ne[i]) {
      throw Error(ErrorCode::InvalidGguf, what, "the tensor size overflows 64 bits");
    }
    bytes *= ne[i];
  }
  return bytes;
}

GgufContents read_gguf(std::span<const std::byte> bytes, const std::string& source) {
  Reader in(bytes, source);
  GgufContents out;
  const auto magic = in.scalar<std::uint32_t>("magic");
  if (magic != 0x46554747U) in.fail("not a GGUF file (no \"GGUF\" magic)");
  out.version = in.scalar<std::uint32_t>("version");
  if (out.version < 2 || out.version > 3) {
    in.fail(fmt::format("GGUF version {} (2 or 3 expected)", out.version));
  }
  const auto tensor_count = in.scalar<std::uint64_t>("tensor count");
  const auto kv_count = in.scalar<std::uint64_t>("metadata count");
  // A key-value pair takes at least 13 bytes, a tensor info at least 24.
  if (kv_count > in.remaining() / 13)
    in.fail(fmt::format("{} metadata entries do not fit", kv_count));
  for (std::uint64_t i = 0; i < kv_count; ++i) {
    GgufKeyValue entry;
    entry.key = in.string("metadata key");
    const auto raw = in.scalar<std::uint32_t>("value type");
    if (!known_value_type(raw)) in.fail(fmt::format("'{}': unknown value type {}", entry.key, raw));
    entry.type = static_cast<GgufValueType>(raw);
    entry.value = read_value(in, entry.type, entry.key, 0, &entry.element_type);
    for (const auto& seen : out.metadata) {
      if (seen.key == entry.key) in.fail(fmt::format("duplicate metadata key '{}'", entry.key));
    }
    out.metadata.push_back(std::move(entry));
  }
  if (const GgufKeyValue* alignment = out.find("general.alignment")) {
    if (alignment->type != GgufValueType::UInt32) in.fail("general.alignment is not a UINT32");
    out.alignment = alignment->value.get<std::uint64_t>();
    if (out.alignment == 0 || out.alignment > kMaxAlignment ||
        (out.alignment & (out.alignment - 1)) != 0) {
      in.fail(fmt::format("general.alignment {} is not a power of two up to {}", out.alignment,
                          kMaxAlignment));
    }
  }
  if (tensor_count > in.remaining() / 24)
    in.fail(fmt::format("{} tensors do not fit", tensor_count));
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo info;
    info.name = in.string("tensor name");
    const auto dims = in.scalar<std::uint32_t>("dimension count");
    if (dims == 0 || dims > kMaxDims) {
      in.fail(
          fmt::format("tensor '{}': {} dimensions (1 to {} expected)", info.name, dims, kMaxDims));
    }
    for (std::uint32_t d = 0; d < dims; ++d) info.ne.push_back(in.scalar<std::uint64_t>("ne"));
    info.type = in.scalar<std::uint32_t>("tensor type");
    info.offset = in.scalar<std::uint64_t>("tensor offset");
    info.nbytes = ggml_nbytes(info.type, info.ne, source + ": tensor '" + info.name + "'");
    if (info.offset % out.alignment != 0) {
      in.fail(fmt::format("tensor '{}': offset {} is not a multiple of the alignment {}", info.name,
                          info.offset, out.alignment));
    }
    out.tensors.push_back(std::move(info));
  }
  out.data_offset = align_up(in.position(), out.alignment);
  const std::uint64_t data_bytes =
      bytes.size() >= out.data_offset ? bytes.size() - out.data_offset : 0;
  for (const GgufTensorInfo& info : out.tensors) {
    if (info.offset > data_bytes || info.nbytes > data_bytes - info.offset) {
      throw Error(ErrorCode::InvalidGguf, source,
                  fmt::format("tensor '{}' ({} bytes at offset {}) lies beyond the end of the "
                              "file ({} data bytes)",
                              info.name, info.nbytes, info.offset, data_bytes));
    }
  }
  return out;
}

std::span<const std::byte> gguf_padding(std::uint64_t size) {
  static constexpr std::array<std::byte, kGgufAlignment> kZeros{};
  return std::span(kZeros).first(align_up(size, kGgufAlignment) - size);
}

std::vector<std::byte> serialize_gguf(const std::vector<GgufKeyValue>& metadata,
                                      const std::vector<GgufTensor>& tensors) {
  std::vector<GgufTensorHeader> headers;
  headers.reserve(tensors.size());
  for (const GgufTensor& tensor : tensors) {
    const std::uint64_t nbytes =
        ggml_nbytes(static_cast<std::uint32_t>(tensor.type), tensor.ne, tensor.name);
    if (nbytes != tensor.bytes.size()) {
      throw Error(ErrorCode::InvalidArgument, tensor.name,
                  fmt::format("{} bytes given for a {} tensor of {} bytes", tensor.bytes.size(),
                              ggml_type_name(static_cast<std::uint32_t>(tensor.type)), nbytes));
    }
    headers.push_back(tensor);
  }
  std::vector<std::byte> out = serialize_gguf_header(metadata, headers);
  for (const GgufTensor& tensor : tensors) {
    out.insert(out.end(), tensor.bytes.begin(), tensor.bytes.end());
    const auto pad = gguf_padding(tensor.bytes.size());
    out.insert(out.end(), pad.begin(), pad.end());
  }
  return out;
}

std::vector<std::byte> serialize_gguf_header(const std::vector<GgufKeyValue>& metadata,
                                             const std::vector<GgufTensorHeader>& tensors) {
  Writer out;
  out.scalar<std::uint32_t>(0x46554747U);  // "GGUF"
  out.scalar<std::uint32_t>(kGgufVersion);
  out.scalar<std::uint64_t>(tensors.size());
  out.scalar<std::uint64_t>(metadata.size());
  for (const GgufKeyValue& entry : metadata) {
    out.string(entry.key);
    out.scalar(static_cast<std::uint32_t>(entry.type));
    write_value(out, entry.key, entry.type, entry.value, entry.element_type);
  }
  std::uint64_t offset = 0;
  for (const GgufTensorHeader& tensor : tensors) {
    const std::uint64_t nbytes =
        ggml_nbytes(static_cast<std::uint32_t>(tensor.type), tensor.ne, tensor.name);
    out.string(tensor.name);
    out.scalar<std::uint32_t>(static_cast<std::uint32_t>(tensor.ne.size()));
    for (const std::uint64_t n : tensor.ne) out.scalar(n);
    out.scalar(static_cast<std::uint32_t>(tensor.type));
    out.scalar(offset);
    offset = align_up(offset + nbytes, kGgufAlignment);
  }
  out.pad_to(kGgufAlignment);
  return out.take();
}

std::vector<std::byte> quantize_q8_0(std::span<const float> values) {
  if (values.size() % kQ8BlockSize != 0) {
    throw Error(
        ErrorCode::InvalidArgument, "",
        fmt::format("Q8_0 needs a multiple of {} values, got {}", kQ8BlockSize, values.size()));
  }
  std::vector<std::byte> out(values.size() / kQ8BlockSize * 34);
  std::byte* block = out.data();
  for (std::size_t start = 0; start < values.size(); start += kQ8BlockSize, block += 34) {
    float amax = 0;
    for (std::size_t i = 0; i < kQ8BlockSize; ++i)
      amax = std::max(amax, std::fabs(values[start + i]));
    const float d = amax / 127.0F;
    const float id = d != 0.0F ? 1.0F / d : 0.0F;
    const std::uint16_t half = f32_to_f16(d);
    std::memcpy(block, &half, 2);
    for (std::size_t i = 0; i < kQ8BlockSize; ++i) {
      const auto q = static_cast<std::int8_t>(std::lround(values[start + i] * id));
      std::memcpy(block + 2 + i, &q, 1);
    }
  }
  return out;
}

}  // namespace peft::formats
