// A restricted unpickler and a protocol-2 pickle writer for torch.save files
// (docs/formats.md "torch.save files / The pickle", "torch.save files / Writer" and "The restricted
// unpickler").
//
// Reading never executes anything: the opcodes of docs/formats.md "The restricted unpickler /
// Opcodes" are interpreted into a tree of PickleValue nodes. GLOBAL/STACK_GLOBAL may only name the
// allowlisted classes and functions of docs/formats.md "The restricted unpickler / Allowlisted
// globals", which become opaque tokens; REDUCE/NEWOBJ/BUILD only accept those tokens with the
// argument shapes given there (a tensor rebuild becomes a Tensor node, OrderedDict() an ordered
// Dict, ...). Everything else is refused with ForbiddenPickle (something that would run code) or
// InvalidPickle (malformed), and every resource is bounded (LimitExceeded).
//
// Nodes live in an arena owned by the Unpickled result, so memo references (even
// cyclic ones) never leak or recurse; consumers walk the tree with their own bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "peft/dtype.hpp"

namespace peft::formats {

// A PyTorch element type, as named by a legacy storage class or a dtype global.
struct TorchType {
  std::string_view dtype_name;    // "float32" (the global `torch.<dtype_name>`)
  std::string_view storage_name;  // "FloatStorage"; empty for dtypes without one
  std::size_t element_size;
  std::optional<DType> dtype;  // nullopt: no peftcpp equivalent (complex128)
};

// The entry for a peftcpp dtype, or nullptr (sub-byte types have none).
const TorchType* torch_type_of(DType dtype) noexcept;

enum class PickleKind : std::uint8_t {
  None,
  Bool,
  Int,
  BigInt,  // an integer wider than 64 bits (text: little-endian two's complement)
  Float,
  String,
  Bytes,
  Tuple,
  List,
  Dict,  // items: key0, value0, key1, value1, ... in insertion order
  Set,
  FrozenSet,
  Global,   // an allowlisted class or function, never resolved
  Storage,  // a persistent id: text = record key, integer = numel, items = {class[, view]}
  Tensor,   // a tensor rebuild: items = {storage, offset, size, stride, dtype or None}
  Device,   // torch.device(...): text = the device string
};

// What an allowlisted global is (docs/formats.md "The restricted unpickler / Allowlisted globals").
enum class PickleGlobal : std::uint8_t {
  RebuildTensorV2,
  RebuildTensorV3,
  RebuildParameter,
  RebuildParameterWithState,
  OrderedDict,
  StorageClass,  // torch_type: its element type; nullptr for UntypedStorage
  DType,         // torch_type: the dtype
  Size,
  Device,
  Set,
  FrozenSet,
  Parameter,  // torch.nn.parameter.Parameter, only for NEWOBJ
};

struct PickleValue {
  PickleKind kind = PickleKind::None;
  bool ordered = false;                             // a Dict made by collections.OrderedDict
  std::int64_t integer = 0;                         // Int, Bool (0 or 1), Storage numel
  double real = 0;                                  // Float
  PickleGlobal global = PickleGlobal::OrderedDict;  // Global
  const TorchType* torch_type = nullptr;            // Global StorageClass / DType
  std::string text;  // String/Bytes content, BigInt bytes, Global "module.name", Storage key
  std::vector<const PickleValue*> items;

  bool is(PickleKind k) const noexcept { return kind == k; }
};

// "a list", "the string 'abc'", "int 5", "global torch.Size": for messages.
std::string describe(const PickleValue& value);

struct UnpickleOptions {
  std::uint64_t max_opcodes = 10'000'000;
  std::size_t max_memo_entries = 1'000'000;
  std::size_t max_stack = 100'000;     // values on the stack
  std::size_t max_marks = 10'000;      // open MARKs
  std::size_t max_key_bytes = 65'536;  // a dict key's canonical form (tuple keys)
  // Items copied out of an existing container (set(list), torch.Size(tuple)): one REDUCE
  // copies a whole memoised container, so without this bound a few bytes per call could
  // allocate gigabytes.
  std::uint64_t max_copied_items = 10'000'000;
  std::size_t persistent_id_size = 5;  // 5: zip format; 6: legacy format (view metadata)
  bool allow_trailing_bytes = false;   // legacy files hold several pickles back to back
};

class Unpickled {
 public:
  const PickleValue& root() const noexcept { return *root_; }
  // Bytes read, through STOP.
  std::size_t consumed() const noexcept { return consumed_; }

 private:
  friend Unpickled unpickle(std::span<const std::byte>, const std::string&, const UnpickleOptions&);
  std::unique_ptr<std::deque<PickleValue>> arena_;
  const PickleValue* root_ = nullptr;
  std::size_t consumed_ = 0;
};

// Interprets one pickle. Throws InvalidPickle, ForbiddenPickle or LimitExceeded naming
// `source` and the byte offset of the offending opcode.
Unpickled unpickle(std::span<const std::byte> data, const std::string& source,
                   const UnpickleOptions& options = {});

// Opcode-level pickle writer (protocol 2 forms); memo bookkeeping is the caller's.
class PickleBuilder {
 public:
  PickleBuilder& proto(std::uint8_t version);
  PickleBuilder& op(char opcode);              // any single-byte opcode (MARK, TUPLE, REDUCE, ...)
  PickleBuilder& integer(std::int64_t value);  // BININT1/BININT2/BININT/LONG1, as CPython
  PickleBuilder& unicode(std::string_view text);                          // BINUNICODE
  PickleBuilder& global(std::string_view module, std::string_view name);  // GLOBAL
  PickleBuilder& put(std::uint32_t index);                                // BINPUT / LONG_BINPUT
  PickleBuilder& get(std::uint32_t index);                                // BINGET / LONG_BINGET
  PickleBuilder& raw(std::string_view bytes);

  const std::string& bytes() const noexcept { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// One dict entry for pickle_torch_state_dict.
struct PickledTensor {
  std::string_view key;
  const TorchType* type = nullptr;
  bool untyped_storage = false;      // new dtypes: _rebuild_tensor_v3 over UntypedStorage
  std::string_view storage_key;      // "0", "1", ... (same key: same storage object)
  std::uint64_t storage_numel = 0;   // elements (typed storage) or bytes (untyped)
  std::uint64_t storage_offset = 0;  // in elements
  std::span<const std::uint64_t> size;
  std::span<const std::uint64_t> stride;
};

// The data.pkl torch.save writes for a plain dict of these tensors: protocol 2, C
// pickler batching (SETITEM for a single pair, else MARK ... SETITEMS batches of
// 1000), and CPython's memoisation (docs/formats.md "torch.save files / Writer").
std::string pickle_torch_state_dict(std::span<const PickledTensor> tensors);

}  // namespace peft::formats
