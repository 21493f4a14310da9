#include "pycompat/python_json.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <system_error>

#include <fmt/format.h>

#include "core/text.hpp"
#include "peft/error.hpp"

namespace peft::detail {
namespace {

using nlohmann::json;

// Python's json module nests as deep as the interpreter's recursion limit allows.
constexpr int kMaxDepth = 512;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

using text::append_utf8;
using text::utf8_sequence_length;

class Parser {
 public:
  Parser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  PythonJsonDocument run() {
    PythonJsonDocument doc;
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") {
      doc.had_utf8_bom = true;
      pos_ = 3;
    }
    skip_whitespace();
    doc.value = parse_value(0, nullptr, &doc);
    skip_whitespace();
    if (pos_ != text_.size()) fail("Extra data", pos_);
    return doc;
  }

 private:
  [[noreturn]] void fail(std::string_view what, std::size_t at) const {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw Error(
        ErrorCode::InvalidJson, source_,
        fmt::format("not valid JSON: {}: line {} column {} (char {})", what, line, column, at));
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  bool starts_with(std::string_view word) const { return text_.substr(pos_, word.size()) == word; }

  void skip_whitespace() {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  // `order` receives an object's keys in first-appearance order; `doc` is set only for
  // the top-level value, whose object members get their key orders recorded.
  json parse_value(int depth, std::vector<std::string>* order, PythonJsonDocument* doc) {
    if (depth > kMaxDepth) fail("nesting too deep", pos_);
    if (at_end()) fail("Expecting value", pos_);
    const char c = text_[pos_];
    switch (c) {
      case '{':
        return parse_object(depth, order, doc);
      case '[':
        return parse_array(depth);
      case '"':
        return json(parse_string());
      default:
        break;
    }
    if (starts_with("null")) return advance(4, json(nullptr));
    if (starts_with("true")) return advance(4, json(true));
    if (starts_with("false")) return advance(5, json(false));
    if (starts_with("NaN")) return advance(3, json(std::numeric_limits<double>::quiet_NaN()));
    if (starts_with("Infinity")) return advance(8, json(std::numeric_limits<double>::infinity()));
    if (starts_with("-Infinity")) {
      return advance(9, json(-std::numeric_limits<double>::infinity()));
    }
    if (c == '-' || is_digit(c)) return parse_number();
    fail("Expecting value", pos_);
  }

  json advance(std::size_t count, json value) {
    pos_ += count;
    return value;
  }

  json parse_object(int depth, std::vector<std::string>* order, PythonJsonDocument* doc) {
    ++pos_;  // '{'
    json object = json::object();
    std::set<std::string, std::less<>> seen;
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return object;
    }
    while (true) {
      skip_whitespace();
      if (peek() != '"') fail("Expecting property name enclosed in double quotes", pos_);
      std::string key = parse_string();
      skip_whitespace();
      if (peek() != ':') fail("Expecting ':' delimiter", pos_);
      ++pos_;
      skip_whitespace();
      std::vector<std::string> member_order;
      json value = parse_value(depth + 1, doc != nullptr ? &member_order : nullptr, nullptr);
      if (doc != nullptr) {
        if (value.is_object()) {
          doc->member_key_order[key] = std::move(member_order);
        } else {
          doc->member_key_order.erase(key);
        }
      }
      if (order != nullptr && seen.insert(key).second) order->push_back(key);
      object[std::move(key)] = std::move(value);  // a repeated key keeps the last value
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return object;
      }
      fail("Expecting ',' delimiter", pos_);
    }
  }

  json parse_array(int depth) {
    ++pos_;  // '['
    json array = json::array();
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return array;
    }
    while (true) {
      skip_whitespace();
      array.push_back(parse_value(depth + 1, nullptr, nullptr));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return array;
      }
      fail("Expecting ',' delimiter", pos_);
    }
  }

  int read_hex4(std::size_t at) const {
    if (at + 4 > text_.size()) return -1;
    int value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      const int digit = hex_value(text_[at + i]);
      if (digit < 0) return -1;
      value = value * 16 + digit;
    }
    return value;
  }

  std::string parse_string() {
    const std::size_t start = pos_;
    ++pos_;  // '"'
    std::string out;
    while (true) {
      if (at_end()) fail("Unterminated string starting at", start);
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        parse_escape(out);
        continue;
      }
      if (c < 0x20) fail("Invalid control character at", pos_);
      if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      const std::size_t length = utf8_sequence_length(text_, pos_, false, nullptr);
      if (length == 0) fail("invalid UTF-8 byte sequence", pos_);
      out.append(text_.substr(pos_, length));
      pos_ += length;
    }
  }

  void parse_escape(std::string& out) {
    const std::size_t at = pos_;
    if (pos_ + 1 >= text_.size()) fail("Unterminated string starting at", at);
    const char e = text_[pos_ + 1];
    pos_ += 2;
    switch (e) {
      case '"':
        out += '"';
        return;
      case '\\':
        out += '\\';
        return;
      case '/':
        out += '/';
        return;
      case 'b':
        out += '\b';
        return;
      case 'f':
        out += '\f';
        return;
      case 'n':
        out += '\n';
        return;
      case 'r':
        out += '\r';
        return;
      case 't':
        out += '\t';
        return;
      case 'u':
        break;
      default:
        fail("Invalid \\escape", at);
    }
    const int unit = read_hex4(pos_);
    if (unit < 0) fail("Invalid \\uXXXX escape", at);
    pos_ += 4;
    auto cp = static_cast<std::uint32_t>(unit);
    if (cp >= 0xD800 && cp <= 0xDBFF && text_.substr(pos_, 2) == "\\u") {
      const int low = read_hex4(pos_ + 2);
      if (low < 0) fail("Invalid \\uXXXX escape", pos_);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<std::uint32_t>(low) - 0xDC00);
        pos_ += 6;
      }
    }
    append_utf8(out, cp);
  }

  json parse_number() {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      fail("Expecting value", start);
    }
    bool is_float = false;
    if (peek() == '.' && pos_ + 1 < text_.size() && is_digit(text_[pos_ + 1])) {
      is_float = true;
      ++pos_;
      while (is_digit(peek())) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      std::size_t p = pos_ + 1;
      if (p < text_.size() && (text_[p] == '+' || text_[p] == '-')) ++p;
      if (p < text_.size() && is_digit(text_[p])) {
        is_float = true;
        pos_ = p;
        while (is_digit(peek())) ++pos_;
      }
    }
    const std::string_view number = text_.substr(start, pos_ - start);
    if (is_float) return json(to_double(number));
    if (number[0] == '-') {
      std::int64_t value = 0;
      const auto result = std::from_chars(number.data(), number.data() + number.size(), value);
      if (result.ec != std::errc()) too_large(number, start);
      return json(value);
    }
    std::uint64_t value = 0;
    const auto result = std::from_chars(number.data(), number.data() + number.size(), value);
    if (result.ec != std::errc()) too_large(number, start);
    return json(value);
  }

  [[noreturn]] void too_large(std::string_view number, std::size_t at) const {
    throw Error(ErrorCode::Unsupported, source_,
                fmt::format("integer {} at char {} does not fit in 64 bits", number, at));
  }

  // float(text): correctly rounded; out of range gives ±inf or ±0.0 like Python.
  static double to_double(std::string_view number) {
    double value = 0;
    const auto result = std::from_chars(number.data(), number.data() + number.size(), value);
    if (result.ec == std::errc()) return value;
    const bool negative = number[0] == '-';
    // Decimal magnitude of the first non-zero digit decides overflow versus underflow.
    const std::size_t e_pos = number.find_first_of("eE");
    const std::string_view mantissa = number.substr(negative ? 1 : 0, e_pos - (negative ? 1 : 0));
    long long exponent = 0;
    if (e_pos != std::string_view::npos) {
      std::string_view digits = number.substr(e_pos + 1);
      const bool exp_negative = !digits.empty() && digits[0] == '-';
      if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
      for (const char c : digits) {
        exponent = std::min<long long>(exponent * 10 + (c - '0'), 1'000'000'000LL);
      }
      if (exp_negative) exponent = -exponent;
    }
    const std::size_t dot = mantissa.find('.');
    const std::size_t int_digits = dot == std::string_view::npos ? mantissa.size() : dot;
    long long magnitude = 0;
    for (std::size_t i = 0; i < mantissa.size(); ++i) {
      if (mantissa[i] == '.' || mantissa[i] == '0') continue;
      magnitude = i < int_digits ? static_cast<long long>(int_digits - i - 1)
                                 : -static_cast<long long>(i - int_digits);
      break;
    }
    const double result_value =
        magnitude + exponent >= 0 ? std::numeric_limits<double>::infinity() : 0.0;
    return negative ? -result_value : result_value;
  }

  std::string_view text_;
  const std::string& source_;
  std::size_t pos_ = 0;
};

void append_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto append_unit = [&](std::uint32_t unit) {
    out += "\\u";
    out += kHex[(unit >> 12) & 0xF];
    out += kHex[(unit >> 8) & 0xF];
    out += kHex[(unit >> 4) & 0xF];
    out += kHex[unit & 0xF];
  };
  out += '"';
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto c = static_cast<unsigned char>(text[pos]);
    if (c < 0x80) {
      ++pos;
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            append_unit(c);
          } else {
            out += static_cast<char>(c);
          }
      }
      continue;
    }
    std::uint32_t cp = 0;
    const std::size_t length = utf8_sequence_length(text, pos, true, &cp);
    if (length == 0) {
      throw Error(ErrorCode::InvalidArgument, "",
                  fmt::format("cannot write a JSON string that is not UTF-8 (byte {} of \"{}\")",
                              pos, text));
    }
    pos += length;
    if (cp >= 0x10000) {
      const std::uint32_t v = cp - 0x10000;
      append_unit(0xD800 + (v >> 10));
      append_unit(0xDC00 + (v & 0x3FF));
    } else {
      append_unit(cp);
    }
  }
  out += '"';
}

void append_indent(std::string& out, int level) {
  out.append(static_cast<std::size_t>(level) * 2, ' ');
}

void append_value(std::string& out, const json& value, int level) {
  switch (value.type()) {
    case json::value_t::null:
      out += "null";
      return;
    case json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return;
    case json::value_t::number_integer:
      out += std::to_string(value.get<std::int64_t>());
      return;
    case json::value_t::number_unsigned:
      out += std::to_string(value.get<std::uint64_t>());
      return;
    case json::value_t::number_float:
      out += python_float_repr(value.get<double>());
      return;
    case json::value_t::string:
      append_string(out, value.get_ref<const std::string&>());
      return;
    case json::value_t::array: {
      if (value.empty()) {
        out += "[]";
        return;
      }
      out += "[\n";
      bool first = true;
      for (const auto& element : value) {
        if (!first) out += ",\n";
        first = false;
        append_indent(out, level + 1);
        append_value(out, element, level + 1);
      }
      out += '\n';
      append_indent(out, level);
      out += ']';
      return;
    }
    case json::value_t::object: {
      if (value.empty()) {
        out += "{}";
        return;
      }
      out += "{\n";
      bool first = true;
      // nlohmann's object is a std::map<std::string, ...>: byte order of UTF-8 keys is
      // code point order, which is what sort_keys=True uses.
      for (const auto& [key, member] : value.items()) {
        if (!first) out += ",\n";
        first = false;
        append_indent(out, level + 1);
        append_string(out, key);
        out += ": ";
        append_value(out, member, level + 1);
      }
      out += '\n';
      append_indent(out, level);
      out += '}';
      return;
    }
    case json::value_t::binary:
    case json::value_t::discarded:
      break;
  }
  throw Error(ErrorCode::InvalidArgument, "",
              "cannot write a binary or discarded JSON value as adapter_config.json");
}

}  // namespace

PythonJsonDocument parse_python_json(std::string_view text, const std::string& source) {
  return Parser(text, source).run();
}

std::string dump_python_json(const nlohmann::json& value) {
  std::string out;
  append_value(out, value, 0);
  return out;
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  // Shortest round-tripping digits (the same digits Python's repr picks), then Python's
  // layout: positional when the decimal point position is in [-3, 16], else exponent.
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  const std::string_view text(buffer, static_cast<std::size_t>(result.ptr - buffer));
  const bool negative = text[0] == '-';
  const std::size_t e_pos = text.find('e');
  std::string digits;
  for (const char c : text.substr(negative ? 1 : 0, e_pos - (negative ? 1 : 0))) {
    if (c != '.') digits += c;
  }
  int exponent = 0;
  std::from_chars(text.data() + e_pos + (text[e_pos + 1] == '+' ? 2 : 1), text.data() + text.size(),
                  exponent);
  const int point = exponent + 1;  // digits d1 d2 ... mean 0.d1d2... × 10^point
  const auto ndigits = static_cast<int>(digits.size());
  std::string out = negative ? "-" : "";
  if (point > -4 && point <= 16) {
    if (point <= 0) {
      out += "0.";
      out.append(static_cast<std::size_t>(-point), '0');
      out += digits;
    } else if (point >= ndigits) {
      out += digits;
      out.append(static_cast<std::size_t>(point - ndigits), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<std::size_t>(point));
      out += '.';
      out += digits.substr(static_cast<std::size_t>(point));
    }
    return out;
  }
  out += digits[0];
  if (ndigits > 1) {
    out += '.';
    out += digits.substr(1);
  }
  out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', exponent < 0 ? -exponent : exponent);
  return out;
}

}  // namespace peft::detail
