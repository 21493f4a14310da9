// Small JSON helpers shared by the config's loader (config.cpp), its typed accessors
// (config_fields.cpp) and PEFT's checks (config_checks.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/peft_type.hpp"

namespace peft::detail::config_json {

using Json = nlohmann::json;

// "null", "boolean", "integer", "float", "string", "list", "object".
std::string_view type_name(const Json& value);
// A short rendering of a value for messages.
std::string show(const Json& value);
// Python truthiness of a JSON value (absent counts as None).
bool truthy(const Json* value);
bool is_null(const Json* value);
bool is_string_equal(const Json* value, std::string_view text);
// A wavelet family and order PEFT's WaveFT has filters for (db1-38, sym2-20, coif1-17).
bool is_supported_wavelet(std::string_view name);

// Typed reads of a field's JSON value, throwing ConfigFieldType naming `source` and
// `field` for a value of the wrong type (config_fields.cpp).
[[noreturn]] void missing(const std::string& source, std::string_view field, PeftType type);
std::int64_t to_int64(const std::string& source, std::string_view field, const Json& value);
std::vector<std::string> to_string_list(const std::string& source, std::string_view field,
                                        const Json& value);
std::vector<std::int64_t> to_int_list(const std::string& source, std::string_view field,
                                      const Json& value);

}  // namespace peft::detail::config_json
