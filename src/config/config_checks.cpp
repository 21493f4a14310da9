// The refusals of PEFT v0.18.0's config classes (docs/peft-rules.md §5.2) and the warnings
// PEFT gives when it loads them, one function per class; the method registry's config
// rows (method_configs.cpp) say which runs for which type. PeftConfig::validate runs the
// refusals, loading collects the warnings.
#include <algorithm>
#include <cctype>
#include <vector>

#include <fmt/format.h>

#include "config/config_json.hpp"
#include "config/method_config.hpp"
#include "peft/error.hpp"

namespace peft {
namespace detail {
namespace {
using namespace config_json;

// What every check reads: the config's members and PEFT's rule numbers for messages.
class Rules {
 public:
  explicit Rules(const PeftConfig& config) : config_(config) {}

  [[noreturn]] void reject(std::string_view rule, std::string_view detail) const {
    throw Error(ErrorCode::InvalidConfigValue, config_.source(),
                fmt::format("{} (PEFT v0.18.0 rule {}, docs/peft-rules.md §5.2)", detail, rule));
  }
  const Json* member(std::string_view field) const { return config_.find(field); }
  bool truthy_member(std::string_view field) const { return truthy(member(field)); }
  std::int64_t int_field(std::string_view field) const {
    const Json* value = member(field);
    if (value == nullptr) missing(config_.source(), field, config_.peft_type());
    return to_int64(config_.source(), field, *value);
  }
  const PeftConfig& config() const { return config_; }

  // C10, C11, C12, in the order the constructors test them.
  void regex_without_layers_to_transform() const {
    if (target_is_string() && !is_null(member("layers_to_transform"))) {
      reject("C10", "layers_to_transform cannot be used when target_modules is a string");
    }
  }
  void regex_without_layers_pattern() const {
    if (target_is_string() && !is_null(member("layers_pattern"))) {
      reject("C12", "layers_pattern cannot be used when target_modules is a string");
    }
  }
  void layers_pattern_needs_layers() const {
    if (truthy_member("layers_pattern") && !truthy_member("layers_to_transform")) {
      reject("C11", "layers_pattern is set but layers_to_transform is empty");
    }
  }

 private:
  bool target_is_string() const {
    const Json* value = member("target_modules");
    return value != nullptr && value->is_string();
  }
  const PeftConfig& config_;
};

// C23/C24: exactly one of two sizes is non-zero.
void one_of_two_non_zero(const Rules& rules, std::string_view rule, std::string_view first,
                         std::string_view second) {
  const bool has_first = rules.int_field(first) != 0;
  const bool has_second = rules.int_field(second) != 0;
  if (!has_first && !has_second) {
    rules.reject(rule, fmt::format("one of {} and {} must be non-zero", first, second));
  }
  if (has_first && has_second) {
    rules.reject(rule, fmt::format("only one of {} and {} may be non-zero", first, second));
  }
}

}  // namespace

void check_lora(const PeftConfig& config) {
  const Rules rules(config);
  const Json* parameters = rules.member("target_parameters");
  if (parameters != nullptr && parameters->is_string()) {
    rules.reject("C18", "target_parameters must be a list of strings, not a string");
  }
  rules.regex_without_layers_to_transform();
  rules.regex_without_layers_pattern();
  rules.layers_pattern_needs_layers();
  if (rules.truthy_member("use_dora") && rules.truthy_member("megatron_config")) {
    rules.reject("C13", "DoRA (use_dora) does not support megatron_config");
  }
  const Json* init = rules.member("init_lora_weights");
  if (is_string_equal(init, "loftq") && !rules.truthy_member("loftq_config")) {
    rules.reject("C14", "init_lora_weights 'loftq' needs a loftq_config");
  }
  if (rules.truthy_member("lora_bias")) {
    // Python's `x in (True, False)` is an equality test: 0, 1, 0.0 and 1.0 pass too.
    const bool boolean_like =
        init == nullptr || init->is_boolean() ||
        (init->is_number() && (init->get<double>() == 0.0 || init->get<double>() == 1.0));
    if (!boolean_like) {
      rules.reject("C17", fmt::format("lora_bias needs init_lora_weights true or false, not {}",
                                      show(*init)));
    }
    if (rules.truthy_member("use_dora"))
      rules.reject("C17", "lora_bias is not supported with DoRA");
  }
}

// AdaLoraConfig runs LoraConfig's checks first.
void check_adalora(const PeftConfig& config) {
  check_lora(config);
  const Rules rules(config);
  if (rules.truthy_member("use_dora")) rules.reject("C21", "AdaLoRA does not support DoRA");
  // LoRA's constructor has already reset loftq_config unless the init is 'loftq'.
  if (is_string_equal(rules.member("init_lora_weights"), "loftq") &&
      rules.truthy_member("loftq_config")) {
    rules.reject("C21", "AdaLoRA does not support LoftQ");
  }
  const Json* total = rules.member("total_step");
  if (is_null(total) || to_int64(config.source(), "total_step", *total) <= 0) {
    rules.reject("C21", "AdaLoRA needs total_step > 0");
  }
  const std::int64_t total_step = to_int64(config.source(), "total_step", *total);
  if (rules.int_field("tinit") >= total_step - rules.int_field("tfinal")) {
    rules.reject("C21", "AdaLoRA needs tinit < total_step - tfinal");
  }
}

void check_boft(const PeftConfig& config) {
  const Rules rules(config);
  rules.layers_pattern_needs_layers();
  one_of_two_non_zero(rules, "C24", "boft_block_size", "boft_block_num");
}

void check_oft(const PeftConfig& config) {
  const Rules rules(config);
  if (!config.json().contains("oft_block_size")) {
    rules.reject("C8",
                 "an OFT config without oft_block_size comes from PEFT < 0.14.0, whose OFT "
                 "weights are incompatible");
  }
  rules.layers_pattern_needs_layers();
  one_of_two_non_zero(rules, "C23", "r", "oft_block_size");
}

void check_regex_layers(const PeftConfig& config) {
  const Rules rules(config);
  rules.regex_without_layers_to_transform();
  rules.regex_without_layers_pattern();
}

void check_delora(const PeftConfig& config) {
  const Rules rules(config);
  rules.regex_without_layers_to_transform();
  rules.layers_pattern_needs_layers();
}

void check_all_layer_rules(const PeftConfig& config) {
  const Rules rules(config);
  rules.regex_without_layers_to_transform();
  rules.regex_without_layers_pattern();
  rules.layers_pattern_needs_layers();
}

void check_waveft(const PeftConfig& config) {
  check_all_layer_rules(config);
  const std::string family = config.get_string("wavelet_family").value_or("");
  if (!is_supported_wavelet(family)) {
    Rules(config).reject("C29", fmt::format("wavelet_family '{}' is not supported (db1-db38, "
                                            "sym2-sym20, coif1-coif17)",
                                            family));
  }
}

void check_layers_pattern(const PeftConfig& config) {
  Rules(config).layers_pattern_needs_layers();
}

void check_ia3(const PeftConfig& config) {
  const Rules rules(config);
  const Json* feedforward = rules.member("feedforward_modules");
  const Json* targets = rules.member("target_modules");
  if (feedforward == nullptr || !feedforward->is_array() || targets == nullptr ||
      !targets->is_array()) {
    return;
  }
  const auto wanted = to_string_list(config.source(), "feedforward_modules", *feedforward);
  const auto all = to_string_list(config.source(), "target_modules", *targets);
  for (const auto& name : wanted) {
    if (std::find(all.begin(), all.end(), name) == all.end()) {
      rules.reject("C25",
                   fmt::format("feedforward_modules entry '{}' is not in target_modules", name));
    }
  }
}

void check_road(const PeftConfig& config) {
  const Rules rules(config);
  const std::string variant = config.get_string("variant").value_or("");
  if (variant != "road_1" && variant != "road_2" && variant != "road_4") {
    rules.reject("C28", fmt::format("variant '{}' is not road_1, road_2 or road_4", variant));
  }
  const std::int64_t group = rules.int_field("group_size");
  if (group <= 0 || group % 2 != 0) {
    rules.reject("C28", fmt::format("group_size {} must be positive and even", group));
  }
}

void check_prompt_tuning(const PeftConfig& config) {
  const Rules rules(config);
  const bool text_init = is_string_equal(rules.member("prompt_tuning_init"), "TEXT");
  if (text_init && !rules.truthy_member("tokenizer_name_or_path")) {
    rules.reject("C31", "prompt_tuning_init TEXT needs tokenizer_name_or_path");
  }
  if (text_init && is_null(rules.member("prompt_tuning_init_text"))) {
    rules.reject("C31", "prompt_tuning_init TEXT needs prompt_tuning_init_text");
  }
  if (rules.truthy_member("tokenizer_kwargs") && !text_init) {
    rules.reject("C31", "tokenizer_kwargs is only used with prompt_tuning_init TEXT");
  }
}

void check_cpt(const PeftConfig& config) {
  const Rules rules(config);
  if (!is_string_equal(rules.member("task_type"), "CAUSAL_LM")) {
    rules.reject("C30", "CPT only supports task_type CAUSAL_LM");
  }
  const Json* ids = rules.member("cpt_token_ids");
  const std::size_t count =
      is_null(ids) ? 1 : to_int_list(config.source(), "cpt_token_ids", *ids).size();
  for (const char* field : {"cpt_mask", "cpt_tokens_type_mask"}) {
    const Json* mask = rules.member(field);
    if (!is_null(mask) && to_int_list(config.source(), field, *mask).size() != count) {
      rules.reject("C30",
                   "cpt_token_ids, cpt_mask and cpt_tokens_type_mask must have the same length");
    }
  }
}

// --- warnings: what PEFT warns about when it loads the config ------------------------
namespace {

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

class Warnings {
 public:
  Warnings(const PeftConfig& config, Diagnostics& out) : config_(config), out_(out) {}
  void operator()(std::string code, std::string message) const {
    out_.push_back(
        Diagnostic{std::move(code), Severity::Warning, config_.source(), std::move(message), {}});
  }
  // The member as written (not its default).
  const Json* written(std::string_view field) const {
    const auto it = config_.json().find(field);
    return it == config_.json().end() ? nullptr : &*it;
  }

 private:
  const PeftConfig& config_;
  Diagnostics& out_;
};

}  // namespace

void warn_bone(const PeftConfig& config, Diagnostics& out) {
  Warnings(config, out)("deprecated_type",
                        "BONE is deprecated in PEFT v0.18.0 and unknown to PEFT >= 0.19, which "
                        "reads such adapters only after conversion to MISS");
}

void warn_oft(const PeftConfig& config, Diagnostics& out) {
  const Warnings warn(config, out);
  if (!truthy(warn.written("use_cayley_neumann"))) return;
  const Json* version = warn.written("peft_version");
  if (version != nullptr && version->is_null()) {
    warn("oft_cayley_neumann",
         "use_cayley_neumann with a null peft_version: PEFT v0.18.0 fails to load this config");
  } else if (version == nullptr ||
             (version->is_string() &&
              version_before_0_18_0(version->get_ref<const std::string&>()))) {
    warn("oft_cayley_neumann",
         "use_cayley_neumann with an adapter made before PEFT 0.18.0, which changed that "
         "parameterization: PEFT warns that the weights need retraining");
  }
}

void warn_projections(const PeftConfig& config, Diagnostics& out) {
  const Warnings warn(config, out);
  if (const Json* value = warn.written("save_projection"); value != nullptr && !truthy(value)) {
    warn("save_projection",
         "save_projection is false: the shared projections are not in the weights file and are "
         "regenerated from projection_prng_key");
  }
}

void warn_shira(const PeftConfig& config, Diagnostics& out) {
  const Warnings warn(config, out);
  const Json* mask = warn.written("mask_type");
  if (mask != nullptr && !is_string_equal(mask, "random") &&
      !truthy(warn.written("inference_mode"))) {
    warn("shira_mask_type",
         "mask_type is not 'random' and inference_mode is false: PEFT needs a custom mask "
         "function to train this adapter");
  }
}

void warn_xlora(const PeftConfig& config, Diagnostics& out) {
  const Warnings warn(config, out);
  if (is_null(warn.written("hidden_size"))) {
    warn("xlora_defaults", "hidden_size is null; PEFT sets it to 4096");
  }
  if (is_null(warn.written("adapters")))
    warn("xlora_defaults", "adapters is null; PEFT sets it to {}");
  if (truthy(warn.written("enable_softmax_topk")) && is_null(warn.written("top_k_lora"))) {
    warn("xlora_topk", "enable_softmax_topk is set but top_k_lora is not");
  }
  if (truthy(warn.written("enable_softmax_topk")) && truthy(warn.written("enable_softmax"))) {
    warn("xlora_topk", "enable_softmax_topk and enable_softmax are both set");
  }
  if (const Json* k = warn.written("top_k_lora");
      k != nullptr && k->is_number() && k->get<double>() < 1) {
    warn("xlora_topk", "top_k_lora is below 1");
  }
}

void warn_lora(const PeftConfig& config, Diagnostics& out) {
  const Warnings warn(config, out);
  const Json* init = warn.written("init_lora_weights");
  const bool eva = is_string_equal(init, "eva");
  const bool corda = is_string_equal(init, "corda");
  // PEFT tests these as one if/elif chain: at most one of them applies.
  if (is_string_equal(init, "loftq")) {
    // nothing to report
  } else if (truthy(warn.written("loftq_config"))) {
    warn("loftq_config",
         "loftq_config is set but init_lora_weights is not 'loftq': PEFT resets it to {}");
  } else if (eva && is_null(warn.written("eva_config"))) {
    warn("eva_config",
         "init_lora_weights is 'eva' without eva_config: PEFT uses the default EVA settings");
  } else if (!eva && !is_null(warn.written("eva_config"))) {
    warn("eva_config", "eva_config is set but init_lora_weights is not 'eva'; it is ignored");
  } else if (corda && is_null(warn.written("corda_config"))) {
    warn("corda_config",
         "init_lora_weights is 'corda' without corda_config: PEFT uses the default CorDA "
         "settings");
  } else if (!corda && !is_null(warn.written("corda_config"))) {
    warn("corda_config", "corda_config is set but init_lora_weights is not 'corda'; it is ignored");
  }
  if (!is_null(warn.written("alora_invocation_tokens")) &&
      !is_string_equal(warn.written("task_type"), "CAUSAL_LM")) {
    warn("alora", "alora_invocation_tokens is only supported for task_type CAUSAL_LM");
  }
}

void warn_adalora(const PeftConfig& config, Diagnostics& out) {
  warn_lora(config, out);
  const Warnings warn(config, out);
  const Json* r_value = warn.written("r");
  if (r_value != nullptr && !(r_value->is_number_integer() && r_value->get<std::int64_t>() == 8)) {
    warn("adalora_r", "r is not used by AdaLoRA (init_r and target_r set the ranks)");
  }
}

}  // namespace detail

void PeftConfig::validate() const {
  const PeftType type = peft_type();
  if (!in_peft_0_18_0(type)) {
    throw Error(ErrorCode::Unsupported, source_,
                fmt::format("peft_type {} was added after PEFT v0.18.0, which cannot load it",
                            to_string(type)));
  }
  const detail::MethodConfig& method = detail::method_config(type);
  if (method.common_init) task_type();  // C7
  if (method.check != nullptr) method.check(*this);
}

}  // namespace peft
