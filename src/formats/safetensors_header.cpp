#include "formats/safetensors_header.hpp"

#include <cstring>

#include <fmt/format.h>

#include "core/text.hpp"
#include "peft/error.hpp"

namespace peft::formats {
namespace {

constexpr int kMaxSkipDepth = 128;

class HeaderParser {
 public:
  HeaderParser(std::string_view json, const std::string& source,
               const SafetensorsReadOptions& options)
      : p_(json.data()),
        begin_(json.data()),
        end_(json.data() + json.size()),
        source_(source),
        options_(options) {}

  ParsedHeader parse() {
    ParsedHeader out;
    skip_ws();
    expect('{', "the header must be a JSON object");
    skip_ws();
    bool seen_metadata = false;
    if (!consume('}')) {
      for (;;) {
        skip_ws();
        std::string name = parse_string();
        skip_ws();
        expect(':', "expected ':' after a member name");
        skip_ws();
        if (name == "__metadata__") {
          if (seen_metadata) {
            throw Error(ErrorCode::DuplicateKey, source_,
                        "'__metadata__' appears twice in the header");
          }
          seen_metadata = true;
          out.metadata = parse_metadata();
        } else {
          if (out.tensors.size() >= options_.max_tensors) {
            throw Error(ErrorCode::TooManyTensors, source_,
                        fmt::format("more than {} tensors in the header", options_.max_tensors));
          }
          out.tensors.push_back(parse_tensor(std::move(name)));
        }
        skip_ws();
        if (consume(',')) continue;
        expect('}', "expected ',' or '}' after a member");
        break;
      }
    }
    skip_ws();
    if (p_ != end_) fail("unexpected bytes after the JSON object");
    return out;
  }

 private:
  [[noreturn]] void fail(std::string_view what) const {
    throw Error(ErrorCode::InvalidHeaderJson, source_,
                fmt::format("invalid JSON in header at byte {}: {}", p_ - begin_, what));
  }

  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool consume(char c) {
    if (p_ != end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }

  void expect(char c, std::string_view what) {
    if (!consume(c)) fail(what);
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  unsigned parse_hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    unsigned value = 0;
    for (int i = 0; i < 4; ++i) {
      const int digit = hex_value(p_[i]);
      if (digit < 0) fail("invalid \\u escape");
      value = value * 16 + static_cast<unsigned>(digit);
    }
    p_ += 4;
    return value;
  }

  // A JSON string; the opening quote is at p_. UTF-8 was validated beforehand.
  std::string parse_string() {
    expect('"', "expected a string");
    const char* start = p_;
    // Fast path: no escapes.
    while (p_ != end_ && *p_ != '"' && *p_ != '\\') {
      if (static_cast<unsigned char>(*p_) < 0x20) fail("control character in a string");
      ++p_;
    }
    if (p_ == end_) fail("unterminated string");
    std::string out(start, p_);
    while (*p_ != '"') {
      if (*p_ == '\\') {
        ++p_;
        if (p_ == end_) fail("unterminated escape");
        const char e = *p_++;
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            unsigned cp = parse_hex4();
            if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone trailing surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') fail("lone leading surrogate");
              p_ += 2;
              const unsigned low = parse_hex4();
              if (low < 0xDC00 || low > 0xDFFF) fail("invalid surrogate pair");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            text::append_utf8(out, cp);
            break;
          }
          default:
            fail("invalid escape");
        }
      } else {
        if (static_cast<unsigned char>(*p_) < 0x20) fail("control character in a string");
        out += *p_++;
      }
      if (p_ == end_) fail("unterminated string");
    }
    ++p_;
    return out;
  }

  // A non-negative integer that fits u64, as serde reads u64/usize.
  std::uint64_t parse_u64(std::string_view what) {
    if (p_ == end_ || *p_ < '0' || *p_ > '9') {
      fail(fmt::format("{} must be a non-negative integer", what));
    }
    if (*p_ == '0' && p_ + 1 != end_ && p_[1] >= '0' && p_[1] <= '9')
      fail("leading zero in a number");
    std::uint64_t value = 0;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
      const auto digit = static_cast<std::uint64_t>(*p_ - '0');
      if (__builtin_mul_overflow(value, 10u, &value) ||
          __builtin_add_overflow(value, digit, &value)) {
        fail(fmt::format("{} does not fit 64 bits", what));
      }
      ++p_;
    }
    if (p_ != end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) {
      fail(fmt::format("{} must be an integer", what));
    }
    return value;
  }

  std::vector<std::uint64_t> parse_u64_array(std::string_view what, std::size_t max_len) {
    std::vector<std::uint64_t> out;
    expect('[', "expected an array");
    skip_ws();
    if (consume(']')) return out;
    for (;;) {
      skip_ws();
      if (out.size() >= max_len) {
        throw Error(ErrorCode::InvalidHeaderJson, source_,
                    fmt::format("{} has more than {} entries", what, max_len));
      }
      out.push_back(parse_u64(what));
      skip_ws();
      if (consume(',')) continue;
      expect(']', "expected ',' or ']' in an array");
      return out;
    }
  }

  std::optional<Metadata> parse_metadata() {
    if (end_ - p_ >= 4 && std::memcmp(p_, "null", 4) == 0) {
      p_ += 4;
      return std::nullopt;
    }
    Metadata metadata;
    expect('{', "'__metadata__' must be an object of strings");
    skip_ws();
    if (consume('}')) return metadata;
    for (;;) {
      skip_ws();
      std::string key = parse_string();
      skip_ws();
      expect(':', "expected ':' after a member name");
      skip_ws();
      if (p_ == end_ || *p_ != '"') {
        throw Error(ErrorCode::InvalidHeaderJson, source_,
                    fmt::format("'__metadata__' value of '{}' is not a string", key));
      }
      std::string value = parse_string();
      if (!metadata.emplace(key, std::move(value)).second) {
        throw Error(ErrorCode::DuplicateKey, source_,
                    fmt::format("'__metadata__' has the key '{}' twice", key));
      }
      skip_ws();
      if (consume(',')) continue;
      expect('}', "expected ',' or '}' in '__metadata__'");
      return metadata;
    }
  }

  SafetensorsTensorInfo parse_tensor(std::string name) {
    SafetensorsTensorInfo info{std::move(name), DType::F32, {}, 0, 0};
    if (p_ == end_ || *p_ != '{') {
      throw Error(ErrorCode::InvalidHeaderJson, source_,
                  fmt::format("tensor '{}': expected an object", info.name));
    }
    ++p_;
    bool has_dtype = false, has_shape = false, has_offsets = false;
    skip_ws();
    if (!consume('}')) {
      for (;;) {
        skip_ws();
        const std::string member = parse_string();
        skip_ws();
        expect(':', "expected ':' after a member name");
        skip_ws();
        if (member == "dtype") {
          if (has_dtype) tensor_fail(info.name, "member 'dtype' appears twice");
          has_dtype = true;
          if (p_ == end_ || *p_ != '"') tensor_fail(info.name, "'dtype' must be a string");
          const std::string dtype = parse_string();
          const auto parsed = dtype_from_name(dtype);
          if (!parsed) tensor_fail(info.name, fmt::format("unknown dtype '{}'", dtype));
          info.dtype = *parsed;
        } else if (member == "shape") {
          if (has_shape) tensor_fail(info.name, "member 'shape' appears twice");
          has_shape = true;
          if (p_ == end_ || *p_ != '[') tensor_fail(info.name, "'shape' must be an array");
          info.shape = parse_u64_array("a shape dimension", options_.max_rank);
        } else if (member == "data_offsets") {
          if (has_offsets) tensor_fail(info.name, "member 'data_offsets' appears twice");
          has_offsets = true;
          if (p_ == end_ || *p_ != '[') tensor_fail(info.name, "'data_offsets' must be an array");
          const auto offsets = parse_u64_array("a data offset", 3);
          if (offsets.size() != 2) {
            tensor_fail(info.name, "'data_offsets' must hold exactly [begin, end]");
          }
          info.begin = offsets[0];
          info.end = offsets[1];
        } else {
          skip_value(0);  // the reference reader ignores unknown members
        }
        skip_ws();
        if (consume(',')) continue;
        expect('}', "expected ',' or '}' in a tensor object");
        break;
      }
    }
    if (!has_dtype) tensor_fail(info.name, "missing member 'dtype'");
    if (!has_shape) tensor_fail(info.name, "missing member 'shape'");
    if (!has_offsets) tensor_fail(info.name, "missing member 'data_offsets'");
    return info;
  }

  [[noreturn]] void tensor_fail(const std::string& name, std::string_view what) const {
    throw Error(ErrorCode::InvalidHeaderJson, source_,
                fmt::format("invalid JSON in header: tensor '{}': {}", name, what));
  }

  // Skips any JSON value (only inside members the reader ignores).
  void skip_value(int depth) {
    if (depth > kMaxSkipDepth) fail("nesting too deep");
    if (p_ == end_) fail("expected a value");
    switch (*p_) {
      case '"':
        parse_string();
        return;
      case '{':
      case '[': {
        const char close = *p_ == '{' ? '}' : ']';
        const bool object = *p_ == '{';
        ++p_;
        skip_ws();
        if (consume(close)) return;
        for (;;) {
          skip_ws();
          if (object) {
            parse_string();
            skip_ws();
            expect(':', "expected ':'");
            skip_ws();
          }
          skip_value(depth + 1);
          skip_ws();
          if (consume(',')) continue;
          expect(close, "unterminated container");
          return;
        }
      }
      default:
        break;
    }
    for (const std::string_view literal : {"true", "false", "null"}) {
      if (static_cast<std::size_t>(end_ - p_) >= literal.size() &&
          std::memcmp(p_, literal.data(), literal.size()) == 0) {
        p_ += literal.size();
        return;
      }
    }
    skip_number();
  }

  void skip_number() {
    consume('-');
    if (p_ == end_ || *p_ < '0' || *p_ > '9') fail("expected a value");
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (consume('.')) {
      if (p_ == end_ || *p_ < '0' || *p_ > '9') fail("invalid number");
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') fail("invalid number");
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
  }

  const char* p_;
  const char* begin_;
  const char* end_;
  const std::string& source_;
  const SafetensorsReadOptions& options_;
};

}  // namespace

ParsedHeader parse_safetensors_header(std::string_view json, const std::string& source,
                                      const SafetensorsReadOptions& options) {
  const std::size_t bad = text::find_invalid_utf8(json);
  if (bad != std::string_view::npos) {
    throw Error(ErrorCode::InvalidHeaderUtf8, source,
                fmt::format("header is not valid UTF-8 (byte {} of the header)", bad));
  }
  return HeaderParser(json, source, options).parse();
}

std::string serialize_header(const std::optional<Metadata>& metadata,
                             std::span<const HeaderEntry> entries, const std::string& target) {
  constexpr std::uint64_t kMaxWrittenHeader = 100'000'000;
  const auto append_int = [](std::string& out, std::uint64_t value) {
    const fmt::format_int text(value);
    out.append(text.data(), text.size());
  };
  std::string header;
  header.reserve(64 + entries.size() * 96);
  header += '{';
  bool first = true;
  if (metadata) {
    header += "\"__metadata__\":{";
    bool first_meta = true;
    for (const auto& [key, value] : *metadata) {  // std::map: sorted keys
      if (!first_meta) header += ',';
      first_meta = false;
      append_json_string(header, key);
      header += ':';
      append_json_string(header, value);
    }
    header += '}';
    first = false;
  }
  std::uint64_t offset = 0;
  for (const auto& entry : entries) {
    if (!first) header += ',';
    first = false;
    append_json_string(header, entry.name);
    header += ":{\"dtype\":\"";
    header += dtype_name(entry.dtype);
    header += "\",\"shape\":[";
    for (std::size_t d = 0; d < entry.shape->size(); ++d) {
      if (d) header += ',';
      append_int(header, (*entry.shape)[d]);
    }
    header += "],\"data_offsets\":[";
    append_int(header, offset);
    offset += entry.bytes;
    header += ',';
    append_int(header, offset);
    header += "]}";
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kMaxWrittenHeader) {
    throw Error(ErrorCode::HeaderTooLarge, target,
                fmt::format("the header would take {} bytes, more than the format's limit of {}",
                            header.size(), kMaxWrittenHeader));
  }
  std::string out(8, '\0');
  std::uint64_t n = header.size();
  for (std::size_t i = 0; i < 8; ++i, n >>= 8) out[i] = static_cast<char>(n & 0xFF);
  return out + header;
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t run = 0;  // start of the pending unescaped run
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') [[likely]]
      continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
  }
  out.append(text.data() + run, text.size() - run);
  out += '"';
}

}  // namespace peft::formats
