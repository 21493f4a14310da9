#include "pycompat/python_regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

namespace peft::detail {
namespace {

constexpr std::size_t kCacheLimit = 4096;

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using Code = std::unique_ptr<pcre2_code, CodeDeleter>;
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string error_message(int error) {
  PCRE2_UCHAR buffer[256];
  const int length = pcre2_get_error_message(error, buffer, sizeof buffer);
  return length > 0
             ? std::string(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(length))
             : fmt::format("PCRE2 error {}", error);
}

// Matching can fail without a verdict (match or backtracking limits).
[[noreturn]] void fail_match(std::string_view pattern, int rc) {
  throw RegexError(std::string(pattern), "matching failed: " + error_message(rc), 0);
}

std::shared_ptr<const pcre2_code> compile(std::string_view pattern) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const pcre2_code>> cache;
  {
    std::lock_guard lock(mutex);
    if (const auto it = cache.find(std::string(pattern)); it != cache.end()) return it->second;
  }
  const std::string translated = translate_python_regex(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  Code code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset,
                          nullptr));
  if (!code) throw RegexError(std::string(pattern), error_message(error), offset);
  std::shared_ptr<const pcre2_code> shared(code.release(), CodeDeleter());
  std::lock_guard lock(mutex);
  if (cache.size() >= kCacheLimit) cache.clear();
  cache.emplace(std::string(pattern), shared);
  return shared;
}

std::uint32_t match_options(RegexMode mode) {
  switch (mode) {
    case RegexMode::Match:
      return PCRE2_ANCHORED;
    case RegexMode::FullMatch:
      return PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    case RegexMode::Search:
      return 0;
  }
  return 0;
}

}  // namespace

RegexError::RegexError(std::string pattern, std::string message, std::size_t offset)
    : Error(ErrorCode::InvalidConfigValue, pattern,
            fmt::format("invalid regular expression: {} at offset {}", message, offset)),
      pattern_(std::move(pattern)),
      message_(std::move(message)),
      offset_(offset) {}

std::string translate_python_regex(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 8);
  bool in_class = false;
  std::size_t class_start = 0;  // position after '[' or '[^', where ']' is literal
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      if (e == 'Z' && !in_class) {
        out += "\\z";
        ++i;
        continue;
      }
      if (e == 'u' && i + 6 <= pattern.size() && is_hex(pattern[i + 2]) && is_hex(pattern[i + 3]) &&
          is_hex(pattern[i + 4]) && is_hex(pattern[i + 5])) {
        out += "\\x{";
        out.append(pattern.substr(i + 2, 4));
        out += '}';
        i += 5;
        continue;
      }
      if (e == 'U' && i + 10 <= pattern.size()) {
        bool hex = true;
        for (std::size_t k = i + 2; k < i + 10; ++k) hex = hex && is_hex(pattern[k]);
        if (hex) {
          out += "\\x{";
          out.append(pattern.substr(i + 2, 8));
          out += '}';
          i += 9;
          continue;
        }
      }
      out += c;
      out += e;
      ++i;
      continue;
    }
    if (in_class) {
      if (c == ']' && i > class_start) in_class = false;
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      class_start = i + 1;
      if (class_start < pattern.size() && pattern[class_start] == '^') ++class_start;
      out += c;
      continue;
    }
    if (c == '{' && i + 1 < pattern.size() && pattern[i + 1] == ',') {
      // Python reads "{,n}" as "{0,n}"; PCRE2 10.42 would read it literally.
      std::size_t k = i + 2;
      while (k < pattern.size() && pattern[k] >= '0' && pattern[k] <= '9') ++k;
      if (k > i + 2 && k < pattern.size() && pattern[k] == '}') {
        out += "{0";
        continue;  // the ',' and digits follow unchanged
      }
    }
    out += c;
  }
  return out;
}

std::optional<RegexGroups> python_regex(std::string_view pattern, std::string_view subject,
                                        RegexMode mode) {
  const auto code = compile(pattern);
  MatchData data(pcre2_match_data_create_from_pattern(code.get(), nullptr));
  if (!data) throw std::bad_alloc();
  const int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                             subject.size(), 0, match_options(mode), data.get(), nullptr);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) fail_match(pattern, rc);
  if (rc < 0) return std::nullopt;
  std::uint32_t groups = 0;
  pcre2_pattern_info(code.get(), PCRE2_INFO_CAPTURECOUNT, &groups);
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
  RegexGroups out;
  for (std::uint32_t g = 0; g <= groups; ++g) {
    const PCRE2_SIZE begin = ovector[2 * g];
    const PCRE2_SIZE end = ovector[2 * g + 1];
    if (g >= static_cast<std::uint32_t>(rc) || begin == PCRE2_UNSET) {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(std::string(subject.substr(begin, end - begin)));
    }
  }
  return out;
}

bool python_regex_matches(std::string_view pattern, std::string_view subject, RegexMode mode) {
  const auto code = compile(pattern);
  MatchData data(pcre2_match_data_create(1, nullptr));
  if (!data) throw std::bad_alloc();
  const int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                             subject.size(), 0, match_options(mode), data.get(), nullptr);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) fail_match(pattern, rc);
  return rc >= 0;
}

}  // namespace peft::detail
