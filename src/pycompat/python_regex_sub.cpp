#define PCRE2_CODE_UNIT_WIDTH 8
#include "pycompat/python_regex_sub.hpp"

#include <pcre2.h>

#include <memory>

#include <fmt/format.h>

#include "peft/error.hpp"
#include "pycompat/python_regex.hpp"

namespace peft::detail {
namespace {

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

std::unique_ptr<pcre2_code, CodeDeleter> compile(std::string_view pattern) {
  const std::string translated = translate_python_regex(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()),
                                   translated.size(), PCRE2_UTF, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw Error(ErrorCode::InvalidArgument, std::string(pattern),
                fmt::format("invalid regular expression at {}: {}", offset,
                            reinterpret_cast<const char*>(message)));
  }
  return std::unique_ptr<pcre2_code, CodeDeleter>(code);
}

// Expands Python's replacement template for one match.
void expand(std::string& out, std::string_view replacement, std::string_view subject,
            const pcre2_code* code, const PCRE2_SIZE* ovector, std::uint32_t groups) {
  const auto group_text = [&](std::uint32_t n) {
    if (n >= groups) {
      throw Error(ErrorCode::InvalidArgument, std::string(replacement),
                  fmt::format("replacement refers to group {} which the pattern does not have", n));
    }
    const PCRE2_SIZE start = ovector[2 * n], end = ovector[2 * n + 1];
    if (start != PCRE2_UNSET) out.append(subject.substr(start, end - start));
  };
  for (std::size_t i = 0; i < replacement.size(); ++i) {
    const char c = replacement[i];
    if (c != '\\' || i + 1 == replacement.size()) {
      out += c;
      continue;
    }
    const char next = replacement[++i];
    if (next >= '0' && next <= '9') {
      std::uint32_t n = static_cast<std::uint32_t>(next - '0');
      if (i + 1 < replacement.size() && replacement[i + 1] >= '0' && replacement[i + 1] <= '9') {
        n = n * 10 + static_cast<std::uint32_t>(replacement[++i] - '0');
      }
      group_text(n);
    } else if (next == 'g' && i + 1 < replacement.size() && replacement[i + 1] == '<') {
      const auto close = replacement.find('>', i + 2);
      if (close == std::string_view::npos) {
        throw Error(ErrorCode::InvalidArgument, std::string(replacement), "unterminated \\g<...>");
      }
      const std::string name(replacement.substr(i + 2, close - i - 2));
      const bool numeric =
          !name.empty() && name.find_first_not_of("0123456789") == std::string::npos;
      const int number = numeric ? std::stoi(name)
                                 : pcre2_substring_number_from_name(
                                       code, reinterpret_cast<PCRE2_SPTR>(name.c_str()));
      if (number < 0) {
        throw Error(ErrorCode::InvalidArgument, std::string(replacement),
                    fmt::format("unknown group name '{}'", name));
      }
      group_text(static_cast<std::uint32_t>(number));
      i = close;
    } else {
      switch (next) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case '\\':
          out += '\\';
          break;
        default:  // Python keeps unknown ASCII-letter escapes as an error; others literally
          out += '\\';
          out += next;
      }
    }
  }
}

}  // namespace

std::pair<std::string, std::size_t> python_regex_sub(std::string_view pattern,
                                                     std::string_view replacement,
                                                     std::string_view subject) {
  const auto code = compile(pattern);
  std::unique_ptr<pcre2_match_data, MatchDeleter> data(
      pcre2_match_data_create_from_pattern(code.get(), nullptr));
  std::string out;
  std::size_t count = 0, position = 0, copied = 0;
  while (position <= subject.size()) {
    const int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                               subject.size(), position, 0, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      throw Error(ErrorCode::InvalidArgument, std::string(pattern),
                  "regular expression match failed");
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const std::size_t start = ovector[0], end = ovector[1];
    out.append(subject.substr(copied, start - copied));
    expand(out, replacement, subject, code.get(), ovector, pcre2_get_ovector_count(data.get()));
    ++count;
    copied = end;
    if (end == start) {
      // An empty match: keep the next character and move past it.
      if (end < subject.size()) out += subject[end];
      copied = end + 1;
      position = end + 1;
    } else {
      position = end;
    }
  }
  if (copied < subject.size()) out.append(subject.substr(copied));
  return {out, count};
}

}  // namespace peft::detail
