// Shared helpers for the test suites: where fixtures live, temporary folders,
// and small builders.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "peft/error.hpp"

namespace peft::testing {

// The repo's copy of the oracle fixtures (tests/data).
std::filesystem::path test_data();
// The peft-ref root: $PEFTCPP_FIXTURES, else tests/data/peft-ref.
std::filesystem::path peft_ref_root();
// The peft-merge root: $PEFTCPP_MERGE_FIXTURES, else tests/data/peft-merge.
std::filesystem::path peft_merge_root();
// ../shared/fixtures/real-adapters, or $PEFTCPP_REAL_ADAPTERS; empty when absent.
std::filesystem::path real_adapters_root();
// The built peftcpp binary.
std::filesystem::path peftcpp_binary();

// Every file named `filename` (or with that extension when it starts with '.') below `root`,
// sorted.
std::vector<std::filesystem::path> find_files(const std::filesystem::path& root,
                                              const std::string& filename);

std::string read_text(const std::filesystem::path& path);
std::vector<std::byte> read_bytes(const std::filesystem::path& path);
void write_bytes(const std::filesystem::path& path, const std::vector<std::byte>& bytes);

// A fresh temporary folder removed at destruction.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Result of running a command: exit status and captured streams.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult run_command(const std::vector<std::string>& argv);

}  // namespace peft::testing

// Asserts that `statement` throws peft::Error with `expected_code` and a message
// containing `fragment`.
#define EXPECT_PEFT_ERROR(statement, expected_code, fragment)                       \
  do {                                                                              \
    try {                                                                           \
      statement;                                                                    \
      ADD_FAILURE() << "expected peft::Error " << ::peft::to_string(expected_code); \
    } catch (const ::peft::Error& peft_error_) {                                    \
      EXPECT_EQ(peft_error_.code(), expected_code) << peft_error_.what();           \
      EXPECT_NE(std::string(peft_error_.what()).find(fragment), std::string::npos)  \
          << "message '" << peft_error_.what() << "' lacks '" << (fragment) << "'"; \
    }                                                                               \
  } while (0)
