// The umbrella header is self-contained, and the version macros agree with each other and
// with what the CLI prints.
#include "peft/peft.hpp"

#include <gtest/gtest.h>

#include <string>

#include "test_support.hpp"

namespace peft {
namespace {

TEST(Version, MacrosAgreeWithTheString) {
  const std::string expected = std::to_string(PEFTCPP_VERSION_MAJOR) + "." +
                               std::to_string(PEFTCPP_VERSION_MINOR) + "." +
                               std::to_string(PEFTCPP_VERSION_PATCH);
  EXPECT_EQ(expected, PEFTCPP_VERSION);
  EXPECT_EQ(std::string(kVersion), PEFTCPP_VERSION);
  const auto cli = testing::run_command({testing::peftcpp_binary().string(), "--version"});
  EXPECT_EQ(cli.exit_code, 0);
  EXPECT_EQ(cli.out, std::string("peftcpp ") + PEFTCPP_VERSION + "\n");
}

}  // namespace
}  // namespace peft
