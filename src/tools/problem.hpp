// validate's problems are Diagnostics; this builds one in the order validate thinks of it.
#pragma once

#include <string>
#include <utility>

#include "peft/diagnostic.hpp"

namespace peft::detail {

inline Diagnostic problem(std::string code, std::string source, std::string message,
                          std::string hint, Severity severity = Severity::Error) {
  return Diagnostic{std::move(code), severity, std::move(source), std::move(message),
                    std::move(hint)};
}

}  // namespace peft::detail
