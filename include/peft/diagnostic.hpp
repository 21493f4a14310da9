// peft/diagnostic.hpp — the one shape of every finding that is not an exception: PEFT's
// warnings (load, save, configs), peftcpp's notes about what it does differently, and
// validate's problems. Functions that can report them take a `Diagnostics*` sink (null:
// not wanted) or return them; the library never prints them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "peft/export.hpp"

namespace peft {

enum class Severity : std::uint8_t {
  Error,    // PEFT fails on it, or loads other values than the files hold
  Warning,  // worth knowing, harmless for loading (PEFT's warnings, stale files, ...)
};

struct PEFT_API Diagnostic {
  std::string code;  // stable identifier, e.g. "unknown_fields", "rank_mismatch" (docs/cli.md)
  Severity severity = Severity::Warning;
  std::string source;   // the file (and key), adapter or argument concerned; may be empty
  std::string message;  // what was found; PEFT's own text for PEFT's warnings
  std::string hint;     // what to do; may be empty
};

using Diagnostics = std::vector<Diagnostic>;

// "<source>: <code>: <message>", leaving out empty parts.
PEFT_API std::string to_text(const Diagnostic& diagnostic);

// Appends to `sink` unless it is null.
PEFT_API void report(Diagnostics* sink, Diagnostic diagnostic);

// A warning with PEFT's own text (as Python's warnings module shows it), for `sink`.
PEFT_API void report_warning(Diagnostics* sink, std::string code, std::string message,
                             std::string source = {});

}  // namespace peft
