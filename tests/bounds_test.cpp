// Every resource bound of a parser, tested at the boundary: the largest input the bound
// admits is read, one more is refused with the documented code (docs/robustness.md lists
// them all). Bounds with a test elsewhere are named in that document, not repeated here.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "formats/pickle.hpp"
#include "formats/zip.hpp"
#include "peft/config.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using formats::PickleBuilder;
using Bytes = std::vector<std::byte>;

template <std::size_t N>
std::string raw(const char (&text)[N]) {
  return std::string(text, N - 1);
}

std::span<const std::byte> bytes_of(const std::string& text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

// ---- safetensors -------------------------------------------------------------------------

Bytes safetensors_bytes(const std::string& header, std::size_t data = 0) {
  Bytes out(8 + header.size() + data);
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i, n >>= 8) out[static_cast<std::size_t>(i)] = std::byte(n & 0xFF);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

SafetensorsFile parse(const Bytes& bytes, const SafetensorsReadOptions& options = {}) {
  auto owner = std::make_shared<Bytes>(bytes);
  return SafetensorsFile::from_bytes(*owner, owner, "bound.safetensors", options);
}

TEST(SafetensorsBounds, HeaderLengthBoundIsInclusive) {
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  header.resize(64, ' ');
  SafetensorsReadOptions options;
  options.max_header_bytes = 64;
  EXPECT_EQ(parse(safetensors_bytes(header, 1), options).size(), 1u);
  options.max_header_bytes = 63;
  EXPECT_PEFT_ERROR(parse(safetensors_bytes(header, 1), options), ErrorCode::HeaderTooLarge,
                    "exceeds the limit of 63");
  // The default is the reference reader's 100,000,000 bytes, checked before any read.
  Bytes lie = safetensors_bytes("{}      ");
  const std::uint64_t n = 100'000'001;
  for (int i = 0; i < 8; ++i) lie[static_cast<std::size_t>(i)] = std::byte((n >> (8 * i)) & 0xFF);
  EXPECT_PEFT_ERROR(parse(lie), ErrorCode::HeaderTooLarge, "limit of 100000000");
}

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(SafetensorsBounds, IgnoredMembersNestAtMost129Levels) {
  const auto file = [](std::size_t depth) {
    std::string header =
        R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":)" + nested_arrays(depth) + "}}";
    return safetensors_bytes(header, 1);
  };
  EXPECT_EQ(parse(file(129)).size(), 1u);
  EXPECT_PEFT_ERROR(parse(file(130)), ErrorCode::InvalidHeaderJson, "nesting too deep");
}

TEST(SafetensorsBounds, DataOffsetsMustFit64Bits) {
  const auto file = [](const std::string& end) {
    return safetensors_bytes(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[0,)" + end + "]}}");
  };
  // 2^64-1 parses (and is then refused as an offset), 2^64 does not parse.
  EXPECT_PEFT_ERROR(parse(file("18446744073709551615")), ErrorCode::TensorInvalidInfo, "span");
  EXPECT_PEFT_ERROR(parse(file("18446744073709551616")), ErrorCode::InvalidHeaderJson,
                    "does not fit 64 bits");
}

TEST(SafetensorsBounds, ElementAndByteCountsMustFit64Bits) {
  const auto file = [](const std::string& dtype, const std::string& shape) {
    return safetensors_bytes(R"({"a":{"dtype":")" + dtype + R"(","shape":[)" + shape +
                             R"(],"data_offsets":[0,0]}})");
  };
  // 2^32 x 2^32 elements overflow the element count.
  EXPECT_PEFT_ERROR(parse(file("U8", "4294967296,536870911")), ErrorCode::TensorInvalidInfo,
                    "needs");
  EXPECT_PEFT_ERROR(parse(file("U8", "4294967296,4294967296")), ErrorCode::ValidationOverflow,
                    "element count");
  // The size is computed in bits: 2^58 - 1 doubles fit (2^64 - 64 bits), 2^58 do not.
  EXPECT_PEFT_ERROR(parse(file("F64", "288230376151711743")), ErrorCode::TensorInvalidInfo,
                    "needs");
  EXPECT_PEFT_ERROR(parse(file("F64", "288230376151711744")), ErrorCode::ValidationOverflow,
                    "byte size");
}

// ---- zip -----------------------------------------------------------------------------------

Bytes zip_of(std::size_t entries, const std::string& comment = "") {
  Bytes out;
  formats::ZipWriter writer(
      [&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); });
  for (std::size_t i = 0; i < entries; ++i) {
    writer.add("a/" + std::to_string(i), std::string_view("x"));
  }
  writer.finish();
  if (!comment.empty()) {
    const std::size_t at = out.size() - 2;  // the end record's comment length
    out[at] = std::byte(comment.size() & 0xFF);
    out[at + 1] = std::byte(comment.size() >> 8);
    for (const char c : comment) out.push_back(static_cast<std::byte>(c));
  }
  return out;
}

TEST(ZipBounds, EntryCountBoundIsInclusive) {
  const Bytes archive = zip_of(3);
  formats::ZipReadOptions options;
  options.max_entries = 3;
  EXPECT_EQ(formats::ZipArchive::open(archive, "bound.zip", options).entries().size(), 3u);
  options.max_entries = 2;
  EXPECT_PEFT_ERROR(formats::ZipArchive::open(archive, "bound.zip", options),
                    ErrorCode::LimitExceeded, "3 entries, more than the limit of 2");
}

TEST(ZipBounds, EndRecordIsFoundBehindTheLongestComment) {
  // The end record is searched for in the last 22 + 65,535 bytes only.
  const Bytes archive = zip_of(1, std::string(0xFFFF, 'c'));
  EXPECT_EQ(formats::ZipArchive::open(archive, "bound.zip").entries().size(), 1u);
}

// ---- pickle --------------------------------------------------------------------------------

formats::Unpickled load(const std::string& pickle, const formats::UnpickleOptions& options) {
  return formats::unpickle(bytes_of(pickle), "bound.pkl", options);
}

TEST(PickleBounds, OpcodeCountIncludesProtoAndStop) {
  formats::UnpickleOptions options;
  options.max_opcodes = 3;  // PROTO, NONE, STOP
  EXPECT_NO_THROW(load(raw("\x80\x02N."), options));
  options.max_opcodes = 2;
  EXPECT_PEFT_ERROR(load(raw("\x80\x02N."), options), ErrorCode::LimitExceeded,
                    "more than 2 opcodes");
}

TEST(PickleBounds, MemoStackAndMarkBoundsAreInclusive) {
  formats::UnpickleOptions options;
  options.max_memo_entries = 3;
  EXPECT_NO_THROW(load(raw("\x80\x02Nq\x00q\x01q\x02."), options));
  EXPECT_NO_THROW(load(raw("\x80\x02Nq\x00q\x00q\x00q\x00."), options));  // same slot again
  EXPECT_PEFT_ERROR(load(raw("\x80\x02Nq\x00q\x01q\x02q\x03."), options), ErrorCode::LimitExceeded,
                    "more than 3 memo entries");

  options = {};
  options.max_stack = 3;
  EXPECT_NO_THROW(load(raw("\x80\x02NNN\x87."), options));
  EXPECT_PEFT_ERROR(load(raw("\x80\x02NNNN."), options), ErrorCode::LimitExceeded,
                    "more than 3 values on the stack");

  options = {};
  options.max_marks = 3;
  EXPECT_NO_THROW(load(raw("\x80\x02(((ttt."), options));
  EXPECT_PEFT_ERROR(load(raw("\x80\x02((((tttt."), options), ErrorCode::LimitExceeded,
                    "more than 3 nested MARKs");
}

// A dict {key: None} whose key is `depth` nested 1-tuples around None.
std::string dict_with_nested_key(int depth) {
  return raw("\x80\x02}N") + std::string(static_cast<std::size_t>(depth), '\x85') + "Ns.";
}

TEST(PickleBounds, DictKeysNestAtMost100Levels) {
  EXPECT_NO_THROW(load(dict_with_nested_key(100), {}));
  EXPECT_PEFT_ERROR(load(dict_with_nested_key(101), {}), ErrorCode::LimitExceeded,
                    "nested too deeply");
}

TEST(PickleBounds, DictKeyBytesBoundIsInclusive) {
  // Key ("a" * n, None): canonical form "t2(" "s<n>:" + n bytes, then None is checked.
  const auto pickle = [](std::size_t n) {
    return raw("\x80\x02}") + PickleBuilder().unicode(std::string(n, 'a')).take() + "N\x86Ns.";
  };
  formats::UnpickleOptions options;
  options.max_key_bytes = 3 + 5 + 100;  // "t2(" + "s100:" + 100 bytes
  EXPECT_NO_THROW(load(pickle(100), options));
  EXPECT_PEFT_ERROR(load(pickle(101), options), ErrorCode::LimitExceeded, "too large");
}

TEST(PickleBounds, ItemsCopiedOutOfContainersAreBounded) {
  // set(l) three times over a memoised 4-item list: 12 items copied.
  const std::string list = raw("]q\x00(NNNNe0");
  const std::string call = PickleBuilder().global("builtins", "set").take() + raw("h\x00\x85R0");
  const std::string pickle = raw("\x80\x02") + list + call + call + call + "N.";
  formats::UnpickleOptions options;
  options.max_copied_items = 12;
  EXPECT_NO_THROW(load(pickle, options));
  options.max_copied_items = 11;
  EXPECT_PEFT_ERROR(load(pickle, options), ErrorCode::LimitExceeded,
                    "more than 11 items copied out of containers");
  // torch.Size(tuple) counts too.
  const std::string size = raw("\x80\x02") + PickleBuilder().global("torch", "Size").take() +
                           raw("(K\x01K\x02K\x03t\x85R.");
  options.max_copied_items = 3;
  EXPECT_NO_THROW(load(size, options));
  options.max_copied_items = 2;
  EXPECT_PEFT_ERROR(load(size, options), ErrorCode::LimitExceeded, "items copied");
}

// ---- torch.save ------------------------------------------------------------------------------

struct Record {
  std::string name;
  std::string data;
};

Bytes torch_zip(const std::vector<Record>& records) {
  Bytes out;
  formats::ZipWriter zip(
      [&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); });
  for (const auto& r : records) zip.add("archive/" + r.name, std::string_view(r.data));
  zip.finish();
  return out;
}

StateDict load_torch(const Bytes& bytes, const TorchReadOptions& options = {}) {
  auto owner = std::make_shared<Bytes>(bytes);
  return load_torch_bytes(*owner, owner, "bound.bin", options);
}

// `count` tensors viewing float storage "0" of `numel` elements with the given geometry.
std::string views_pickle(std::size_t count, std::uint64_t numel, std::vector<std::uint64_t> size,
                         std::vector<std::uint64_t> stride, std::uint64_t offset = 0) {
  std::vector<std::string> keys;
  std::vector<formats::PickledTensor> tensors(count);
  for (std::size_t i = 0; i < count; ++i) keys.push_back("t" + std::to_string(i));
  for (std::size_t i = 0; i < count; ++i) {
    auto& p = tensors[i];
    p.key = keys[i];
    p.type = formats::torch_type_of(DType::F32);
    p.storage_key = "0";
    p.storage_numel = numel;
    p.storage_offset = offset;
    p.size = size;
    p.stride = stride;
  }
  return formats::pickle_torch_state_dict(tensors);
}

Bytes views_file(std::size_t count, std::uint64_t numel, std::vector<std::uint64_t> size,
                 std::vector<std::uint64_t> stride, std::uint64_t offset = 0) {
  return torch_zip({{"data.pkl", views_pickle(count, numel, size, stride, offset)},
                    {"data/0", std::string(numel * 4, '\0')},
                    {"version", "3\n"}});
}

TEST(TorchBounds, RankBoundIsInclusive) {
  const auto file = [](std::size_t rank) {
    return views_file(1, 1, std::vector<std::uint64_t>(rank, 1),
                      std::vector<std::uint64_t>(rank, 1));
  };
  TorchReadOptions options;
  options.max_rank = 5;
  EXPECT_EQ(load_torch(file(5), options).at("t0").rank(), 5u);
  EXPECT_PEFT_ERROR(load_torch(file(6), options), ErrorCode::LimitExceeded, "rank 6");
}

TEST(TorchBounds, PickleSizeBoundIsInclusive) {
  const Bytes file = views_file(1, 2, {2}, {1});
  const std::uint64_t size = views_pickle(1, 2, {2}, {1}).size();
  TorchReadOptions options;
  options.max_pickle_bytes = size;
  EXPECT_EQ(load_torch(file, options).size(), 1u);
  options.max_pickle_bytes = size - 1;
  EXPECT_PEFT_ERROR(load_torch(file, options), ErrorCode::LimitExceeded, "data.pkl");
}

TEST(TorchBounds, RecordCountBoundIsInclusive) {
  const Bytes file = views_file(1, 2, {2}, {1});  // data.pkl, data/0, version
  TorchReadOptions options;
  options.max_records = 3;
  EXPECT_EQ(load_torch(file, options).size(), 1u);
  options.max_records = 2;
  EXPECT_PEFT_ERROR(load_torch(file, options), ErrorCode::LimitExceeded, "limit of 2");
}

TEST(TorchBounds, IndicesAboveTwoToThe62AreRefused) {
  const std::uint64_t max = std::uint64_t{1} << 62;
  // 2^62 passes the index check (and the view is then outside the storage)...
  EXPECT_PEFT_ERROR(load_torch(views_file(1, 2, {1}, {1}, max)), ErrorCode::InvalidOffset,
                    "reaches element");
  // ...2^62 + 1 does not.
  EXPECT_PEFT_ERROR(load_torch(views_file(1, 2, {1}, {1}, max + 1)), ErrorCode::InvalidOffset,
                    "outside [0, 2^62]");
}

TEST(TorchBounds, RepeatingViewsAreBudgetedInclusively) {
  // A stride-0 view of one float as 16 elements: 64 bytes once copied.
  const Bytes file = views_file(1, 1, {16}, {0});
  TorchReadOptions options;
  options.max_expanded_bytes = 64;
  EXPECT_EQ(load_torch(file, options).at("t0").numel(), 16u);
  options.max_expanded_bytes = 63;
  EXPECT_PEFT_ERROR(load_torch(file, options), ErrorCode::LimitExceeded, "at most 63 bytes");
}

TEST(TorchBounds, AllCopiesTogetherTakeAtMostTheFilePlusTheBudget) {
  // Transposed views (each within the storage) of a 16x16 float storage: 1 KiB copied
  // per view; 64 of them copy 64 KiB out of a file of a few KiB.
  const std::size_t views = 64;
  const Bytes file = views_file(views, 256, {16, 16}, {1, 16});
  const std::uint64_t copied = views * 1024;
  ASSERT_GT(copied, file.size());
  TorchReadOptions options;
  options.max_expanded_bytes = copied - file.size();
  EXPECT_EQ(load_torch(file, options).size(), views);
  options.max_expanded_bytes = copied - file.size() - 1;
  EXPECT_PEFT_ERROR(load_torch(file, options), ErrorCode::LimitExceeded,
                    "non-contiguous views would copy");
  // Contiguous views are never copied: a thousand views of one storage cost nothing.
  EXPECT_EQ(load_torch(views_file(1000, 256, {16, 16}, {16, 1}), options).size(), 1000u);
}

TEST(TorchBounds, VersionRecordIsOneToTen) {
  const auto file = [](const std::string& version) {
    return torch_zip({{"data.pkl", views_pickle(1, 2, {2}, {1})},
                      {"data/0", std::string(8, '\0')},
                      {"version", version}});
  };
  EXPECT_EQ(load_torch(file("1\n")).size(), 1u);
  EXPECT_EQ(load_torch(file("10\n")).size(), 1u);
  EXPECT_PEFT_ERROR(load_torch(file("0\n")), ErrorCode::UnsupportedFormat, "expected 1 to 10");
  EXPECT_PEFT_ERROR(load_torch(file("11\n")), ErrorCode::UnsupportedFormat, "expected 1 to 10");
  EXPECT_PEFT_ERROR(load_torch(file("0000001")), ErrorCode::UnsupportedFormat, "not supported");
}

// ---- adapter_config.json --------------------------------------------------------------------

TEST(ConfigBounds, JsonNestsAtMost513Levels) {
  const auto text = [](std::size_t depth) {
    return R"({"peft_type": "LORA", "x": )" + nested_arrays(depth) + "}";
  };
  EXPECT_NO_THROW(PeftConfig::from_json_text(text(512), "bound.json"));
  EXPECT_PEFT_ERROR(PeftConfig::from_json_text(text(513), "bound.json"), ErrorCode::InvalidJson,
                    "nesting too deep");
}

TEST(ConfigBounds, IntegersMustFit64Bits) {
  const auto text = [](const std::string& r) { return R"({"peft_type": "LORA", "r": )" + r + "}"; };
  EXPECT_NO_THROW(PeftConfig::from_json_text(text("18446744073709551615"), "bound.json"));
  EXPECT_NO_THROW(PeftConfig::from_json_text(text("-9223372036854775808"), "bound.json"));
  EXPECT_PEFT_ERROR(PeftConfig::from_json_text(text("18446744073709551616"), "bound.json"),
                    ErrorCode::Unsupported, "");
  EXPECT_PEFT_ERROR(PeftConfig::from_json_text(text("-9223372036854775809"), "bound.json"),
                    ErrorCode::Unsupported, "");
}

TEST(ConfigBounds, FilesAbove64MiBAreRefusedUnread) {
  testing::TempDir dir;
  const fs::path file = dir / "adapter_config.json";
  const std::string text = R"({"peft_type": "LORA"})";
  {
    std::ofstream out(file, std::ios::binary);
    out << text;
  }
  const std::uintmax_t limit = std::uintmax_t{64} << 20;
  fs::resize_file(file, limit);  // NUL padding: invalid JSON, but it is read
  EXPECT_PEFT_ERROR(PeftConfig::load(file), ErrorCode::InvalidJson, "");
  fs::resize_file(file, limit + 1);
  EXPECT_PEFT_ERROR(PeftConfig::load(file), ErrorCode::LimitExceeded, "too large");
}

}  // namespace
}  // namespace peft
