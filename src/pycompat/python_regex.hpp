// Python `re` matching on top of PCRE2, for the regular expressions PEFT configs hold
// (target_modules/exclude_modules strings, rank/alpha pattern keys, modules_to_save and
// layers_pattern entries that PEFT splices into its own patterns).
//
// Patterns are compiled with Unicode semantics (like Python str patterns: \d, \w, \s and
// case folding are Unicode-aware) after rewriting the few spellings where Python and PCRE2
// differ: \Z (end of string only, PCRE2's \z), \uXXXX and \UXXXXXXXX escapes, and the
// `{,n}` quantifier (`{0,n}`). Compiled patterns are cached; the cache is thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "peft/error.hpp"

namespace peft::detail {

// Thrown for a pattern that does not compile (or a match that hits PCRE2's limits). A
// peft::Error (InvalidConfigValue, the pattern as source), so that nothing but peft::Error
// leaves the library even where no caller adds the config's name.
class RegexError : public Error {
 public:
  RegexError(std::string pattern, std::string message, std::size_t offset);
  const std::string& pattern() const noexcept { return pattern_; }
  const std::string& message() const noexcept { return message_; }
  std::size_t offset() const noexcept { return offset_; }

 private:
  std::string pattern_;
  std::string message_;
  std::size_t offset_;
};

enum class RegexMode {
  Match,      // re.match: anchored at the start
  FullMatch,  // re.fullmatch: the whole subject
  Search,     // re.search: anywhere
};

// Capture groups of a successful match (group 0 is the whole match); nullopt for groups
// that did not take part.
using RegexGroups = std::vector<std::optional<std::string>>;

// Runs `pattern` against `subject` like Python's re.match/fullmatch/search. Returns nullopt
// when there is no match. Throws RegexError.
std::optional<RegexGroups> python_regex(std::string_view pattern, std::string_view subject,
                                        RegexMode mode);

// Whether `pattern` matches, without extracting groups.
bool python_regex_matches(std::string_view pattern, std::string_view subject, RegexMode mode);

// The PCRE2 spelling of a Python pattern (exposed for tests).
std::string translate_python_regex(std::string_view pattern);

}  // namespace peft::detail
