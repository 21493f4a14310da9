// A small ZIP reader and writer, enough for torch.save archives (docs/formats.md "torch.save files
// / ZIP container").
//
// Reader: read-only view over bytes already in memory (usually a mapping). The
// central directory is authoritative; ZIP64 end records and extra fields are
// understood; an entry's data starts where its *local* header says. Everything is
// bounds-checked on open, so entry data spans are always inside the input. Only
// stored (uncompressed) entries can be read: PyTorch never compresses, and reading
// in place is what makes zero-copy loading possible.
//
// Writer: produces what PyTorch's miniz-based writer produces: stored entries,
// data aligned to 64 bytes by an 'FB' padding extra block, data descriptors, CRC-32,
// and ZIP64 end records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace peft::formats {

// CRC-32 (the ZIP/zlib polynomial) of `bytes`, continuing from `crc`.
std::uint32_t crc32_of(std::span<const std::byte> bytes, std::uint32_t crc = 0);

struct ZipEntry {
  std::string name;
  std::uint16_t flags = 0;
  std::uint16_t method = 0;  // 0 = stored
  std::uint32_t crc32 = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;  // uncompressed
  std::uint64_t local_header_offset = 0;
  std::uint64_t data_offset = 0;  // from the local header's name and extra lengths
};

struct ZipReadOptions {
  std::size_t max_entries = 1'000'000;
  // Check each entry's CRC-32 when its data is first asked for.
  bool verify_crc = true;
};

class ZipArchive {
 public:
  // Parses and validates the archive. Throws InvalidZip (or LimitExceeded) naming
  // `source`. The bytes must outlive the archive and every span it returns.
  static ZipArchive open(std::span<const std::byte> bytes, std::string source,
                         const ZipReadOptions& options = {});

  const std::string& source() const noexcept { return source_; }
  // Entries in central-directory order.
  const std::vector<ZipEntry>& entries() const noexcept { return entries_; }
  const ZipEntry* find(std::string_view name) const;

  // The stored bytes of `entry` (a view of the input). Throws UnsupportedFormat for
  // compressed or encrypted entries and InvalidZip for a CRC mismatch.
  std::span<const std::byte> data(const ZipEntry& entry) const;

 private:
  ZipArchive() = default;

  std::string source_;
  std::span<const std::byte> bytes_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string_view, std::size_t> index_;
  bool verify_crc_ = true;
};

// Streams an archive to `sink` as entries are added. Entry data is passed through
// without copying.
class ZipWriter {
 public:
  using Sink = std::function<void(std::span<const std::byte>)>;

  explicit ZipWriter(Sink sink, std::size_t alignment = 64);

  // Adds a stored entry whose data is the concatenation of `pieces`.
  void add(std::string_view name, std::span<const std::span<const std::byte>> pieces);
  void add(std::string_view name, std::span<const std::byte> data);
  void add(std::string_view name, std::string_view text);
  // Writes the central directory and the end records; no entry may follow.
  void finish();

  std::uint64_t bytes_written() const noexcept { return offset_; }

 private:
  struct Written {
    std::string name;
    std::uint32_t crc32;
    std::uint64_t size;
    std::uint64_t local_header_offset;
  };

  void emit(std::span<const std::byte> bytes);
  void emit(const std::string& bytes);

  Sink sink_;
  std::size_t alignment_;
  std::uint64_t offset_ = 0;
  std::vector<Written> written_;
  bool finished_ = false;
};

}  // namespace peft::formats
