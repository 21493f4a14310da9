// Python's fnmatch.fnmatchcase, which huggingface_hub's allow/ignore patterns use: the
// pattern is a whole-name match, '*' and '?' cross '/', '[...]' is a character class
// ('[!...]' negated, a ']' first is literal, ranges with '-'), an unclosed '[' is literal.
#include <cstddef>

#include "peft/hub_download.hpp"

namespace peft {

namespace {

// Matches the class starting at pattern[i] == '['. Returns the index after it, or npos
// when the bracket is not closed (then '[' is an ordinary character).
std::size_t match_class(std::string_view pattern, std::size_t i, char c, bool& matched) {
  std::size_t j = i + 1;
  bool negate = false;
  if (j < pattern.size() && pattern[j] == '!') {
    negate = true;
    ++j;
  }
  const std::size_t first = j;
  bool found = false;
  while (j < pattern.size() && (pattern[j] != ']' || j == first)) {
    if (j + 2 < pattern.size() && pattern[j + 1] == '-' && pattern[j + 2] != ']') {
      if (pattern[j] <= c && c <= pattern[j + 2]) found = true;
      j += 3;
    } else {
      if (pattern[j] == c) found = true;
      ++j;
    }
  }
  if (j >= pattern.size()) return std::string_view::npos;
  matched = found != negate;
  return j + 1;
}

}  // namespace

bool fnmatch_case(std::string_view name, std::string_view pattern) {
  // Iterative matching with one backtrack point for the last '*' (linear per star).
  std::size_t n = 0, p = 0;
  std::size_t star_p = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star_p = p++;
      star_n = n;
      continue;
    }
    if (p < pattern.size()) {
      bool matched = false;
      std::size_t next = p + 1;
      if (pattern[p] == '?') {
        matched = true;
      } else if (pattern[p] == '[') {
        const std::size_t end = match_class(pattern, p, name[n], matched);
        if (end == std::string_view::npos) {
          matched = name[n] == '[';
        } else {
          next = end;
        }
      } else {
        matched = pattern[p] == name[n];
      }
      if (matched) {
        p = next;
        ++n;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace peft
