// Python's re.subn on top of PCRE2 (the pattern translated by translate_python_regex).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace peft::detail {

// (result, number of replacements) of re.subn(pattern, replacement, subject). The
// replacement uses Python's template syntax: \1, \g<1>, \g<name>, \n, \\.
std::pair<std::string, std::size_t> python_regex_sub(std::string_view pattern,
                                                     std::string_view replacement,
                                                     std::string_view subject);

}  // namespace peft::detail
