#include "peft/config.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "config/config_json.hpp"
#include "config/method_config.hpp"
#include "formats/atomic_file.hpp"
#include "peft/error.hpp"
#include "pycompat/python_json.hpp"

namespace peft {
namespace fs = std::filesystem;
using namespace detail::config_json;
using Json = nlohmann::json;

namespace {

constexpr std::uintmax_t kMaxConfigBytes = 64u << 20;
constexpr std::string_view kConfigName = "adapter_config.json";

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
    config.warnings_.push_back(Diagnostic{
        "utf8_bom",
        Severity::Warning,
        config.source_,
        "the text starts with a UTF-8 byte order mark, which Python's json module refuses; it "
        "was skipped",
        {}});
  }
  if (config.json_.contains("runtime_config")) {
    config.json_.erase("runtime_config");
    config.key_order_.erase("runtime_config");
    config.warnings_.push_back(Diagnostic{
        "runtime_config",
        Severity::Warning,
        config.source_,
        "dropped 'runtime_config' (run-time only settings), as PEFT does; it is never written",
        {}});
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
  const auto warn = [&](std::string code, std::string message) {
    warnings_.push_back(
        Diagnostic{std::move(code), Severity::Warning, source_, std::move(message), {}});
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
  if (const auto method_warnings = detail::method_config(type).warn) {
    method_warnings(*this, warnings_);
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
  if (detail::method_config(type).common_init) config.json_["peft_version"] = "0.18.0";
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
  if (in_peft_0_18_0(type) && detail::method_config(type).common_init) {
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

}  // namespace peft
