// The safetensors reader and writer on hand-built inputs: the reference writer's
// bytes, round trips of every dtype, and one corrupt file per validation rule.
#include "peft/safetensors.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <optional>
#include <string>

#include "test_support.hpp"

namespace peft {
namespace {

std::vector<std::byte> raw_file(const std::string& header, std::size_t data_bytes,
                                std::uint64_t declared_length = UINT64_MAX) {
  const std::uint64_t n = declared_length == UINT64_MAX ? header.size() : declared_length;
  std::vector<std::byte> out(8 + header.size() + data_bytes);
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = std::byte((n >> (8 * i)) & 0xFF);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

SafetensorsFile parse(const std::vector<std::byte>& bytes) {
  auto owner = std::make_shared<std::vector<std::byte>>(bytes);
  return SafetensorsFile::from_bytes(*owner, owner, "test.safetensors");
}

std::string as_string(const std::vector<std::byte>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

TEST(SafetensorsWriter, MatchesTheReferenceExamples) {
  // docs/formats.md "Safetensors / Writer": empty map, no metadata.
  EXPECT_EQ(as_string(serialize_safetensors({})), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  // Metadata only.
  const auto meta_only = serialize_safetensors({}, Metadata{{"framework", "pt"}});
  EXPECT_EQ(meta_only.size(), 48u);
  EXPECT_EQ(as_string(meta_only).substr(8), "{\"__metadata__\":{\"framework\":\"pt\"}}     ");
  // One F32 tensor.
  StateDict sd;
  std::vector<float> values(6);
  std::iota(values.begin(), values.end(), 0.0f);
  sd.set("attn0", Tensor::from_floats(DType::F32, {1, 1, 2, 3}, values));
  const auto bytes = serialize_safetensors(sd);
  EXPECT_EQ(bytes.size(), 8u + 72u + 24u);
  EXPECT_EQ(as_string(bytes).substr(8, 72),
            "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ");
}

TEST(SafetensorsWriter, OrdersByDtypeRankThenName) {
  StateDict sd;
  sd.set("z_u8", Tensor::zeros(DType::U8, {3}));
  sd.set("b_f32", Tensor::zeros(DType::F32, {1}));
  sd.set("a_f32", Tensor::zeros(DType::F32, {1}));
  sd.set("i64", Tensor::zeros(DType::I64, {1}));
  sd.set("B_bf16", Tensor::zeros(DType::BF16, {1}));
  const std::string header = safetensors_header(sd, std::nullopt);
  const auto pos = [&](const char* name) { return header.find(name); };
  EXPECT_LT(pos("i64"), pos("a_f32"));
  EXPECT_LT(pos("a_f32"), pos("b_f32"));
  EXPECT_LT(pos("b_f32"), pos("B_bf16"));
  EXPECT_LT(pos("B_bf16"), pos("z_u8"));
}

TEST(SafetensorsWriter, EscapesNamesLikeSerde) {
  StateDict sd;
  sd.set(std::string("a\"b\\c/\x01\n\x7f\xc3\xa9", 11), Tensor::zeros(DType::U8, {0}));
  const std::string header = safetensors_header(sd, std::nullopt);
  EXPECT_NE(header.find("\"a\\\"b\\\\c/\\u0001\\n\x7f\xc3\xa9\""), std::string::npos) << header;
  const auto file = parse(serialize_safetensors(sd));
  EXPECT_TRUE(file.contains(std::string("a\"b\\c/\x01\n\x7f\xc3\xa9", 11)));
}

TEST(SafetensorsWriter, RefusesSharedMemoryUnlessAskedToCopy) {
  StateDict sd;
  const Tensor shared = Tensor::zeros(DType::F32, {4});
  sd.set("tied_a", shared);
  sd.set("tied_b", shared);
  EXPECT_PEFT_ERROR(serialize_safetensors(sd), ErrorCode::SharedStorage, "tied_a");
  SafetensorsWriteOptions copy;
  copy.copy_shared = true;
  const auto file = parse(serialize_safetensors(sd, std::nullopt, copy));
  EXPECT_EQ(file.size(), 2u);
  // Empty tensors never alias anything.
  StateDict empties;
  const Tensor empty = Tensor::zeros(DType::F32, {0});
  empties.set("e1", empty);
  empties.set("e2", empty);
  EXPECT_EQ(parse(serialize_safetensors(empties)).size(), 2u);
}

TEST(SafetensorsRoundTrip, EveryDtypeEmptyAndScalar) {
  StateDict sd;
  for (std::size_t i = 0; i < kDTypeCount; ++i) {
    const auto dtype = static_cast<DType>(i);
    // 8 elements fill whole bytes for every bit width (4, 6, 8, ...).
    Tensor t = Tensor::zeros(dtype, {2, 4});
    auto bytes = t.mutable_bytes();
    for (std::size_t b = 0; b < bytes.size(); ++b) bytes[b] = std::byte(b * 37 + i);
    sd.set(std::string("t_") + std::string(dtype_name(dtype)), t);
  }
  sd.set("scalar", Tensor::from_floats(DType::F32, {}, std::vector<float>{3.5f}));
  sd.set("empty", Tensor::zeros(DType::F16, {0, 3}));
  sd.set("empty2", Tensor::zeros(DType::I64, {5, 0}));
  const Metadata metadata{{"format", "pt"}, {"b", "2"}};
  const auto bytes = serialize_safetensors(sd, metadata);
  const auto file = parse(bytes);
  ASSERT_EQ(file.size(), sd.size());
  ASSERT_TRUE(file.metadata().has_value());
  EXPECT_EQ(*file.metadata(), metadata);
  for (const auto& [name, tensor] : sd) {
    EXPECT_TRUE(file.tensor(name).equals(tensor)) << name;
  }
  EXPECT_EQ(file.tensor("scalar").shape(), Shape{});
  EXPECT_EQ(serialize_safetensors(file.state_dict(), file.metadata()), bytes);
}

TEST(SafetensorsRoundTrip, SaveIsAtomicAndReadableAfterTheFileIsGone) {
  testing::TempDir dir;
  const auto path = dir / "model.safetensors";
  StateDict sd;
  sd.set("w", Tensor::from_floats(DType::F32, {2}, std::vector<float>{1, 2}));
  save_safetensors(sd, path, Metadata{{"format", "pt"}});
  Tensor kept = SafetensorsFile::open(path).tensor("w");
  // Overwrite while the old file is still mapped: the mapping keeps the old bytes.
  sd.set("w", Tensor::from_floats(DType::F32, {2}, std::vector<float>{5, 6}));
  save_safetensors(sd, path, Metadata{{"format", "pt"}});
  EXPECT_EQ(kept.to_floats(), (std::vector<float>{1, 2}));
  EXPECT_EQ(SafetensorsFile::open(path).tensor("w").to_floats(), (std::vector<float>{5, 6}));
  std::filesystem::remove(path);
  EXPECT_EQ(kept.to_floats(), (std::vector<float>{1, 2}));
  // Only the target is left in the folder: no temporary files.
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path()))
    ++files;
  EXPECT_EQ(files, 0u);
}

TEST(SafetensorsRoundTrip, DurableWriteAndReadWithoutMmap) {
  testing::TempDir dir;
  const auto path = dir / "d.safetensors";
  StateDict sd;
  sd.set("x", Tensor::from_ints(DType::I16, {3}, std::vector<std::int64_t>{1, -2, 3}));
  SafetensorsWriteOptions options;
  options.durable = true;
  save_safetensors(sd, path, std::nullopt, options);
  SafetensorsReadOptions no_map;
  no_map.use_mmap = false;
  const auto file = SafetensorsFile::open(path, no_map);
  EXPECT_FALSE(file.is_mapped());
  EXPECT_FALSE(file.metadata().has_value());
  EXPECT_EQ(file.tensor("x").to_ints(), (std::vector<std::int64_t>{1, -2, 3}));
  EXPECT_TRUE(SafetensorsFile::open(path).is_mapped());
}

TEST(SafetensorsWriter, MissingFolderIsAClearError) {
  StateDict sd;
  EXPECT_PEFT_ERROR(save_safetensors(sd, "/nonexistent-peftcpp-dir/x.safetensors"),
                    ErrorCode::NotFound, "x.safetensors");
}

TEST(SafetensorsReader, AcceptsWhitespaceAroundTheObjectAndUnknownMembers) {
  const std::string header =
      " \t\n{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2], "
      "\"extra\": {\"x\": [1, 2.5e3, -0, null, true, \"s\"]}}, \"__metadata__\": null}\r\n  ";
  const auto file = parse(raw_file(header, 2));
  EXPECT_EQ(file.size(), 1u);
  EXPECT_FALSE(file.metadata().has_value());
}

// One corrupt file per rule of docs/formats.md "Safetensors / Reader validation", plus the stricter
// checks.
struct CorruptCase {
  const char* name;
  std::vector<std::byte> bytes;
  ErrorCode code;
  const char* fragment;
};

std::vector<CorruptCase> corrupt_cases() {
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::vector<CorruptCase> cases;
  cases.push_back({"empty file", {}, ErrorCode::HeaderTooSmall, "file is empty"});
  cases.push_back(
      {"7 bytes", std::vector<std::byte>(7), ErrorCode::HeaderTooSmall, "header too small"});
  cases.push_back({"header length over 100 MB", raw_file("{}", 0, 100'000'001),
                   ErrorCode::HeaderTooLarge, "exceeds the limit"});
  cases.push_back({"header length past EOF", raw_file("{}", 0, 50), ErrorCode::InvalidHeaderLength,
                   "past the end"});
  cases.push_back({"header length near 2^64", raw_file("{}", 0, UINT64_MAX - 3),
                   ErrorCode::HeaderTooLarge, "exceeds"});
  cases.push_back(
      {"invalid UTF-8", raw_file("{\"\xff\":1}", 0), ErrorCode::InvalidHeaderUtf8, "UTF-8"});
  cases.push_back(
      {"overlong UTF-8", raw_file("{\"\xc0\xaf\":1}", 0), ErrorCode::InvalidHeaderUtf8, "UTF-8"});
  cases.push_back({"UTF-8 surrogate", raw_file("{\"\xed\xa0\x80\":1}", 0),
                   ErrorCode::InvalidHeaderUtf8, "UTF-8"});
  cases.push_back({"not JSON", raw_file("hello", 0), ErrorCode::InvalidHeaderJson, "JSON object"});
  cases.push_back({"JSON array", raw_file("[]", 0), ErrorCode::InvalidHeaderJson, "JSON object"});
  cases.push_back({"truncated JSON", raw_file("{\"a\":{\"dtype\":", 0),
                   ErrorCode::InvalidHeaderJson, "string"});
  cases.push_back({"unknown dtype",
                   raw_file(R"({"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", 8),
                   ErrorCode::InvalidHeaderJson, "unknown dtype 'F31'"});
  cases.push_back({"lower-case dtype",
                   raw_file(R"({"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}})", 8),
                   ErrorCode::InvalidHeaderJson, "unknown dtype"});
  cases.push_back({"negative dimension",
                   raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                   ErrorCode::InvalidHeaderJson, "non-negative integer"});
  cases.push_back({"float dimension",
                   raw_file(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8),
                   ErrorCode::InvalidHeaderJson, "integer"});
  cases.push_back(
      {"dimension over u64",
       raw_file(R"({"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}})", 8),
       ErrorCode::InvalidHeaderJson, "64 bits"});
  cases.push_back({"missing shape", raw_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8),
                   ErrorCode::InvalidHeaderJson, "missing member 'shape'"});
  cases.push_back({"missing offsets", raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8),
                   ErrorCode::InvalidHeaderJson, "missing member 'data_offsets'"});
  cases.push_back({"three offsets",
                   raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", 8),
                   ErrorCode::InvalidHeaderJson, "exactly [begin, end]"});
  cases.push_back({"metadata value not a string", raw_file(R"({"__metadata__":{"format":1}})", 0),
                   ErrorCode::InvalidHeaderJson, "not a string"});
  cases.push_back({"metadata not an object", raw_file(R"({"__metadata__":[1]})", 0),
                   ErrorCode::InvalidHeaderJson, "object of strings"});
  cases.push_back({"tensor not an object", raw_file(R"({"a":5})", 0), ErrorCode::InvalidHeaderJson,
                   "tensor 'a': expected an object"});
  cases.push_back({"lone surrogate escape", raw_file(R"({"\ud800":1})", 0),
                   ErrorCode::InvalidHeaderJson, "surrogate"});
  cases.push_back({"trailing garbage after JSON", raw_file(good + "x", 8),
                   ErrorCode::InvalidHeaderJson, "after the JSON object"});
  cases.push_back(
      {"duplicate tensor name",
       raw_file(
           R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
           2),
       ErrorCode::DuplicateKey, "'a' is declared twice"});
  cases.push_back({"duplicate metadata", raw_file(R"({"__metadata__":{},"__metadata__":{}})", 0),
                   ErrorCode::DuplicateKey, "twice"});
  cases.push_back(
      {"duplicate member in a tensor",
       raw_file(R"({"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1),
       ErrorCode::InvalidHeaderJson, "'dtype' appears twice"});
  cases.push_back({"gap before first tensor",
                   raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
                   ErrorCode::InvalidOffset, "tensor 'a'"});
  cases.push_back(
      {"overlapping tensors",
       raw_file(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           12),
       ErrorCode::InvalidOffset, "tensor 'b'"});
  cases.push_back(
      {"end before begin",
       raw_file(
           R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"d":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}})",
           1),
       ErrorCode::InvalidOffset, "tensor 'd'"});
  cases.push_back(
      {"shape product overflows",
       raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
       ErrorCode::ValidationOverflow, "tensor 'a'"});
  cases.push_back(
      {"bytes overflow",
       raw_file(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", 8),
       ErrorCode::ValidationOverflow, "tensor 'a'"});
  cases.push_back({"sub-byte remainder",
                   raw_file(R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", 2),
                   ErrorCode::MisalignedSlice, "tensor 'a'"});
  cases.push_back({"byte length disagrees with shape",
                   raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                   ErrorCode::TensorInvalidInfo, "needs 12 bytes"});
  cases.push_back(
      {"truncated data", raw_file(good, 4), ErrorCode::MetadataIncompleteBuffer, "file truncated"});
  cases.push_back(
      {"trailing data", raw_file(good, 9), ErrorCode::MetadataIncompleteBuffer, "trailing bytes"});
  return cases;
}

TEST(SafetensorsReader, RejectsEveryCorruption) {
  for (const auto& c : corrupt_cases()) {
    SCOPED_TRACE(c.name);
    EXPECT_PEFT_ERROR(parse(c.bytes), c.code, c.fragment);
  }
}

TEST(SafetensorsReader, RankBoundIsEnforcedExactly) {
  const auto shape_of_rank = [](std::size_t rank) {
    std::string dims;
    for (std::size_t i = 0; i < rank; ++i) dims += i ? ",1" : "1";
    return raw_file(R"({"a":{"dtype":"U8","shape":[)" + dims + R"(],"data_offsets":[0,1]}})", 1);
  };
  EXPECT_EQ(parse(shape_of_rank(64)).tensor("a").rank(), 64u);
  EXPECT_PEFT_ERROR(parse(shape_of_rank(65)), ErrorCode::InvalidHeaderJson, "more than 64");
}

TEST(SafetensorsReader, TensorCountBoundIsEnforced) {
  StateDict sd;
  for (int i = 0; i < 5; ++i) sd.set("t" + std::to_string(i), Tensor::zeros(DType::U8, {1}));
  auto bytes = std::make_shared<std::vector<std::byte>>(serialize_safetensors(sd));
  SafetensorsReadOptions options;
  options.max_tensors = 5;
  EXPECT_EQ(SafetensorsFile::from_bytes(*bytes, bytes, "x", options).size(), 5u);
  options.max_tensors = 4;
  EXPECT_PEFT_ERROR(SafetensorsFile::from_bytes(*bytes, bytes, "x", options),
                    ErrorCode::TooManyTensors, "more than 4");
}

TEST(SafetensorsReader, ErrorsNameTheFile) {
  testing::TempDir dir;
  const auto path = dir / "broken.safetensors";
  testing::write_bytes(path, raw_file("{\"a\":", 0));
  EXPECT_PEFT_ERROR(SafetensorsFile::open(path), ErrorCode::InvalidHeaderJson,
                    "broken.safetensors: invalid_header_json");
  EXPECT_PEFT_ERROR(SafetensorsFile::open(dir / "absent.safetensors"), ErrorCode::NotFound,
                    "absent.safetensors");
  EXPECT_PEFT_ERROR(SafetensorsFile::open(dir.path()), ErrorCode::Io, "folder");
}

TEST(SafetensorsReader, UnalignedTensorsAreReadable) {
  // A header of odd length (no padding) puts the F32 data at an odd file offset.
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto bytes = raw_file(header, 8);
  const float values[2] = {1.5f, -2.0f};
  std::memcpy(bytes.data() + 8 + header.size(), values, 8);
  ASSERT_NE((8 + header.size()) % 4, 0u);
  EXPECT_EQ(parse(bytes).tensor("a").to_floats(), (std::vector<float>{1.5f, -2.0f}));
}

TEST(Safetensors, CopiesOutliveTheirOriginal) {
  // The name index views names the object holds: a copy must build its own (run under
  // ASan, a shared index reads freed memory).
  testing::TempDir dir;
  StateDict weights;
  for (int i = 0; i < 40; ++i)
    weights.set("a.rather.long.tensor.name.beyond.short.string.storage." + std::to_string(i),
                Tensor::zeros(DType::F32, {2}));
  save_safetensors(weights, dir / "w.safetensors");
  std::optional<SafetensorsFile> original = SafetensorsFile::open(dir / "w.safetensors");
  const SafetensorsFile copy = *original;
  SafetensorsFile assigned = SafetensorsFile::open(dir / "w.safetensors");
  assigned = copy;
  original.reset();
  for (int i = 0; i < 40; ++i) {
    const std::string name =
        "a.rather.long.tensor.name.beyond.short.string.storage." + std::to_string(i);
    ASSERT_NE(copy.info(name), nullptr) << name;
    EXPECT_TRUE(assigned.contains(name));
    EXPECT_EQ(copy.tensor(name).shape(), (Shape{2}));
  }
  SafetensorsFile moved = std::move(assigned);
  EXPECT_TRUE(moved.contains("a.rather.long.tensor.name.beyond.short.string.storage.7"));
}

}  // namespace
}  // namespace peft
