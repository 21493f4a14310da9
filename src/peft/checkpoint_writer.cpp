// A safetensors shard written tensor by tensor: the header the reference writer would
// produce, then each tensor's bytes as they arrive (from a mapping or a fresh buffer).
#include <algorithm>

#include <fmt/format.h>

#include "formats/safetensors_header.hpp"
#include "peft/checkpoint_output.hpp"
#include "peft/error.hpp"

namespace peft::detail {

namespace {

constexpr std::uint64_t kMaxHeader = 100'000'000;  // the reference reader's cap

std::string header_bytes(const std::vector<ShardEntry>& entries,
                         const std::optional<Metadata>& metadata, const std::string& target) {
  std::string header = "{";
  bool first = true;
  if (metadata) {
    header += "\"__metadata__\":{";
    bool first_meta = true;
    for (const auto& [key, value] : *metadata) {
      if (!first_meta) header += ',';
      first_meta = false;
      formats::append_json_string(header, key);
      header += ':';
      formats::append_json_string(header, value);
    }
    header += '}';
    first = false;
  }
  std::uint64_t offset = 0;
  for (const auto& entry : entries) {
    if (!first) header += ',';
    first = false;
    formats::append_json_string(header, entry.name);
    header += fmt::format(R"(:{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})",
                          dtype_name(entry.dtype), fmt::join(entry.shape, ","), offset,
                          offset + entry.bytes);
    offset += entry.bytes;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kMaxHeader) {
    throw Error(ErrorCode::HeaderTooLarge, target,
                fmt::format("the header would take {} bytes, more than the format's limit of {}",
                            header.size(), kMaxHeader));
  }
  std::string out(8, '\0');
  std::uint64_t n = header.size();
  for (std::size_t i = 0; i < 8; ++i, n >>= 8) out[i] = static_cast<char>(n & 0xFF);
  return out + header;
}

}  // namespace

std::vector<ShardEntry> writer_order(std::vector<ShardEntry> entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const ShardEntry& a, const ShardEntry& b) {
    const unsigned ra = dtype_rank(a.dtype), rb = dtype_rank(b.dtype);
    return ra != rb ? ra > rb : a.name < b.name;
  });
  return entries;
}

ShardWriter::ShardWriter(const std::filesystem::path& path, std::vector<ShardEntry> entries,
                         const std::optional<Metadata>& metadata, bool durable)
    : file_(path, durable), entries_(std::move(entries)) {
  file_.write(header_bytes(entries_, metadata, path.string()));
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

void ShardWriter::commit() {
  if (next_ != entries_.size()) {
    throw Error(ErrorCode::InvalidArgument, file_.target().string(),
                fmt::format("internal: {} of {} tensors written", next_, entries_.size()));
  }
  file_.commit();
}

}  // namespace peft::detail
