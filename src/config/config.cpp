#include "peft/config.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "config/config_defaults.hpp"
#include "formats/atomic_file.hpp"
#include "peft/error.hpp"
#include "pycompat/python_json.hpp"

namespace peft {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr std::uintmax_t kMaxConfigBytes = 64u << 20;
constexpr std::string_view kConfigName = "adapter_config.json";

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

// Releases compare by their numeric part; a pre-release or dev suffix sorts before the
// release (PEP 440), a post-release or local suffix after it.
bool version_before_0_18_0(std::string_view version) {
  version = version.substr(0, version.find('@'));
  std::vector<long> parts;
  std::size_t pos = 0;
  while (pos < version.size() && std::isdigit(static_cast<unsigned char>(version[pos]))) {
    long value = 0;
    while (pos < version.size() && std::isdigit(static_cast<unsigned char>(version[pos]))) {
      value = std::min<long>(value * 10 + (version[pos] - '0'), 1'000'000'000L);
      ++pos;
    }
    parts.push_back(value);
    if (pos + 1 < version.size() && version[pos] == '.' &&
        std::isdigit(static_cast<unsigned char>(version[pos + 1]))) {
      ++pos;
    } else {
      break;
    }
  }
  parts.resize(std::max<std::size_t>(parts.size(), 3), 0);
  const std::vector<long> target = {0, 18, 0};
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const long want = i < target.size() ? target[i] : 0;
    if (parts[i] != want) return parts[i] < want;
  }
  std::string_view rest = version.substr(pos);
  if (!rest.empty() && rest[0] == '.') rest.remove_prefix(1);
  return !rest.empty() && rest.substr(0, 4) != "post" && rest[0] != '+';
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

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

}  // namespace

// --- TargetModules -------------------------------------------------------------------

bool TargetModules::is_all_linear() const {
  if (kind != Kind::Regex) return false;
  std::string lower = regex;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower == "all-linear";
}

// --- construction --------------------------------------------------------------------

PeftConfig PeftConfig::load(const fs::path& file_or_folder) {
  std::error_code ec;
  fs::path file = file_or_folder;
  const bool folder = fs::is_directory(file, ec);
  if (folder) file /= kConfigName;
  if (!fs::is_regular_file(file, ec)) {
    if (folder) {
      throw Error(ErrorCode::NotFound, file_or_folder.string(),
                  fmt::format("the folder has no {}", kConfigName));
    }
    throw Error(ErrorCode::NotFound, file.string(),
                fs::exists(file, ec) ? "not a regular file" : "no such file");
  }
  const auto size = fs::file_size(file, ec);
  if (!ec && size > kMaxConfigBytes) {
    throw Error(ErrorCode::LimitExceeded, file.string(),
                fmt::format("{} bytes is too large for an adapter config (limit {})", size,
                            kMaxConfigBytes));
  }
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) throw Error(ErrorCode::Io, file.string(), "cannot read the file");
  return from_json_text(text.str(), file.string());
}

PeftConfig PeftConfig::from_json_text(std::string_view text, std::string source) {
  auto document = detail::parse_python_json(text, source);
  KeyOrder order(std::make_move_iterator(document.member_key_order.begin()),
                 std::make_move_iterator(document.member_key_order.end()));
  return from_document(std::move(document.value), std::move(source), std::move(order),
                       document.had_utf8_bom);
}

PeftConfig PeftConfig::from_json(nlohmann::json value, std::string source) {
  return from_document(std::move(value), std::move(source), {}, false);
}

PeftConfig PeftConfig::from_document(nlohmann::json value, std::string source, KeyOrder key_order,
                                     bool had_bom) {
  PeftConfig config;
  config.json_ = std::move(value);
  config.source_ = std::move(source);
  config.key_order_ = std::move(key_order);
  config.check_structure();
  if (had_bom) {
    config.warnings_.push_back(fmt::format(
        "{}: utf8_bom: the text starts with a UTF-8 byte order mark, which Python's json module "
        "refuses; it was skipped",
        config.source_));
  }
  if (config.json_.contains("runtime_config")) {
    config.json_.erase("runtime_config");
    config.key_order_.erase("runtime_config");
    config.warnings_.push_back(
        fmt::format("{}: runtime_config: dropped 'runtime_config' (run-time only settings), as "
                    "PEFT does; it is never written",
                    config.source_));
  }
  config.collect_warnings();
  return config;
}

void PeftConfig::check_structure() {
  if (!json_.is_object()) {
    throw Error(ErrorCode::NotAPeftConfig, source_,
                fmt::format("the JSON value is a {}, not an object: not a PEFT adapter config",
                            type_name(json_)));
  }
  const auto it = json_.find("peft_type");
  if (it == json_.end()) {
    std::vector<std::string> keys;
    for (const auto& [key, value] : json_.items()) {
      if (keys.size() == 6) {
        keys.push_back("...");
        break;
      }
      keys.push_back(key);
    }
    const bool mlx = json_.contains("lora_parameters") || json_.contains("fine_tune_type");
    throw Error(
        ErrorCode::NotAPeftConfig, source_,
        fmt::format("no 'peft_type' field, so this is not a PEFT adapter config{} (fields: {})",
                    mlx ? " (it looks like an MLX-LM adapter config)" : "",
                    keys.empty() ? std::string("none") : join(keys)));
  }
  if (!it->is_string()) {
    throw Error(ErrorCode::NotAPeftConfig, source_,
                fmt::format("'peft_type' must be a string naming a PEFT method, got {} {}",
                            type_name(*it), show(*it)));
  }
  const auto& name = it->get_ref<const std::string&>();
  if (!peft_type_from_string(name)) {
    throw Error(ErrorCode::UnknownPeftType, source_,
                fmt::format("unknown peft_type '{}' (neither a PEFT v0.18.0 method nor a later one "
                            "peftcpp knows)",
                            name));
  }
}

void PeftConfig::collect_warnings() {
  const PeftType type = peft_type();
  const auto warn = [&](std::string_view rule, std::string detail) {
    warnings_.push_back(source_.empty() ? fmt::format("{}: {}", rule, detail)
                                        : fmt::format("{}: {}: {}", source_, rule, detail));
  };
  const auto member = [&](std::string_view field) -> const Json* {
    const auto it = json_.find(field);
    return it == json_.end() ? nullptr : &*it;
  };
  if (!in_peft_0_18_0(type)) {
    warn("newer_peft_type", fmt::format("peft_type {} was added after PEFT v0.18.0, which cannot "
                                        "load this config",
                                        to_string(type)));
    return;
  }
  const auto unknown = unknown_fields();
  if (!unknown.empty()) {
    const bool legacy = json_.contains("enable_lora") || json_.contains("merge_weights");
    warn("unknown_fields",
         fmt::format("fields PEFT v0.18.0 does not declare for {}: {}{} (PEFT drops them; peftcpp "
                     "keeps them and writes them back)",
                     to_string(type), join(unknown),
                     legacy ? " (enable_lora/merge_weights come from PEFT <= 0.2)" : ""));
  }
  switch (type) {
    case PeftType::BONE:
      warn("deprecated_type",
           "BONE is deprecated in PEFT v0.18.0 and unknown to PEFT >= 0.19, which reads such "
           "adapters only after conversion to MISS");
      break;
    case PeftType::OFT:
      if (truthy(member("use_cayley_neumann"))) {
        const Json* version = member("peft_version");
        if (version != nullptr && version->is_null()) {
          warn("oft_cayley_neumann",
               "use_cayley_neumann with a null peft_version: PEFT v0.18.0 fails to load this "
               "config");
        } else if (version == nullptr ||
                   (version->is_string() &&
                    version_before_0_18_0(version->get_ref<const std::string&>()))) {
          warn("oft_cayley_neumann",
               "use_cayley_neumann with an adapter made before PEFT 0.18.0, which changed that "
               "parameterization: PEFT warns that the weights need retraining");
        }
      }
      break;
    case PeftType::VERA:
    case PeftType::RANDLORA:
      if (const Json* value = member("save_projection"); value != nullptr && !truthy(value)) {
        warn("save_projection",
             "save_projection is false: the shared projections are not in the weights file and "
             "are regenerated from projection_prng_key");
      }
      break;
    case PeftType::SHIRA:
      if (const Json* mask = member("mask_type"); mask != nullptr &&
                                                  !is_string_equal(mask, "random") &&
                                                  !truthy(member("inference_mode"))) {
        warn("shira_mask_type",
             "mask_type is not 'random' and inference_mode is false: PEFT "
             "needs a custom mask function to train this adapter");
      }
      break;
    case PeftType::XLORA:
      if (is_null(member("hidden_size"))) {
        warn("xlora_defaults", "hidden_size is null; PEFT sets it to 4096");
      }
      if (is_null(member("adapters")))
        warn("xlora_defaults", "adapters is null; PEFT sets it to {}");
      if (truthy(member("enable_softmax_topk")) && is_null(member("top_k_lora"))) {
        warn("xlora_topk", "enable_softmax_topk is set but top_k_lora is not");
      }
      if (truthy(member("enable_softmax_topk")) && truthy(member("enable_softmax"))) {
        warn("xlora_topk", "enable_softmax_topk and enable_softmax are both set");
      }
      if (const Json* k = member("top_k_lora");
          k != nullptr && k->is_number() && k->get<double>() < 1) {
        warn("xlora_topk", "top_k_lora is below 1");
      }
      break;
    case PeftType::LORA:
    case PeftType::ADALORA: {
      const Json* init = member("init_lora_weights");
      const bool loftq = is_string_equal(init, "loftq");
      const bool eva = is_string_equal(init, "eva");
      const bool corda = is_string_equal(init, "corda");
      // PEFT tests these as one if/elif chain: at most one of them applies.
      if (loftq) {
        // nothing to report
      } else if (truthy(member("loftq_config"))) {
        warn("loftq_config",
             "loftq_config is set but init_lora_weights is not 'loftq': PEFT "
             "resets it to {}");
      } else if (eva && is_null(member("eva_config"))) {
        warn("eva_config",
             "init_lora_weights is 'eva' without eva_config: PEFT uses the "
             "default EVA settings");
      } else if (!eva && !is_null(member("eva_config"))) {
        warn("eva_config", "eva_config is set but init_lora_weights is not 'eva'; it is ignored");
      } else if (corda && is_null(member("corda_config"))) {
        warn("corda_config",
             "init_lora_weights is 'corda' without corda_config: PEFT uses the "
             "default CorDA settings");
      } else if (!corda && !is_null(member("corda_config"))) {
        warn("corda_config",
             "corda_config is set but init_lora_weights is not 'corda'; it is ignored");
      }
      if (!is_null(member("alora_invocation_tokens")) &&
          !is_string_equal(member("task_type"), "CAUSAL_LM")) {
        warn("alora", "alora_invocation_tokens is only supported for task_type CAUSAL_LM");
      }
      if (type == PeftType::ADALORA) {
        const Json* r_value = member("r");
        if (r_value != nullptr &&
            !(r_value->is_number_integer() && r_value->get<std::int64_t>() == 8)) {
          warn("adalora_r", "r is not used by AdaLoRA (init_r and target_r set the ranks)");
        }
      }
      break;
    }
    default:
      break;
  }
}

PeftConfig PeftConfig::make(PeftType type) {
  if (!in_peft_0_18_0(type)) {
    throw Error(ErrorCode::Unsupported, "",
                fmt::format("cannot make a {} config: the type was added after PEFT v0.18.0 and "
                            "its fields are not known",
                            to_string(type)));
  }
  PeftConfig config;
  config.source_ = fmt::format("new {} config", to_string(type));
  config.json_ = detail::field_defaults(type);
  // RandLoRA and CPT skip the common initialiser that fills peft_version.
  if (type != PeftType::RANDLORA && type != PeftType::CPT) config.json_["peft_version"] = "0.18.0";
  if (type == PeftType::XLORA) {
    config.json_["hidden_size"] = 4096;
    config.json_["adapters"] = Json::object();
  }
  if (type == PeftType::CPT) {
    config.json_["task_type"] = "CAUSAL_LM";
    config.json_["cpt_token_ids"] = Json::array({0});
    config.json_["cpt_mask"] = Json::array({1});
    config.json_["cpt_tokens_type_mask"] = Json::array({1});
    config.json_["num_virtual_tokens"] = 1;
    config.json_["num_transformer_submodules"] = 1;
  }
  return config;
}

std::vector<std::string> PeftConfig::declared_fields(PeftType type) {
  std::vector<std::string> out;
  for (const auto& field : detail::declared_fields(type)) out.emplace_back(field.name);
  std::sort(out.begin(), out.end());
  return out;
}

PeftConfig PeftConfig::completed() const {
  PeftConfig out = *this;
  const PeftType type = peft_type();
  for (const auto& [key, value] : detail::field_defaults(type).items()) {
    if (!out.json_.contains(key)) out.json_[key] = value;
  }
  if (in_peft_0_18_0(type) && type != PeftType::RANDLORA && type != PeftType::CPT) {
    if (is_null(out.find("peft_version"))) out.json_["peft_version"] = "0.18.0";
  }
  return out;
}

// --- writing -------------------------------------------------------------------------

std::string PeftConfig::to_json_text() const {
  try {
    return detail::dump_python_json(json_);
  } catch (const Error& error) {
    throw Error(error.code(), source_, error.detail());
  }
}

void PeftConfig::save(const fs::path& file) const {
  std::error_code ec;
  const fs::path target = fs::is_directory(file, ec) ? file / kConfigName : file;
  const std::string text = to_json_text();
  formats::write_file_atomically(target, text);
}

// --- introspection -------------------------------------------------------------------

std::vector<std::string> PeftConfig::unknown_fields() const {
  std::vector<std::string> out;
  const PeftType type = peft_type();
  if (!in_peft_0_18_0(type)) return out;
  const Json& defaults = detail::field_defaults(type);
  for (const auto& [key, value] : json_.items()) {
    if (!defaults.contains(key)) out.push_back(key);
  }
  return out;  // json_ iterates in sorted order
}

bool PeftConfig::declares(std::string_view field) const {
  return detail::field_defaults(peft_type()).contains(field);
}

std::vector<std::string> PeftConfig::member_keys(std::string_view field) const {
  std::vector<std::string> out;
  const auto it = json_.find(field);
  if (it == json_.end() || !it->is_object()) return out;
  std::set<std::string, std::less<>> listed;
  if (const auto order = key_order_.find(field); order != key_order_.end()) {
    for (const auto& key : order->second) {
      if (it->contains(key) && listed.insert(key).second) out.push_back(key);
    }
  }
  for (const auto& [key, value] : it->items()) {
    if (!listed.count(key)) out.push_back(key);
  }
  return out;
}

PeftType PeftConfig::peft_type() const {
  const auto it = json_.is_object() ? json_.find("peft_type") : json_.end();
  if (it == json_.end() || !it->is_string()) {
    throw Error(ErrorCode::NotAPeftConfig, source_, "'peft_type' is missing or not a string");
  }
  const auto type = peft_type_from_string(it->get_ref<const std::string&>());
  if (!type) {
    throw Error(ErrorCode::UnknownPeftType, source_,
                fmt::format("unknown peft_type '{}'", it->get_ref<const std::string&>()));
  }
  return *type;
}

const nlohmann::json* PeftConfig::find(std::string_view field) const {
  if (const auto it = json_.find(field); it != json_.end()) return &*it;
  const auto type =
      json_.is_object() && json_.contains("peft_type") && json_["peft_type"].is_string()
          ? peft_type_from_string(json_["peft_type"].get_ref<const std::string&>())
          : std::nullopt;
  if (!type) return nullptr;
  const Json& defaults = detail::field_defaults(*type);
  if (const auto it = defaults.find(field); it != defaults.end()) return &*it;
  return nullptr;
}

// --- typed readers -------------------------------------------------------------------

namespace {

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

}  // namespace

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
  const char* field = (type == PeftType::LOHA || type == PeftType::LOKR) ? "alpha" : "lora_alpha";
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
  if (peft_type() == PeftType::ADALORA) {
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

void PeftConfig::validate() const {
  const PeftType type = peft_type();
  if (!in_peft_0_18_0(type)) {
    throw Error(ErrorCode::Unsupported, source_,
                fmt::format("peft_type {} was added after PEFT v0.18.0, which cannot load it",
                            to_string(type)));
  }
  const auto reject = [&](std::string_view rule, std::string detail) {
    throw Error(ErrorCode::InvalidConfigValue, source_,
                fmt::format("{} (PEFT v0.18.0 refuses this config; spec §5.2 {})", detail, rule));
  };
  const auto member = [&](std::string_view field) -> const Json* { return find(field); };
  const auto target_is_string = [&] {
    const Json* value = member("target_modules");
    return value != nullptr && value->is_string();
  };
  // C10, C11, C12 in the order the constructors test them.
  const auto check_regex_with_layers_to_transform = [&] {
    if (target_is_string() && !is_null(member("layers_to_transform"))) {
      reject("C10", "layers_to_transform cannot be used when target_modules is a string");
    }
  };
  const auto check_regex_with_layers_pattern = [&] {
    if (target_is_string() && !is_null(member("layers_pattern"))) {
      reject("C12", "layers_pattern cannot be used when target_modules is a string");
    }
  };
  const auto check_layers_pattern_needs_layers = [&] {
    if (truthy(member("layers_pattern")) && !truthy(member("layers_to_transform"))) {
      reject("C11", "layers_pattern is set but layers_to_transform is empty");
    }
  };
  const auto int_field = [&](std::string_view field) {
    const Json* value = member(field);
    if (value == nullptr) missing(source_, field, type);
    return to_int64(source_, field, *value);
  };

  // C7: every class whose constructor runs the common initialiser (all but RandLoRA, CPT).
  if (type != PeftType::RANDLORA && type != PeftType::CPT) task_type();

  switch (type) {
    case PeftType::LORA:
    case PeftType::ADALORA: {
      const Json* parameters = member("target_parameters");
      if (parameters != nullptr && parameters->is_string()) {
        reject("C18", "target_parameters must be a list of strings, not a string");
      }
      check_regex_with_layers_to_transform();
      check_regex_with_layers_pattern();
      check_layers_pattern_needs_layers();
      if (truthy(member("use_dora")) && truthy(member("megatron_config"))) {
        reject("C13", "DoRA (use_dora) does not support megatron_config");
      }
      const Json* init = member("init_lora_weights");
      const bool loftq = is_string_equal(init, "loftq");
      if (loftq && !truthy(member("loftq_config"))) {
        reject("C14", "init_lora_weights 'loftq' needs a loftq_config");
      }
      if (truthy(member("lora_bias"))) {
        // Python's `x in (True, False)` is an equality test: 0, 1, 0.0 and 1.0 pass too.
        const bool boolean_like =
            init == nullptr || init->is_boolean() ||
            (init->is_number() && (init->get<double>() == 0.0 || init->get<double>() == 1.0));
        if (!boolean_like) {
          reject("C17", fmt::format("lora_bias needs init_lora_weights true or false, not {}",
                                    show(*init)));
        }
        if (truthy(member("use_dora"))) reject("C17", "lora_bias is not supported with DoRA");
      }
      if (type == PeftType::ADALORA) {
        if (truthy(member("use_dora"))) reject("C21", "AdaLoRA does not support DoRA");
        // LoRA's constructor has already reset loftq_config unless the init is 'loftq'.
        if (loftq && truthy(member("loftq_config")))
          reject("C21", "AdaLoRA does not support LoftQ");
        const Json* total = member("total_step");
        if (is_null(total) || to_int64(source_, "total_step", *total) <= 0) {
          reject("C21", "AdaLoRA needs total_step > 0");
        }
        const std::int64_t total_step = to_int64(source_, "total_step", *total);
        if (int_field("tinit") >= total_step - int_field("tfinal")) {
          reject("C21", "AdaLoRA needs tinit < total_step - tfinal");
        }
      }
      break;
    }
    case PeftType::BOFT: {
      check_layers_pattern_needs_layers();
      const std::int64_t size = int_field("boft_block_size");
      const std::int64_t number = int_field("boft_block_num");
      if (size == 0 && number == 0) {
        reject("C24", "one of boft_block_size and boft_block_num must be non-zero");
      }
      if ((size != 0) == (number != 0)) {
        reject("C24", "only one of boft_block_size and boft_block_num may be non-zero");
      }
      break;
    }
    case PeftType::OFT: {
      if (!json_.contains("oft_block_size")) {
        reject("C8",
               "an OFT config without oft_block_size comes from PEFT < 0.14.0, whose OFT "
               "weights are incompatible");
      }
      check_layers_pattern_needs_layers();
      const std::int64_t rank = int_field("r");
      const std::int64_t block = int_field("oft_block_size");
      if (rank == 0 && block == 0) reject("C23", "one of r and oft_block_size must be non-zero");
      if ((rank != 0) == (block != 0)) {
        reject("C23", "only one of r and oft_block_size may be non-zero");
      }
      break;
    }
    case PeftType::BONE:
    case PeftType::MISS:
    case PeftType::C3A:
      check_regex_with_layers_to_transform();
      check_regex_with_layers_pattern();
      break;
    case PeftType::DELORA:
      check_regex_with_layers_to_transform();
      check_layers_pattern_needs_layers();
      break;
    case PeftType::FOURIERFT:
    case PeftType::HRA:
    case PeftType::WAVEFT:
      check_regex_with_layers_to_transform();
      check_regex_with_layers_pattern();
      check_layers_pattern_needs_layers();
      if (type == PeftType::WAVEFT) {
        const std::string family = get_string("wavelet_family").value_or("");
        if (!is_supported_wavelet(family)) {
          reject("C29", fmt::format("wavelet_family '{}' is not supported (db1-db38, sym2-sym20, "
                                    "coif1-coif17)",
                                    family));
        }
      }
      break;
    case PeftType::LOHA:
    case PeftType::LOKR:
    case PeftType::VBLORA:
    case PeftType::VERA:
      check_layers_pattern_needs_layers();
      break;
    case PeftType::IA3: {
      const Json* feedforward = member("feedforward_modules");
      const Json* targets = member("target_modules");
      if (feedforward != nullptr && feedforward->is_array() && targets != nullptr &&
          targets->is_array()) {
        const auto wanted = to_string_list(source_, "feedforward_modules", *feedforward);
        const auto all = to_string_list(source_, "target_modules", *targets);
        for (const auto& name : wanted) {
          if (std::find(all.begin(), all.end(), name) == all.end()) {
            reject("C25",
                   fmt::format("feedforward_modules entry '{}' is not in target_modules", name));
          }
        }
      }
      break;
    }
    case PeftType::ROAD: {
      const std::string variant = get_string("variant").value_or("");
      if (variant != "road_1" && variant != "road_2" && variant != "road_4") {
        reject("C28", fmt::format("variant '{}' is not road_1, road_2 or road_4", variant));
      }
      const std::int64_t group = int_field("group_size");
      if (group <= 0 || group % 2 != 0) {
        reject("C28", fmt::format("group_size {} must be positive and even", group));
      }
      break;
    }
    case PeftType::PROMPT_TUNING:
    case PeftType::MULTITASK_PROMPT_TUNING: {
      const bool text_init = is_string_equal(member("prompt_tuning_init"), "TEXT");
      if (text_init && !truthy(member("tokenizer_name_or_path"))) {
        reject("C31", "prompt_tuning_init TEXT needs tokenizer_name_or_path");
      }
      if (text_init && is_null(member("prompt_tuning_init_text"))) {
        reject("C31", "prompt_tuning_init TEXT needs prompt_tuning_init_text");
      }
      if (truthy(member("tokenizer_kwargs")) && !text_init) {
        reject("C31", "tokenizer_kwargs is only used with prompt_tuning_init TEXT");
      }
      break;
    }
    case PeftType::CPT: {
      if (!is_string_equal(member("task_type"), "CAUSAL_LM")) {
        reject("C30", "CPT only supports task_type CAUSAL_LM");
      }
      const Json* ids = member("cpt_token_ids");
      const std::size_t count =
          is_null(ids) ? 1 : to_int_list(source_, "cpt_token_ids", *ids).size();
      for (const char* field : {"cpt_mask", "cpt_tokens_type_mask"}) {
        const Json* mask = member(field);
        if (!is_null(mask) && to_int_list(source_, field, *mask).size() != count) {
          reject("C30",
                 "cpt_token_ids, cpt_mask and cpt_tokens_type_mask must have the same length");
        }
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace peft
