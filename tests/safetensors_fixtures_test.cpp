// Every safetensors file written by the real Python library parses, and writing
// back what was read reproduces it byte for byte.
#include <gtest/gtest.h>

#include "peft/safetensors.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;

// Files whose header the reference writer produced (not hand-made by users' tools).
void expect_round_trip(const fs::path& path) {
  const auto file = SafetensorsFile::open(path);
  const auto original = testing::read_bytes(path);
  const auto rewritten = serialize_safetensors(file.state_dict(), file.metadata());
  EXPECT_TRUE(rewritten == original) << path << ": rewritten file differs";
}

TEST(SafetensorsFixtures, PeftRefFilesRoundTripByteIdentical) {
  const auto files = testing::find_files(testing::peft_ref_root(), ".safetensors");
  ASSERT_GT(files.size(), 100u) << "peft-ref fixtures missing under " << testing::peft_ref_root();
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    expect_round_trip(path);
  }
}

TEST(SafetensorsFixtures, PeftMergeFilesRoundTripByteIdentical) {
  const auto files = testing::find_files(testing::peft_merge_root(), ".safetensors");
  ASSERT_GT(files.size(), 10u);
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    expect_round_trip(path);
  }
}

TEST(SafetensorsFixtures, RealAdaptersParseAndRoundTrip) {
  fs::path root = testing::real_adapters_root();
  if (root.empty()) {
    std::cout << "[ NOTE     ] ../shared/fixtures/real-adapters is absent; using the "
                 "handful of real adapters copied into tests/data\n";
    root = testing::test_data() / "real-adapters";
  }
  std::size_t parsed = 0, rejected = 0;
  for (const auto& path : testing::find_files(root, "adapter_model.safetensors")) {
    SCOPED_TRACE(path.string());
    if (fs::file_size(path) == 0) {
      // The known empty file of a failed distributed save.
      EXPECT_PEFT_ERROR(SafetensorsFile::open(path), ErrorCode::HeaderTooSmall, "file is empty");
      ++rejected;
      continue;
    }
    expect_round_trip(path);
    ++parsed;
  }
  std::cout << "[ NOTE     ] " << parsed << " real adapter files round-tripped, " << rejected
            << " rejected with a clear error, under " << root << "\n";
  EXPECT_GT(parsed, 0u);
  EXPECT_EQ(rejected, 1u);
}

}  // namespace
}  // namespace peft
