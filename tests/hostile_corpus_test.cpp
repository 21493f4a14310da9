// The hostile-file corpus (tests/data/hostile, written by scripts/make_hostile_corpus.py):
// every file is read by the reader its extension names and must give exactly the error
// code its README line promises ("ok": read normally, in bounded time and memory).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "formats/mapped_file.hpp"
#include "formats/pickle.hpp"
#include "formats/zip.hpp"
#include "peft/config.hpp"
#include "peft/inspect.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;

fs::path hostile_root() {
  return testing::test_data() / "hostile";
}

// file name -> expected code, from the README table.
std::map<std::string, std::string> expectations() {
  std::map<std::string, std::string> out;
  std::ifstream in(hostile_root() / "README.md");
  const std::regex row(R"(^\| `([^`]+)` \| `([a-z0-9_]+)` \| .+ \|$)");
  std::string line;
  std::smatch match;
  while (std::getline(in, line)) {
    if (std::regex_match(line, match, row)) out.emplace(match[1], match[2]);
  }
  return out;
}

// Reads `path` with the reader for its extension; "ok" or the error code's name.
std::string outcome(const fs::path& path) {
  try {
    const std::string ext = path.extension().string();
    if (ext == ".safetensors") {
      (void)SafetensorsFile::open(path).state_dict();
    } else if (ext == ".bin") {
      (void)load_torch_file(path);
    } else if (ext == ".pkl") {
      const auto file = formats::map_file(path);
      (void)formats::unpickle(file.bytes, path.string());
    } else if (ext == ".zip") {
      const auto file = formats::map_file(path);
      const auto archive = formats::ZipArchive::open(file.bytes, path.string());
      for (const auto& entry : archive.entries()) (void)archive.data(entry);
    } else if (ext == ".json") {
      (void)PeftConfig::load(path);
    } else {
      return "no reader for " + ext;
    }
    return "ok";
  } catch (const Error& e) {
    return std::string(to_string(e.code()));
  }
}

TEST(HostileCorpus, ReadmeListsEveryFileOnce) {
  const auto expected = expectations();
  ASSERT_GE(expected.size(), 90u) << "README.md table not found or truncated";
  std::set<std::string> on_disk;
  for (const auto& entry : fs::directory_iterator(hostile_root())) {
    if (entry.path().filename() != "README.md") on_disk.insert(entry.path().filename().string());
  }
  std::set<std::string> listed;
  for (const auto& [name, code] : expected) listed.insert(name);
  EXPECT_EQ(on_disk, listed) << "regenerate with scripts/make_hostile_corpus.py";
}

TEST(HostileCorpus, EveryFileGivesItsExpectedError) {
  for (const auto& [name, code] : expectations()) {
    SCOPED_TRACE(name);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(outcome(hostile_root() / name), code);
    const auto took = std::chrono::steady_clock::now() - start;
    // Generous for sanitizer builds: an attack must never cost more than a moment.
    EXPECT_LT(took, std::chrono::seconds(20));
  }
}

TEST(HostileCorpus, ErrorsNameTheFile) {
  for (const auto& [name, code] : expectations()) {
    if (code == "ok") continue;
    SCOPED_TRACE(name);
    const fs::path path = hostile_root() / name;
    try {
      if (path.extension() == ".safetensors") (void)SafetensorsFile::open(path);
      if (path.extension() == ".bin") (void)load_torch_file(path);
      if (path.extension() == ".json") (void)PeftConfig::load(path);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

// inspect --json dumps configs and tensor names: strings that are not UTF-8 (lone
// surrogates Python accepts) must not make the JSON writer throw.
TEST(HostileCorpus, InspectJsonSurvivesLoneSurrogates) {
  testing::TempDir dir;
  fs::copy_file(hostile_root() / "cfg_lone_surrogate.json", dir / "adapter_config.json");
  fs::copy_file(hostile_root() / "st_control_ok.safetensors", dir / "adapter_model.safetensors");
  for (const auto& summary : inspect_adapters(dir.path())) {
    ASSERT_TRUE(summary.config.has_value()) << summary.config_error;
    const std::string text = to_json(summary, true).dump(2);
    EXPECT_NE(text.find("\xef\xbf\xbd"), std::string::npos) << "U+FFFD expected in " << text;
  }
}

}  // namespace
}  // namespace peft
