// torch.save files, read and written: one format's reader (zip or legacy stream -> tensors
// with shared storages) and writer kept together, hence one file over 600 lines.
#include "peft/torch_file.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <unordered_map>

#include <fmt/format.h>

#include "core/text.hpp"
#include "formats/atomic_file.hpp"
#include "formats/mapped_file.hpp"
#include "formats/pickle.hpp"
#include "formats/zip.hpp"
#include "peft/error.hpp"
#include "peft/file_format.hpp"

namespace peft {
namespace {

using text::printable;

using formats::PickleKind;
using formats::PickleValue;
using formats::TorchType;

// Sizes, strides, offsets and element counts above this are refused (docs/formats.md "The
// restricted unpickler / Limits").
constexpr std::uint64_t kMaxIndex = std::uint64_t{1} << 62;
constexpr std::uint64_t kMinVersion = 1;
constexpr std::uint64_t kMaxVersion = 10;
// The legacy format's first pickle: 0x1950a86a20f9469cfc6c, little-endian.
constexpr unsigned char kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                          0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr std::int64_t kLegacyProtocol = 1001;

std::string_view as_text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

bool starts_with(std::span<const std::byte> bytes, std::string_view prefix) {
  return bytes.size() >= prefix.size() && as_text(bytes.first(prefix.size())) == prefix;
}

// ---- reading: tensors from the pickle tree -------------------------------------

// Supplies the raw bytes of a storage by key (a zip record or a legacy data block).
using StorageFetch = std::function<std::span<const std::byte>(const std::string& key)>;

struct LoadedStorage {
  const TorchType* class_type = nullptr;    // nullptr: untyped (bytes)
  const TorchType* element_type = nullptr;  // what its tensors are made of
  std::int64_t numel = 0;
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> owner;
};

class TensorBuilder {
 public:
  TensorBuilder(const std::string& source, std::shared_ptr<const void> owner,
                std::uint64_t input_size, bool big_endian, const TorchReadOptions& options,
                StorageFetch fetch)
      : source_(source),
        owner_(std::move(owner)),
        input_size_(input_size),
        big_endian_(big_endian),
        options_(options),
        fetch_(std::move(fetch)) {}

  StateDict build(const PickleValue& root) {
    for_each_entry(root, source_, [&](const std::string& key, const PickleValue& value) {
      out_.set(key, tensor(key, value));
    });
    return std::move(out_);
  }

  // Checks the state-dict shape (dict of str → tensor) and visits every entry.
  static void for_each_entry(const PickleValue& root, const std::string& source,
                             const std::function<void(const std::string&, const PickleValue&)>& f) {
    if (!root.is(PickleKind::Dict)) {
      throw Error(ErrorCode::UnsupportedFormat, source,
                  fmt::format("not a state dict: the saved object is {}, not a dict of tensors",
                              formats::describe(root)));
    }
    for (std::size_t i = 0; i + 1 < root.items.size(); i += 2) {
      const PickleValue& key = *root.items[i];
      const PickleValue& value = *root.items[i + 1];
      if (!key.is(PickleKind::String)) {
        throw Error(
            ErrorCode::UnsupportedFormat, source,
            fmt::format("not a state dict: a key is {}, not a string", formats::describe(key)));
      }
      if (!value.is(PickleKind::Tensor)) {
        throw Error(ErrorCode::UnsupportedFormat, source,
                    fmt::format("not a state dict: '{}' holds {}, not a tensor",
                                printable(key.text), formats::describe(value)));
      }
      f(key.text, value);
    }
  }

 private:
  [[noreturn]] void fail(ErrorCode code, const std::string& key, const std::string& detail) const {
    throw Error(code, source_, fmt::format("tensor '{}': {}", printable(key), detail));
  }

  std::uint64_t index_value(const std::string& key, const PickleValue& v, const char* what) const {
    if (v.integer < 0 || static_cast<std::uint64_t>(v.integer) > kMaxIndex) {
      fail(ErrorCode::InvalidOffset, key,
           fmt::format("{} {} is outside [0, 2^62]", what, v.integer));
    }
    return static_cast<std::uint64_t>(v.integer);
  }

  // Byte-swaps each element in place (complex numbers: each half).
  static void swap_elements(std::span<std::byte> bytes, const TorchType& type) {
    std::size_t width = type.element_size;
    if (type.dtype_name.starts_with("complex")) width /= 2;
    if (width <= 1) return;
    for (std::size_t i = 0; i + width <= bytes.size(); i += width) {
      std::reverse(bytes.begin() + static_cast<std::ptrdiff_t>(i),
                   bytes.begin() + static_cast<std::ptrdiff_t>(i + width));
    }
  }

  // Loads a storage once per key; later references must agree with the first.
  const LoadedStorage& storage(const std::string& key, const PickleValue& node,
                               const TorchType& element_type) {
    const PickleValue& cls = *node.items[0];
    const auto it = storages_.find(node.text);
    if (it != storages_.end()) {
      const LoadedStorage& seen = it->second;
      if (seen.class_type != cls.torch_type || seen.numel != node.integer ||
          seen.element_type != &element_type) {
        fail(ErrorCode::InvalidPickle, key,
             fmt::format("storage '{}' is referenced with different types or sizes",
                         printable(node.text)));
      }
      return seen;
    }
    LoadedStorage loaded;
    loaded.class_type = cls.torch_type;
    loaded.element_type = &element_type;
    loaded.numel = node.integer;
    const std::size_t unit = cls.torch_type != nullptr ? cls.torch_type->element_size : 1;
    std::uint64_t expected = 0;
    if (static_cast<std::uint64_t>(node.integer) > kMaxIndex ||
        __builtin_mul_overflow(static_cast<std::uint64_t>(node.integer), std::uint64_t{unit},
                               &expected)) {
      fail(ErrorCode::ValidationOverflow, key,
           fmt::format("storage '{}' declares {} elements", printable(node.text), node.integer));
    }
    loaded.bytes = fetch_(node.text);
    if (loaded.bytes.size() != expected) {
      fail(ErrorCode::TensorInvalidInfo, key,
           fmt::format("storage '{}' holds {} bytes but its persistent id declares {} elements "
                       "of {} bytes ({} bytes)",
                       printable(node.text), loaded.bytes.size(), node.integer, unit, expected));
    }
    loaded.owner = owner_;
    // A view of the file where its bytes are usable in place (PyTorch aligns records to
    // 64 bytes); a heap copy when they must be swapped or sit misaligned for the type.
    const auto address = reinterpret_cast<std::uintptr_t>(loaded.bytes.data());
    const bool swap = big_endian_ && element_type.element_size > 1;
    const bool misaligned = address % element_type.element_size != 0;
    if ((swap || misaligned) && !loaded.bytes.empty()) {
      auto copy =
          std::make_shared<std::vector<std::byte>>(loaded.bytes.begin(), loaded.bytes.end());
      if (swap) swap_elements(*copy, element_type);
      loaded.bytes = std::span<const std::byte>(copy->data(), copy->size());
      loaded.owner = std::move(copy);
    }
    return storages_.emplace(node.text, std::move(loaded)).first->second;
  }

  // Legacy storages may be views (key, offset, size) of a root storage, in elements.
  std::span<const std::byte> view_of(const std::string& key, const PickleValue& node,
                                     const LoadedStorage& root) const {
    if (node.items.size() < 2) return root.bytes;
    const PickleValue& view = *node.items[1];
    const std::size_t unit = root.class_type != nullptr ? root.class_type->element_size : 1;
    const std::uint64_t offset = index_value(key, *view.items[1], "storage view offset") * unit;
    const std::uint64_t size = index_value(key, *view.items[2], "storage view size") * unit;
    if (offset > root.bytes.size() || size > root.bytes.size() - offset) {
      fail(ErrorCode::InvalidOffset, key,
           fmt::format("storage view [{}, +{}) bytes lies outside storage '{}' of {} bytes", offset,
                       size, printable(node.text), root.bytes.size()));
    }
    return root.bytes.subspan(static_cast<std::size_t>(offset), static_cast<std::size_t>(size));
  }

  const TorchType& element_type(const std::string& key, const PickleValue& tensor) const {
    const PickleValue& cls = *tensor.items[0]->items[0];
    const PickleValue& dtype = *tensor.items[4];
    const TorchType* type = dtype.is(PickleKind::Global) ? dtype.torch_type : cls.torch_type;
    if (type == nullptr) {
      fail(ErrorCode::InvalidPickle, key,
           "_rebuild_tensor_v2 over an untyped storage names no element type");
    }
    if (!type->dtype) {
      fail(ErrorCode::UnsupportedDType, key,
           fmt::format("dtype torch.{} has no peftcpp equivalent", type->dtype_name));
    }
    return *type;
  }

  Tensor tensor(const std::string& key, const PickleValue& node) {
    const TorchType& type = element_type(key, node);
    const std::size_t es = type.element_size;
    const LoadedStorage& root = storage(key, *node.items[0], type);
    const auto bytes = view_of(key, *node.items[0], root);
    if (bytes.size() % es != 0) {
      fail(ErrorCode::TensorInvalidInfo, key,
           fmt::format("storage of {} bytes is not a whole number of {}-byte elements",
                       bytes.size(), es));
    }
    const std::uint64_t available = bytes.size() / es;

    const auto& sizes = node.items[2]->items;
    const auto& strides = node.items[3]->items;
    if (sizes.size() > options_.max_rank) {
      fail(ErrorCode::LimitExceeded, key,
           fmt::format("rank {} exceeds the limit of {}", sizes.size(), options_.max_rank));
    }
    const std::uint64_t offset = index_value(key, *node.items[1], "storage offset");
    Shape shape;
    std::vector<std::uint64_t> stride;
    for (std::size_t d = 0; d < sizes.size(); ++d) {
      shape.push_back(index_value(key, *sizes[d], "size"));
      stride.push_back(index_value(key, *strides[d], "stride"));
    }
    std::uint64_t numel = 0;
    try {
      numel = shape_numel(shape);
    } catch (const Error& e) {
      fail(e.code(), key, e.detail());
    }
    const DType dtype = *type.dtype;
    if (numel == 0) return Tensor::view(dtype, shape, bytes.first(0), root.owner);

    // The last element reached must lie inside the storage (docs/formats.md "torch.save files /
    // Storage records and views").
    std::uint64_t last = offset;
    bool contiguous = true;
    std::uint64_t expected_stride = 1;
    for (std::size_t d = shape.size(); d-- > 0;) {
      std::uint64_t reach = 0;
      if (__builtin_mul_overflow(shape[d] - 1, stride[d], &reach) ||
          __builtin_add_overflow(last, reach, &last)) {
        fail(ErrorCode::ValidationOverflow, key, "the view's extent overflows");
      }
      if (shape[d] != 1 && stride[d] != expected_stride) contiguous = false;
      expected_stride *= shape[d];  // bounded: numel did not overflow
    }
    if (last >= available) {
      fail(ErrorCode::InvalidOffset, key,
           fmt::format("view (offset {}, size {}, stride [{}]) reaches element {} of a storage "
                       "of {} elements",
                       offset, shape_to_string(shape), fmt::join(stride, ", "), last, available));
    }
    if (contiguous) {
      const auto view = bytes.subspan(static_cast<std::size_t>(offset * es),
                                      static_cast<std::size_t>(numel * es));
      return Tensor::view(dtype, std::move(shape), view, root.owner);
    }
    if (numel > available) {
      // More elements than the storage holds: some repeat. Budget what the copies take.
      std::uint64_t size = 0;
      if (__builtin_mul_overflow(numel, std::uint64_t{es}, &size) ||
          __builtin_add_overflow(expanded_bytes_, size, &expanded_bytes_) ||
          expanded_bytes_ > options_.max_expanded_bytes) {
        fail(ErrorCode::LimitExceeded, key,
             fmt::format("a view of {} elements repeating a storage of {} would be copied; "
                         "views like it may take at most {} bytes in all",
                         numel, available, options_.max_expanded_bytes));
      }
    }
    // Every copy counts as well: many views of one storage, each inside it, would copy it
    // again and again (a file of megabytes asking for gigabytes). Copies of distinct
    // storages never exceed the input, so the budget is the input plus the one above.
    std::uint64_t budget = 0;
    if (__builtin_add_overflow(input_size_, options_.max_expanded_bytes, &budget)) {
      budget = UINT64_MAX;  // a caller lifting the bound
    }
    if (__builtin_add_overflow(copied_bytes_, numel * es, &copied_bytes_) ||
        copied_bytes_ > budget) {
      fail(ErrorCode::LimitExceeded, key,
           fmt::format("non-contiguous views would copy {} bytes in all out of a {}-byte file; "
                       "at most the file's size plus {} bytes are allowed",
                       copied_bytes_, input_size_, options_.max_expanded_bytes));
    }
    return gather(dtype, std::move(shape), stride, offset, bytes, es);
  }

  // Copies a strided view into a fresh C-order tensor.
  static Tensor gather(DType dtype, Shape shape, const std::vector<std::uint64_t>& stride,
                       std::uint64_t offset, std::span<const std::byte> storage, std::size_t es) {
    Tensor out = Tensor::zeros(dtype, shape);
    std::byte* dst = out.mutable_bytes().data();
    std::vector<std::uint64_t> index(shape.size(), 0);
    std::uint64_t src = offset;
    for (std::uint64_t n = 0; n < out.numel(); ++n) {
      std::memcpy(dst + n * es, storage.data() + src * es, es);
      for (std::size_t d = shape.size(); d-- > 0;) {  // odometer step
        if (++index[d] < shape[d]) {
          src += stride[d];
          break;
        }
        src -= (shape[d] - 1) * stride[d];
        index[d] = 0;
      }
    }
    return out;
  }

  const std::string& source_;
  std::shared_ptr<const void> owner_;
  std::uint64_t input_size_;
  bool big_endian_;
  const TorchReadOptions& options_;
  StorageFetch fetch_;
  std::unordered_map<std::string, LoadedStorage> storages_;
  std::uint64_t expanded_bytes_ = 0;
  std::uint64_t copied_bytes_ = 0;  // by gather(), in all
  StateDict out_;
};

formats::UnpickleOptions unpickle_options(const TorchReadOptions& options) {
  formats::UnpickleOptions out;
  out.max_opcodes = options.max_opcodes;
  out.max_memo_entries = options.max_memo_entries;
  out.max_stack = options.max_stack;
  out.max_marks = options.max_marks;
  return out;
}

// ---- reading: the zip format ------------------------------------------------------

std::uint64_t parse_version(std::string_view text, const std::string& source) {
  std::string_view digits = text;
  while (!digits.empty() &&
         (digits.back() == '\n' || digits.back() == '\r' || digits.back() == ' ')) {
    digits.remove_suffix(1);
  }
  std::uint64_t value = 0;
  bool ok = !digits.empty() && digits.size() <= 6;
  for (const char c : digits) {
    ok = ok && c >= '0' && c <= '9';
    if (ok) value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (!ok || value < kMinVersion || value > kMaxVersion) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                fmt::format("file format version '{}' is not supported (expected {} to {})",
                            printable(text), kMinVersion, kMaxVersion));
  }
  return value;
}

StateDict load_zip(std::span<const std::byte> bytes, std::shared_ptr<const void> owner,
                   const std::string& source, const TorchReadOptions& options) {
  formats::ZipReadOptions zip_options;
  zip_options.max_entries = options.max_records;
  zip_options.verify_crc = options.verify_crc;
  const auto archive = formats::ZipArchive::open(bytes, source, zip_options);

  // Every record lives under the folder the first entry names.
  const std::string& first = archive.entries().front().name;
  const std::size_t slash = first.find('/');
  if (slash == std::string::npos) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                fmt::format("not a torch.save archive: its first entry '{}' is not in a folder",
                            printable(first)));
  }
  const std::string prefix = first.substr(0, slash + 1);
  const auto record = [&](std::string_view name) {
    return archive.find(prefix + std::string(name));
  };

  if (record("constants.pkl") != nullptr ||
      std::any_of(archive.entries().begin(), archive.entries().end(),
                  [&](const auto& e) { return e.name.starts_with(prefix + "code/"); })) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                "a TorchScript archive (torch.jit.save), not a torch.save state dict");
  }
  const formats::ZipEntry* version = record(".data/version");
  if (version == nullptr) version = record("version");
  if (version == nullptr) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                fmt::format("not a torch.save archive: no '{}version' record", printable(prefix)));
  }
  parse_version(as_text(archive.data(*version)), source);

  bool big_endian = false;
  if (const auto* order = record("byteorder")) {
    const std::string_view text = as_text(archive.data(*order));
    if (text == "big") {
      big_endian = true;
    } else if (text != "little") {
      throw Error(
          ErrorCode::UnsupportedFormat, source,
          fmt::format("byteorder record says '{}'; expected 'little' or 'big'", printable(text)));
    }
  }

  const formats::ZipEntry* pickle = record("data.pkl");
  if (pickle == nullptr) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                fmt::format("not a torch.save archive: no '{}data.pkl' record", printable(prefix)));
  }
  if (pickle->size > options.max_pickle_bytes) {
    throw Error(ErrorCode::LimitExceeded, source,
                fmt::format("data.pkl has {} bytes, more than the limit of {}", pickle->size,
                            options.max_pickle_bytes));
  }
  const auto tree = formats::unpickle(archive.data(*pickle), source, unpickle_options(options));

  auto fetch = [&](const std::string& key) {
    const formats::ZipEntry* entry = record("data/" + key);
    if (entry == nullptr) {
      throw Error(ErrorCode::InvalidZip, source,
                  fmt::format("storage '{}' has no '{}data/{}' record", printable(key),
                              printable(prefix), printable(key)));
    }
    return archive.data(*entry);
  };
  TensorBuilder builder(source, std::move(owner), bytes.size(), big_endian, options, fetch);
  return builder.build(tree.root());
}

// ---- reading: the legacy format (docs/formats.md "torch.save files / Legacy format")
// ------------------------------

bool is_legacy_magic(const PickleValue& value) {
  if (!value.is(PickleKind::BigInt)) return false;
  std::string_view bytes = value.text;
  while (bytes.size() > sizeof(kLegacyMagic) && bytes.back() == '\0') bytes.remove_suffix(1);
  return bytes ==
         std::string_view(reinterpret_cast<const char*>(kLegacyMagic), sizeof(kLegacyMagic));
}

StateDict load_legacy(std::span<const std::byte> bytes, std::shared_ptr<const void> owner,
                      const std::string& source, const TorchReadOptions& options) {
  formats::UnpickleOptions pickle_options = unpickle_options(options);
  pickle_options.allow_trailing_bytes = true;
  std::size_t at = 0;
  auto next = [&](std::size_t persistent_id_size) {
    pickle_options.persistent_id_size = persistent_id_size;
    auto tree = formats::unpickle(bytes.subspan(at), source, pickle_options);
    at += tree.consumed();
    return tree;
  };

  if (!is_legacy_magic(next(5).root())) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                "a pickle, but not a PyTorch file (no torch.save magic number)");
  }
  const auto protocol = next(5);
  if (!protocol.root().is(PickleKind::Int) || protocol.root().integer != kLegacyProtocol) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                fmt::format("legacy torch.save protocol is {}; only {} is known",
                            formats::describe(protocol.root()), kLegacyProtocol));
  }
  if (!next(5).root().is(PickleKind::Dict)) {
    throw Error(ErrorCode::UnsupportedFormat, source, "legacy file: sys_info is not a dict");
  }
  const auto main = next(6);
  const auto keys = next(5);

  // Element size of each storage, from the persistent ids, to walk the data blocks.
  std::unordered_map<std::string, std::size_t> unit;
  TensorBuilder::for_each_entry(main.root(), source, [&](const std::string&, const PickleValue& t) {
    const PickleValue& cls = *t.items[0]->items[0];
    unit.emplace(t.items[0]->text, cls.torch_type != nullptr ? cls.torch_type->element_size : 1);
  });
  if (!keys.root().is(PickleKind::List) && !keys.root().is(PickleKind::Tuple)) {
    throw Error(ErrorCode::UnsupportedFormat, source, "legacy file: storage keys are not a list");
  }
  std::unordered_map<std::string, std::span<const std::byte>> blocks;
  for (const PickleValue* key : keys.root().items) {
    if (!key->is(PickleKind::String) && !key->is(PickleKind::Bytes)) {
      throw Error(ErrorCode::InvalidPickle, source, "legacy file: a storage key is not a string");
    }
    const auto it = unit.find(key->text);
    if (it == unit.end() || blocks.count(key->text) != 0) {
      throw Error(ErrorCode::InvalidPickle, source,
                  fmt::format("legacy file: storage '{}' is listed but not used, or listed twice",
                              printable(key->text)));
    }
    if (bytes.size() - at < 8) {
      throw Error(ErrorCode::TensorInvalidInfo, source,
                  fmt::format("legacy file: truncated before storage '{}'", printable(key->text)));
    }
    std::uint64_t count = 0;
    for (int i = 7; i >= 0; --i) {
      count =
          (count << 8) | std::to_integer<std::uint64_t>(bytes[at + static_cast<std::size_t>(i)]);
    }
    at += 8;
    std::uint64_t length = 0;
    if (__builtin_mul_overflow(count, std::uint64_t{it->second}, &length) ||
        length > bytes.size() - at) {
      throw Error(ErrorCode::TensorInvalidInfo, source,
                  fmt::format("legacy file: storage '{}' declares {} elements, more than the "
                              "file holds (truncated?)",
                              printable(key->text), count));
    }
    blocks.emplace(key->text, bytes.subspan(at, static_cast<std::size_t>(length)));
    at += static_cast<std::size_t>(length);
  }

  auto fetch = [&](const std::string& key) {
    const auto it = blocks.find(key);
    if (it == blocks.end()) {
      throw Error(ErrorCode::InvalidPickle, source,
                  fmt::format("legacy file: storage '{}' has no data", printable(key)));
    }
    return it->second;
  };
  TensorBuilder builder(source, std::move(owner), bytes.size(), false, options, fetch);
  return builder.build(main.root());
}

}  // namespace

StateDict load_torch_bytes(std::span<const std::byte> bytes, std::shared_ptr<const void> owner,
                           std::string source, const TorchReadOptions& options) {
  if (bytes.empty()) throw Error(ErrorCode::UnsupportedFormat, source, "the file is empty");
  const FileFormat format = detect_file_format(bytes, source);
  if (format == FileFormat::TorchTar) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                "the tar format of PyTorch 0.3 and older is not supported; re-save with a modern "
                "torch.save");
  }
  if (format == FileFormat::Safetensors || format == FileFormat::Gguf ||
      format == FileFormat::Json) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                fmt::format("is a {} file, not a torch.save file", to_string(format)));
  }
  // A zip without its end record (truncated) is still read as a zip, so that its reader
  // says what is missing; the same for a pickle stream without the legacy magic number.
  if (format == FileFormat::TorchZip || starts_with(bytes, "PK\x03\x04") ||
      starts_with(bytes, "PK\x05\x06")) {
    return load_zip(bytes, std::move(owner), source, options);
  }
  if (starts_with(bytes, "PYTORCH1")) {
    throw Error(ErrorCode::UnsupportedFormat, source,
                "the 'PYTORCH1' archive format of PyTorch 1.0 previews is not supported; "
                "re-save with a modern torch.save");
  }
  if (format == FileFormat::TorchLegacy || bytes[0] == std::byte{0x80}) {
    if (!options.allow_legacy) {
      throw Error(ErrorCode::UnsupportedFormat, source,
                  "legacy (pre-1.6, non-zip) torch.save format; re-save with a modern torch.save");
    }
    return load_legacy(bytes, std::move(owner), source, options);
  }
  std::vector<unsigned> head;
  for (const auto b : bytes.first(std::min<std::size_t>(bytes.size(), 4))) {
    head.push_back(std::to_integer<unsigned>(b));
  }
  throw Error(ErrorCode::UnsupportedFormat, source,
              fmt::format("not a PyTorch file: it starts with bytes {:02x}", fmt::join(head, " ")));
}

StateDict load_torch_file(const std::filesystem::path& path, const TorchReadOptions& options) {
  formats::FileBytes file = formats::map_file(path, options.use_mmap);
  return load_torch_bytes(file.bytes, std::move(file.owner), path.string(), options);
}

// ---- writing ---------------------------------------------------------------------------

namespace {

struct Plan {
  std::vector<std::span<const std::byte>> storages;  // data/0, data/1, ...
  std::vector<std::vector<std::uint64_t>> strides;
  std::vector<std::string> keys;
  std::string pickle;
};

// C-order strides as PyTorch computes them (size-0 and size-1 dimensions count as 1).
std::vector<std::uint64_t> contiguous_strides(const Shape& shape) {
  std::vector<std::uint64_t> stride(shape.size(), 1);
  for (std::size_t d = shape.size(); d-- > 1;)
    stride[d - 1] = stride[d] * std::max<std::uint64_t>(shape[d], 1);
  return stride;
}

// Groups tensors whose bytes overlap into one storage; the index of each tensor's group
// and each group's byte range. A group whose members differ in dtype or sit at
// offsets that are not whole elements is split back into one storage per tensor.
struct Grouping {
  std::vector<std::size_t> group_of;
  std::vector<std::span<const std::byte>> ranges;
};

Grouping group_storages(const std::vector<const Tensor*>& tensors) {
  Grouping out;
  out.group_of.assign(tensors.size(), 0);
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i]->nbytes() > 0) order.push_back(i);
  }
  const std::less<const std::byte*> before;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return before(tensors[a]->bytes().data(), tensors[b]->bytes().data());
  });

  std::vector<std::vector<std::size_t>> groups;
  const std::byte* end = nullptr;
  for (const std::size_t i : order) {
    const auto bytes = tensors[i]->bytes();
    if (groups.empty() || !before(bytes.data(), end)) groups.emplace_back();
    groups.back().push_back(i);
    const std::byte* tensor_end = bytes.data() + bytes.size();
    if (groups.back().size() == 1 || before(end, tensor_end)) end = tensor_end;
  }

  auto add_range = [&](const std::byte* begin, const std::byte* finish) {
    out.ranges.emplace_back(begin, static_cast<std::size_t>(finish - begin));
    return out.ranges.size() - 1;
  };
  for (const auto& members : groups) {
    const Tensor& head = *tensors[members.front()];
    const std::byte* begin = head.bytes().data();
    const std::byte* finish = begin;
    bool uniform = true;
    for (const std::size_t i : members) {
      const Tensor& t = *tensors[i];
      if (before(finish, t.bytes().data() + t.nbytes())) finish = t.bytes().data() + t.nbytes();
      const auto delta = static_cast<std::size_t>(t.bytes().data() - begin);
      uniform = uniform && t.dtype() == head.dtype() && delta % dtype_size(t.dtype()) == 0;
    }
    if (uniform) {
      const std::size_t g = add_range(begin, finish);
      for (const std::size_t i : members) out.group_of[i] = g;
    } else {
      for (const std::size_t i : members) {
        const auto bytes = tensors[i]->bytes();
        out.group_of[i] = add_range(bytes.data(), bytes.data() + bytes.size());
      }
    }
  }
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i]->nbytes() == 0) {
      out.group_of[i] = add_range(tensors[i]->bytes().data(), tensors[i]->bytes().data());
    }
  }
  return out;
}

Plan plan(const StateDict& tensors, const std::string& target) {
  std::vector<const Tensor*> list;
  std::vector<const formats::TorchType*> types;
  for (const auto& [key, tensor] : tensors) {
    if (!text::is_valid_utf8(key)) {
      throw Error(
          ErrorCode::InvalidArgument, target,
          fmt::format("key '{}' is not valid UTF-8; torch.save keys are str", printable(key)));
    }
    if (tensor.is_meta()) {
      throw Error(ErrorCode::InvalidArgument, target,
                  fmt::format("tensor '{}' has no data (a meta tensor) and cannot be written",
                              printable(key)));
    }
    const formats::TorchType* type = formats::torch_type_of(tensor.dtype());
    if (type == nullptr) {
      throw Error(ErrorCode::UnsupportedDType, target,
                  fmt::format("tensor '{}': PyTorch has no storage for dtype {}", printable(key),
                              dtype_name(tensor.dtype())));
    }
    list.push_back(&tensor);
    types.push_back(type);
  }
  const Grouping grouping = group_storages(list);

  Plan out;
  out.strides.reserve(list.size());
  out.keys.reserve(grouping.ranges.size());
  std::vector<std::ptrdiff_t> key_of(grouping.ranges.size(), -1);
  std::vector<formats::PickledTensor> pickled;
  std::size_t i = 0;
  for (const auto& [key, tensor] : tensors) {
    const std::size_t g = grouping.group_of[i];
    if (key_of[g] < 0) {  // storage keys in order of first use
      key_of[g] = static_cast<std::ptrdiff_t>(out.storages.size());
      out.keys.push_back(std::to_string(out.storages.size()));
      out.storages.push_back(grouping.ranges[g]);
    }
    const auto range = grouping.ranges[g];
    const formats::TorchType& type = *types[i];
    formats::PickledTensor p;
    p.key = key;
    p.type = &type;
    p.untyped_storage = type.storage_name.empty();
    p.storage_key = out.keys[static_cast<std::size_t>(key_of[g])];
    p.storage_numel = p.untyped_storage ? range.size() : range.size() / type.element_size;
    p.storage_offset =
        tensor.nbytes() == 0
            ? 0
            : static_cast<std::uint64_t>(tensor.bytes().data() - range.data()) / type.element_size;
    p.size = tensor.shape();
    out.strides.push_back(contiguous_strides(tensor.shape()));
    p.stride = out.strides.back();
    pickled.push_back(p);
    ++i;
  }
  out.pickle = formats::pickle_torch_state_dict(pickled);
  return out;
}

// torch.save's archive name: the file name without its last extension.
std::string archive_name_for(const std::filesystem::path& path, const TorchWriteOptions& options) {
  std::string name = options.archive_name;
  if (name.empty()) {
    name = path.filename().string();
    const std::size_t dot = name.rfind('.');
    if (dot != std::string::npos) name.resize(dot);
    const bool ascii = std::all_of(name.begin(), name.end(),
                                   [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (name.empty() || !ascii) name = "archive";
  }
  if (name.find_first_of("/\\") != std::string::npos || name == "." || name == "..") {
    throw Error(ErrorCode::InvalidArgument, path.string(),
                fmt::format("archive name '{}' is not a single folder name", printable(name)));
  }
  return name;
}

void write_archive(const Plan& plan, const std::string& archive,
                   const formats::ZipWriter::Sink& sink) {
  formats::ZipWriter zip(sink);
  const std::string prefix = archive + "/";
  zip.add(prefix + "data.pkl", std::string_view(plan.pickle));
  zip.add(prefix + ".format_version", std::string_view("1"));
  zip.add(prefix + ".storage_alignment", std::string_view("64"));
  zip.add(prefix + "byteorder", std::string_view("little"));
  for (std::size_t k = 0; k < plan.storages.size(); ++k) {
    zip.add(prefix + "data/" + plan.keys[k], plan.storages[k]);
  }
  zip.add(prefix + "version", std::string_view("3\n"));
  zip.finish();
}

}  // namespace

void save_torch_file(const StateDict& tensors, const std::filesystem::path& path,
                     const TorchWriteOptions& options) {
  const std::string archive = archive_name_for(path, options);
  const Plan layout = plan(tensors, path.string());
  formats::AtomicFile file(path, options.durable);
  formats::GatheringWriter gather(file);
  write_archive(layout, archive, [&](std::span<const std::byte> bytes) { gather.write(bytes); });
  gather.flush();
  file.commit();
}

std::vector<std::byte> serialize_torch(const StateDict& tensors, const TorchWriteOptions& options) {
  TorchWriteOptions named = options;
  if (named.archive_name.empty()) named.archive_name = "archive";
  const std::string archive = archive_name_for("", named);
  const Plan layout = plan(tensors, "<memory>");
  std::vector<std::byte> out;
  write_archive(layout, archive, [&](std::span<const std::byte> bytes) {
    out.insert(out.end(), bytes.begin(), bytes.end());
  });
  return out;
}

}  // namespace peft
