#include "peft/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "formats/atomic_file.hpp"
#include "formats/mapped_file.hpp"
#include "formats/safetensors_header.hpp"
#include "peft/error.hpp"

namespace peft {
namespace {

std::uint64_t read_u64_le(const std::byte* p) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | std::to_integer<std::uint64_t>(p[i]);
  return value;
}

// Rules 6-10 of the reference reader, applied to the offset-sorted list.
void validate_offsets(const std::vector<SafetensorsTensorInfo>& infos, std::uint64_t data_length,
                      const std::string& source) {
  std::uint64_t previous_end = 0;
  for (const auto& info : infos) {
    if (info.begin != previous_end || info.end < info.begin) {
      throw Error(ErrorCode::InvalidOffset, source,
                  fmt::format("tensor '{}' has data_offsets [{}, {}] but must start at {} "
                              "(tensors must tile the data buffer without gaps or overlaps)",
                              info.name, info.begin, info.end, previous_end));
    }
    std::uint64_t size = 0;
    try {
      size = byte_size(info.dtype, info.shape);
    } catch (const Error& e) {
      throw Error(e.code(), source, fmt::format("tensor '{}': {}", info.name, e.detail()));
    }
    if (info.end - info.begin != size) {
      throw Error(ErrorCode::TensorInvalidInfo, source,
                  fmt::format("tensor '{}': invalid shape, data type, or offset: {} {} needs "
                              "{} bytes but data_offsets [{}, {}] span {}",
                              info.name, dtype_name(info.dtype), shape_to_string(info.shape), size,
                              info.begin, info.end, info.end - info.begin));
    }
    previous_end = info.end;
  }
  if (previous_end != data_length) {
    throw Error(
        ErrorCode::MetadataIncompleteBuffer, source,
        fmt::format("incomplete metadata, file not fully covered: the tensors end at "
                    "data byte {} but the data buffer holds {} bytes{}",
                    previous_end, data_length,
                    previous_end < data_length ? " (trailing bytes)" : " (file truncated?)"));
  }
}

// Tensors in the order the reference writer lays them out: dtype rank descending,
// then name by bytes. Sort keys sit in one array so comparisons avoid pointer chasing.
std::vector<const StateDict::value_type*> writer_order(const StateDict& tensors) {
  struct Key {
    unsigned rank;
    std::string_view name;
    const StateDict::value_type* entry;
  };
  std::vector<Key> keys;
  keys.reserve(tensors.size());
  for (const auto& entry : tensors)
    keys.push_back({dtype_rank(entry.second.dtype()), entry.first, &entry});
  const auto before = [](const Key& a, const Key& b) {
    return formats::writes_before(a.rank, a.name, b.rank, b.name);
  };
  // Files read back are usually in writer order already.
  if (!std::is_sorted(keys.begin(), keys.end(), before))
    std::sort(keys.begin(), keys.end(), before);
  std::vector<const StateDict::value_type*> order;
  order.reserve(keys.size());
  for (const auto& key : keys) order.push_back(key.entry);
  return order;
}

void check_not_shared(const StateDict& tensors, const std::string& target) {
  std::vector<const StateDict::value_type*> by_address;
  for (const auto& entry : tensors) {
    if (entry.second.nbytes() > 0) by_address.push_back(&entry);
  }
  std::sort(by_address.begin(), by_address.end(), [](const auto* a, const auto* b) {
    return a->second.bytes().data() < b->second.bytes().data();
  });
  for (std::size_t i = 1; i < by_address.size(); ++i) {
    // Sorted by start: an overlap exists iff some earlier tensor reaches past this start.
    const auto* previous = by_address[i - 1];
    if (previous->second.overlaps(by_address[i]->second)) {
      throw Error(ErrorCode::SharedStorage, target,
                  fmt::format("tensors '{}' and '{}' share memory; safetensors stores each name "
                              "separately: clone one of them, or pass copy_shared",
                              previous->first, by_address[i]->first));
    }
  }
}

struct Layout {
  std::string length_and_header;  // the 8-byte length followed by the padded header
  std::vector<const StateDict::value_type*> order;
};

Layout layout(const StateDict& tensors, const std::optional<Metadata>& metadata,
              const std::string& target) {
  Layout out;
  out.order = writer_order(tensors);
  std::vector<formats::HeaderEntry> entries;
  entries.reserve(out.order.size());
  for (const auto* entry : out.order) {
    const Tensor& tensor = entry->second;
    if (tensor.is_meta()) {
      throw Error(ErrorCode::InvalidArgument, target,
                  fmt::format("tensor '{}' has no data (a meta tensor) and cannot be written",
                              entry->first));
    }
    entries.push_back({entry->first, tensor.dtype(), &tensor.shape(), tensor.nbytes()});
  }
  out.length_and_header = formats::serialize_header(metadata, entries, target);
  return out;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path,
                                      const SafetensorsReadOptions& options) {
  formats::FileBytes file = formats::map_file(path, options.use_mmap);
  SafetensorsFile out = from_bytes(file.bytes, std::move(file.owner), path.string(), options);
  out.mapped_ = file.mapped;
  return out;
}

SafetensorsFile SafetensorsFile::from_bytes(std::span<const std::byte> bytes,
                                            std::shared_ptr<const void> owner, std::string source,
                                            const SafetensorsReadOptions& options) {
  SafetensorsFile out;
  out.source_ = std::move(source);
  out.owner_ = std::move(owner);
  out.bytes_ = bytes;
  const std::string& src = out.source_;

  if (bytes.size() < 8) {
    throw Error(ErrorCode::HeaderTooSmall, src,
                fmt::format("header too small: the file has {} bytes, fewer than the 8-byte "
                            "header length{}",
                            bytes.size(), bytes.empty() ? " (the file is empty)" : ""));
  }
  const std::uint64_t n = read_u64_le(bytes.data());
  if (n > options.max_header_bytes) {
    throw Error(
        ErrorCode::HeaderTooLarge, src,
        fmt::format("header length {} exceeds the limit of {} bytes", n, options.max_header_bytes));
  }
  if (n > bytes.size() - 8) {
    throw Error(
        ErrorCode::InvalidHeaderLength, src,
        fmt::format("header length {} runs past the end of the {}-byte file", n, bytes.size()));
  }
  out.header_length_ = n;
  const std::string_view json(reinterpret_cast<const char*>(bytes.data() + 8),
                              static_cast<std::size_t>(n));
  formats::ParsedHeader parsed = formats::parse_safetensors_header(json, src, options);
  out.metadata_ = std::move(parsed.metadata);
  out.infos_ = std::move(parsed.tensors);

  std::sort(out.infos_.begin(), out.infos_.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  validate_offsets(out.infos_, bytes.size() - 8 - n, src);

  out.build_index();
  if (out.index_.size() != out.infos_.size()) {
    for (std::size_t i = 0; i < out.infos_.size(); ++i) {
      if (out.index_.at(out.infos_[i].name) != i) {
        throw Error(ErrorCode::DuplicateKey, src,
                    fmt::format("tensor '{}' is declared twice in the header", out.infos_[i].name));
      }
    }
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const SafetensorsFile& other)
    : source_(other.source_),
      owner_(other.owner_),
      bytes_(other.bytes_),
      header_length_(other.header_length_),
      metadata_(other.metadata_),
      infos_(other.infos_),
      mapped_(other.mapped_) {
  build_index();
}

SafetensorsFile& SafetensorsFile::operator=(const SafetensorsFile& other) {
  if (this != &other) *this = SafetensorsFile(other);
  return *this;
}

// The first declaration of a name wins; open() reports any later one as a duplicate.
void SafetensorsFile::build_index() {
  index_.clear();
  index_.reserve(infos_.size());
  for (std::size_t i = 0; i < infos_.size(); ++i) index_.emplace(infos_[i].name, i);
}

const SafetensorsTensorInfo* SafetensorsFile::info(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &infos_[it->second];
}

Tensor SafetensorsFile::make_tensor(const SafetensorsTensorInfo& info) const {
  const std::size_t data_start = 8 + static_cast<std::size_t>(header_length_);
  const auto bytes = bytes_.subspan(data_start + static_cast<std::size_t>(info.begin),
                                    static_cast<std::size_t>(info.end - info.begin));
  return Tensor::view(info.dtype, info.shape, bytes, owner_);
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
  const SafetensorsTensorInfo* found = info(name);
  if (found == nullptr) {
    throw Error(ErrorCode::TensorNotFound, source_, fmt::format("no tensor named '{}'", name));
  }
  return make_tensor(*found);
}

StateDict SafetensorsFile::state_dict() const {
  StateDict out;
  for (const auto& info : infos_) out.set(info.name, make_tensor(info));
  return out;
}

std::string safetensors_header(const StateDict& tensors, const std::optional<Metadata>& metadata) {
  return layout(tensors, metadata, "").length_and_header.substr(8);
}

std::vector<std::byte> serialize_safetensors(const StateDict& tensors,
                                             const std::optional<Metadata>& metadata,
                                             const SafetensorsWriteOptions& options) {
  if (!options.copy_shared) check_not_shared(tensors, "<memory>");
  const Layout plan = layout(tensors, metadata, "<memory>");
  std::vector<std::byte> out(plan.length_and_header.size() + tensors.total_bytes());
  std::memcpy(out.data(), plan.length_and_header.data(), plan.length_and_header.size());
  std::size_t at = plan.length_and_header.size();
  for (const auto* entry : plan.order) {
    const auto bytes = entry->second.bytes();
    if (!bytes.empty()) std::memcpy(out.data() + at, bytes.data(), bytes.size());
    at += bytes.size();
  }
  return out;
}

void save_safetensors(const StateDict& tensors, const std::filesystem::path& path,
                      const std::optional<Metadata>& metadata,
                      const SafetensorsWriteOptions& options) {
  if (!options.copy_shared) check_not_shared(tensors, path.string());
  const Layout plan = layout(tensors, metadata, path.string());
  std::vector<std::span<const std::byte>> pieces;
  pieces.reserve(plan.order.size() + 1);
  pieces.push_back(std::as_bytes(std::span<const char>(plan.length_and_header)));
  for (const auto* entry : plan.order) pieces.push_back(entry->second.bytes());
  formats::AtomicFile file(path, options.durable);
  file.write_all(pieces);
  file.commit();
}

}  // namespace peft
