// Every input a fuzz target ever failed on, checked in under
// tests/data/fuzz-regressions/<target>/, replayed through the target's own entry point
// (fuzz/entry_points.cpp): a reappearing bug aborts this test. The named tests below
// state what each finding was, through the public API.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "entry_points.hpp"
#include "formats/pickle.hpp"
#include "peft/inspect.hpp"
#include "peft/validate.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;

const char* const kTargets[] = {"safetensors", "zip", "pickle", "config", "adapter_folder", "gguf"};

fs::path regressions_root() {
  return testing::test_data() / "fuzz-regressions";
}

std::vector<fs::path> inputs_of(const std::string& target) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(regressions_root() / target, ec)) {
    if (entry.is_regular_file() && entry.path().filename() != "README.md") {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void replay(const std::string& target, const fs::path& input) {
  SCOPED_TRACE(input.string());
  const std::vector<std::byte> bytes = testing::read_bytes(input);
  const fuzz::Input data(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  if (target == "adapter_folder") {
    testing::TempDir dir;
    fuzz::adapter_folder_input(data, dir.path());
  } else {
    fuzz::run_target(target, data);
  }
}

TEST(FuzzRegressions, EveryCheckedInInputReplaysCleanly) {
  std::size_t replayed = 0;
  for (const std::string target : kTargets) {
    for (const auto& input : inputs_of(target)) {
      replay(target, input);
      ++replayed;
    }
  }
  EXPECT_GT(replayed, 0u);
}

// The fixtures themselves go through every target without a finding (the entry points'
// round-trip checks hold on real files).
TEST(FuzzRegressions, FixturesPassTheEntryPoints) {
  const auto root = testing::peft_ref_root();
  std::size_t checked = 0;
  for (const auto& file : testing::find_files(root, ".safetensors")) {
    if (checked++ >= 40) break;
    replay("safetensors", file);
  }
  checked = 0;
  for (const auto& file : testing::find_files(root, ".bin")) {
    if (checked++ >= 20) break;
    replay("zip", file);
  }
  checked = 0;
  for (const auto& file : testing::find_files(root, "adapter_config.json")) {
    if (checked++ >= 40) break;
    replay("config", file);
  }
}

// Finding (fuzz_adapter_folder, first minute): a config with a "\ud800" escape (Python's
// json accepts lone surrogates; peftcpp keeps them) made to_json(AdapterSummary).dump()
// throw nlohmann's type_error 316, so `peftcpp inspect --json` died on such a folder.
// Fixed in src/tools/inspect.cpp and validate.cpp: the JSON forms replace such bytes.
TEST(FuzzRegressions, InspectJsonOfALoneSurrogateConfigDoesNotThrow) {
  testing::TempDir dir;
  const auto input = regressions_root() / "adapter_folder" / "inspect-json-lone-surrogate";
  const std::vector<std::byte> bytes = testing::read_bytes(input);
  fuzz::adapter_folder_input({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()},
                             dir.path());
  for (const auto& summary : inspect_adapters(dir.path())) {
    EXPECT_NO_THROW((void)to_json(summary, true).dump());
  }
  for (const auto& problem : validate_adapter_folder(dir.path())) {
    EXPECT_NO_THROW((void)to_json(problem).dump());
  }
}

// Finding (fuzz_zip, after 2 million runs, in a legacy-format pickle): a float dict key
// outside the int64 range (1e246) was converted to int64 before its range was checked, to
// test whether it equals an int key: undefined behaviour (UBSan: "outside the range of
// representable values"). Fixed in src/formats/pickle.cpp: the range check comes first.
TEST(FuzzRegressions, FloatDictKeysOutsideTheInt64RangeAreKeptAsFloats) {
  const auto dict_with_float_key = [](std::uint64_t bits) {
    std::string pickle = "\x80\x02}G";
    for (int i = 7; i >= 0; --i) pickle += static_cast<char>((bits >> (8 * i)) & 0xFF);
    pickle += "Ns.";
    return pickle;
  };
  for (const std::uint64_t bits : {0x7307000000000000ull,     // 1.1e246
                                   0xC3E0000000000000ull,     // -2^63, the edge
                                   0x7FF8000000000000ull,     // NaN
                                   0x7FF0000000000000ull}) {  // inf
    const std::string pickle = dict_with_float_key(bits);
    const auto tree = formats::unpickle(
        std::as_bytes(std::span<const char>(pickle.data(), pickle.size())), "key.pkl");
    EXPECT_EQ(tree.root().items.size(), 2u);
  }
  // 2.0 and 2 are the same key, as in Python: the later value wins, the first key stays.
  const std::string same = std::string("\x80\x02}K\x02NsG@\x00\x00\x00\x00\x00\x00\x00K\x01s.", 20);
  const auto tree =
      formats::unpickle(std::as_bytes(std::span<const char>(same.data(), same.size())), "same.pkl");
  ASSERT_EQ(tree.root().items.size(), 2u);
  EXPECT_TRUE(tree.root().items[0]->is(formats::PickleKind::Int));
  EXPECT_EQ(tree.root().items[1]->integer, 1);
}

}  // namespace
}  // namespace peft
