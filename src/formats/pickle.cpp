// The restricted unpickler: one cohesive thing (a virtual machine over the pickle opcodes
// torch.save emits, with its allowlist and bounds), hence one file over 600 lines.
#include "formats/pickle.hpp"

#include <array>
#include <bit>
#include <functional>
#include <limits>
#include <unordered_map>

#include <fmt/format.h>

#include "core/text.hpp"
#include "peft/error.hpp"

namespace peft::formats {
namespace {

using text::printable;

// Opcodes (CPython Lib/pickletools.py names).
namespace opcode {
constexpr char kMark = '(';
constexpr char kStop = '.';
constexpr char kPop = '0';
constexpr char kPopMark = '1';
constexpr char kDup = '2';
constexpr char kBinInt = 'J';
constexpr char kBinInt1 = 'K';
constexpr char kBinInt2 = 'M';
constexpr char kNone = 'N';
constexpr char kBinPersId = 'Q';
constexpr char kReduce = 'R';
constexpr char kBinString = 'T';
constexpr char kShortBinString = 'U';
constexpr char kBinUnicode = 'X';
constexpr char kAppend = 'a';
constexpr char kBuild = 'b';
constexpr char kGlobal = 'c';
constexpr char kDict = 'd';
constexpr char kEmptyDict = '}';
constexpr char kAppends = 'e';
constexpr char kBinGet = 'h';
constexpr char kLongBinGet = 'j';
constexpr char kEmptyList = ']';
constexpr char kBinPut = 'q';
constexpr char kLongBinPut = 'r';
constexpr char kSetItem = 's';
constexpr char kTuple = 't';
constexpr char kEmptyTuple = ')';
constexpr char kSetItems = 'u';
constexpr char kBinFloat = 'G';
constexpr char kBinBytes = 'B';
constexpr char kShortBinBytes = 'C';
constexpr auto kProto = static_cast<char>(0x80);
constexpr auto kNewObj = static_cast<char>(0x81);
constexpr auto kTuple1 = static_cast<char>(0x85);
constexpr auto kTuple2 = static_cast<char>(0x86);
constexpr auto kTuple3 = static_cast<char>(0x87);
constexpr auto kNewTrue = static_cast<char>(0x88);
constexpr auto kNewFalse = static_cast<char>(0x89);
constexpr auto kLong1 = static_cast<char>(0x8a);
constexpr auto kShortBinUnicode = static_cast<char>(0x8c);
constexpr auto kBinUnicode8 = static_cast<char>(0x8d);
constexpr auto kBinBytes8 = static_cast<char>(0x8e);
constexpr auto kEmptySet = static_cast<char>(0x8f);
constexpr auto kAddItems = static_cast<char>(0x90);
constexpr auto kFrozenSet = static_cast<char>(0x91);
constexpr auto kStackGlobal = static_cast<char>(0x93);
constexpr auto kMemoize = static_cast<char>(0x94);
constexpr auto kFrame = static_cast<char>(0x95);
}  // namespace opcode

constexpr std::array<TorchType, 20> kTorchTypes = {{
    {"float64", "DoubleStorage", 8, DType::F64},
    {"float32", "FloatStorage", 4, DType::F32},
    {"float16", "HalfStorage", 2, DType::F16},
    {"bfloat16", "BFloat16Storage", 2, DType::BF16},
    {"int64", "LongStorage", 8, DType::I64},
    {"int32", "IntStorage", 4, DType::I32},
    {"int16", "ShortStorage", 2, DType::I16},
    {"int8", "CharStorage", 1, DType::I8},
    {"uint8", "ByteStorage", 1, DType::U8},
    {"bool", "BoolStorage", 1, DType::BOOL},
    {"complex64", "ComplexFloatStorage", 8, DType::C64},
    {"complex128", "ComplexDoubleStorage", 16, std::nullopt},
    {"uint16", "", 2, DType::U16},
    {"uint32", "", 4, DType::U32},
    {"uint64", "", 8, DType::U64},
    {"float8_e4m3fn", "", 1, DType::F8_E4M3},
    {"float8_e5m2", "", 1, DType::F8_E5M2},
    {"float8_e4m3fnuz", "", 1, DType::F8_E4M3FNUZ},
    {"float8_e5m2fnuz", "", 1, DType::F8_E5M2FNUZ},
    {"float8_e8m0fnu", "", 1, DType::F8_E8M0},
}};

struct Allowed {
  PickleGlobal global;
  const TorchType* type = nullptr;
};

// docs/formats.md "The restricted unpickler / Allowlisted globals". Modules and names are compared
// after Python 2 renames.
std::optional<Allowed> lookup_global(std::string_view module, std::string_view name) {
  if (module == "torch._utils") {
    if (name == "_rebuild_tensor_v2") return Allowed{PickleGlobal::RebuildTensorV2};
    if (name == "_rebuild_tensor_v3") return Allowed{PickleGlobal::RebuildTensorV3};
    if (name == "_rebuild_parameter") return Allowed{PickleGlobal::RebuildParameter};
    if (name == "_rebuild_parameter_with_state") {
      return Allowed{PickleGlobal::RebuildParameterWithState};
    }
    return std::nullopt;
  }
  if (module == "collections" && name == "OrderedDict") return Allowed{PickleGlobal::OrderedDict};
  if (module == "builtins" && name == "set") return Allowed{PickleGlobal::Set};
  if (module == "builtins" && name == "frozenset") return Allowed{PickleGlobal::FrozenSet};
  if (module == "torch.nn.parameter" && name == "Parameter") {
    return Allowed{PickleGlobal::Parameter};
  }
  if (module == "torch.storage" && name == "UntypedStorage") {
    return Allowed{PickleGlobal::StorageClass};
  }
  if (module != "torch") return std::nullopt;
  if (name == "UntypedStorage") return Allowed{PickleGlobal::StorageClass};
  if (name == "Size") return Allowed{PickleGlobal::Size};
  if (name == "device") return Allowed{PickleGlobal::Device};
  for (const auto& type : kTorchTypes) {
    if (!type.storage_name.empty() && name == type.storage_name) {
      return Allowed{PickleGlobal::StorageClass, &type};
    }
    if (name == type.dtype_name) return Allowed{PickleGlobal::DType, &type};
  }
  return std::nullopt;
}

std::string_view python3_module(std::string_view module) {
  if (module == "__builtin__" || module == "exceptions") return "builtins";
  if (module == "copy_reg") return "copyreg";
  return module;
}

std::string_view kind_name(PickleKind kind) {
  switch (kind) {
    case PickleKind::None:
      return "None";
    case PickleKind::Bool:
      return "a bool";
    case PickleKind::Int:
      return "an int";
    case PickleKind::BigInt:
      return "a big int";
    case PickleKind::Float:
      return "a float";
    case PickleKind::String:
      return "a string";
    case PickleKind::Bytes:
      return "bytes";
    case PickleKind::Tuple:
      return "a tuple";
    case PickleKind::List:
      return "a list";
    case PickleKind::Dict:
      return "a dict";
    case PickleKind::Set:
      return "a set";
    case PickleKind::FrozenSet:
      return "a frozenset";
    case PickleKind::Global:
      return "a global";
    case PickleKind::Storage:
      return "a storage";
    case PickleKind::Tensor:
      return "a tensor";
    case PickleKind::Device:
      return "a device";
  }
  return "a value";
}

class Machine {
 public:
  Machine(std::span<const std::byte> data, const std::string& source,
          const UnpickleOptions& options, std::deque<PickleValue>& arena)
      : in_(data), source_(source), options_(options), arena_(arena) {}

  // Runs to STOP; returns the result and the bytes consumed.
  std::pair<const PickleValue*, std::size_t> run() {
    std::uint64_t count = 0;
    while (true) {
      if (pos_ >= in_.size()) fail_invalid("the pickle ends without a STOP opcode");
      if (++count > options_.max_opcodes) {
        throw Error(ErrorCode::LimitExceeded, source_,
                    fmt::format("pickle: more than {} opcodes", options_.max_opcodes));
      }
      at_ = pos_;
      const char code = static_cast<char>(in_[pos_++]);
      if (code == opcode::kStop) return {finish(), pos_};
      step(code);
    }
  }

 private:
  [[noreturn]] void fail(ErrorCode code, const std::string& detail) const {
    throw Error(code, source_, fmt::format("pickle byte {}: {}", at_, detail));
  }
  [[noreturn]] void fail_invalid(const std::string& detail) const {
    fail(ErrorCode::InvalidPickle, detail);
  }
  [[noreturn]] void fail_forbidden(const std::string& detail) const {
    fail(ErrorCode::ForbiddenPickle, detail);
  }

  // ---- input ---------------------------------------------------------------
  std::span<const std::byte> take(std::uint64_t n) {
    if (n > in_.size() - pos_) {
      fail_invalid(
          fmt::format("truncated: an operand of {} bytes runs past the end "
                      "({} bytes left)",
                      n, in_.size() - pos_));
    }
    const auto out = in_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return out;
  }
  std::uint64_t take_le(unsigned width) {
    const auto b = take(width);
    std::uint64_t value = 0;
    for (unsigned i = width; i-- > 0;) value = (value << 8) | std::to_integer<std::uint64_t>(b[i]);
    return value;
  }
  std::string take_text(std::uint64_t n) {
    const auto b = take(n);
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  std::string take_line() {
    for (std::size_t i = pos_; i < in_.size(); ++i) {
      if (in_[i] == std::byte{'\n'}) {
        std::string line = take_text(i - pos_);
        ++pos_;
        return line;
      }
    }
    fail_invalid("truncated: GLOBAL operand has no terminating newline");
  }

  // ---- values --------------------------------------------------------------
  PickleValue* make(PickleKind kind) {
    PickleValue& value = arena_.emplace_back();
    value.kind = kind;
    return &value;
  }
  // Immutable scalars are shared, so that opcode spam ("N0N0...") allocates nothing.
  PickleValue* make_int(std::int64_t v) {
    const bool small = v >= 0 && v < static_cast<std::int64_t>(small_ints_.size());
    if (small && small_ints_[static_cast<std::size_t>(v)] != nullptr) {
      return small_ints_[static_cast<std::size_t>(v)];
    }
    PickleValue* value = make(PickleKind::Int);
    value->integer = v;
    if (small) small_ints_[static_cast<std::size_t>(v)] = value;
    return value;
  }
  PickleValue* shared(PickleValue*& slot, PickleKind kind, std::int64_t integer = 0) {
    if (slot == nullptr) {
      slot = make(kind);
      slot->integer = integer;
    }
    return slot;
  }
  PickleValue* make_text(PickleKind kind, std::string text) {
    PickleValue* value = make(kind);
    value->text = std::move(text);
    return value;
  }

  // ---- stack ---------------------------------------------------------------
  std::size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(PickleValue* value) {
    if (stack_.size() >= options_.max_stack) {
      throw Error(
          ErrorCode::LimitExceeded, source_,
          fmt::format("pickle byte {}: more than {} values on the stack", at_, options_.max_stack));
    }
    stack_.push_back(value);
  }
  PickleValue* top() {
    if (stack_.size() <= fence()) fail_invalid("stack underflow (nothing above the last MARK)");
    return stack_.back();
  }
  PickleValue* pop() {
    PickleValue* value = top();
    stack_.pop_back();
    return value;
  }
  std::vector<const PickleValue*> pop_mark() {
    if (marks_.empty()) fail_invalid("opcode needs a MARK but no MARK is open");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<const PickleValue*> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark),
                                          stack_.end());
    stack_.resize(mark);
    return items;
  }

  // ---- memo ----------------------------------------------------------------
  void memo_put(std::uint64_t index) {
    PickleValue* value = top();
    const auto it = memo_.find(index);
    if (it != memo_.end()) {
      it->second = value;
      return;
    }
    if (memo_.size() >= options_.max_memo_entries) {
      throw Error(
          ErrorCode::LimitExceeded, source_,
          fmt::format("pickle byte {}: more than {} memo entries", at_, options_.max_memo_entries));
    }
    memo_.emplace(index, value);
  }
  void memo_get(std::uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) fail_invalid(fmt::format("memo entry {} was never stored", index));
    push(it->second);
  }

  // ---- dicts ---------------------------------------------------------------
  // Python dict semantics: a repeated key keeps its first position, takes the new value.
  // Keys are compared by a canonical byte form, bounded against tuple-nesting bombs.
  void canonical_key(const PickleValue& key, std::string& out, int depth) const {
    if (depth > 100 || out.size() > options_.max_key_bytes) {
      throw Error(ErrorCode::LimitExceeded, source_,
                  fmt::format("pickle byte {}: a dict key is nested too deeply or too large", at_));
    }
    switch (key.kind) {
      case PickleKind::None:
        out += 'N';
        return;
      case PickleKind::Bool:
      case PickleKind::Int:
        out += fmt::format("i{};", key.integer);
        return;
      case PickleKind::Float:
        // Equal numbers are equal keys across int and float, as in Python. The range is
        // checked first: converting an out-of-range double (or NaN) is undefined.
        if (key.real >= -9.2e18 && key.real <= 9.2e18 &&
            key.real == static_cast<double>(static_cast<std::int64_t>(key.real))) {
          out += fmt::format("i{};", static_cast<std::int64_t>(key.real));
        } else {
          out += fmt::format("f{};", std::bit_cast<std::uint64_t>(key.real));
        }
        return;
      case PickleKind::BigInt:
      case PickleKind::String:
      case PickleKind::Bytes: {
        const char tag = key.is(PickleKind::String) ? 's' : key.is(PickleKind::Bytes) ? 'b' : 'I';
        out += fmt::format("{}{}:", tag, key.text.size());
        out += key.text;
        return;
      }
      case PickleKind::Tuple:
        out += fmt::format("t{}(", key.items.size());
        for (const auto* item : key.items) canonical_key(*item, out, depth + 1);
        out += ')';
        return;
      default:
        fail_invalid(fmt::format("{} cannot be a dict key", describe(key)));
    }
  }

  void set_item(PickleValue& dict, const PickleValue* key, const PickleValue* value) {
    std::string canonical;
    canonical_key(*key, canonical, 0);
    auto& index = dict_index_[&dict];
    const auto [it, inserted] = index.emplace(std::move(canonical), dict.items.size());
    if (inserted) {
      dict.items.push_back(key);
      dict.items.push_back(value);
    } else {
      dict.items[it->second + 1] = value;
    }
  }

  PickleValue& dict_target(const char* what) {
    PickleValue* target = top();
    if (!target->is(PickleKind::Dict)) {
      fail_invalid(fmt::format("{} on {}; only dicts take items", what, describe(*target)));
    }
    return *target;
  }

  // ---- restricted operations -----------------------------------------------
  void push_global(std::string module, std::string name) {
    const std::string_view mapped = python3_module(module);
    const std::string full = fmt::format("{}.{}", printable(module), printable(name));
    if (mapped == "sys" || mapped == "os" || mapped == "posix" || mapped == "nt") {
      fail_forbidden(fmt::format("global '{}' is refused: module '{}' is never allowed", full,
                                 printable(module)));
    }
    const auto allowed = lookup_global(mapped, name);
    if (!allowed) {
      fail_forbidden(
          fmt::format("global '{}' is not allowed (only tensor-rebuilding globals "
                      "are; loading it could run code)",
                      full));
    }
    PickleValue* value = make_text(PickleKind::Global, fmt::format("{}.{}", mapped, name));
    value->global = allowed->global;
    value->torch_type = allowed->type;
    push(value);
  }

  static bool is_int(const PickleValue* v) { return v->is(PickleKind::Int); }
  static bool is_int_tuple(const PickleValue* v) {
    if (!v->is(PickleKind::Tuple)) return false;
    for (const auto* item : v->items) {
      if (!is_int(item)) return false;
    }
    return true;
  }

  [[noreturn]] void bad_args(const PickleValue& callable, const PickleValue& args,
                             std::string_view expected) const {
    fail_invalid(fmt::format("{} called with {} arguments; expected {}", callable.text,
                             args.items.size(), expected));
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
  // _rebuild_tensor_v3(..., hooks, dtype[, metadata])
  PickleValue* rebuild_tensor(const PickleValue& callable, const PickleValue& args, bool v3) {
    const auto& a = args.items;
    const std::size_t base = v3 ? 7 : 6;
    if (a.size() != base && a.size() != base + 1) {
      bad_args(callable, args,
               v3 ? "(storage, offset, size, stride, requires_grad, hooks, "
                    "dtype[, metadata])"
                  : "(storage, offset, size, stride, requires_grad, hooks"
                    "[, metadata])");
    }
    if (!a[0]->is(PickleKind::Storage)) {
      fail_invalid(fmt::format("{}: the storage argument is {}", callable.text, describe(*a[0])));
    }
    if (!is_int(a[1]) || !is_int_tuple(a[2]) || !is_int_tuple(a[3])) {
      fail_invalid(
          fmt::format("{}: offset must be an int, size and stride tuples of ints", callable.text));
    }
    if (a[2]->items.size() != a[3]->items.size()) {
      fail_invalid(fmt::format("{}: size has {} dimensions but stride {}", callable.text,
                               a[2]->items.size(), a[3]->items.size()));
    }
    if (!a[4]->is(PickleKind::Bool) || !a[5]->is(PickleKind::Dict)) {
      fail_invalid(
          fmt::format("{}: requires_grad must be a bool and backward hooks a dict", callable.text));
    }
    const PickleValue* dtype = nullptr;
    if (v3) {
      dtype = a[6];
      if (!dtype->is(PickleKind::Global) || dtype->global != PickleGlobal::DType) {
        fail_invalid(fmt::format("{}: the dtype argument is {}", callable.text, describe(*dtype)));
      }
    }
    if (a.size() == base + 1 && !a[base]->is(PickleKind::Dict) && !a[base]->is(PickleKind::None)) {
      fail_invalid(
          fmt::format("{}: the metadata argument is {}", callable.text, describe(*a[base])));
    }
    PickleValue* tensor = make(PickleKind::Tensor);
    tensor->items = {a[0], a[1], a[2], a[3],
                     dtype != nullptr ? dtype : shared(none_, PickleKind::None)};
    return tensor;
  }

  std::vector<const PickleValue*> copy_items(const PickleValue& container) {
    copied_items_ += container.items.size();
    if (copied_items_ > options_.max_copied_items) {
      throw Error(ErrorCode::LimitExceeded, source_,
                  fmt::format("pickle byte {}: more than {} items copied out of containers "
                              "(set(...), torch.Size(...))",
                              at_, options_.max_copied_items));
    }
    return container.items;
  }

  PickleValue* call(const PickleValue& callable, const PickleValue& args) {
    const auto& a = args.items;
    switch (callable.global) {
      case PickleGlobal::RebuildTensorV2:
        return rebuild_tensor(callable, args, false);
      case PickleGlobal::RebuildTensorV3:
        return rebuild_tensor(callable, args, true);
      case PickleGlobal::RebuildParameter:
      case PickleGlobal::RebuildParameterWithState: {
        const std::size_t n = callable.global == PickleGlobal::RebuildParameter ? 3 : 4;
        if (a.size() != n || !a[0]->is(PickleKind::Tensor)) {
          bad_args(
              callable, args,
              n == 3 ? "(tensor, requires_grad, hooks)" : "(tensor, requires_grad, hooks, state)");
        }
        return const_cast<PickleValue*>(a[0]);  // a parameter is its tensor
      }
      case PickleGlobal::OrderedDict: {
        if (!a.empty()) bad_args(callable, args, "()");
        PickleValue* dict = make(PickleKind::Dict);
        dict->ordered = true;
        return dict;
      }
      case PickleGlobal::Size: {
        if (a.size() != 1 || !(a[0]->is(PickleKind::Tuple) || a[0]->is(PickleKind::List))) {
          bad_args(callable, args, "(a tuple of ints)");
        }
        PickleValue* size = make(PickleKind::Tuple);
        size->items = copy_items(*a[0]);
        if (!is_int_tuple(size)) bad_args(callable, args, "(a tuple of ints)");
        return size;
      }
      case PickleGlobal::Device: {
        if (a.empty() || a.size() > 2 || !a[0]->is(PickleKind::String) ||
            (a.size() == 2 && !is_int(a[1]))) {
          bad_args(callable, args, "(type[, index])");
        }
        return make_text(PickleKind::Device, a[0]->text);
      }
      case PickleGlobal::Set:
      case PickleGlobal::FrozenSet: {
        const bool list_like =
            a.size() == 1 && (a[0]->is(PickleKind::List) || a[0]->is(PickleKind::Tuple) ||
                              a[0]->is(PickleKind::Set));
        if (!a.empty() && !list_like) bad_args(callable, args, "() or (a list)");
        PickleValue* set =
            make(callable.global == PickleGlobal::Set ? PickleKind::Set : PickleKind::FrozenSet);
        if (!a.empty()) set->items = copy_items(*a[0]);
        return set;
      }
      default:
        fail_forbidden(fmt::format("REDUCE cannot call '{}'", callable.text));
    }
  }

  void reduce() {
    const PickleValue* args = pop();
    const PickleValue* callable = pop();
    if (!callable->is(PickleKind::Global)) {
      fail_forbidden(
          fmt::format("REDUCE calls {}, not an allowlisted global", describe(*callable)));
    }
    if (!args->is(PickleKind::Tuple)) {
      fail_invalid(fmt::format("REDUCE arguments for '{}' are {}, not a tuple", callable->text,
                               describe(*args)));
    }
    push(call(*callable, *args));
  }

  // NEWOBJ is only torch.nn.Parameter(tensor[, requires_grad]): that tensor.
  void new_object() {
    const PickleValue* args = pop();
    const PickleValue* cls = pop();
    if (!cls->is(PickleKind::Global) || cls->global != PickleGlobal::Parameter) {
      fail_forbidden(
          fmt::format("NEWOBJ builds {}; only torch.nn.Parameter is allowed", describe(*cls)));
    }
    if (!args->is(PickleKind::Tuple) || args->items.empty() || args->items.size() > 2 ||
        !args->items[0]->is(PickleKind::Tensor)) {
      fail_invalid("torch.nn.Parameter needs (tensor[, requires_grad])");
    }
    push(const_cast<PickleValue*>(args->items[0]));
  }

  // BUILD sets object state: ignored for OrderedDicts and tensors, refused elsewhere.
  void build() {
    const PickleValue* state = pop();
    const PickleValue* target = top();
    const bool ordered_dict = target->is(PickleKind::Dict) && target->ordered;
    if (!ordered_dict && !target->is(PickleKind::Tensor)) {
      fail_forbidden(fmt::format("BUILD on {} (only an OrderedDict or a tensor may take state)",
                                 describe(*target)));
    }
    (void)state;
  }

  // ('storage', class, key, location, numel[, view_metadata])
  void persistent_load() {
    const PickleValue* pid = pop();
    if (!pid->is(PickleKind::Tuple) || pid->items.empty()) {
      fail_invalid(fmt::format("persistent id is {}, not a tuple", describe(*pid)));
    }
    const auto& a = pid->items;
    const bool tag_ok =
        (a[0]->is(PickleKind::String) || a[0]->is(PickleKind::Bytes)) && a[0]->text == "storage";
    if (!tag_ok) {
      fail_invalid(fmt::format("persistent id starts with {}; only 'storage' ids are allowed",
                               describe(*a[0])));
    }
    if (a.size() != options_.persistent_id_size) {
      fail_invalid(fmt::format("storage persistent id has {} fields; this format has {}", a.size(),
                               options_.persistent_id_size));
    }
    if (!a[1]->is(PickleKind::Global) || a[1]->global != PickleGlobal::StorageClass) {
      fail_invalid(fmt::format("storage type is {}, not a storage class", describe(*a[1])));
    }
    auto is_text = [](const PickleValue* v) {
      return v->is(PickleKind::String) || v->is(PickleKind::Bytes);
    };
    if (!is_text(a[2]) || !is_text(a[3])) {
      fail_invalid("storage key and location must be strings");
    }
    if (!is_int(a[4]) || a[4]->integer < 0) {
      fail_invalid(fmt::format("storage size is {}, not a non-negative int", describe(*a[4])));
    }
    PickleValue* storage = make_text(PickleKind::Storage, a[2]->text);
    storage->integer = a[4]->integer;
    storage->items.push_back(a[1]);
    if (a.size() == 6 && !a[5]->is(PickleKind::None)) {
      const PickleValue* view = a[5];
      const bool ok = view->is(PickleKind::Tuple) && view->items.size() == 3 &&
                      is_text(view->items[0]) && is_int(view->items[1]) && is_int(view->items[2]) &&
                      view->items[1]->integer >= 0 && view->items[2]->integer >= 0;
      if (!ok) fail_invalid("storage view metadata must be (key, offset, size)");
      storage->items.push_back(view);
    }
    push(storage);
  }

  // ---- the interpreter -----------------------------------------------------
  void push_string(PickleKind kind, std::string text, bool surrogates) {
    if (kind == PickleKind::String && !text::is_valid_utf8(text, surrogates)) {
      fail_invalid("string is not valid UTF-8");
    }
    push(make_text(kind, std::move(text)));
  }

  // LONG1: little-endian two's complement. Values that fit 64 bits (however many
  // sign-extension bytes they carry) become Int; wider ones stay raw as BigInt.
  void push_long(std::uint64_t n) {
    const auto bytes = take(n);
    if (n == 0) return push(make_int(0));
    const bool negative = (std::to_integer<unsigned>(bytes[n - 1]) & 0x80) != 0;
    const std::byte extension = negative ? std::byte{0xFF} : std::byte{0};
    std::size_t used = static_cast<std::size_t>(n);
    while (used > 8 && bytes[used - 1] == extension) --used;
    const bool fits =
        n <= 8 || (used == 8 && ((std::to_integer<unsigned>(bytes[7]) & 0x80) != 0) == negative);
    if (!fits) {
      push(make_text(PickleKind::BigInt,
                     std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
      return;
    }
    std::uint64_t value = negative ? ~std::uint64_t{0} : 0;
    for (std::size_t i = used; i-- > 0;) {
      value = (value << 8) | std::to_integer<std::uint64_t>(bytes[i]);
    }
    push(make_int(static_cast<std::int64_t>(value)));
  }

  void make_tuple(std::size_t n) {
    if (stack_.size() < fence() + n) fail_invalid(fmt::format("TUPLE{} needs {} values", n, n));
    PickleValue* tuple = make(PickleKind::Tuple);
    tuple->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    push(tuple);
  }

  void step(char code) {
    using namespace opcode;
    switch (code) {
      case kProto: {
        const auto version = take_le(1);
        if (version > 5) fail_invalid(fmt::format("pickle protocol {} is unknown", version));
        return;
      }
      case kFrame: {
        const std::uint64_t length = take_le(8);
        if (length > in_.size() - pos_) fail_invalid("FRAME length runs past the end");
        return;
      }
      case kMark:
        if (marks_.size() >= options_.max_marks) {
          throw Error(
              ErrorCode::LimitExceeded, source_,
              fmt::format("pickle byte {}: more than {} nested MARKs", at_, options_.max_marks));
        }
        marks_.push_back(stack_.size());
        return;
      case kPop:
        // POP right after MARK discards the mark, as CPython's unpickler does.
        if (stack_.size() == fence() && !marks_.empty()) {
          marks_.pop_back();
        } else {
          pop();
        }
        return;
      case kPopMark:
        pop_mark();
        return;
      case kDup:
        push(top());
        return;
      case kNone:
        push(shared(none_, PickleKind::None));
        return;
      case kNewTrue:
        push(shared(true_, PickleKind::Bool, 1));
        return;
      case kNewFalse:
        push(shared(false_, PickleKind::Bool, 0));
        return;
      case kBinInt:
        push(make_int(static_cast<std::int32_t>(static_cast<std::uint32_t>(take_le(4)))));
        return;
      case kBinInt1:
        push(make_int(static_cast<std::int64_t>(take_le(1))));
        return;
      case kBinInt2:
        push(make_int(static_cast<std::int64_t>(take_le(2))));
        return;
      case kLong1:
        push_long(take_le(1));
        return;
      case kBinFloat: {
        const auto b = take(8);
        std::uint64_t bits = 0;
        for (const auto byte : b) bits = (bits << 8) | std::to_integer<std::uint64_t>(byte);
        PickleValue* value = make(PickleKind::Float);
        value->real = std::bit_cast<double>(bits);
        push(value);
        return;
      }
      case kBinUnicode:
        push_string(PickleKind::String, take_text(take_le(4)), true);
        return;
      case kShortBinUnicode:
        push_string(PickleKind::String, take_text(take_le(1)), true);
        return;
      case kBinUnicode8:
        push_string(PickleKind::String, take_text(take_le(8)), true);
        return;
      case kShortBinString:
        push_string(PickleKind::String, take_text(take_le(1)), false);
        return;
      case kBinString: {
        const auto length = static_cast<std::int32_t>(static_cast<std::uint32_t>(take_le(4)));
        if (length < 0) fail_invalid("BINSTRING with a negative length");
        push_string(PickleKind::String, take_text(static_cast<std::uint64_t>(length)), false);
        return;
      }
      case kShortBinBytes:
        push_string(PickleKind::Bytes, take_text(take_le(1)), false);
        return;
      case kBinBytes:
        push_string(PickleKind::Bytes, take_text(take_le(4)), false);
        return;
      case kBinBytes8:
        push_string(PickleKind::Bytes, take_text(take_le(8)), false);
        return;
      case kEmptyTuple:
        push(shared(empty_tuple_, PickleKind::Tuple));
        return;
      case kTuple: {
        PickleValue* tuple = make(PickleKind::Tuple);
        tuple->items = pop_mark();
        push(tuple);
        return;
      }
      case kTuple1:
        make_tuple(1);
        return;
      case kTuple2:
        make_tuple(2);
        return;
      case kTuple3:
        make_tuple(3);
        return;
      case kEmptyList:
        push(make(PickleKind::List));
        return;
      case kAppend: {
        const PickleValue* item = pop();
        PickleValue* list = top();
        if (!list->is(PickleKind::List)) {
          fail_invalid(fmt::format("APPEND to {}; only lists can be appended to", describe(*list)));
        }
        list->items.push_back(item);
        return;
      }
      case kAppends: {
        auto items = pop_mark();
        PickleValue* list = top();
        if (!list->is(PickleKind::List)) {
          fail_invalid(
              fmt::format("APPENDS to {}; only lists can be appended to", describe(*list)));
        }
        list->items.insert(list->items.end(), items.begin(), items.end());
        return;
      }
      case kEmptyDict:
        push(make(PickleKind::Dict));
        return;
      case kSetItem: {
        const PickleValue* value = pop();
        const PickleValue* key = pop();
        set_item(dict_target("SETITEM"), key, value);
        return;
      }
      case kSetItems: {
        const auto items = pop_mark();
        if (items.size() % 2 != 0) fail_invalid("SETITEMS with an odd number of values");
        PickleValue& dict = dict_target("SETITEMS");
        for (std::size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], items[i + 1]);
        return;
      }
      case kEmptySet:
        push(make(PickleKind::Set));
        return;
      case kAddItems: {
        const auto items = pop_mark();
        PickleValue* set = top();
        if (!set->is(PickleKind::Set)) {
          fail_invalid(fmt::format("ADDITEMS to {}; only sets take items", describe(*set)));
        }
        set->items.insert(set->items.end(), items.begin(), items.end());
        return;
      }
      case kFrozenSet: {
        PickleValue* set = make(PickleKind::FrozenSet);
        set->items = pop_mark();
        push(set);
        return;
      }
      case kBinPut:
        memo_put(take_le(1));
        return;
      case kLongBinPut:
        memo_put(take_le(4));
        return;
      case kMemoize:
        memo_put(memo_.size());
        return;
      case kBinGet:
        memo_get(take_le(1));
        return;
      case kLongBinGet:
        memo_get(take_le(4));
        return;
      case kGlobal: {
        std::string module = take_line();
        std::string name = take_line();
        if (!text::is_valid_utf8(module) || !text::is_valid_utf8(name)) {
          fail_invalid("GLOBAL names are not valid UTF-8");
        }
        push_global(std::move(module), std::move(name));
        return;
      }
      case kStackGlobal: {
        const PickleValue* name = pop();
        const PickleValue* module = pop();
        if (!module->is(PickleKind::String) || !name->is(PickleKind::String)) {
          fail_invalid("STACK_GLOBAL needs two strings");
        }
        push_global(module->text, name->text);
        return;
      }
      case kReduce:
        reduce();
        return;
      case kNewObj:
        new_object();
        return;
      case kBuild:
        build();
        return;
      case kBinPersId:
        persistent_load();
        return;
      default:
        refuse(code);
    }
  }

  [[noreturn]] void refuse(char code) const {
    const auto u = static_cast<unsigned char>(code);
    switch (code) {
      case 'i':
      case 'o':
      case static_cast<char>(0x82):
      case static_cast<char>(0x83):
      case static_cast<char>(0x84):
      case static_cast<char>(0x92):
        fail_forbidden(fmt::format("opcode 0x{:02x} ({}) builds arbitrary objects", u,
                                   code == 'i'   ? "INST"
                                   : code == 'o' ? "OBJ"
                                   : u == 0x92   ? "NEWOBJ_EX"
                                                 : "EXT"));
      case 'P':
        fail_invalid("opcode PERSID (text persistent id) is not supported");
      case opcode::kDict:
      case 'l':
        fail_invalid(fmt::format("opcode '{}' (protocol 0 container) is not supported",
                                 static_cast<char>(u)));
      default:
        if (u >= 0x20 && u < 0x7F) {
          fail_invalid(fmt::format("opcode '{}' (0x{:02x}) is not supported", code, u));
        }
        fail_invalid(fmt::format("opcode 0x{:02x} is not supported", u));
    }
  }

  const PickleValue* finish() {
    if (!marks_.empty()) fail_invalid("STOP with a MARK still open");
    if (stack_.size() != 1) {
      fail_invalid(fmt::format("STOP with {} values on the stack (expected 1)", stack_.size()));
    }
    if (!options_.allow_trailing_bytes && pos_ != in_.size()) {
      fail_invalid(fmt::format("{} bytes follow STOP", in_.size() - pos_));
    }
    return stack_.back();
  }

  std::span<const std::byte> in_;
  const std::string& source_;
  const UnpickleOptions& options_;
  std::deque<PickleValue>& arena_;
  std::size_t pos_ = 0;
  std::size_t at_ = 0;  // offset of the opcode being run
  std::vector<PickleValue*> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, PickleValue*> memo_;
  std::unordered_map<const PickleValue*, std::unordered_map<std::string, std::size_t>> dict_index_;
  std::uint64_t copied_items_ = 0;
  std::array<PickleValue*, 256> small_ints_{};
  PickleValue* none_ = nullptr;
  PickleValue* true_ = nullptr;
  PickleValue* false_ = nullptr;
  PickleValue* empty_tuple_ = nullptr;
};

}  // namespace

const TorchType* torch_type_of(DType dtype) noexcept {
  for (const auto& type : kTorchTypes) {
    if (type.dtype == dtype) return &type;
  }
  return nullptr;
}

std::string describe(const PickleValue& value) {
  switch (value.kind) {
    case PickleKind::Int:
      return fmt::format("int {}", value.integer);
    case PickleKind::Bool:
      return value.integer ? "True" : "False";
    case PickleKind::Float:
      return fmt::format("float {}", value.real);
    case PickleKind::String:
      return fmt::format("the string '{}'", printable(value.text, 60));
    case PickleKind::Global:
      return fmt::format("global {}", printable(value.text, 60));
    case PickleKind::Tuple:
    case PickleKind::List:
    case PickleKind::Dict:
      return fmt::format("{} of {} items", kind_name(value.kind),
                         value.is(PickleKind::Dict) ? value.items.size() / 2 : value.items.size());
    default:
      return std::string(kind_name(value.kind));
  }
}

Unpickled unpickle(std::span<const std::byte> data, const std::string& source,
                   const UnpickleOptions& options) {
  Unpickled out;
  out.arena_ = std::make_unique<std::deque<PickleValue>>();
  Machine machine(data, source, options, *out.arena_);
  const auto [root, consumed] = machine.run();
  out.root_ = root;
  out.consumed_ = consumed;
  return out;
}

// ---- writing -----------------------------------------------------------------

PickleBuilder& PickleBuilder::proto(std::uint8_t version) {
  out_ += opcode::kProto;
  out_ += static_cast<char>(version);
  return *this;
}

PickleBuilder& PickleBuilder::op(char code) {
  out_ += code;
  return *this;
}

PickleBuilder& PickleBuilder::integer(std::int64_t value) {
  auto put_le = [this](std::uint64_t v, unsigned width) {
    for (unsigned i = 0; i < width; ++i, v >>= 8) out_ += static_cast<char>(v & 0xFF);
  };
  if (value >= 0 && value <= 0xFF) {
    out_ += opcode::kBinInt1;
    put_le(static_cast<std::uint64_t>(value), 1);
  } else if (value >= 0 && value <= 0xFFFF) {
    out_ += opcode::kBinInt2;
    put_le(static_cast<std::uint64_t>(value), 2);
  } else if (value >= std::numeric_limits<std::int32_t>::min() &&
             value <= std::numeric_limits<std::int32_t>::max()) {
    out_ += opcode::kBinInt;
    put_le(static_cast<std::uint32_t>(static_cast<std::int32_t>(value)), 4);
  } else {
    // CPython's LONG1: the fewest two's-complement bytes that keep the sign.
    const auto bits = static_cast<std::uint64_t>(value);
    unsigned width = 8;
    while (width > 1) {
      const auto high = static_cast<std::uint8_t>(bits >> (8 * (width - 1)));
      const auto next = static_cast<std::uint8_t>(bits >> (8 * (width - 2)));
      const bool redundant =
          (value < 0) ? (high == 0xFF && (next & 0x80)) : (high == 0x00 && !(next & 0x80));
      if (!redundant) break;
      --width;
    }
    out_ += opcode::kLong1;
    out_ += static_cast<char>(width);
    put_le(bits, width);
  }
  return *this;
}

PickleBuilder& PickleBuilder::unicode(std::string_view text) {
  out_ += opcode::kBinUnicode;
  auto n = static_cast<std::uint32_t>(text.size());
  for (int i = 0; i < 4; ++i, n >>= 8) out_ += static_cast<char>(n & 0xFF);
  out_ += text;
  return *this;
}

PickleBuilder& PickleBuilder::global(std::string_view module, std::string_view name) {
  out_ += opcode::kGlobal;
  out_ += module;
  out_ += '\n';
  out_ += name;
  out_ += '\n';
  return *this;
}

PickleBuilder& PickleBuilder::put(std::uint32_t index) {
  if (index < 256) {
    out_ += opcode::kBinPut;
    out_ += static_cast<char>(index);
  } else {
    out_ += opcode::kLongBinPut;
    for (int i = 0; i < 4; ++i, index >>= 8) out_ += static_cast<char>(index & 0xFF);
  }
  return *this;
}

PickleBuilder& PickleBuilder::get(std::uint32_t index) {
  if (index < 256) {
    out_ += opcode::kBinGet;
    out_ += static_cast<char>(index);
  } else {
    out_ += opcode::kLongBinGet;
    for (int i = 0; i < 4; ++i, index >>= 8) out_ += static_cast<char>(index & 0xFF);
  }
  return *this;
}

PickleBuilder& PickleBuilder::raw(std::string_view bytes) {
  out_ += bytes;
  return *this;
}

namespace {

// CPython's pickler memoises each object the first time it is written and refers to
// it with BINGET afterwards; torch.save's repeated objects are the globals, the
// 'storage' and 'cpu' strings and each storage's key string.
class StateDictPickler {
 public:
  std::string run(std::span<const PickledTensor> tensors) {
    out_.proto(2).op(opcode::kEmptyDict);
    memoise();
    if (tensors.size() == 1) {
      entry(tensors[0]);
      out_.op(opcode::kSetItem);
    } else if (!tensors.empty()) {
      // C pickler batching: full batches of 1000, then the rest (possibly none).
      constexpr std::size_t kBatch = 1000;
      std::size_t next = 0;
      std::size_t in_batch = 0;
      do {
        out_.op(opcode::kMark);
        in_batch = 0;
        while (next < tensors.size() && in_batch < kBatch) {
          entry(tensors[next++]);
          ++in_batch;
        }
        out_.op(opcode::kSetItems);
      } while (in_batch == kBatch);
    }
    out_.op(opcode::kStop);
    return out_.take();
  }

 private:
  void memoise() { out_.put(next_memo_++); }

  // A repeated object (by identity key) is fetched from the memo.
  void shared(const std::string& identity, const std::function<void()>& write) {
    const auto it = memo_.find(identity);
    if (it != memo_.end()) {
      out_.get(it->second);
      return;
    }
    write();
    memo_.emplace(identity, next_memo_);
    memoise();
  }

  void global(std::string_view module, std::string_view name) {
    shared(fmt::format("g:{}.{}", module, name), [&] { out_.global(module, name); });
  }

  void int_tuple(std::span<const std::uint64_t> values) {
    if (values.empty()) {
      out_.op(opcode::kEmptyTuple);  // the empty tuple is a singleton, never memoised
      return;
    }
    if (values.size() > 3) out_.op(opcode::kMark);
    for (const auto v : values) out_.integer(static_cast<std::int64_t>(v));
    constexpr char kBySize[] = {0, opcode::kTuple1, opcode::kTuple2, opcode::kTuple3};
    out_.op(values.size() > 3 ? opcode::kTuple : kBySize[values.size()]);
    memoise();
  }

  void entry(const PickledTensor& t) {
    out_.unicode(t.key);
    memoise();
    global("torch._utils", t.untyped_storage ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
    out_.op(opcode::kMark);
    // The persistent id tuple.
    out_.op(opcode::kMark);
    shared("s:storage", [&] { out_.unicode("storage"); });
    if (t.untyped_storage) {
      global("torch.storage", "UntypedStorage");
    } else {
      global("torch", t.type->storage_name);
    }
    shared(fmt::format("k:{}", t.storage_key), [&] { out_.unicode(t.storage_key); });
    shared("s:cpu", [&] { out_.unicode("cpu"); });
    out_.integer(static_cast<std::int64_t>(t.storage_numel));
    out_.op(opcode::kTuple);
    memoise();
    out_.op(opcode::kBinPersId);
    out_.integer(static_cast<std::int64_t>(t.storage_offset));
    int_tuple(t.size);
    int_tuple(t.stride);
    out_.op(opcode::kNewFalse);
    // backward_hooks: OrderedDict()
    global("collections", "OrderedDict");
    out_.op(opcode::kEmptyTuple).op(opcode::kReduce);
    memoise();
    if (t.untyped_storage) global("torch", t.type->dtype_name);
    out_.op(opcode::kTuple);
    memoise();
    out_.op(opcode::kReduce);
    memoise();
  }

  PickleBuilder out_;
  std::uint32_t next_memo_ = 0;
  std::unordered_map<std::string, std::uint32_t> memo_;
};

}  // namespace

std::string pickle_torch_state_dict(std::span<const PickledTensor> tensors) {
  return StateDictPickler().run(tensors);
}

}  // namespace peft::formats
