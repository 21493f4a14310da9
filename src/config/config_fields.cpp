// PeftConfig's typed accessors: each field read with PEFT's default and type checked.
#include "peft/config.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>

#include <fmt/format.h>

#include "config/config_json.hpp"
#include "config/method_config.hpp"
#include "peft/error.hpp"

namespace peft {
using namespace detail::config_json;

namespace detail::config_json {

[[noreturn]] void wrong_type(const std::string& source, std::string_view field,
                             std::string_view expected, const Json& value) {
  throw Error(ErrorCode::ConfigFieldType, source,
              fmt::format("field '{}' must be {}, got {} {}", field, expected, type_name(value),
                          show(value)));
}

[[noreturn]] void missing(const std::string& source, std::string_view field, PeftType type) {
  throw Error(ErrorCode::MissingKey, source,
              fmt::format("{} configs have no field '{}' and the file does not set it",
                          to_string(type), field));
}

bool to_bool(const std::string& source, std::string_view field, const Json& value) {
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_null()) return false;  // None is falsy
  if (value.is_number_integer()) return truthy(&value);
  wrong_type(source, field, "a boolean (true/false, 0/1)", value);
}

std::int64_t to_int64(const std::string& source, std::string_view field, const Json& value) {
  if (value.is_number_unsigned()) {
    const auto v = value.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(INT64_MAX)) {
      throw Error(ErrorCode::InvalidConfigValue, source,
                  fmt::format("field '{}' = {} is out of range", field, v));
    }
    return static_cast<std::int64_t>(v);
  }
  if (value.is_number_integer()) return value.get<std::int64_t>();
  wrong_type(source, field, "an integer", value);
}

int to_int(const std::string& source, std::string_view field, const Json& value) {
  const std::int64_t v = to_int64(source, field, value);
  if (v < INT_MIN || v > INT_MAX) {
    throw Error(ErrorCode::InvalidConfigValue, source,
                fmt::format("field '{}' = {} is out of range", field, v));
  }
  return static_cast<int>(v);
}

double to_double(const std::string& source, std::string_view field, const Json& value) {
  if (value.is_number_float()) return value.get<double>();
  if (value.is_number_integer()) {
    return value.is_number_unsigned() ? static_cast<double>(value.get<std::uint64_t>())
                                      : static_cast<double>(value.get<std::int64_t>());
  }
  wrong_type(source, field, "a number", value);
}

std::string to_string_value(const std::string& source, std::string_view field, const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  wrong_type(source, field, "a string", value);
}

std::vector<std::string> to_string_list(const std::string& source, std::string_view field,
                                        const Json& value) {
  if (!value.is_array()) wrong_type(source, field, "a list of strings", value);
  std::vector<std::string> out;
  for (const auto& element : value) {
    if (!element.is_string()) wrong_type(source, field, "a list of strings", value);
    out.push_back(element.get<std::string>());
  }
  return out;
}

std::vector<std::int64_t> to_int_list(const std::string& source, std::string_view field,
                                      const Json& value) {
  if (!value.is_array()) wrong_type(source, field, "a list of integers", value);
  std::vector<std::int64_t> out;
  for (const auto& element : value) {
    if (!element.is_number_integer()) wrong_type(source, field, "a list of integers", value);
    out.push_back(to_int64(source, field, element));
  }
  return out;
}

TargetModules to_targets(const std::string& source, std::string_view field, const Json* value) {
  TargetModules out;
  if (is_null(value)) return out;
  if (value->is_string()) {
    out.kind = TargetModules::Kind::Regex;
    out.regex = value->get<std::string>();
    return out;
  }
  if (!value->is_array()) {
    wrong_type(source, field, "null, a string (regular expression) or a list of strings", *value);
  }
  out.kind = TargetModules::Kind::List;
  out.names = to_string_list(source, field, *value);
  return out;
}

}  // namespace detail::config_json

bool PeftConfig::get_bool(std::string_view field, bool fallback) const {
  const Json* value = find(field);
  return value == nullptr ? fallback : to_bool(source_, field, *value);
}

std::int64_t PeftConfig::get_int(std::string_view field, std::int64_t fallback) const {
  const Json* value = find(field);
  return value == nullptr ? fallback : to_int64(source_, field, *value);
}

double PeftConfig::get_double(std::string_view field, double fallback) const {
  const Json* value = find(field);
  return value == nullptr ? fallback : to_double(source_, field, *value);
}

std::optional<std::string> PeftConfig::get_string(std::string_view field) const {
  const Json* value = find(field);
  if (is_null(value)) return std::nullopt;
  return to_string_value(source_, field, *value);
}

std::optional<TaskType> PeftConfig::task_type() const {
  const Json* value = find("task_type");
  if (is_null(value)) return std::nullopt;
  if (!value->is_string()) wrong_type(source_, "task_type", "null or a task name", *value);
  const auto& name = value->get_ref<const std::string&>();
  const auto task = task_type_from_string(name);
  if (!task) {
    throw Error(ErrorCode::InvalidConfigValue, source_,
                fmt::format("task_type '{}' is not one of SEQ_CLS, SEQ_2_SEQ_LM, CAUSAL_LM, "
                            "TOKEN_CLS, QUESTION_ANS, FEATURE_EXTRACTION",
                            name));
  }
  return task;
}

std::optional<std::string> PeftConfig::base_model_name_or_path() const {
  return get_string("base_model_name_or_path");
}
std::optional<std::string> PeftConfig::revision() const {
  return get_string("revision");
}
bool PeftConfig::inference_mode() const {
  return get_bool("inference_mode", false);
}
std::optional<std::string> PeftConfig::peft_version() const {
  return get_string("peft_version");
}

int PeftConfig::r() const {
  const Json* value = find("r");
  if (value == nullptr) missing(source_, "r", peft_type());
  return to_int(source_, "r", *value);
}

double PeftConfig::lora_alpha() const {
  const PeftType type = peft_type();
  const std::string_view field = detail::method_config(type).alpha_field;
  const Json* value = find(field);
  if (value == nullptr) missing(source_, field, type);
  return to_double(source_, field, *value);
}

bool PeftConfig::use_rslora() const {
  return get_bool("use_rslora", false);
}
bool PeftConfig::use_dora() const {
  return get_bool("use_dora", false);
}
bool PeftConfig::lora_bias() const {
  return get_bool("lora_bias", false);
}
bool PeftConfig::fan_in_fan_out() const {
  return get_bool("fan_in_fan_out", false);
}

std::string PeftConfig::bias() const {
  const Json* value = find("bias");
  return value == nullptr ? std::string("none") : to_string_value(source_, "bias", *value);
}

std::variant<bool, std::string> PeftConfig::init_lora_weights() const {
  const Json* value = find("init_lora_weights");
  if (value == nullptr) return true;
  if (value->is_string()) return value->get<std::string>();
  if (value->is_boolean() || value->is_number_integer()) {
    return to_bool(source_, "init_lora_weights", *value);
  }
  wrong_type(source_, "init_lora_weights", "a boolean or the name of an initialisation", *value);
}

TargetModules PeftConfig::target_modules() const {
  return to_targets(source_, "target_modules", find("target_modules"));
}
TargetModules PeftConfig::exclude_modules() const {
  return to_targets(source_, "exclude_modules", find("exclude_modules"));
}
TargetModules PeftConfig::feedforward_modules() const {
  return to_targets(source_, "feedforward_modules", find("feedforward_modules"));
}

std::optional<std::vector<std::string>> PeftConfig::target_parameters() const {
  const Json* value = find("target_parameters");
  if (is_null(value)) return std::nullopt;
  return to_string_list(source_, "target_parameters", *value);
}

std::optional<std::vector<std::string>> PeftConfig::modules_to_save() const {
  const Json* value = find("modules_to_save");
  if (is_null(value)) return std::nullopt;
  return to_string_list(source_, "modules_to_save", *value);
}

std::optional<std::vector<int>> PeftConfig::layers_to_transform() const {
  const Json* value = find("layers_to_transform");
  if (is_null(value)) return std::nullopt;
  if (value->is_number_integer())
    return std::vector<int>{to_int(source_, "layers_to_transform", *value)};
  if (!value->is_array())
    wrong_type(source_, "layers_to_transform", "an integer or a list of integers", *value);
  std::vector<int> out;
  for (const auto& element : *value) {
    if (!element.is_number_integer()) {
      wrong_type(source_, "layers_to_transform", "an integer or a list of integers", *value);
    }
    out.push_back(to_int(source_, "layers_to_transform", element));
  }
  return out;
}

std::optional<std::vector<std::string>> PeftConfig::layers_pattern() const {
  const Json* value = find("layers_pattern");
  if (is_null(value)) return std::nullopt;
  if (value->is_string()) {
    const auto& text = value->get_ref<const std::string&>();
    return text.empty() ? std::vector<std::string>{} : std::vector<std::string>{text};
  }
  if (!value->is_array())
    wrong_type(source_, "layers_pattern", "a string or a list of strings", *value);
  return to_string_list(source_, "layers_pattern", *value);
}

std::map<std::string, int> PeftConfig::rank_pattern() const {
  if (detail::method_config(peft_type()).ranks == detail::Ranks::AdaLoraMasks) {
    throw Error(ErrorCode::InvalidArgument, source_,
                "an AdaLoRA rank_pattern holds rank masks, not ranks: use adalora_rank_masks()");
  }
  std::map<std::string, int> out;
  const Json* value = find("rank_pattern");
  if (is_null(value)) return out;
  if (!value->is_object())
    wrong_type(source_, "rank_pattern", "an object (pattern -> rank)", *value);
  for (const auto& [key, rank] : value->items()) {
    if (!rank.is_number_integer()) {
      wrong_type(source_, fmt::format("rank_pattern[\"{}\"]", key), "an integer", rank);
    }
    out[key] = to_int(source_, "rank_pattern", rank);
  }
  return out;
}

std::map<std::string, double> PeftConfig::alpha_pattern() const {
  std::map<std::string, double> out;
  const Json* value = find("alpha_pattern");
  if (is_null(value)) return out;
  if (!value->is_object())
    wrong_type(source_, "alpha_pattern", "an object (pattern -> alpha)", *value);
  for (const auto& [key, alpha] : value->items()) {
    out[key] = to_double(source_, fmt::format("alpha_pattern[\"{}\"]", key), alpha);
  }
  return out;
}

std::map<std::string, std::vector<bool>> PeftConfig::adalora_rank_masks() const {
  std::map<std::string, std::vector<bool>> out;
  const Json* value = find("rank_pattern");
  if (is_null(value)) return out;
  if (!value->is_object()) {
    wrong_type(source_, "rank_pattern", "an object (parameter -> list of booleans)", *value);
  }
  for (const auto& [key, mask] : value->items()) {
    const std::string field = fmt::format("rank_pattern[\"{}\"]", key);
    if (!mask.is_array()) wrong_type(source_, field, "a list of booleans", mask);
    std::vector<bool> bits;
    for (const auto& bit : mask) {
      if (!bit.is_boolean() && !bit.is_number_integer()) {
        wrong_type(source_, field, "a list of booleans", mask);
      }
      bits.push_back(to_bool(source_, field, bit));
    }
    out[key] = std::move(bits);
  }
  return out;
}

std::optional<TokenIndices> PeftConfig::trainable_token_indices() const {
  const Json* value = find("trainable_token_indices");
  if (is_null(value)) return std::nullopt;
  if (value->is_array())
    return TokenIndices(to_int_list(source_, "trainable_token_indices", *value));
  if (!value->is_object()) {
    wrong_type(source_, "trainable_token_indices",
               "a list of token ids or an object (layer -> list of token ids)", *value);
  }
  std::map<std::string, std::vector<std::int64_t>> out;
  for (const auto& [key, ids] : value->items()) {
    out[key] = to_int_list(source_, fmt::format("trainable_token_indices[\"{}\"]", key), ids);
  }
  return TokenIndices(std::move(out));
}

std::vector<std::int64_t> PeftConfig::token_indices() const {
  const Json* value = find("token_indices");
  if (is_null(value)) return {};
  return to_int_list(source_, "token_indices", *value);
}

std::optional<std::vector<std::vector<int>>> PeftConfig::layer_replication() const {
  const Json* value = find("layer_replication");
  if (is_null(value)) return std::nullopt;
  constexpr std::string_view kExpected = "a list of [start, end] pairs";
  if (!value->is_array()) wrong_type(source_, "layer_replication", kExpected, *value);
  std::vector<std::vector<int>> out;
  for (const auto& pair : *value) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_integer() ||
        !pair[1].is_number_integer()) {
      wrong_type(source_, "layer_replication", kExpected, *value);
    }
    out.push_back({to_int(source_, "layer_replication", pair[0]),
                   to_int(source_, "layer_replication", pair[1])});
  }
  return out;
}

bool PeftConfig::save_projection() const {
  return get_bool("save_projection", true);
}

int PeftConfig::num_vectors() const {
  const Json* value = find("num_vectors");
  if (value == nullptr) missing(source_, "num_vectors", peft_type());
  return to_int(source_, "num_vectors", *value);
}

int PeftConfig::topk() const {
  const Json* value = find("topk");
  if (value == nullptr) missing(source_, "topk", peft_type());
  return to_int(source_, "topk", *value);
}

bool PeftConfig::save_only_topk_weights() const {
  return get_bool("save_only_topk_weights", false);
}

namespace {
std::optional<int> optional_int(const PeftConfig& config, std::string_view field) {
  const Json* value = config.find(field);
  if (is_null(value)) return std::nullopt;
  return to_int(config.source(), field, *value);
}
}  // namespace

std::optional<int> PeftConfig::num_virtual_tokens() const {
  return optional_int(*this, "num_virtual_tokens");
}
std::optional<int> PeftConfig::token_dim() const {
  return optional_int(*this, "token_dim");
}
std::optional<int> PeftConfig::num_transformer_submodules() const {
  return optional_int(*this, "num_transformer_submodules");
}
std::optional<int> PeftConfig::num_layers() const {
  return optional_int(*this, "num_layers");
}
std::optional<int> PeftConfig::num_attention_heads() const {
  return optional_int(*this, "num_attention_heads");
}

std::string PeftConfig::encoder_reparameterization_type() const {
  return get_string("encoder_reparameterization_type").value_or("MLP");
}

bool PeftConfig::prefix_projection() const {
  return get_bool("prefix_projection", false);
}

// --- validate ------------------------------------------------------------------------

}  // namespace peft
