#include "peft/error.hpp"

#include <gtest/gtest.h>

#include <set>

namespace peft {
namespace {

TEST(Error, EveryCodeHasADistinctName) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(ErrorCode::Unsupported); ++i) {
    const auto name = to_string(static_cast<ErrorCode>(i));
    EXPECT_NE(name, "unknown_error") << i;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
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
