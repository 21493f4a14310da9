// Text helpers every layer shares: UTF-8 validation and encoding, and untrusted text made
// safe for an error message. One implementation each (they were three).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace peft::text {

// Length (2..4) of the valid UTF-8 sequence whose non-ASCII lead byte is text[pos], or 0.
// Valid means what Rust's str::from_utf8 and Python's strict decoder accept: no overlong
// forms, nothing above U+10FFFF, no surrogates unless `allow_surrogates` (the ED A0..BF
// form Python's "surrogatepass" writes lone surrogates in). Stores the code point.
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos, bool allow_surrogates,
                                 std::uint32_t* code_point = nullptr);

// The offset of the first byte that does not start a valid sequence, or npos.
std::size_t find_invalid_utf8(std::string_view text, bool allow_surrogates = false);

inline bool is_valid_utf8(std::string_view text, bool allow_surrogates = false) {
  return find_invalid_utf8(text, allow_surrogates) == std::string_view::npos;
}

// Appends code point `cp` as UTF-8. Surrogates get the generalized 3-byte form (Python's
// json module reads lone \ud800 escapes into such strings).
void append_utf8(std::string& out, std::uint32_t cp);

// Untrusted bytes (names from a file) for an error message: printable ASCII kept,
// everything else (and '\' and '\'') as \xNN, at most `limit` bytes then "...".
std::string printable(std::string_view text, std::size_t limit = 120);

}  // namespace peft::text
