// torch.save .bin files: every fixture reads exactly as its safetensors sibling, what
// we write reads back (and is what torch.save writes), and a hostile corpus built
// here is refused with typed errors, never a crash or a hang.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/pickle.hpp"
#include "formats/zip.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using formats::PickleBuilder;
using formats::PickledTensor;
using Bytes = std::vector<std::byte>;

template <std::size_t N>
std::string raw(const char (&text)[N]) {
  return std::string(text, N - 1);
}

Bytes to_bytes(std::string_view text) {
  Bytes out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

StateDict load(const Bytes& bytes, const TorchReadOptions& options = {}) {
  auto owner = std::make_shared<Bytes>(bytes);
  return load_torch_bytes(*owner, owner, "test.bin", options);
}

void expect_same(const StateDict& actual, const StateDict& expected) {
  ASSERT_EQ(actual.keys(), expected.keys());
  for (const auto& [key, tensor] : expected) {
    SCOPED_TRACE(key);
    const Tensor& got = actual.at(key);
    EXPECT_EQ(got.dtype(), tensor.dtype());
    EXPECT_EQ(got.shape(), tensor.shape());
    EXPECT_TRUE(got.equals(tensor));
  }
}

// ---- hand-made archives ----------------------------------------------------------

struct Record {
  std::string name;  // below the archive folder
  std::string data;
};

Bytes torch_zip(const std::vector<Record>& records, const std::string& archive = "archive") {
  Bytes out;
  formats::ZipWriter zip(
      [&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); });
  for (const auto& r : records) zip.add(archive + "/" + r.name, std::string_view(r.data));
  zip.finish();
  return out;
}

// A torch.save-shaped file: data.pkl, byteorder, the storages, version.
Bytes torch_file(const std::string& pickle, const std::vector<Record>& storages,
                 const std::string& byteorder = "little", const std::string& version = "3\n") {
  std::vector<Record> records{{"data.pkl", pickle}, {"byteorder", byteorder}};
  for (const auto& s : storages) records.push_back({"data/" + s.name, s.data});
  records.push_back({"version", version});
  return torch_zip(records);
}

// One F32 tensor with the given geometry over storage "0" of `numel` elements.
std::string one_tensor_pickle(std::uint64_t numel, std::uint64_t offset,
                              std::vector<std::uint64_t> size, std::vector<std::uint64_t> stride,
                              DType dtype = DType::F32) {
  PickledTensor p;
  p.key = "w";
  p.type = formats::torch_type_of(dtype);
  p.untyped_storage = p.type->storage_name.empty();
  p.storage_key = "0";
  p.storage_numel = numel;
  p.storage_offset = offset;
  p.size = size;
  p.stride = stride;
  return formats::pickle_torch_state_dict(std::span(&p, 1));
}

std::string floats(std::initializer_list<float> values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), std::data(values), out.size());
  return out;
}

// A pickle that wraps `body` (which must leave one value) in PROTO 2 ... STOP.
std::string program(const std::string& body) {
  return raw("\x80\x02") + body + ".";
}

// ---- fixtures -----------------------------------------------------------------------

// The case.json that describes `bin` and the file's key in its "files" map.
std::pair<nlohmann::json, std::string> case_for(const fs::path& bin) {
  for (fs::path dir = bin.parent_path(); !dir.empty() && dir != dir.parent_path();
       dir = dir.parent_path()) {
    if (fs::exists(dir / "case.json")) {
      return {nlohmann::json::parse(testing::read_text(dir / "case.json")),
              fs::relative(bin, dir).generic_string()};
    }
  }
  return {nlohmann::json(), ""};
}

TEST(TorchFileFixtures, PeftRefBinFilesEqualTheirSafetensorsSiblings) {
  const auto files = testing::find_files(testing::peft_ref_root(), "adapter_model.bin");
  ASSERT_FALSE(files.empty()) << "no .bin fixtures under " << testing::peft_ref_root();
  std::size_t groups_checked = 0;
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const StateDict bin = load_torch_file(path);
    const fs::path sibling = path.parent_path() / "adapter_model.safetensors";
    ASSERT_TRUE(fs::exists(sibling));
    const StateDict safe = SafetensorsFile::open(sibling).state_dict();
    ASSERT_EQ(bin.size(), safe.size());
    for (const auto& [key, tensor] : safe) {
      SCOPED_TRACE(key);
      const Tensor* got = bin.find(key);
      ASSERT_NE(got, nullptr);
      EXPECT_EQ(got->dtype(), tensor.dtype());
      EXPECT_EQ(got->shape(), tensor.shape());
      EXPECT_TRUE(got->equals(tensor));
      EXPECT_FALSE(got->is_heap()) << "expected a zero-copy view of the mapped file";
    }

    const auto [meta, name] = case_for(path);
    if (!meta.contains("files") || !meta["files"].contains(name)) continue;
    const auto& info = meta["files"][name];
    if (info.contains("keys_in_pickle_order")) {
      EXPECT_EQ(bin.keys(), info["keys_in_pickle_order"].get<std::vector<std::string>>());
    }
    for (const auto& group : info.value("aliased_in_file", nlohmann::json::array())) {
      const auto names = group.get<std::vector<std::string>>();
      for (std::size_t i = 1; i < names.size(); ++i) {
        EXPECT_TRUE(bin.at(names[0]).overlaps(bin.at(names[i])))
            << names[0] << " and " << names[i] << " should share memory";
      }
      ++groups_checked;
    }
  }
  std::cout << "[ NOTE     ] " << files.size() << " .bin fixtures matched, " << groups_checked
            << " shared-storage groups stayed shared\n";
}

// What a StateDict cannot carry: a tensor object under two keys (torch.save memoises
// it), parameters, strides other than PyTorch's canonical C order (size-1 dimensions
// may carry any stride), and storage bytes no tensor uses. Without those, our
// data.pkl must be torch.save's, byte for byte.
bool state_dict_holds_everything(const formats::PickleValue& root, std::string_view pickle) {
  if (pickle.find("_rebuild_parameter") != std::string_view::npos) return false;
  std::set<const formats::PickleValue*> objects;
  std::map<std::string, std::pair<std::int64_t, std::vector<std::pair<std::int64_t, std::int64_t>>>>
      used;  // storage key → (numel, element ranges used)
  for (std::size_t i = 1; i < root.items.size(); i += 2) {
    const formats::PickleValue& t = *root.items[i];
    if (!objects.insert(&t).second) return false;
    std::int64_t expected = 1, numel = 1;
    const auto& size = t.items[2]->items;
    const auto& stride = t.items[3]->items;
    for (std::size_t d = size.size(); d-- > 0;) {
      if (stride[d]->integer != expected) return false;
      expected *= std::max<std::int64_t>(size[d]->integer, 1);
      numel *= size[d]->integer;
    }
    auto& [storage_numel, ranges] = used[t.items[0]->text];
    storage_numel = t.items[0]->integer;
    ranges.emplace_back(t.items[1]->integer, t.items[1]->integer + numel);
  }
  for (auto& [key, entry] : used) {
    auto& [numel, ranges] = entry;
    std::sort(ranges.begin(), ranges.end());
    std::int64_t reached = 0;
    for (const auto& [begin, end] : ranges) {
      if (begin > reached) return false;
      reached = std::max(reached, end);
    }
    if (reached != numel) return false;
  }
  return true;
}

TEST(TorchFileFixtures, RewritingPeftRefFilesGivesTorchSaveDataPkl) {
  std::size_t identical = 0;
  for (const auto& path : testing::find_files(testing::peft_ref_root(), "adapter_model.bin")) {
    SCOPED_TRACE(path.string());
    const Bytes original = testing::read_bytes(path);
    const auto source = formats::ZipArchive::open(original, path.string());
    const auto pkl = source.data(source.entries().front());
    const auto tree = formats::unpickle(pkl, path.string());

    const StateDict loaded = load_torch_file(path);
    const Bytes written =
        serialize_torch(loaded, {.durable = false, .archive_name = "adapter_model"});
    expect_same(load(written), loaded);
    const std::string_view text(reinterpret_cast<const char*>(pkl.data()), pkl.size());
    if (!state_dict_holds_everything(tree.root(), text)) continue;
    const auto ours = formats::ZipArchive::open(written, "written");
    const auto our_pkl = ours.data(*ours.find("adapter_model/data.pkl"));
    EXPECT_TRUE(std::equal(pkl.begin(), pkl.end(), our_pkl.begin(), our_pkl.end()));
    ++identical;
  }
  std::cout << "[ NOTE     ] " << identical << " rewritten data.pkl files equal torch.save's\n";
  EXPECT_GT(identical, 0u);
}

bool has_end_record(const Bytes& bytes) {
  const std::size_t window = std::min<std::size_t>(bytes.size(), 22 + 65535);
  for (std::size_t i = bytes.size() - window; i + 4 <= bytes.size(); ++i) {
    if (std::memcmp(bytes.data() + i, "PK\x05\x06", 4) == 0) return true;
  }
  return false;
}

TEST(TorchFileFixtures, RealAdapterBinFilesLoad) {
  const fs::path root = testing::real_adapters_root();
  if (root.empty()) GTEST_SKIP() << "../shared/fixtures/real-adapters is absent";
  std::size_t loaded = 0, refused = 0, paired = 0;
  for (const auto& path : testing::find_files(root, "adapter_model.bin")) {
    SCOPED_TRACE(path.string());
    const Bytes bytes = testing::read_bytes(path);
    const bool zip = bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\x03\x04", 4) == 0;
    if (zip && !has_end_record(bytes)) {
      // A cut-off upload: refused, saying so.
      EXPECT_PEFT_ERROR(load_torch_file(path), ErrorCode::InvalidZip, "truncated");
      ++refused;
      continue;
    }
    const StateDict bin = load_torch_file(path);
    EXPECT_FALSE(bin.empty());
    ++loaded;
    expect_same(load(serialize_torch(bin)), bin);

    const fs::path sibling = path.parent_path() / "adapter_model.safetensors";
    if (!fs::exists(sibling) || fs::file_size(sibling) == 0) continue;
    const StateDict safe = SafetensorsFile::open(sibling).state_dict();
    std::set<std::string> bin_keys, safe_keys;
    for (const auto& [key, t] : bin) bin_keys.insert(key);
    for (const auto& [key, t] : safe) safe_keys.insert(key);
    EXPECT_EQ(bin_keys, safe_keys);
    for (const auto& [key, tensor] : safe) {
      if (const Tensor* other = bin.find(key)) {
        EXPECT_EQ(other->dtype(), tensor.dtype()) << key;
        EXPECT_EQ(other->shape(), tensor.shape()) << key;
      }
    }
    ++paired;
  }
  std::cout << "[ NOTE     ] real adapters: " << loaded << " .bin files loaded, " << refused
            << " truncated ones refused, " << paired << " compared with a safetensors twin\n";
  EXPECT_GT(loaded, 0u);
}

// ---- writing --------------------------------------------------------------------------

Tensor patterned(DType dtype, Shape shape, unsigned seed) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  auto bytes = t.mutable_bytes();
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto v = static_cast<unsigned>(i * 37 + seed * 11 + 1);
    bytes[i] = static_cast<std::byte>(dtype == DType::BOOL ? (v & 1) : (v & 0xFF));
  }
  return t;
}

const DType kWritable[] = {DType::F64,         DType::F32,         DType::F16,     DType::BF16,
                           DType::I64,         DType::I32,         DType::I16,     DType::I8,
                           DType::U8,          DType::BOOL,        DType::C64,     DType::U16,
                           DType::U32,         DType::U64,         DType::F8_E4M3, DType::F8_E5M2,
                           DType::F8_E4M3FNUZ, DType::F8_E5M2FNUZ, DType::F8_E8M0};

TEST(TorchFile, RoundTripsEveryDtypeAndShape) {
  StateDict sd;
  unsigned seed = 0;
  for (const DType dtype : kWritable) {
    const std::string name(dtype_name(dtype));
    sd.set(name + ".matrix", patterned(dtype, {3, 5}, ++seed));
    sd.set(name + ".scalar", patterned(dtype, {}, ++seed));
    sd.set(name + ".empty", patterned(dtype, {2, 0, 3}, ++seed));
    sd.set(name + ".rank4", patterned(dtype, {2, 1, 3, 2}, ++seed));
  }
  const StateDict back = load(serialize_torch(sd));
  expect_same(back, sd);
  for (const auto& [key, tensor] : back) {
    if (tensor.nbytes() > 0) {
      EXPECT_FALSE(tensor.is_heap()) << key;
    }
  }
}

TEST(TorchFile, LegacyStorageDtypesUseRebuildTensorV2) {
  for (const DType dtype : kWritable) {
    SCOPED_TRACE(dtype_name(dtype));
    StateDict sd;
    sd.set("t", patterned(dtype, {4}, 1));
    const Bytes file = serialize_torch(sd);
    const auto archive = formats::ZipArchive::open(file, "x");
    const auto pkl = archive.data(*archive.find("archive/data.pkl"));
    const std::string text(reinterpret_cast<const char*>(pkl.data()), pkl.size());
    const bool legacy = !formats::torch_type_of(dtype)->storage_name.empty();
    EXPECT_EQ(text.find("_rebuild_tensor_v2") != std::string::npos, legacy);
    EXPECT_EQ(text.find("torch.storage\nUntypedStorage") != std::string::npos, !legacy);
  }
}

TEST(TorchFile, WrittenArchiveHasTheRecordsTorchSaveWrites) {
  StateDict sd;
  sd.set("a", patterned(DType::F32, {4}, 1));
  sd.set("b", patterned(DType::BF16, {2, 2}, 2));
  const Bytes file = serialize_torch(sd, {.durable = false, .archive_name = "adapter_model"});
  const auto archive = formats::ZipArchive::open(file, "x");
  std::vector<std::string> names;
  for (const auto& e : archive.entries()) {
    names.push_back(e.name);
    EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
  }
  const std::vector<std::string> expected = {"adapter_model/data.pkl",
                                             "adapter_model/.format_version",
                                             "adapter_model/.storage_alignment",
                                             "adapter_model/byteorder",
                                             "adapter_model/data/0",
                                             "adapter_model/data/1",
                                             "adapter_model/version"};
  EXPECT_EQ(names, expected);
  auto text = [&](const char* name) {
    const auto b = archive.data(*archive.find(name));
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  };
  EXPECT_EQ(text("adapter_model/version"), "3\n");
  EXPECT_EQ(text("adapter_model/byteorder"), "little");
  EXPECT_EQ(text("adapter_model/.storage_alignment"), "64");
}

TEST(TorchFile, SharedStoragesStayShared) {
  // One 10-float buffer: the whole of it twice, a slice, and an overlapping slice.
  auto buffer = std::make_shared<Bytes>(40);
  for (std::size_t i = 0; i < 10; ++i) {
    const float v = static_cast<float>(i) + 0.5f;
    std::memcpy(buffer->data() + 4 * i, &v, 4);
  }
  const std::span<const std::byte> all(*buffer);
  StateDict sd;
  sd.set("whole", Tensor::view(DType::F32, {2, 5}, all, buffer));
  sd.set("alias", Tensor::view(DType::F32, {10}, all, buffer));
  sd.set("middle", Tensor::view(DType::F32, {3}, all.subspan(8, 12), buffer));
  sd.set("separate", patterned(DType::F32, {3}, 9));
  const Bytes file = serialize_torch(sd);

  const auto archive = formats::ZipArchive::open(file, "x");
  std::size_t storages = 0;
  for (const auto& e : archive.entries()) storages += e.name.starts_with("archive/data/");
  EXPECT_EQ(storages, 2u);

  const StateDict back = load(file);
  expect_same(back, sd);
  EXPECT_TRUE(back.at("whole").overlaps(back.at("alias")));
  EXPECT_TRUE(back.at("whole").overlaps(back.at("middle")));
  EXPECT_EQ(back.at("middle").bytes().data(), back.at("whole").bytes().data() + 8);
  EXPECT_FALSE(back.at("separate").overlaps(back.at("whole")));
}

TEST(TorchFile, OverlapsThatNoStorageCanExpressAreCopied) {
  auto buffer = std::make_shared<Bytes>(16);
  for (std::size_t i = 0; i < 16; ++i) (*buffer)[i] = static_cast<std::byte>(i);
  const std::span<const std::byte> all(*buffer);
  StateDict sd;
  sd.set("f32", Tensor::view(DType::F32, {4}, all, buffer));
  sd.set("i16", Tensor::view(DType::I16, {2}, all.subspan(4, 4), buffer));  // other dtype
  sd.set("odd", Tensor::view(DType::F32, {2}, all.subspan(1, 8), buffer));  // half an element
  const StateDict back = load(serialize_torch(sd));
  expect_same(back, sd);
  EXPECT_FALSE(back.at("f32").overlaps(back.at("i16")));
  EXPECT_FALSE(back.at("f32").overlaps(back.at("odd")));
}

TEST(TorchFile, SaveIsAtomicAndNamesTheArchiveAfterTheFile) {
  testing::TempDir dir;
  StateDict sd;
  sd.set("x", patterned(DType::F32, {2}, 3));
  const fs::path path = dir / "adapter_model.bin";
  testing::write_bytes(path, to_bytes("old contents"));
  save_torch_file(sd, path);
  expect_same(load_torch_file(path), sd);
  const Bytes written = testing::read_bytes(path);
  EXPECT_EQ(formats::ZipArchive::open(written, "x").entries().front().name,
            "adapter_model/data.pkl");
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1u) << "no temporary file may remain";

  save_torch_file(sd, dir / "model.v2.pt");
  EXPECT_EQ(formats::ZipArchive::open(testing::read_bytes(dir / "model.v2.pt"), "x")
                .entries()
                .front()
                .name,
            "model.v2/data.pkl");
  save_torch_file(sd, dir / "mod\xc3\xa8le.bin");
  EXPECT_EQ(formats::ZipArchive::open(testing::read_bytes(dir / "mod\xc3\xa8le.bin"), "x")
                .entries()
                .front()
                .name,
            "archive/data.pkl");
  EXPECT_PEFT_ERROR(save_torch_file(sd, dir / "x.bin", {.durable = false, .archive_name = "a/b"}),
                    ErrorCode::InvalidArgument, "single folder name");
}

TEST(TorchFile, WriterRefusesWhatTorchCannotHold) {
  StateDict sub_byte;
  sub_byte.set("f4", Tensor::zeros(DType::F4, {4}));
  EXPECT_PEFT_ERROR(serialize_torch(sub_byte), ErrorCode::UnsupportedDType, "F4");
  StateDict meta;
  meta.set("m", Tensor::meta(DType::F32, {4}));
  EXPECT_PEFT_ERROR(serialize_torch(meta), ErrorCode::InvalidArgument, "meta tensor");
  StateDict bad_key;
  bad_key.set("\xff", Tensor::zeros(DType::F32, {1}));
  EXPECT_PEFT_ERROR(serialize_torch(bad_key), ErrorCode::InvalidArgument, "UTF-8");
}

// ---- reading: views, byte order, legacy -------------------------------------------

TEST(TorchFile, NonContiguousViewsAreMaterialisedInCOrder) {
  // A 2x3 transpose of a 3x2 storage [0..5]: element (i, j) = storage[j * 2 + i].
  const Bytes file =
      torch_file(one_tensor_pickle(6, 0, {2, 3}, {1, 2}), {{"0", floats({0, 1, 2, 3, 4, 5})}});
  const StateDict sd = load(file);
  EXPECT_EQ(sd.at("w").to_floats(), (std::vector<float>{0, 2, 4, 1, 3, 5}));
  EXPECT_TRUE(sd.at("w").is_heap());
  // An offset contiguous slice stays a view; a zero stride repeats.
  const StateDict slice = load(
      torch_file(one_tensor_pickle(6, 2, {2, 2}, {2, 1}), {{"0", floats({0, 1, 2, 3, 4, 5})}}));
  EXPECT_EQ(slice.at("w").to_floats(), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_FALSE(slice.at("w").is_heap());
  const StateDict broadcast = load(
      torch_file(one_tensor_pickle(6, 1, {2, 3}, {0, 1}), {{"0", floats({0, 1, 2, 3, 4, 5})}}));
  EXPECT_EQ(broadcast.at("w").to_floats(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  // Size-1 dimensions may carry any stride and stay contiguous.
  const StateDict ones = load(torch_file(one_tensor_pickle(6, 0, {1, 6, 1}, {99, 1, 7}),
                                         {{"0", floats({0, 1, 2, 3, 4, 5})}}));
  EXPECT_FALSE(ones.at("w").is_heap());
}

TEST(TorchFile, MisalignedRecordsAreCopiedAlignedRecordsAreViews) {
  // A zip tool that does not pad: record data at an offset that is not a multiple of 4.
  Bytes file;
  for (std::size_t pad = 1; pad <= 4; ++pad) {
    file.clear();
    formats::ZipWriter zip(
        [&](std::span<const std::byte> b) { file.insert(file.end(), b.begin(), b.end()); }, 1);
    zip.add("a/data.pkl", std::string_view(one_tensor_pickle(3, 0, {3}, {1})));
    zip.add("a/padding", std::string_view(std::string(pad, 'p')));
    zip.add("a/data/0", std::string_view(floats({1, 2, 3})));
    zip.add("a/version", std::string_view("3"));
    zip.finish();
    if (formats::ZipArchive::open(file, "x").find("a/data/0")->data_offset % 4 != 0) break;
  }
  const auto archive = formats::ZipArchive::open(file, "x");
  ASSERT_NE(archive.find("a/data/0")->data_offset % 4, 0u);
  const StateDict sd = load(file);
  EXPECT_EQ(sd.at("w").to_floats(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(sd.at("w").bytes().data()) % 4, 0u);
  const auto unpadded = std::make_shared<Bytes>(file);
  const auto copied = load_torch_bytes(*unpadded, unpadded, "x").at("w").bytes().data();
  EXPECT_FALSE(copied >= unpadded->data() && copied < unpadded->data() + unpadded->size());
  // PyTorch's 64-byte padding keeps every record aligned: viewed in place.
  const auto padded = std::make_shared<Bytes>(
      torch_file(one_tensor_pickle(3, 0, {3}, {1}), {{"0", floats({1, 2, 3})}}));
  const auto viewed = load_torch_bytes(*padded, padded, "x").at("w").bytes().data();
  EXPECT_TRUE(viewed >= padded->data() && viewed < padded->data() + padded->size());
}

TEST(TorchFile, BigEndianFilesAreSwapped) {
  std::string big;
  for (const float v : {1.0f, -2.5f}) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &v, 4);
    for (int s = 24; s >= 0; s -= 8) big += static_cast<char>((bits >> s) & 0xFF);
  }
  const StateDict sd = load(torch_file(one_tensor_pickle(2, 0, {2}, {1}), {{"0", big}}, "big"));
  EXPECT_EQ(sd.at("w").to_floats(), (std::vector<float>{1.0f, -2.5f}));
  EXPECT_PEFT_ERROR(load(torch_file(one_tensor_pickle(2, 0, {2}, {1}), {{"0", big}}, "middle")),
                    ErrorCode::UnsupportedFormat, "byteorder");
}

TEST(TorchFile, OrderedDictsAndParametersAreStateDicts) {
  // OrderedDict() + SETITEMS + BUILD with _metadata, a parameter-wrapped tensor.
  const std::string tensor = one_tensor_pickle(2, 0, {2}, {1});
  // Reuse the tensor encoding: strip the dict wrapper of a one-entry pickle.
  const std::string value = tensor.substr(5, tensor.size() - 5 - 2);  // after "\x80\x02}q\0"
  PickleBuilder b;
  b.proto(2).global("collections", "OrderedDict").op(')').op('R').raw(value.substr(0, 0));
  std::string body = b.take().substr(2);
  body += "(" + value + "u";  // key 'w' and its tensor
  body += PickleBuilder().op('}').unicode("_metadata").op('}').op('s').take() + "b";
  const StateDict sd = load(torch_file(program(body), {{"0", floats({1, 2})}}));
  EXPECT_EQ(sd.at("w").to_floats(), (std::vector<float>{1, 2}));

  std::string param = PickleBuilder().global("torch._utils", "_rebuild_parameter").take();
  const std::string t = value.substr(value.find('c'));  // the tensor expression after the key
  param = "}" + PickleBuilder().unicode("p").take() + param + "(" + t + "\x89}t" + "Rs";
  EXPECT_EQ(load(torch_file(program(param), {{"0", floats({3, 4})}})).at("p").to_floats(),
            (std::vector<float>{3, 4}));
}

// The pre-1.6 format, built by hand: magic, protocol, sys_info, the object, the key
// list, then each storage as an 8-byte count and its bytes.
std::string legacy_tensor(const std::string& key, const std::string& root_key,
                          std::uint64_t root_numel, const std::string& view_key,
                          std::uint64_t view_offset, std::uint64_t view_size, std::uint64_t offset,
                          std::uint64_t size) {
  PickleBuilder b;
  b.unicode(key).global("torch._utils", "_rebuild_tensor_v2").op('(').op('(');
  b.unicode("storage").global("torch", "FloatStorage").unicode(root_key).unicode("cpu");
  b.integer(static_cast<std::int64_t>(root_numel));
  if (view_key.empty()) {
    b.op('N');
  } else {
    b.unicode(view_key).integer(static_cast<std::int64_t>(view_offset));
    b.integer(static_cast<std::int64_t>(view_size)).op('\x87');
  }
  b.op('t').op('Q').integer(static_cast<std::int64_t>(offset));
  b.integer(static_cast<std::int64_t>(size)).op('\x85').integer(1).op('\x85').op('\x89');
  b.global("collections", "OrderedDict").op(')').op('R').op('t').op('R');
  return b.take();
}

Bytes legacy_file(const std::string& entries,
                  const std::vector<std::pair<std::string, std::string>>& blocks,
                  bool truncate = false) {
  std::string out = raw("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
  out += program(PickleBuilder().integer(1001).take());
  out += program(PickleBuilder()
                     .op('}')
                     .op('(')
                     .unicode("protocol_version")
                     .integer(1001)
                     .unicode("little_endian")
                     .op('\x88')
                     .op('u')
                     .take());
  out += program("}(" + entries + "u");
  std::string keys = "]";
  keys += "(";
  for (const auto& [key, data] : blocks) keys += PickleBuilder().unicode(key).take();
  keys += "e";
  out += program(keys);
  for (const auto& [key, data] : blocks) {
    std::uint64_t count = data.size() / 4;
    for (int i = 0; i < 8; ++i, count >>= 8) out += static_cast<char>(count & 0xFF);
    out += data;
  }
  if (truncate) out.resize(out.size() - 3);
  return to_bytes(out);
}

TEST(TorchFile, LegacyFormatIsRead) {
  const std::string entries =
      legacy_tensor("a", "94", 4, "", 0, 0, 1, 3) + legacy_tensor("b", "94", 4, "", 0, 0, 0, 2) +
      legacy_tensor("c", "12", 6, "13", 2, 3, 1, 2);  // a view: storage 12 elements 2..4
  const Bytes file =
      legacy_file(entries, {{"12", floats({0, 1, 2, 3, 4, 5})}, {"94", floats({9, 8, 7, 6})}});
  const StateDict sd = load(file);
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(sd.at("a").to_floats(), (std::vector<float>{8, 7, 6}));
  EXPECT_EQ(sd.at("b").to_floats(), (std::vector<float>{9, 8}));
  EXPECT_EQ(sd.at("c").to_floats(), (std::vector<float>{3, 4}));
  EXPECT_TRUE(sd.at("a").overlaps(sd.at("b")));
  EXPECT_FALSE(sd.at("a").is_heap());

  EXPECT_PEFT_ERROR(
      load(legacy_file(entries, {{"12", floats({0, 1, 2, 3, 4, 5})}, {"94", floats({9, 8, 7, 6})}},
                       true)),
      ErrorCode::TensorInvalidInfo, "truncated");
  EXPECT_PEFT_ERROR(load(legacy_file(entries, {{"94", floats({9, 8, 7, 6})}})),
                    ErrorCode::InvalidPickle, "has no data");
  EXPECT_PEFT_ERROR(load(legacy_file(entries, {{"12", floats({0, 1, 2, 3, 4, 5})},
                                               {"94", floats({9, 8, 7, 6})},
                                               {"77", floats({1})}})),
                    ErrorCode::InvalidPickle, "listed but not used");
  EXPECT_PEFT_ERROR(
      load(legacy_file(entries, {{"12", floats({0, 1, 2, 3, 4})}, {"94", floats({9, 8, 7, 6})}})),
      ErrorCode::TensorInvalidInfo, "storage '12' holds 20 bytes");
  EXPECT_PEFT_ERROR(load(legacy_file(legacy_tensor("c", "12", 6, "13", 5, 3, 0, 1),
                                     {{"12", floats({0, 1, 2, 3, 4, 5})}})),
                    ErrorCode::InvalidOffset, "storage view");
  TorchReadOptions no_legacy;
  no_legacy.allow_legacy = false;
  EXPECT_PEFT_ERROR(load(file, no_legacy), ErrorCode::UnsupportedFormat, "legacy");
  // A plain pickle is not a PyTorch file.
  EXPECT_PEFT_ERROR(load(to_bytes(program("}"))), ErrorCode::UnsupportedFormat, "magic number");
}

// ---- refusals ---------------------------------------------------------------------------

TEST(TorchFile, OtherFormatsAreRefusedClearly) {
  EXPECT_PEFT_ERROR(load(Bytes{}), ErrorCode::UnsupportedFormat, "empty");
  EXPECT_PEFT_ERROR(load(to_bytes("PYTORCH1 and the rest")), ErrorCode::UnsupportedFormat,
                    "PYTORCH1");
  std::string tar(1024, '\0');
  tar.replace(257, 5, "ustar");
  EXPECT_PEFT_ERROR(load(to_bytes(tar)), ErrorCode::UnsupportedFormat, "tar format");
  EXPECT_PEFT_ERROR(load(to_bytes("{\"not\": \"torch\"}")), ErrorCode::UnsupportedFormat,
                    "is a JSON file, not a torch.save file");
  EXPECT_PEFT_ERROR(load(to_bytes("hello, world")), ErrorCode::UnsupportedFormat,
                    "not a PyTorch file");

  const std::string pickle = one_tensor_pickle(1, 0, {1}, {1});
  const std::string data = floats({1});
  EXPECT_PEFT_ERROR(load(torch_zip({{"data.pkl", pickle},
                                    {"constants.pkl", ""},
                                    {"code/__torch__.py", ""},
                                    {"version", "3"}})),
                    ErrorCode::UnsupportedFormat, "TorchScript");
  EXPECT_PEFT_ERROR(load(torch_zip({{"data.pkl", pickle}, {"data/0", data}})),
                    ErrorCode::UnsupportedFormat, "no 'archive/version' record");
  for (const std::string version : {"0", "11", "abc", "", "3 4"}) {
    EXPECT_PEFT_ERROR(load(torch_file(pickle, {{"0", data}}, "little", version)),
                      ErrorCode::UnsupportedFormat, "version");
  }
  EXPECT_NO_THROW(load(torch_file(pickle, {{"0", data}}, "little", "1")));
  EXPECT_NO_THROW(
      load(torch_zip({{"data.pkl", pickle}, {"data/0", data}, {".data/version", "3\n"}})));
  EXPECT_PEFT_ERROR(load(torch_zip({{"data/0", data}, {"version", "3"}})),
                    ErrorCode::UnsupportedFormat, "no 'archive/data.pkl' record");
  Bytes flat;
  formats::ZipWriter zip(
      [&](std::span<const std::byte> b) { flat.insert(flat.end(), b.begin(), b.end()); });
  zip.add("data.pkl", std::string_view(pickle));
  zip.finish();
  EXPECT_PEFT_ERROR(load(flat), ErrorCode::UnsupportedFormat, "not in a folder");
  // The archive name comes from the first entry, whatever it is.
  EXPECT_NO_THROW(
      load(torch_zip({{"data.pkl", pickle}, {"data/0", data}, {"version", "3"}}, "whatever name")));
}

TEST(TorchFile, NonStateDictsAreRefused) {
  const std::string data = floats({1});
  const std::string tensor = one_tensor_pickle(1, 0, {1}, {1});
  const std::string value = tensor.substr(5, tensor.size() - 5 - 2);
  const std::pair<std::string, const char*> cases[] = {
      {program("]"), "the saved object is a list"},
      {program("K\x05"), "the saved object is int 5"},
      {program("}K\x01" + value.substr(value.find('c')) + "s"), "a key is int 1"},
      {program("}" + PickleBuilder().unicode("nested").take() + "}s"), "'nested' holds a dict"},
      {program("}" + PickleBuilder().unicode("n").take() + "Ns"), "'n' holds None"},
  };
  for (const auto& [pickle, fragment] : cases) {
    SCOPED_TRACE(fragment);
    EXPECT_PEFT_ERROR(load(torch_file(pickle, {{"0", data}})), ErrorCode::UnsupportedFormat,
                      fragment);
  }
}

std::string with_global(const std::string& module, const std::string& name) {
  return program("}" + PickleBuilder().unicode("k").global(module, name).take() + ")Rs");
}
std::string with_stack_global(const std::string& module, const std::string& name) {
  return program("}" + PickleBuilder().unicode("k").unicode(module).unicode(name).take() +
                 "\x93)Rs");
}

TEST(TorchFileHostile, ForbiddenGlobalsNeverRun) {
  const std::pair<const char*, const char*> hostile[] = {
      {"os", "system"},        {"builtins", "eval"},
      {"subprocess", "Popen"}, {"posix", "system"},
      {"nt", "system"},        {"builtins", "exec"},
      {"__builtin__", "eval"}, {"runpy", "_run_code"},
      {"torch", "load"},       {"torch._tensor", "_rebuild_from_type_v2"},
  };
  for (const auto& [module, name] : hostile) {
    const std::string full = std::string(module) + "." + name;
    SCOPED_TRACE(full);
    EXPECT_PEFT_ERROR(load(torch_file(with_global(module, name), {})), ErrorCode::ForbiddenPickle,
                      full);
    EXPECT_PEFT_ERROR(load(torch_file(with_stack_global(module, name), {})),
                      ErrorCode::ForbiddenPickle, full);
  }
}

TEST(TorchFileHostile, ReduceOnlyRebuildsTensors) {
  // os.system smuggled as a string, then "called".
  const std::string call_string = program(
      "}" + PickleBuilder().unicode("k").unicode("os.system").unicode("id").take() + "\x85Rs");
  EXPECT_PEFT_ERROR(load(torch_file(call_string, {})), ErrorCode::ForbiddenPickle,
                    "not an allowlisted global");
  // A storage class called as a function.
  EXPECT_PEFT_ERROR(load(torch_file(with_global("torch", "FloatStorage"), {})),
                    ErrorCode::ForbiddenPickle, "REDUCE cannot call");
}

TEST(TorchFileHostile, ResourceBombsAreBounded) {
  // A memo bomb: one entry per opcode until the memo limit.
  std::string memo = "}N";
  for (std::uint32_t i = 0; i < 2000; ++i) memo += PickleBuilder().put(i).take();
  TorchReadOptions small;
  small.max_memo_entries = 1000;
  EXPECT_PEFT_ERROR(load(torch_file(program(memo + "0"), {}), small), ErrorCode::LimitExceeded,
                    "memo");
  // Deep MARK nesting.
  EXPECT_PEFT_ERROR(load(torch_file(program(std::string(20000, '(')), {})),
                    ErrorCode::LimitExceeded, "MARK");
  // Too many opcodes.
  small = {};
  small.max_opcodes = 100;
  EXPECT_PEFT_ERROR(
      load(torch_file(program("}" + std::string(200, 'N') + std::string(200, '0')), {}), small),
      ErrorCode::LimitExceeded, "opcodes");
  // A string that declares 4 GiB.
  EXPECT_PEFT_ERROR(load(torch_file(program(raw("}X\xff\xff\xff\xff")), {})),
                    ErrorCode::InvalidPickle, "truncated");
  // data.pkl larger than allowed.
  small = {};
  small.max_pickle_bytes = 16;
  EXPECT_PEFT_ERROR(
      load(torch_file(one_tensor_pickle(1, 0, {1}, {1}), {{"0", floats({1})}}), small),
      ErrorCode::LimitExceeded, "data.pkl");
}

TEST(TorchFileHostile, StorageRecordsMustMatchTheirDeclaration) {
  const std::string pickle = one_tensor_pickle(4, 0, {4}, {1});
  EXPECT_PEFT_ERROR(load(torch_file(pickle, {{"0", floats({1, 2, 3})}})),
                    ErrorCode::TensorInvalidInfo, "holds 12 bytes");
  EXPECT_PEFT_ERROR(load(torch_file(pickle, {{"0", floats({1, 2, 3, 4, 5})}})),
                    ErrorCode::TensorInvalidInfo, "holds 20 bytes");
  EXPECT_PEFT_ERROR(load(torch_file(pickle, {})), ErrorCode::InvalidZip,
                    "no 'archive/data/0' record");
  // Two references to storage "0" that disagree on its size.
  PickledTensor a, b;
  const std::vector<std::uint64_t> size{2}, stride{1};
  for (auto* p : {&a, &b}) {
    p->type = formats::torch_type_of(DType::F32);
    p->storage_key = "0";
    p->size = size;
    p->stride = stride;
  }
  a.key = "a";
  a.storage_numel = 4;
  b.key = "b";
  b.storage_numel = 2;
  const PickledTensor both[] = {a, b};
  EXPECT_PEFT_ERROR(
      load(torch_file(formats::pickle_torch_state_dict(both), {{"0", floats({1, 2, 3, 4})}})),
      ErrorCode::InvalidPickle, "different types or sizes");
}

TEST(TorchFileHostile, ViewsMustStayInsideTheirStorage) {
  const std::string data = floats({0, 1, 2, 3, 4, 5});
  const std::pair<std::string, const char*> cases[] = {
      {one_tensor_pickle(6, 5, {2}, {1}), "reaches element 6"},
      {one_tensor_pickle(6, 0, {2, 3}, {3, 2}), "reaches element 7"},
      {one_tensor_pickle(6, 6, {1}, {1}), "reaches element 6"},
      {one_tensor_pickle(6, 0, {7}, {1}), "reaches element 6"},
  };
  for (const auto& [pickle, fragment] : cases) {
    SCOPED_TRACE(fragment);
    EXPECT_PEFT_ERROR(load(torch_file(pickle, {{"0", data}})), ErrorCode::InvalidOffset, fragment);
  }
  const std::uint64_t negative = static_cast<std::uint64_t>(-1);
  EXPECT_PEFT_ERROR(load(torch_file(one_tensor_pickle(6, negative, {1}, {1}), {{"0", data}})),
                    ErrorCode::InvalidOffset, "storage offset -1");
  EXPECT_PEFT_ERROR(load(torch_file(one_tensor_pickle(6, 0, {2}, {negative}), {{"0", data}})),
                    ErrorCode::InvalidOffset, "stride -1");
  EXPECT_PEFT_ERROR(load(torch_file(one_tensor_pickle(6, 0, {negative}, {1}), {{"0", data}})),
                    ErrorCode::InvalidOffset, "size -1");
  const std::uint64_t huge = std::uint64_t{1} << 62;
  EXPECT_PEFT_ERROR(load(torch_file(one_tensor_pickle(6, 0, {huge, huge}, {1, 1}), {{"0", data}})),
                    ErrorCode::ValidationOverflow, "overflows");
  EXPECT_PEFT_ERROR(load(torch_file(one_tensor_pickle(6, 0, {2}, {huge}), {{"0", data}})),
                    ErrorCode::InvalidOffset, "reaches element");
  // Empty tensors read nothing, wherever they point.
  EXPECT_EQ(
      load(torch_file(one_tensor_pickle(6, 1000, {0, 5}, {5, 1}), {{"0", data}})).at("w").numel(),
      0u);
  // Broadcasting a 6-element storage to 2^40 elements passes the bounds check but may
  // not be materialised beyond the budget.
  const std::uint64_t big = std::uint64_t{1} << 20;
  EXPECT_PEFT_ERROR(load(torch_file(one_tensor_pickle(6, 0, {big, big}, {0, 0}), {{"0", data}})),
                    ErrorCode::LimitExceeded, "repeating a storage of 6");
  TorchReadOptions low_rank;
  low_rank.max_rank = 2;
  EXPECT_PEFT_ERROR(
      load(torch_file(one_tensor_pickle(6, 0, {1, 1, 6}, {6, 6, 1}), {{"0", data}}), low_rank),
      ErrorCode::LimitExceeded, "rank 3");
}

TEST(TorchFileHostile, ArchiveAttacks) {
  const std::string pickle = one_tensor_pickle(1, 0, {1}, {1});
  // Path traversal in record names.
  for (const std::string name : {"../data/0", "..", "a/../../b"}) {
    EXPECT_PEFT_ERROR(load(torch_zip({{"data.pkl", pickle}, {name, "x"}, {"version", "3"}})),
                      ErrorCode::InvalidZip, "escapes the archive");
  }
  // ZIP64 end records that contradict the classic one, or point outside the file.
  StateDict sd;
  sd.set("x", patterned(DType::F32, {2}, 1));
  const Bytes good = serialize_torch(sd);
  const std::size_t zip64_end = good.size() - 22 - 20 - 56;
  Bytes moved = good;
  moved[zip64_end + 48] ^= std::byte{0x40};  // central directory offset
  EXPECT_PEFT_ERROR(load(moved), ErrorCode::InvalidZip, "disagree");
  Bytes lost = good;
  lost[good.size() - 22 - 20 + 15] = std::byte{0x7F};  // locator → far beyond the end
  EXPECT_PEFT_ERROR(load(lost), ErrorCode::InvalidZip, "outside the archive");
  // A storage key that walks out of the data folder only names a missing record.
  PickledTensor p;
  const std::vector<std::uint64_t> one{1};
  p.key = "w";
  p.type = formats::torch_type_of(DType::F32);
  p.storage_key = "../../version";
  p.storage_numel = 0;
  p.size = one;
  p.stride = one;
  EXPECT_THROW(load(torch_file(formats::pickle_torch_state_dict(std::span(&p, 1)), {})), Error);
}

// Every prefix of a valid file, and every single-byte corruption of it: loads or a
// typed error, never a crash (run under the sanitizers) or a hang.
TEST(TorchFileHostile, TruncationsAndBitFlipsAreSafe) {
  StateDict sd;
  auto buffer = std::make_shared<Bytes>(24);
  sd.set("a", Tensor::view(DType::F32, {6}, *buffer, buffer));
  sd.set("b",
         Tensor::view(DType::F32, {2}, std::span<const std::byte>(*buffer).subspan(8, 8), buffer));
  sd.set("c", patterned(DType::BF16, {2, 2}, 4));
  const Bytes file = serialize_torch(sd);
  for (std::size_t n = 0; n < file.size(); ++n) {
    const Bytes cut(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(load(cut), Error) << "a file cut at " << n << " bytes loaded";
  }
  for (const bool crc : {true, false}) {
    TorchReadOptions options;
    options.verify_crc = crc;
    for (std::size_t i = 0; i < file.size(); ++i) {
      for (const unsigned mask : {0x01u, 0x40u, 0xFFu}) {
        Bytes bad = file;
        bad[i] ^= static_cast<std::byte>(mask);
        try {
          (void)load(bad, options);
        } catch (const Error&) {
        }
      }
    }
  }
}

// ---- interoperability with PyTorch itself ---------------------------------------

TEST(TorchFileInterop, PythonTorchLoadsWhatWeWrite) {
  const auto probe = testing::run_command({"/usr/bin/python3", "-c", "import torch"});
  if (probe.exit_code != 0) {
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch (install python3-torch to run this "
                    "check): "
                 << probe.err.substr(0, 200);
  }
  testing::TempDir dir;
  auto buffer = std::make_shared<Bytes>(24);
  for (std::size_t i = 0; i < 6; ++i) {
    const float v = static_cast<float>(i) * 1.25f;
    std::memcpy(buffer->data() + 4 * i, &v, 4);
  }
  StateDict sd;
  sd.set("whole", Tensor::view(DType::F32, {2, 3}, *buffer, buffer));
  sd.set("tail",
         Tensor::view(DType::F32, {2}, std::span<const std::byte>(*buffer).subspan(16), buffer));
  const std::vector<std::int64_t> ints{-3, 0, 7, 1LL << 40};
  sd.set("long", Tensor::from_ints(DType::I64, {4}, ints));
  const std::vector<float> halves{0.5f, -1.0f, 3.0f};
  sd.set("half", Tensor::from_floats(DType::F16, {3}, halves));
  sd.set("bf16", Tensor::from_floats(DType::BF16, {3}, halves));
  const fs::path path = dir / "adapter_model.bin";
  save_torch_file(sd, path);

  const std::string script =
      "import json, sys, torch\n"
      "sd = torch.load(sys.argv[1], weights_only=True)\n"
      "out = {k: v.double().flatten().tolist() for k, v in sd.items()}\n"
      "out['__keys__'] = list(sd.keys())\n"
      "storage = lambda t: t.untyped_storage() if hasattr(t, 'untyped_storage') else t.storage()\n"
      "out['__shared__'] = storage(sd['whole']).data_ptr() == storage(sd['tail']).data_ptr()\n"
      "print(json.dumps(out))\n";
  const auto result = testing::run_command({"/usr/bin/python3", "-c", script, path.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["__keys__"].get<std::vector<std::string>>(), sd.keys());
  EXPECT_TRUE(json["__shared__"].get<bool>());
  for (const auto& [key, tensor] : sd) {
    EXPECT_EQ(json[key].get<std::vector<double>>(), tensor.to_doubles()) << key;
  }
}

}  // namespace
}  // namespace peft
