// validate's typed check of every config field PEFT v0.18.0 declares (field_types.cpp).
#pragma once

#include <string>
#include <vector>

#include "peft/config.hpp"
#include "peft/validate.hpp"

namespace peft::detail {

// One problem per field whose JSON type PEFT cannot use: `field_type` (an error: PEFT
// fails or reads another value) or, for a number where a boolean belongs,
// `field_type_truthy` (a warning: Python reads its truthiness). `where` names the file.
void check_field_types(const PeftConfig& config, const std::string& where,
                       std::vector<Problem>& out);

}  // namespace peft::detail
