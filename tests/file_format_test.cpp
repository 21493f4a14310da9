// What a file is, from its whole structure: safetensors files whose header length starts
// with the pickle PROTO byte (0x80) or with "PK" are still safetensors; zips need their
// end record; the legacy torch.save stream needs its magic number; names break ties.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;

std::vector<std::byte> bytes_of(const std::string& text) {
  std::vector<std::byte> out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

// A valid safetensors file whose header is exactly `header_length` bytes (padded with
// spaces, as the format allows): one U8 tensor of one byte.
std::vector<std::byte> safetensors_with_header_length(std::uint64_t header_length) {
  std::string header = R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  EXPECT_GE(header_length, header.size());
  header.resize(header_length, ' ');
  std::string file;
  for (int i = 0; i < 8; ++i) file += static_cast<char>((header_length >> (8 * i)) & 0xFF);
  return bytes_of(file + header + "\x2a");
}

TEST(FileFormat, SafetensorsWithEveryLowByteOfTheHeaderLength) {
  testing::TempDir dir;
  for (unsigned low = 0; low < 256; ++low) {
    const std::uint64_t n = 256 + low;  // the low byte of the length is `low`
    const auto bytes = safetensors_with_header_length(n);
    EXPECT_EQ(detect_file_format(bytes), FileFormat::Safetensors) << "low byte " << low;
    // A file with no telling name goes through the same detection.
    const fs::path path = dir / ("weights-" + std::to_string(low));
    testing::write_bytes(path, bytes);
    const StateDict weights = read_weights_file(path);
    ASSERT_EQ(weights.size(), 1u) << "low byte " << low;
    EXPECT_EQ(std::to_integer<int>(weights.at("t").bytes()[0]), 0x2a);
  }
}

TEST(FileFormat, SafetensorsWhoseLengthSpellsPk) {
  testing::TempDir dir;
  // 0x4B50: the file starts with "PK".
  const auto bytes = safetensors_with_header_length(0x4B50);
  ASSERT_EQ(static_cast<char>(bytes[0]), 'P');
  ASSERT_EQ(static_cast<char>(bytes[1]), 'K');
  EXPECT_EQ(detect_file_format(bytes), FileFormat::Safetensors);
  testing::write_bytes(dir / "pk.safetensors", bytes);
  testing::write_bytes(dir / "pk.bin", bytes);  // a wrong name does not change the content
  EXPECT_EQ(read_weights_file(dir / "pk.safetensors").size(), 1u);
  EXPECT_EQ(read_weights_file(dir / "pk.bin").size(), 1u);
  // 0x04034B50: "PK\3\4", a zip's local header signature, with no zip end record.
  std::vector<std::byte> head(16, std::byte{' '});
  const std::uint64_t n = 0x04034B50;
  for (int i = 0; i < 8; ++i) head[static_cast<std::size_t>(i)] = std::byte((n >> (8 * i)) & 0xFF);
  head[8] = std::byte{'{'};
  const std::vector<std::byte> tail(64, std::byte{' '});
  EXPECT_EQ(detect_file_format(head, tail, 8 + n + 16), FileFormat::Safetensors);
}

TEST(FileFormat, ZipNeedsItsEndRecord) {
  const auto root = testing::peft_ref_root() / "lora_linear";
  const auto zip = testing::read_bytes(root / "adapter_model.bin");
  EXPECT_EQ(detect_file_format(zip), FileFormat::TorchZip);
  EXPECT_EQ(detect_file_format(std::span(zip).first(zip.size() - 10)), FileFormat::Unknown);
  testing::TempDir dir;
  // A truncated .bin is reported by the zip reader, not taken for safetensors.
  testing::write_bytes(dir / "cut.bin", std::vector<std::byte>(zip.begin(), zip.end() - 10));
  try {
    read_weights_file(dir / "cut.bin");
    ADD_FAILURE() << "a truncated zip was read";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidZip) << e.what();
  }
  // Content wins over a misleading name.
  testing::write_bytes(dir / "really-a-zip.safetensors", zip);
  EXPECT_EQ(read_weights_file(dir / "really-a-zip.safetensors").size(),
            read_weights_file(root / "adapter_model.bin").size());
}

TEST(FileFormat, LegacyTorchNeedsItsMagicNumber) {
  const std::string magic = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
  EXPECT_EQ(detect_file_format(bytes_of(magic + "rest")), FileFormat::TorchLegacy);
  // Protocol 4 puts a FRAME before the magic number.
  const std::string framed =
      std::string("\x80\x04\x95\x0d\x00\x00\x00\x00\x00\x00\x00", 11) + magic.substr(2);
  EXPECT_EQ(detect_file_format(bytes_of(framed)), FileFormat::TorchLegacy);
  // A pickle PROTO alone is not enough.
  EXPECT_EQ(detect_file_format(bytes_of("\x80\x02}q\x00.")), FileFormat::Unknown);
}

TEST(FileFormat, OtherKindsOfFile) {
  EXPECT_EQ(detect_file_format(std::span<const std::byte>()), FileFormat::Empty);
  EXPECT_EQ(detect_file_format(bytes_of("  {\"peft_type\": \"LORA\"}")), FileFormat::Json);
  EXPECT_EQ(detect_file_format(bytes_of("GGUF\x03\x00\x00\x00")), FileFormat::Gguf);
  EXPECT_EQ(detect_file_format(bytes_of("hello world")), FileFormat::Unknown);
  std::vector<std::byte> tar(1024, std::byte{0});
  std::memcpy(tar.data() + 257, "ustar", 5);
  EXPECT_EQ(detect_file_format(tar), FileFormat::TorchTar);
}

TEST(FileFormat, ReadersRefuseWhatIsNotWeights) {
  const auto root = testing::peft_ref_root() / "lora_linear";
  EXPECT_PEFT_ERROR(read_weights_file(root / "adapter_config.json"), ErrorCode::UnsupportedFormat,
                    "pass the folder");
  testing::TempDir dir;
  testing::write_bytes(dir / "empty.safetensors", {});
  EXPECT_PEFT_ERROR(read_weights_file(dir / "empty.safetensors"), ErrorCode::HeaderTooSmall,
                    "empty.safetensors");
  EXPECT_PEFT_ERROR(read_weights_file(dir / "missing.safetensors"), ErrorCode::NotFound,
                    "missing.safetensors");
  // torch.save's reader names a safetensors file for what it is.
  const auto st = testing::read_bytes(root / "adapter_model.safetensors");
  EXPECT_PEFT_ERROR(load_torch_bytes(st, nullptr, "x.bin"), ErrorCode::UnsupportedFormat,
                    "is a safetensors file");
}

TEST(FileFormat, ExtensionsName) {
  EXPECT_EQ(format_from_extension("a.safetensors"), FileFormat::Safetensors);
  EXPECT_EQ(format_from_extension("a.pth"), FileFormat::TorchZip);
  EXPECT_EQ(format_from_extension("a.gguf"), FileFormat::Gguf);
  EXPECT_EQ(format_from_extension("folder3"), FileFormat::Unknown);
}

}  // namespace
}  // namespace peft
