// JSON exactly as Python's json module reads and writes it, for adapter_config.json.
//
// Reading follows json.loads: the JSON grammar plus the literals NaN, Infinity and
// -Infinity; integers stay integers and numbers with a fraction or exponent are floats
// (correctly rounded, overflow to ±inf like float()); a repeated key keeps the last
// value; \uXXXX escapes combine surrogate pairs, and a lone surrogate is kept (stored as
// its 3-byte generalized UTF-8 form so that writing reproduces the escape); raw text must
// be valid UTF-8 with no control characters inside strings. Integers beyond 64 bits are
// refused (Python keeps them exactly; nothing in a PEFT config needs them).
//
// Writing follows json.dumps(value, indent=2, sort_keys=True): keys sorted by code point
// at every level, one member or element per line indented by two spaces per level, ","
// at line ends, ": " after keys, "{}"/"[]" for empty containers, ASCII only (\uXXXX with
// lower-case hex, surrogate pairs above U+FFFF), floats as Python's repr, no trailing
// newline.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace peft::detail {

struct PythonJsonDocument {
  nlohmann::json value;
  // For every top-level member whose value is an object: that object's keys in the order
  // of their first appearance in the text (the iteration order of the Python dict).
  std::map<std::string, std::vector<std::string>, std::less<>> member_key_order;
  bool had_utf8_bom = false;  // Python rejects it; we skip it and say so
};

// Parses `text`; throws peft::Error(InvalidJson) naming `source`, line and column, or
// Error(Unsupported) for an integer that does not fit in 64 bits.
PythonJsonDocument parse_python_json(std::string_view text, const std::string& source);

// json.dumps(value, indent=2, sort_keys=True). Throws Error(InvalidArgument) for values
// Python's encoder cannot produce (binary values, strings that are not UTF-8).
std::string dump_python_json(const nlohmann::json& value);

// repr(float): "0.1", "150.0", "1e-05", "1e+16", "-0.0", "nan"/"inf" are given as the
// JSON encoder's "NaN", "Infinity", "-Infinity".
std::string python_float_repr(double value);

}  // namespace peft::detail
