// The ZIP reader and writer: PyTorch's layout reproduced byte for byte, real archives
// read, and every malformed or hostile archive refused with a typed error.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "formats/zip.hpp"
#include "test_support.hpp"

namespace peft::formats {
namespace {
namespace fs = std::filesystem;

using Bytes = std::vector<std::byte>;

std::span<const std::byte> as_bytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}
std::string as_string(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

Bytes write_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  Bytes out;
  ZipWriter writer(
      [&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); });
  for (const auto& [name, data] : entries) writer.add(name, std::string_view(data));
  writer.finish();
  return out;
}

std::uint64_t get_le(const Bytes& b, std::size_t at, unsigned width) {
  std::uint64_t v = 0;
  for (unsigned i = width; i-- > 0;) v = (v << 8) | std::to_integer<std::uint64_t>(b[at + i]);
  return v;
}
void put_le(Bytes& b, std::size_t at, std::uint64_t v, unsigned width) {
  for (unsigned i = 0; i < width; ++i, v >>= 8) b[at + i] = static_cast<std::byte>(v & 0xFF);
}
void append_le(Bytes& b, std::uint64_t v, unsigned width) {
  for (unsigned i = 0; i < width; ++i, v >>= 8) b.push_back(static_cast<std::byte>(v & 0xFF));
}
void append(Bytes& b, std::string_view text) {
  for (const char c : text) b.push_back(static_cast<std::byte>(c));
}

// Offsets of the records our writer emits at the end of an archive.
constexpr std::size_t kEnd = 22, kLocator = 20, kZip64End = 56;
std::size_t end_at(const Bytes& b) {
  return b.size() - kEnd;
}
std::size_t zip64_end_at(const Bytes& b) {
  return b.size() - kEnd - kLocator - kZip64End;
}
std::size_t central_at(const Bytes& b) {
  return get_le(b, end_at(b) + 16, 4);
}

// The same archive with only the classic end record (as most zip tools write).
Bytes without_zip64(Bytes b) {
  const std::size_t from = zip64_end_at(b);
  b.erase(b.begin() + static_cast<std::ptrdiff_t>(from),
          b.begin() + static_cast<std::ptrdiff_t>(end_at(b)));
  return b;
}

ZipArchive open_bytes(const Bytes& b, ZipReadOptions options = {}) {
  return ZipArchive::open(b, "test.zip", options);
}

TEST(Zip, WriterOutputReadsBack) {
  const std::string big(1000, 'x');
  const Bytes zip = write_zip({{"a/data.pkl", "pickle"}, {"a/empty", ""}, {"a/data/0", big}});
  const auto archive = open_bytes(zip);
  ASSERT_EQ(archive.entries().size(), 3u);
  EXPECT_EQ(archive.entries()[0].name, "a/data.pkl");
  EXPECT_EQ(as_string(archive.data(*archive.find("a/data.pkl"))), "pickle");
  EXPECT_EQ(as_string(archive.data(*archive.find("a/empty"))), "");
  EXPECT_EQ(as_string(archive.data(*archive.find("a/data/0"))), big);
  EXPECT_EQ(archive.find("a/missing"), nullptr);
  for (const auto& entry : archive.entries()) {
    EXPECT_EQ(entry.data_offset % 64, 0u) << entry.name;
    EXPECT_EQ(entry.method, 0);
    EXPECT_EQ(entry.flags, 0x0808);
  }
}

TEST(Zip, ClassicEndRecordOnlyIsRead) {
  const Bytes zip = without_zip64(write_zip({{"a/x", "hello"}}));
  EXPECT_EQ(as_string(open_bytes(zip).data(*open_bytes(zip).find("a/x"))), "hello");
}

TEST(Zip, Crc32MatchesZlibReferenceValue) {
  EXPECT_EQ(crc32_of(as_bytes("123456789")), 0xCBF43926u);
  EXPECT_EQ(crc32_of(as_bytes("")), 0u);
  EXPECT_EQ(crc32_of(as_bytes("56789"), crc32_of(as_bytes("1234"))), 0xCBF43926u);
}

// Rewriting the entries of a file torch.save wrote gives back the same bytes: the
// writer reproduces PyTorch's (miniz's) layout exactly.
TEST(Zip, WriterReproducesTorchSaveArchivesByteForByte) {
  const auto files = testing::find_files(testing::peft_ref_root(), "adapter_model.bin");
  ASSERT_FALSE(files.empty());
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const Bytes original = testing::read_bytes(path);
    const auto archive = open_bytes(original);
    Bytes rewritten;
    ZipWriter writer([&](std::span<const std::byte> b) {
      rewritten.insert(rewritten.end(), b.begin(), b.end());
    });
    for (const auto& entry : archive.entries()) writer.add(entry.name, archive.data(entry));
    writer.finish();
    EXPECT_TRUE(rewritten == original);
  }
}

TEST(Zip, RealTorchArchivesOpen) {
  const fs::path root = testing::real_adapters_root();
  if (root.empty()) GTEST_SKIP() << "../shared/fixtures/real-adapters is absent";
  std::size_t opened = 0;
  for (const auto& path : testing::find_files(root, "adapter_model.bin")) {
    SCOPED_TRACE(path.string());
    const Bytes bytes = testing::read_bytes(path);
    if (bytes.size() < 4 || as_string(std::span(bytes).first(4)) != "PK\x03\x04") continue;
    try {
      const auto archive = open_bytes(bytes);
      for (const auto& entry : archive.entries())
        EXPECT_NO_THROW(archive.data(entry)) << entry.name;
      ++opened;
    } catch (const Error& e) {
      // Only a cut-off file may fail, and then with a clear reason.
      EXPECT_EQ(e.code(), ErrorCode::InvalidZip) << e.what();
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(opened, 0u);
}

TEST(Zip, TooSmallOrNoEndRecord) {
  EXPECT_PEFT_ERROR(open_bytes(Bytes(10)), ErrorCode::InvalidZip, "too small");
  Bytes zip = write_zip({{"a/x", "hello"}});
  zip.resize(zip.size() / 2);
  EXPECT_PEFT_ERROR(open_bytes(zip), ErrorCode::InvalidZip, "truncated");
}

TEST(Zip, EveryTruncationIsRefused) {
  const Bytes zip = write_zip({{"a/data.pkl", "pickle data"}, {"a/data/0", std::string(100, 'z')}});
  for (std::size_t n = 0; n < zip.size(); ++n) {
    const Bytes cut(zip.begin(), zip.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(open_bytes(cut), Error) << n;
  }
}

// Every single-byte corruption either still parses (padding, unused fields) or is
// refused with peft::Error; with CRC checks on, corrupted data is always caught.
TEST(Zip, EveryByteFlipIsSafe) {
  const Bytes zip = write_zip({{"a/data.pkl", "pickle data"}, {"a/data/0", std::string(40, 'z')}});
  for (std::size_t i = 0; i < zip.size(); ++i) {
    for (const unsigned mask : {0x01u, 0x80u, 0xFFu}) {
      Bytes bad = zip;
      bad[i] ^= static_cast<std::byte>(mask);
      try {
        const auto archive = open_bytes(bad);
        for (const auto& entry : archive.entries()) (void)archive.data(entry);
      } catch (const Error&) {
      }
    }
  }
}

TEST(Zip, CrcMismatchIsCaughtWhenVerifying) {
  Bytes zip = write_zip({{"a/x", "hello"}});
  const auto archive = open_bytes(zip);
  const std::size_t data = archive.entries()[0].data_offset;
  zip[data] ^= std::byte{1};
  EXPECT_PEFT_ERROR(open_bytes(zip).data(open_bytes(zip).entries()[0]), ErrorCode::InvalidZip,
                    "CRC-32");
  ZipReadOptions lax;
  lax.verify_crc = false;
  const auto unchecked = open_bytes(zip, lax);
  EXPECT_EQ(as_string(unchecked.data(unchecked.entries()[0])), "iello");
}

TEST(Zip, NamesThatEscapeTheArchiveAreRefused) {
  const std::string names[] = {
      "../evil",  "a/../../evil",    "/etc/passwd", "\\evil",
      "C:\\evil", "a\\..\\..\\evil", "a/..",        std::string("a/b\0c", 5)};
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    EXPECT_PEFT_ERROR(open_bytes(write_zip({{name, "x"}})), ErrorCode::InvalidZip,
                      "escapes the archive");
  }
  EXPECT_NO_THROW(open_bytes(write_zip({{"a/..b/c..", "x"}})));
}

TEST(Zip, DuplicateNamesAreRefused) {
  EXPECT_PEFT_ERROR(open_bytes(write_zip({{"a/x", "1"}, {"a/x", "2"}})), ErrorCode::InvalidZip,
                    "appears twice");
}

TEST(Zip, CompressedAndEncryptedEntriesAreRefusedOnRead) {
  Bytes zip = write_zip({{"a/x", "hello"}});
  put_le(zip, central_at(zip) + 10, 8, 2);  // deflate
  const auto archive = open_bytes(zip);
  EXPECT_PEFT_ERROR(archive.data(archive.entries()[0]), ErrorCode::UnsupportedFormat,
                    "compressed (method 8)");

  Bytes encrypted = write_zip({{"a/x", "hello"}});
  put_le(encrypted, central_at(encrypted) + 8, 0x0809, 2);
  const auto locked = open_bytes(encrypted);
  EXPECT_PEFT_ERROR(locked.data(locked.entries()[0]), ErrorCode::UnsupportedFormat, "encrypted");
}

TEST(Zip, CentralDirectoryFieldsAreBoundsChecked) {
  const Bytes zip = without_zip64(write_zip({{"a/x", "hello"}, {"a/y", "world"}}));
  const std::size_t end = end_at(zip);
  const std::size_t cd = central_at(zip);
  {
    Bytes bad = zip;
    put_le(bad, end + 16, bad.size(), 4);  // directory offset past the end
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "outside the archive");
  }
  {
    Bytes bad = zip;
    put_le(bad, end + 8, 3, 2);
    put_le(bad, end + 10, 3, 2);  // more entries than the directory holds
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "");
  }
  {
    Bytes bad = zip;
    put_le(bad, end + 8, 1, 2);
    put_le(bad, end + 10, 1, 2);  // fewer: bytes left over
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "after its 1 entries");
  }
  {
    Bytes bad = zip;
    put_le(bad, end + 8, 60000, 2);
    put_le(bad, end + 10, 60000, 2);
    ZipReadOptions few;
    few.max_entries = 10;
    EXPECT_PEFT_ERROR(open_bytes(bad, few), ErrorCode::LimitExceeded, "60000 entries");
  }
  {
    Bytes bad = zip;
    put_le(bad, cd + 42, 0x7FFFFFF0, 4);  // local header offset
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "no local header");
  }
  {
    Bytes bad = zip;
    put_le(bad, cd + 20, 1u << 30, 4);
    put_le(bad, cd + 24, 1u << 30, 4);  // data longer than the file
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "run past the central directory");
  }
  {
    Bytes bad = zip;
    put_le(bad, cd + 20, 4, 4);  // stored sizes disagree
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "declares 4 bytes stored");
  }
  {
    Bytes bad = zip;
    put_le(bad, cd + 28, 0xFFFF, 2);  // name length overruns the directory
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "overruns the directory");
  }
  {
    Bytes bad = zip;
    bad[30] = std::byte{'b'};  // local header names another file
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "local header names it");
  }
  {
    Bytes bad = zip;
    put_le(bad, end + 4, 1, 2);
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "multi-disk");
  }
  {
    Bytes bad = zip;
    put_le(bad, cd + 42 + 46 + 3, 0, 4);  // the second entry claims the first one's bytes
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "");
  }
}

TEST(Zip, EndRecordMustReachTheEndOfTheFile) {
  Bytes zip = write_zip({{"a/x", "hello"}});
  zip.push_back(std::byte{0});  // a byte the comment length does not cover
  EXPECT_PEFT_ERROR(open_bytes(zip), ErrorCode::InvalidZip, "no end of central directory");
  put_le(zip, end_at(zip) - 1 + 20, 1, 2);  // now the comment covers it
  EXPECT_NO_THROW(open_bytes(zip));
}

TEST(Zip, Zip64EndRecordEdgeCases) {
  const Bytes zip = write_zip({{"a/x", "hello"}});
  const std::size_t end = end_at(zip);
  const std::size_t z64 = zip64_end_at(zip);
  {
    Bytes sentinels = zip;  // classic fields saturated: the ZIP64 record is used
    put_le(sentinels, end + 8, 0xFFFF, 2);
    put_le(sentinels, end + 10, 0xFFFF, 2);
    put_le(sentinels, end + 12, 0xFFFFFFFF, 4);
    put_le(sentinels, end + 16, 0xFFFFFFFF, 4);
    const auto archive = open_bytes(sentinels);
    EXPECT_EQ(as_string(archive.data(archive.entries()[0])), "hello");
  }
  {
    Bytes bad = zip;
    put_le(bad, z64 + 48, 1, 8);  // ZIP64 directory offset disagrees with the classic one
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "disagree");
  }
  {
    Bytes bad = zip;
    put_le(bad, end - kLocator + 8, 1ULL << 60, 8);  // locator points nowhere
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "outside the archive");
  }
  {
    Bytes bad = zip;
    put_le(bad, z64, 0x12345678, 4);
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "bad signature");
  }
  {
    Bytes bad = zip;
    put_le(bad, z64 + 4, 1ULL << 62, 8);  // record size
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "size");
  }
  {
    Bytes bad = zip;
    put_le(bad, end + 8, 0xFFFF, 2);
    put_le(bad, end + 10, 0xFFFF, 2);
    put_le(bad, z64 + 24, 1ULL << 40, 8);
    put_le(bad, z64 + 32, 1ULL << 40, 8);
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::LimitExceeded, "entries");
  }
  {
    Bytes bad = zip;
    put_le(bad, end - kLocator + 16, 2, 4);  // two disks
    EXPECT_PEFT_ERROR(open_bytes(bad), ErrorCode::InvalidZip, "multi-disk");
  }
}

// A hand-made archive whose central entry keeps its sizes and offset in a ZIP64 extra
// field, as writers do past 4 GiB.
Bytes zip64_extra_archive(std::uint16_t extra_size, bool with_extra_junk) {
  const std::string name = "a/x";
  const std::string data = "hello";
  Bytes b;
  append_le(b, 0x04034b50, 4);
  append_le(b, 45, 2);
  append_le(b, 0, 2);
  append_le(b, 0, 2);
  append_le(b, 0, 4);
  append_le(b, crc32_of(as_bytes(data)), 4);
  append_le(b, data.size(), 4);
  append_le(b, data.size(), 4);
  append_le(b, name.size(), 2);
  append_le(b, 0, 2);
  append(b, name);
  append(b, data);
  const std::size_t cd = b.size();
  append_le(b, 0x02014b50, 4);
  append_le(b, 45, 2);
  append_le(b, 45, 2);
  append_le(b, 0, 2);
  append_le(b, 0, 2);
  append_le(b, 0, 4);
  append_le(b, crc32_of(as_bytes(data)), 4);
  append_le(b, 0xFFFFFFFF, 4);
  append_le(b, 0xFFFFFFFF, 4);
  append_le(b, name.size(), 2);
  const std::uint16_t extra_length =
      static_cast<std::uint16_t>(4 + extra_size + (with_extra_junk ? 2 : 0));
  append_le(b, extra_length, 2);
  append_le(b, 0, 2);
  append_le(b, 0, 2);
  append_le(b, 0, 2);
  append_le(b, 0, 4);
  append_le(b, 0xFFFFFFFF, 4);
  append(b, name);
  append_le(b, 1, 2);
  append_le(b, extra_size, 2);
  const std::uint64_t values[] = {data.size(), data.size(), 0};
  for (std::size_t i = 0; i * 8 < extra_size; ++i) append_le(b, values[i], 8);
  if (with_extra_junk) append_le(b, 0xAB, 2);
  const std::size_t cd_size = b.size() - cd;
  append_le(b, 0x06054b50, 4);
  append_le(b, 0, 4);
  append_le(b, 1, 2);
  append_le(b, 1, 2);
  append_le(b, cd_size, 4);
  append_le(b, cd, 4);
  append_le(b, 0, 2);
  return b;
}

TEST(Zip, Zip64ExtraFieldsInTheCentralDirectory) {
  const Bytes zip = zip64_extra_archive(24, false);
  const auto archive = open_bytes(zip);
  ASSERT_EQ(archive.entries().size(), 1u);
  EXPECT_EQ(archive.entries()[0].size, 5u);
  EXPECT_EQ(archive.entries()[0].local_header_offset, 0u);
  EXPECT_EQ(as_string(archive.data(archive.entries()[0])), "hello");
  EXPECT_PEFT_ERROR(open_bytes(zip64_extra_archive(16, false)), ErrorCode::InvalidZip,
                    "ZIP64 extra field too short");
  EXPECT_PEFT_ERROR(open_bytes(zip64_extra_archive(24, true)), ErrorCode::InvalidZip,
                    "malformed extra field");
}

TEST(Zip, EmptyArchiveIsRefused) {
  Bytes b;
  append_le(b, 0x06054b50, 4);
  append_le(b, 0, 18);
  EXPECT_PEFT_ERROR(open_bytes(b), ErrorCode::InvalidZip, "no entries");
}

TEST(Zip, WriterRefusesMisuse) {
  ZipWriter writer([](std::span<const std::byte>) {});
  EXPECT_PEFT_ERROR(writer.add("", std::string_view("x")), ErrorCode::InvalidArgument, "name");
  writer.finish();
  EXPECT_PEFT_ERROR(writer.add("a", std::string_view("x")), ErrorCode::InvalidArgument, "finished");
}

}  // namespace
}  // namespace peft::formats
