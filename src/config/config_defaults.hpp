// The fields PEFT v0.18.0 declares (and therefore writes) for each method's config, with
// their defaults. Types added after v0.18.0 have no table: nothing is known about them
// beyond their name.
#pragma once

#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/peft_type.hpp"

namespace peft::detail {

struct FieldDefault {
  std::string_view name;
  std::string_view json;  // the default as JSON text, e.g. "8", "0.0", "\"none\"", "{}"
};

// Every declared field of the v0.18.0 config class for `type`, the common ones first, in
// declaration order; empty for types added after v0.18.0.
std::vector<FieldDefault> declared_fields(PeftType type);

// The same as an object field -> default value, with "peft_type" set to the type's name
// (peft_version stays null: see PeftConfig::make). An empty object for later types.
const nlohmann::json& field_defaults(PeftType type);

}  // namespace peft::detail
