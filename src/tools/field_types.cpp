#include "tools/field_types.hpp"

#include <cmath>

#include <fmt/format.h>

#include "config/config_defaults.hpp"
#include "tools/problem.hpp"

namespace peft::detail {
namespace {

using Json = nlohmann::json;

std::string_view kind_of(const Json& value) {
  if (value.is_boolean()) return "a boolean";
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "a list";
  if (value.is_object()) return "an object";
  return "null";
}

bool is_string_list(const Json& value) {
  if (!value.is_array()) return false;
  for (const auto& item : value) {
    if (!item.is_string()) return false;
  }
  return true;
}

bool is_int_list(const Json& value) {
  if (!value.is_array()) return false;
  for (const auto& item : value) {
    if (!item.is_number_integer()) return false;
  }
  return true;
}

// Fields whose default is None but whose type PEFT still relies on.
std::optional<std::string_view> null_default_expectation(std::string_view field,
                                                         const Json& value) {
  if (field == "target_modules" || field == "exclude_modules" || field == "feedforward_modules" ||
      field == "layers_pattern") {
    if (value.is_string() || is_string_list(value)) return std::nullopt;
    return "a string (a regular expression) or a list of strings";
  }
  if (field == "modules_to_save" || field == "target_parameters") {
    if (is_string_list(value)) return std::nullopt;
    return "a list of strings";
  }
  if (field == "layers_to_transform") {
    if (value.is_number_integer() || is_int_list(value)) return std::nullopt;
    return "an integer or a list of integers";
  }
  return std::nullopt;
}

// What a value must be, given the declared default's JSON type; nullopt when it fits.
// PEFT declares several fields as a boolean or one of a few strings (init_lora_weights:
// True or "gaussian", C3A's init_weights): booleans and strings stand in for each other.
std::optional<std::string_view> expectation(const Json& fallback, const Json& value) {
  const bool bool_or_string = value.is_boolean() || value.is_string();
  if (fallback.is_boolean()) return bool_or_string ? std::nullopt : std::optional("a boolean");
  if (fallback.is_string()) return bool_or_string ? std::nullopt : std::optional("a string");
  if (fallback.is_number_integer())
    return value.is_number() ? std::nullopt : std::optional("an integer");
  if (fallback.is_number()) return value.is_number() ? std::nullopt : std::optional("a number");
  if (fallback.is_array()) return value.is_array() ? std::nullopt : std::optional("a list");
  if (fallback.is_object()) return value.is_object() ? std::nullopt : std::optional("an object");
  return std::nullopt;
}

}  // namespace

void check_field_types(const PeftConfig& config, const std::string& where,
                       std::vector<Problem>& out) {
  const Json& defaults = field_defaults(config.peft_type());
  if (!config.json().is_object()) return;
  for (const auto& [field, value] : config.json().items()) {
    const auto declared = defaults.find(field);
    if (declared == defaults.end() || value.is_null() || field == "peft_type") continue;
    const std::string shown = value.dump(-1, ' ', false, Json::error_handler_t::replace);
    // PEFT declares alphas as integers but only divides by them: fractions are fine there.
    const bool arithmetic_only = field.find("alpha") != std::string::npos;
    if (declared->is_number_integer() && value.is_number_float() && !arithmetic_only &&
        value.get<double>() != std::floor(value.get<double>())) {
      out.push_back(detail::problem(
          "field_type_float", fmt::format("{}: {}", where, field),
          fmt::format("'{}' is declared an integer, got the number {}", field, shown),
          "write an integer: PEFT sizes or counts something with it", Severity::Warning));
      continue;
    }
    const auto expected = declared->is_null() ? null_default_expectation(field, value)
                                              : expectation(*declared, value);
    if (!expected) continue;

    if (declared->is_boolean() && value.is_number()) {
      out.push_back(detail::problem(
          "field_type_truthy", fmt::format("{}: {}", where, field),
          fmt::format("'{}' should be a boolean, got {} {}: PEFT reads it as {}", field,
                      kind_of(value), shown, value.get<double>() != 0 ? "true" : "false"),
          "write true or false", Severity::Warning));
      continue;
    }
    out.push_back(
        detail::problem("field_type", fmt::format("{}: {}", where, field),
                        fmt::format("'{}' must be {}, got {} {}", field, *expected, kind_of(value),
                                    shown.size() > 60 ? shown.substr(0, 57) + "..." : shown),
                        "PEFT fails on this value or reads another one: fix its type"));
  }
}

}  // namespace peft::detail
