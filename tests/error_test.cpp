#include "peft/error.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace peft {
namespace {

TEST(Error, EveryCodeHasADistinctNameAndItsCategory) {
  std::set<std::string_view> names;
  int previous = 0;
  for (const ErrorCode code : all_error_codes()) {
    const auto name = to_string(code);
    EXPECT_NE(name, "unknown_error") << static_cast<int>(code);
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_GT(static_cast<int>(code), previous) << name;  // listed in numeric order
    previous = static_cast<int>(code);
    EXPECT_NE(to_string(category(code)), "unknown") << name;
  }
}

// The numbers are part of the API (C API, --json, logs): this table may only grow.
TEST(Error, NumbersNeverChange) {
  const std::map<std::string_view, int> pinned{{"io", 101},
                                               {"not_found", 102},
                                               {"invalid_argument", 201},
                                               {"shared_storage", 202},
                                               {"header_too_small", 301},
                                               {"header_too_large", 302},
                                               {"invalid_header_length", 303},
                                               {"invalid_header_utf8", 304},
                                               {"invalid_header_json", 305},
                                               {"duplicate_key", 306},
                                               {"invalid_offset", 307},
                                               {"validation_overflow", 308},
                                               {"misaligned_slice", 309},
                                               {"tensor_invalid_info", 310},
                                               {"metadata_incomplete_buffer", 311},
                                               {"too_many_tensors", 312},
                                               {"tensor_not_found", 313},
                                               {"invalid_zip", 351},
                                               {"invalid_pickle", 352},
                                               {"forbidden_pickle", 353},
                                               {"limit_exceeded", 354},
                                               {"unsupported_format", 355},
                                               {"dtype_mismatch", 401},
                                               {"conversion_out_of_range", 402},
                                               {"unsupported_dtype", 403},
                                               {"shape_mismatch", 404},
                                               {"invalid_json", 501},
                                               {"not_a_peft_config", 502},
                                               {"unknown_peft_type", 503},
                                               {"config_field_type", 504},
                                               {"invalid_config_value", 505},
                                               {"missing_key", 601},
                                               {"size_mismatch", 602},
                                               {"unsupported", 701}};
  std::size_t seen = 0;
  for (const ErrorCode code : all_error_codes()) {
    const auto it = pinned.find(to_string(code));
    if (it == pinned.end()) continue;  // a new code
    EXPECT_EQ(static_cast<int>(code), it->second) << it->first;
    ++seen;
  }
  EXPECT_EQ(seen, pinned.size()) << "a code was removed";
  EXPECT_EQ(category(ErrorCode::InvalidZip), ErrorCategory::Format);
  EXPECT_EQ(to_string(category(ErrorCode::SizeMismatch)), "model");
}

TEST(Error, EntryPointsGiveErrorsWithoutASourceTheirs) {
  try {
    annotate_errors("adapter.safetensors",
                    []() -> int { throw Error(ErrorCode::ShapeMismatch, "", "lora_A is [3, 4]"); });
    ADD_FAILURE() << "nothing thrown";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "adapter.safetensors: shape_mismatch: lora_A is [3, 4]");
    EXPECT_EQ(e.code(), ErrorCode::ShapeMismatch);
  }
  try {
    annotate_errors("outer", [] { throw Error(ErrorCode::Io, "inner.bin", "d"); });
  } catch (const Error& e) {
    EXPECT_EQ(e.source(), "inner.bin");  // a source already named is kept
  }
  EXPECT_EQ(annotate_errors("x", [] { return 7; }), 7);
}

TEST(Error, MessageNamesSourceRuleAndDetail) {
  const Error e(ErrorCode::InvalidOffset, "a.safetensors", "tensor 'x' starts late");
  EXPECT_STREQ(e.what(), "a.safetensors: invalid_offset: tensor 'x' starts late");
  EXPECT_EQ(e.source(), "a.safetensors");
  EXPECT_EQ(e.detail(), "tensor 'x' starts late");
  EXPECT_STREQ(Error(ErrorCode::Io, "", "d").what(), "io: d");
}

}  // namespace
}  // namespace peft
