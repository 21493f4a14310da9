// Small JSON helpers shared by the config's loader, accessors and checks.
#include "config/config_json.hpp"

#include <cctype>
#include <cstdint>

namespace peft::detail::config_json {

std::string_view type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer";
    case Json::value_t::number_float:
      return "float";
    case Json::value_t::string:
      return "string";
    case Json::value_t::array:
      return "list";
    case Json::value_t::object:
      return "object";
    default:
      return "binary value";
  }
}

// A short rendering of a value for messages.
std::string show(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

// Python truthiness of a JSON value (absent counts as None).
bool truthy(const Json* value) {
  if (value == nullptr) return false;
  switch (value->type()) {
    case Json::value_t::null:
      return false;
    case Json::value_t::boolean:
      return value->get<bool>();
    case Json::value_t::number_integer:
      return value->get<std::int64_t>() != 0;
    case Json::value_t::number_unsigned:
      return value->get<std::uint64_t>() != 0;
    case Json::value_t::number_float:
      return value->get<double>() != 0.0;
    case Json::value_t::string:
    case Json::value_t::array:
    case Json::value_t::object:
      return !value->empty();
    default:
      return true;
  }
}

bool is_null(const Json* value) {
  return value == nullptr || value->is_null();
}

bool is_string_equal(const Json* value, std::string_view text) {
  return value != nullptr && value->is_string() && value->get_ref<const std::string&>() == text;
}

bool is_supported_wavelet(std::string_view name) {
  const auto in_family = [&](std::string_view prefix, int low, int high) {
    if (name.substr(0, prefix.size()) != prefix) return false;
    const std::string_view number = name.substr(prefix.size());
    if (number.empty() || number.size() > 2 || number[0] == '0') return false;
    int value = 0;
    for (const char c : number) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
      value = value * 10 + (c - '0');
    }
    return value >= low && value <= high;
  };
  return in_family("db", 1, 38) || in_family("sym", 2, 20) || in_family("coif", 1, 17);
}

}  // namespace peft::detail::config_json
