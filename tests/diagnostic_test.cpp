// Diagnostics: one shape for PEFT's warnings, peftcpp's notes and validate's problems.
#include "peft/diagnostic.hpp"

#include <gtest/gtest.h>

#include "peft/config.hpp"
#include "peft/validate.hpp"

namespace peft {
namespace {

TEST(Diagnostic, TextLeavesOutEmptyParts) {
  EXPECT_EQ(to_text({"code", Severity::Warning, "file.json", "message", "hint"}),
            "file.json: code: message");
  EXPECT_EQ(to_text({"code", Severity::Warning, "", "message", ""}), "code: message");
  EXPECT_EQ(to_text({"", Severity::Error, "", "message", ""}), "message");
}

TEST(Diagnostic, ReportToNoSinkIsANoOp) {
  report_warning(nullptr, "code", "message");
  Diagnostics sink;
  report_warning(&sink, "code", "message", "src");
  ASSERT_EQ(sink.size(), 1U);
  EXPECT_EQ(sink[0].severity, Severity::Warning);
  EXPECT_EQ(sink[0].source, "src");
}

TEST(Diagnostic, ConfigWarningsCarryCodeAndSource) {
  const PeftConfig config = PeftConfig::from_json_text(
      R"({"peft_type": "LORA", "loftq_config": {"loftq_bits": 4}, "made_up": 1})", "cfg.json");
  ASSERT_EQ(config.warnings().size(), 2U);
  EXPECT_EQ(config.warnings()[0].code, "unknown_fields");
  EXPECT_EQ(config.warnings()[1].code, "loftq_config");
  for (const Diagnostic& d : config.warnings()) {
    EXPECT_EQ(d.source, "cfg.json");
    EXPECT_EQ(d.severity, Severity::Warning);
  }
}

TEST(Diagnostic, ValidateProblemsAreDiagnostics) {
  const PeftConfig config = PeftConfig::from_json_text(R"({"peft_type": "LORA"})", "cfg.json");
  const std::vector<Problem> problems = validate_adapter(config, StateDict{}, "mem");
  ASSERT_FALSE(problems.empty());
  EXPECT_EQ(problems[0].code, "empty_weights");
  EXPECT_EQ(problems[0].source, "mem");
  EXPECT_EQ(problems[0].severity, Severity::Error);
  EXPECT_FALSE(problems[0].hint.empty());
}

}  // namespace
}  // namespace peft
