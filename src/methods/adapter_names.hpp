// The two key rewrites of the state-dict functions (docs/peft-rules.md): saving takes the
// adapter name out of the model's keys, loading puts it back after the method's prefix.
#pragma once

#include <string>
#include <string_view>

namespace peft {

std::string remove_adapter_name(std::string_view key, std::string_view adapter_name,
                                bool vblora = false);
std::string insert_adapter_name(std::string_view key, std::string_view adapter_name,
                                std::string_view prefix);

}  // namespace peft
