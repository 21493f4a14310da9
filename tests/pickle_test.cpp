// The restricted unpickler (docs/formats.md "The restricted unpickler"): what it builds, what it
// refuses, the bounds it keeps; and the protocol-2 writer reproducing torch.save's data.pkl.
#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "formats/pickle.hpp"
#include "formats/zip.hpp"
#include "test_support.hpp"

namespace peft::formats {
namespace {
namespace fs = std::filesystem;

// A string literal with its embedded NUL bytes.
template <std::size_t N>
std::string raw(const char (&text)[N]) {
  return std::string(text, N - 1);
}

std::span<const std::byte> bytes_of(const std::string& text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

Unpickled load(const std::string& pickle, UnpickleOptions options = {}) {
  return unpickle(bytes_of(pickle), "test.pkl", options);
}

// PROTO 2, the body, STOP.
std::string program(const std::string& body) {
  return raw("\x80\x02") + body + ".";
}

std::string global(std::string_view module, std::string_view name) {
  return PickleBuilder().global(module, name).take();
}

TEST(Pickle, ScalarsAndStrings) {
  auto check_int = [](std::int64_t v) {
    const auto t = load(program(PickleBuilder().integer(v).take()));
    EXPECT_TRUE(t.root().is(PickleKind::Int)) << v;
    EXPECT_EQ(t.root().integer, v);
  };
  const std::int64_t values[] = {0,           1,           255,       256,          65535,
                                 65536,       -1,          -129,      2147483647,   2147483648,
                                 -2147483648, -2147483649, 1LL << 40, -(1LL << 40), INT64_MAX,
                                 INT64_MIN};
  for (const std::int64_t v : values) {
    check_int(v);
  }
  EXPECT_TRUE(load(program("N")).root().is(PickleKind::None));
  EXPECT_EQ(load(program("\x88")).root().integer, 1);
  EXPECT_EQ(load(program("\x89")).root().integer, 0);
  EXPECT_EQ(load(program(raw("G\x3f\xf8\0\0\0\0\0\0"))).root().real, 1.5);
  EXPECT_EQ(load(program(PickleBuilder().unicode("h\xc3\xa9").take())).root().text, "h\xc3\xa9");
  EXPECT_EQ(load(program("\x8c\x02hi")).root().text, "hi");
  EXPECT_EQ(load(program(raw("\x8d\x02\0\0\0\0\0\0\0hi"))).root().text, "hi");
  EXPECT_EQ(load(program("U\x03key")).root().text, "key");
  EXPECT_EQ(load(program(raw("T\x02\0\0\0ab"))).root().text, "ab");
  const auto bytes = load(program(raw("C\x02\xff\x00")));
  EXPECT_TRUE(bytes.root().is(PickleKind::Bytes));
  EXPECT_EQ(bytes.root().text, raw("\xff\0"));
  EXPECT_EQ(load(program(raw("B\x01\0\0\0z"))).root().text, "z");
  // Encoded surrogates pass in BINUNICODE ("surrogatepass") but not in BINSTRING.
  EXPECT_NO_THROW(load(program(raw("X\x03\0\0\0\xed\xa0\x80"))));
  EXPECT_PEFT_ERROR(load(program("U\x03\xed\xa0\x80")), ErrorCode::InvalidPickle, "UTF-8");
  EXPECT_PEFT_ERROR(load(program(raw("X\x01\0\0\0\xff"))), ErrorCode::InvalidPickle, "UTF-8");
}

TEST(Pickle, WideLongs) {
  // Sign-extension bytes beyond 8 still give a 64-bit value.
  EXPECT_EQ(load(program(raw("\x8a\x0a\x05\0\0\0\0\0\0\0\0\0"))).root().integer, 5);
  EXPECT_EQ(load(program(raw("\x8a\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))).root().integer,
            -1);
  EXPECT_EQ(load(program(raw("\x8a\x00"))).root().integer, 0);
  // 2^63 needs 9 bytes: kept as a big int.
  const auto big = load(program(raw("\x8a\x09\0\0\0\0\0\0\0\x80\0")));
  EXPECT_TRUE(big.root().is(PickleKind::BigInt));
}

TEST(Pickle, Containers) {
  // [1, (2, 3), {'a': None}] with APPENDS, TUPLE2 and SETITEM.
  const auto t = load(program(raw("](K\x01K\x02K\x03\x86}X\x01\0\0\0aNse")));
  const PickleValue& list = t.root();
  ASSERT_TRUE(list.is(PickleKind::List));
  ASSERT_EQ(list.items.size(), 3u);
  EXPECT_EQ(list.items[1]->items.size(), 2u);
  EXPECT_EQ(list.items[2]->items[0]->text, "a");

  const auto tuple = load(program("(K\x01K\x02K\x03K\x04t"));
  EXPECT_EQ(tuple.root().items.size(), 4u);
  EXPECT_EQ(load(program(")")).root().items.size(), 0u);
  EXPECT_EQ(load(program("K\x01\x85")).root().items.size(), 1u);
  EXPECT_EQ(load(program("K\x01K\x02K\x03\x87")).root().items.size(), 3u);
  EXPECT_TRUE(load(program("\x8f(K\x01\x90")).root().is(PickleKind::Set));
  EXPECT_TRUE(load(program("(K\x01\x91")).root().is(PickleKind::FrozenSet));
}

TEST(Pickle, DictsKeepPythonKeySemantics) {
  // {'b': 1, 'a': 2, 'b': 3} → 'b' keeps its first position, takes 3.
  const auto t = load(program(raw("}(X\x01\0\0\0bK\x01X\x01\0\0\0aK\x02X\x01\0\0\0bK\x03u")));
  const auto& items = t.root().items;
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0]->text, "b");
  EXPECT_EQ(items[1]->integer, 3);
  EXPECT_EQ(items[2]->text, "a");
  // 1, True and 1.0 are one key; the string '1' is another.
  const std::string mixed =
      raw("}(K\x01K\x0a\x88K\x0bG\x3f\xf0\0\0\0\0\0\0K\x0cX\x01\0\0\0"
          "1K\x0du");
  EXPECT_EQ(load(program(mixed)).root().items.size(), 4u);
  // Tuple keys are fine, list keys are not hashable.
  EXPECT_NO_THROW(load(program("}K\x01K\x02\x86K\x03s")));
  EXPECT_PEFT_ERROR(load(program("}]K\x03s")), ErrorCode::InvalidPickle, "cannot be a dict key");
}

TEST(Pickle, MemoAndStackOpcodes) {
  // BINPUT / BINGET / LONG_BINPUT / LONG_BINGET / MEMOIZE / DUP / POP / POP_MARK / FRAME.
  EXPECT_EQ(load(program("K\x07q\x05"
                         "0h\x05"))
                .root()
                .integer,
            7);
  EXPECT_EQ(load(program(raw("K\x07r\x00\x01\0\0"
                             "0j\x00\x01\0\0")))
                .root()
                .integer,
            7);
  EXPECT_EQ(load(program(raw("K\x07\x94"
                             "0h\x00")))
                .root()
                .integer,
            7);
  EXPECT_EQ(load(program("K\x07\x32\x86")).root().items.size(), 2u);
  EXPECT_EQ(load(program("K\x01(K\x02K\x03"
                         "1"))
                .root()
                .integer,
            1);
  EXPECT_EQ(load(program("K\x01(0")).root().integer, 1);  // POP discards an empty MARK
  EXPECT_EQ(load(raw("\x80\x04\x95\x03\0\0\0\0\0\0\0K\x09.")).root().integer, 9);
  // The same list appended to itself: a cycle in the tree, no leak, no recursion.
  const auto cyclic =
      load(program(raw("]q\x00h\x00"
                       "a")));
  EXPECT_EQ(cyclic.root().items[0], &cyclic.root());
}

TEST(Pickle, AllowedGlobalsBecomeTokens) {
  const auto t = load(program(global("torch", "FloatStorage")));
  ASSERT_TRUE(t.root().is(PickleKind::Global));
  EXPECT_EQ(t.root().global, PickleGlobal::StorageClass);
  ASSERT_NE(t.root().torch_type, nullptr);
  EXPECT_EQ(t.root().torch_type->dtype, DType::F32);
  EXPECT_EQ(load(program(global("torch.storage", "UntypedStorage"))).root().torch_type, nullptr);
  EXPECT_EQ(load(program(global("torch", "bfloat16"))).root().global, PickleGlobal::DType);
  // STACK_GLOBAL resolves the same table.
  const std::string stack = PickleBuilder().unicode("collections").unicode("OrderedDict").take();
  EXPECT_EQ(load(program(stack + "\x93")).root().global, PickleGlobal::OrderedDict);
}

TEST(Pickle, ForbiddenGlobalsAreRefusedByName) {
  const std::pair<const char*, const char*> hostile[] = {
      {"os", "system"},
      {"posix", "system"},
      {"nt", "system"},
      {"builtins", "eval"},
      {"builtins", "exec"},
      {"builtins", "getattr"},
      {"builtins", "__import__"},
      {"builtins", "open"},
      {"builtins", "compile"},
      {"__builtin__", "eval"},
      {"subprocess", "Popen"},
      {"subprocess", "call"},
      {"subprocess", "run"},
      {"subprocess", "check_output"},
      {"runpy", "_run_code"},
      {"webbrowser", "open"},
      {"pickle", "loads"},
      {"functools", "partial"},
      {"operator", "attrgetter"},
      {"numpy.core.multiarray", "_reconstruct"},
      {"numpy", "dtype"},
      {"torch", "load"},
      {"torch.serialization", "load"},
      {"torch.jit", "load"},
      {"torch._tensor", "_rebuild_from_type_v2"},
      {"torch._utils", "_rebuild_qtensor"},
      {"torch", "QInt8Storage"},
      {"collections", "Counter"},
      {"sys", "modules"},
      {"os", "Storage"},
  };
  for (const auto& [module, name] : hostile) {
    const std::string full = std::string(module) + "." + name;
    SCOPED_TRACE(full);
    EXPECT_PEFT_ERROR(load(program(global(module, name))), ErrorCode::ForbiddenPickle, full);
    const std::string stack = PickleBuilder().unicode(module).unicode(name).take();
    EXPECT_PEFT_ERROR(load(program(stack + "\x93")), ErrorCode::ForbiddenPickle, full);
  }
  // Control characters in a name are escaped in the message.
  EXPECT_PEFT_ERROR(load(program(global("os\x1b", "system"))), ErrorCode::ForbiddenPickle,
                    "os\\x1b.system");
}

TEST(Pickle, ReduceOnlyCallsInterpretedGlobals) {
  // A string "called".
  EXPECT_PEFT_ERROR(load(program(raw("X\x04\0\0\0evil)R"))), ErrorCode::ForbiddenPickle,
                    "not an allowlisted global");
  // Classes that are tokens only.
  EXPECT_PEFT_ERROR(load(program(global("torch", "FloatStorage") + ")R")),
                    ErrorCode::ForbiddenPickle, "REDUCE cannot call 'torch.FloatStorage'");
  EXPECT_PEFT_ERROR(load(program(global("torch", "float32") + ")R")), ErrorCode::ForbiddenPickle,
                    "torch.float32");
  EXPECT_PEFT_ERROR(load(program(global("torch.nn.parameter", "Parameter") + ")R")),
                    ErrorCode::ForbiddenPickle, "Parameter");
  // Arguments that are not a tuple, or of the wrong shape.
  EXPECT_PEFT_ERROR(load(program(global("collections", "OrderedDict") + "]R")),
                    ErrorCode::InvalidPickle, "not a tuple");
  EXPECT_PEFT_ERROR(load(program(global("collections", "OrderedDict") + "K\x01\x85R")),
                    ErrorCode::InvalidPickle, "expected ()");
  EXPECT_PEFT_ERROR(load(program(global("torch._utils", "_rebuild_tensor_v2") + ")R")),
                    ErrorCode::InvalidPickle, "called with 0 arguments");
  // Interpreted calls.
  const auto od = load(program(global("collections", "OrderedDict") + ")R"));
  EXPECT_TRUE(od.root().is(PickleKind::Dict));
  EXPECT_TRUE(od.root().ordered);
  const auto size = load(program(global("torch", "Size") + "K\x02K\x03\x86\x85R"));
  EXPECT_EQ(size.root().items.size(), 2u);
  const auto device = load(program(global("torch", "device") + raw("X\x03\0\0\0cpu\x85R")));
  EXPECT_EQ(device.root().text, "cpu");
  EXPECT_TRUE(load(program(global("builtins", "set") + "]\x85R")).root().is(PickleKind::Set));
}

TEST(Pickle, BuildAndNewObjAreRestricted) {
  // BUILD on an OrderedDict is ignored; on a plain dict or a list it is refused.
  EXPECT_NO_THROW(load(program(global("collections", "OrderedDict") + ")R}b")));
  EXPECT_PEFT_ERROR(load(program("}}b")), ErrorCode::ForbiddenPickle, "BUILD on a dict");
  EXPECT_PEFT_ERROR(load(program("]Nb")), ErrorCode::ForbiddenPickle, "BUILD on a list");
  EXPECT_PEFT_ERROR(load(program(global("collections", "OrderedDict") + ")\x81")),
                    ErrorCode::ForbiddenPickle, "only torch.nn.Parameter");
}

TEST(Pickle, PersistentIdsAreChecked) {
  const std::string cls = global("torch", "FloatStorage");
  auto pid = [&](const std::string& fields) {
    return program(raw("(X\x07\0\0\0storage") + fields + "tQ");
  };
  const auto ok = load(pid(cls + raw("X\x01\0\0\0"
                                     "0X\x03\0\0\0cpuK\x04")));
  ASSERT_TRUE(ok.root().is(PickleKind::Storage));
  EXPECT_EQ(ok.root().text, "0");
  EXPECT_EQ(ok.root().integer, 4);
  EXPECT_PEFT_ERROR(load(program(raw("(X\x06\0\0\0moduleK\x01tQ"))), ErrorCode::InvalidPickle,
                    "only 'storage'");
  EXPECT_PEFT_ERROR(load(program("K\x01Q")), ErrorCode::InvalidPickle, "not a tuple");
  EXPECT_PEFT_ERROR(load(pid(cls + raw("X\x01\0\0\0"
                                       "0X\x03\0\0\0cpu"))),
                    ErrorCode::InvalidPickle, "has 4 fields");
  EXPECT_PEFT_ERROR(load(pid(raw("NX\x01\0\0\0"
                                 "0X\x03\0\0\0cpuK\x04"))),
                    ErrorCode::InvalidPickle, "not a storage class");
  EXPECT_PEFT_ERROR(load(pid(cls + raw("K\x00X\x03\0\0\0cpuK\x04"))), ErrorCode::InvalidPickle,
                    "must be strings");
  EXPECT_PEFT_ERROR(load(pid(cls + raw("X\x01\0\0\0"
                                       "0X\x03\0\0\0cpuJ\xff\xff\xff\xff"))),
                    ErrorCode::InvalidPickle, "non-negative");
}

TEST(Pickle, RefusedOpcodes) {
  for (const char code : {'i', 'o', '\x82', '\x83', '\x84', '\x92'}) {
    SCOPED_TRACE(static_cast<int>(static_cast<unsigned char>(code)));
    EXPECT_PEFT_ERROR(load(program(std::string(1, code))), ErrorCode::ForbiddenPickle,
                      "arbitrary objects");
  }
  for (const char code : {'P', 'g', 'p', 'I', 'L', 'F', 'S', 'V', 'd', 'l', '\x96', '\x97', '\x98',
                          '\x8b', '\xff', '\x00'}) {
    SCOPED_TRACE(static_cast<int>(static_cast<unsigned char>(code)));
    EXPECT_PEFT_ERROR(load(program(std::string(1, code))), ErrorCode::InvalidPickle,
                      "not supported");
  }
  EXPECT_PEFT_ERROR(load(raw("\x80\x06N.")), ErrorCode::InvalidPickle, "protocol 6");
}

TEST(Pickle, StructuralErrors) {
  const std::pair<std::string, const char*> cases[] = {
      {program("h\x09"), "memo entry 9 was never stored"},
      {program(raw("q\x00N")), "stack underflow"},
      {program(raw("(q\x00N1N")), "stack underflow"},
      {program("1N"), "no MARK"},
      {program("tN"), "no MARK"},
      {program("}K\x01u"), "no MARK"},
      {program("}(K\x01u"), "odd number"},
      {program("]K\x01K\x02s"), "only dicts take items"},
      {program("}K\x01"
               "a"),
       "only lists can be appended to"},
      {program("}(K\x01"
               "e"),
       "only lists can be appended to"},
      {program("K\x01\x86"), "TUPLE2 needs 2 values"},
      {raw("\x80\x02N"), "without a STOP"},
      {program("N") + "N", "1 bytes follow STOP"},
      {program("NN"), "2 values on the stack"},
      {program("(N"), "MARK still open"},
      {program(""), "STOP with 0 values"},
      {program("cos"), "no terminating newline"},
      {program(raw("\x95\xff\xff\0\0\0\0\0\0")), "FRAME length"},
  };
  for (const auto& [pickle, fragment] : cases) {
    SCOPED_TRACE(fragment);
    EXPECT_PEFT_ERROR(load(pickle), ErrorCode::InvalidPickle, fragment);
  }
}

TEST(Pickle, HugeDeclaredLengthsAreBoundedByTheInput) {
  for (const std::string& body :
       {raw("X\xff\xff\xff\xff"), raw("\x8d\xff\xff\xff\xff\xff\xff\xff\x7f"),
        raw("\x8e\0\0\0\0\0\0\0\x80"), raw("B\xff\xff\xff\x7f"), raw("T\xff\xff\xff\x7f"),
        raw("\x8a\xff"), raw("C\x10")}) {
    EXPECT_PEFT_ERROR(load(program(body)), ErrorCode::InvalidPickle, "truncated");
  }
  EXPECT_PEFT_ERROR(load(program(raw("T\xff\xff\xff\xff"))), ErrorCode::InvalidPickle,
                    "negative length");
}

TEST(Pickle, ResourceLimits) {
  UnpickleOptions small;
  small.max_opcodes = 1000;
  std::string spin;
  for (int i = 0; i < 600; ++i) spin += "N0";
  EXPECT_PEFT_ERROR(load(program(spin + "N"), small), ErrorCode::LimitExceeded, "opcodes");

  small = {};
  small.max_memo_entries = 100;
  std::string memo = "N";
  for (std::uint32_t i = 0; i < 200; ++i) memo += PickleBuilder().put(i * 1000).take();
  EXPECT_PEFT_ERROR(load(program(memo), small), ErrorCode::LimitExceeded, "memo entries");
  // One far memo index is fine: the memo is sparse.
  EXPECT_NO_THROW(load(program(raw("Nr\xff\xff\xff\xff"))));

  small = {};
  small.max_stack = 100;
  EXPECT_PEFT_ERROR(load(program(std::string(200, 'N')), small), ErrorCode::LimitExceeded,
                    "values on the stack");
  small = {};
  small.max_marks = 50;
  EXPECT_PEFT_ERROR(load(program(std::string(100, '(')), small), ErrorCode::LimitExceeded,
                    "nested MARKs");
}

// Bombs: deep nesting built through the memo and exponentially shared tuples used as
// dict keys. Neither may recurse without bound, allocate without bound, or hang.
TEST(Pickle, NestingAndMemoBombs) {
  // 100000 lists, each inside the previous one, with a constant-depth stack.
  std::string deep = raw("]q\x00");
  for (std::uint32_t i = 1; i <= 100000; ++i) {
    deep += PickleBuilder().get(i - 1).take() + "]" + PickleBuilder().put(i).take() + "a0";
  }
  deep += "0" + PickleBuilder().get(0).take();
  const auto nested = load(program(deep));
  EXPECT_TRUE(nested.root().is(PickleKind::List));

  // t_{i+1} = (t_i, t_i): 2^60 leaves when expanded; as a dict key it must be refused.
  std::string bomb =
      raw("K\x01q\x00"
          "0");
  for (std::uint32_t i = 1; i <= 60; ++i) {
    bomb += PickleBuilder().get(i - 1).take() + PickleBuilder().get(i - 1).take() + "\x86" +
            PickleBuilder().put(i).take() + "0";
  }
  bomb = "}" + bomb + PickleBuilder().get(60).take() + "Ns";
  EXPECT_PEFT_ERROR(load(program(bomb)), ErrorCode::LimitExceeded, "dict key");

  // A storm of MARKs and tuples within the limits parses quickly.
  std::string storm;
  for (int i = 0; i < 5000; ++i) storm += "(";
  for (int i = 0; i < 5000; ++i) storm += "t";
  EXPECT_NO_THROW(load(program(storm)));
}

// Random corruption of a real torch.save pickle: always a value or a typed error.
TEST(Pickle, ByteFlipsOfARealPickleAreSafe) {
  const auto files = testing::find_files(testing::peft_ref_root(), "adapter_model.bin");
  ASSERT_FALSE(files.empty());
  const auto bytes = testing::read_bytes(files.front());
  const auto archive = ZipArchive::open(bytes, files.front().string());
  const auto data = archive.data(archive.entries().front());
  const std::string pickle(reinterpret_cast<const char*>(data.data()), data.size());
  for (std::size_t i = 0; i < pickle.size(); ++i) {
    for (const unsigned char mask : {0x01, 0x10, 0xFF}) {
      std::string bad = pickle;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ mask);
      try {
        (void)load(bad);
      } catch (const Error&) {
      }
    }
    try {
      (void)load(pickle.substr(0, i));
      ADD_FAILURE() << "a truncated pickle parsed: " << i;
    } catch (const Error&) {
    }
  }
}

// ---- the writer ---------------------------------------------------------------------

std::vector<std::uint64_t> ints(const PickleValue& tuple) {
  std::vector<std::uint64_t> out;
  for (const auto* v : tuple.items) out.push_back(static_cast<std::uint64_t>(v->integer));
  return out;
}

// Re-pickles what a torch.save data.pkl describes. nullopt when one tensor object
// appears under two keys (torch.save writes a BINGET there) or tensors are wrapped as
// parameters: a StateDict cannot tell either.
std::optional<std::string> repickle(const PickleValue& root) {
  std::vector<PickledTensor> tensors;
  std::vector<std::vector<std::uint64_t>> shapes;
  shapes.reserve(root.items.size());
  std::set<const PickleValue*> seen;
  for (std::size_t i = 0; i < root.items.size(); i += 2) {
    const PickleValue& t = *root.items[i + 1];
    if (!seen.insert(&t).second) return std::nullopt;
    const PickleValue& storage = *t.items[0];
    PickledTensor p;
    p.key = root.items[i]->text;
    p.type = storage.items[0]->torch_type;
    p.storage_key = storage.text;
    p.storage_numel = static_cast<std::uint64_t>(storage.integer);
    p.storage_offset = static_cast<std::uint64_t>(t.items[1]->integer);
    shapes.push_back(ints(*t.items[2]));
    p.size = shapes.back();
    shapes.push_back(ints(*t.items[3]));
    p.stride = shapes.back();
    tensors.push_back(p);
  }
  return pickle_torch_state_dict(tensors);
}

TEST(Pickle, WriterReproducesTorchSaveDataPkl) {
  std::size_t compared = 0;
  for (const auto& path : testing::find_files(testing::peft_ref_root(), "adapter_model.bin")) {
    SCOPED_TRACE(path.string());
    const auto bytes = testing::read_bytes(path);
    const auto archive = ZipArchive::open(bytes, path.string());
    const auto data = archive.data(archive.entries().front());
    const std::string original(reinterpret_cast<const char*>(data.data()), data.size());
    if (original.find("_rebuild_parameter") != std::string::npos) continue;
    const auto tree = load(original);
    const auto rewritten = repickle(tree.root());
    if (!rewritten) continue;
    EXPECT_TRUE(*rewritten == original);
    ++compared;
  }
  EXPECT_GT(compared, 0u);
}

TEST(Pickle, WriterBatchesLikeTheCPickler) {
  const TorchType* f32 = torch_type_of(DType::F32);
  const std::vector<std::uint64_t> shape{2}, stride{1};
  for (const std::size_t n : {0u, 1u, 2u, 999u, 1000u, 1001u, 2000u}) {
    SCOPED_TRACE(n);
    std::vector<std::string> keys, storage_keys;
    for (std::size_t i = 0; i < n; ++i) {
      keys.push_back("k" + std::to_string(i));
      storage_keys.push_back(std::to_string(i));
    }
    std::vector<PickledTensor> tensors;
    for (std::size_t i = 0; i < n; ++i) {
      PickledTensor p;
      p.key = keys[i];
      p.type = f32;
      p.storage_key = storage_keys[i];
      p.storage_numel = 2;
      p.size = shape;
      p.stride = stride;
      tensors.push_back(p);
    }
    const std::string pickle = pickle_torch_state_dict(tensors);
    const auto tree = load(pickle);
    ASSERT_EQ(tree.root().items.size(), 2 * n);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(tree.root().items[2 * i]->text, keys[i]);
    const std::string tail = pickle.substr(pickle.size() - std::min<std::size_t>(pickle.size(), 3));
    if (n == 0) {
      EXPECT_EQ(pickle, raw("\x80\x02}q\x00."));
    }
    if (n == 1) {
      EXPECT_EQ(tail.substr(1), "s.");
    }
    // A dict that fills its last batch exactly gets one more, empty, MARK SETITEMS.
    if (n == 1000 || n == 2000) {
      EXPECT_EQ(tail, "(u.");
    }
    if (n == 2 || n == 999 || n == 1001) {
      EXPECT_EQ(tail.substr(1), "u.");
      EXPECT_NE(tail, "(u.");
    }
  }
}

TEST(Pickle, BuilderIntegersMatchCPython) {
  EXPECT_EQ(PickleBuilder().integer(5).take(), "K\x05");
  EXPECT_EQ(PickleBuilder().integer(256).take(), raw("M\x00\x01"));
  EXPECT_EQ(PickleBuilder().integer(-1).take(), "J\xff\xff\xff\xff");
  EXPECT_EQ(PickleBuilder().integer(65536).take(), raw("J\x00\x00\x01\x00"));
  EXPECT_EQ(PickleBuilder().integer(1LL << 31).take(), raw("\x8a\x05\0\0\0\x80\0"));
  EXPECT_EQ(PickleBuilder().integer(-(1LL << 31) - 1).take(), raw("\x8a\x05\xff\xff\xff\x7f\xff"));
  EXPECT_EQ(PickleBuilder().integer(1LL << 40).take(), raw("\x8a\x06\0\0\0\0\0\x01"));
  EXPECT_EQ(PickleBuilder().put(300).get(300).take(), raw("r\x2c\x01\0\0j\x2c\x01\0\0"));
}

}  // namespace
}  // namespace peft::formats
