#include "peft/module_match.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "config/method_config.hpp"
#include "peft/error.hpp"
#include "pycompat/python_regex.hpp"

namespace peft {
namespace {

using detail::RegexMode;

bool ends_with_component(std::string_view name, std::string_view entry) {
  return name.size() > entry.size() && name.substr(name.size() - entry.size()) == entry &&
         name[name.size() - entry.size() - 1] == '.';
}

// Runs a regular expression built from config field `field`; a compile error becomes
// InvalidConfigValue naming the config and the field.
std::optional<detail::RegexGroups> run(const PeftConfig& config, std::string_view field,
                                       const std::string& pattern, std::string_view subject,
                                       RegexMode mode) {
  try {
    return detail::python_regex(pattern, subject, mode);
  } catch (const detail::RegexError& error) {
    throw Error(ErrorCode::InvalidConfigValue, config.source(),
                fmt::format("field '{}': invalid regular expression '{}': {} at offset {}", field,
                            error.pattern(), error.message(), error.offset()));
  }
}

bool matches(const PeftConfig& config, std::string_view field, const std::string& pattern,
             std::string_view subject, RegexMode mode) {
  try {
    return detail::python_regex_matches(pattern, subject, mode);
  } catch (const detail::RegexError& error) {
    throw Error(ErrorCode::InvalidConfigValue, config.source(),
                fmt::format("field '{}': invalid regular expression '{}': {} at offset {}", field,
                            error.pattern(), error.message(), error.offset()));
  }
}

bool in_list(const std::vector<std::string>& entries, std::string_view name) {
  return std::any_of(entries.begin(), entries.end(), [&](const std::string& entry) {
    return name == entry || ends_with_component(name, entry);
  });
}

// Python's int() of the decimal digits PEFT's `(\d+)` captured; nullopt if not ASCII
// digits or out of range (then no layer index can equal it).
std::optional<long long> parse_index(const std::string& digits) {
  long long value = 0;
  const auto result = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (result.ec != std::errc() || result.ptr != digits.data() + digits.size()) return std::nullopt;
  return value;
}

// PEFT reads optional fields with getattr: a field the type does not declare is absent
// (PEFT drops it on load) even if the file has it. Later types: whatever the file says.
bool uses(const PeftConfig& config, std::string_view field) {
  return !in_peft_0_18_0(config.peft_type()) || config.declares(field);
}

bool layer_allowed(const PeftConfig& config, std::string_view module_name) {
  if (!uses(config, "layers_to_transform")) return true;
  const auto layers = config.layers_to_transform();
  // An int always counts as "set"; a list only when non-empty.
  if (!layers || layers->empty()) return true;
  const auto patterns = uses(config, "layers_pattern") ? config.layers_pattern() : std::nullopt;
  const std::string name(module_name);
  std::optional<detail::RegexGroups> groups;
  if (!patterns || patterns->empty()) {
    groups = run(config, "layers_pattern", R"(.*\.[^.]*\.(\d+)\.)", name, RegexMode::Match);
  } else {
    for (const auto& pattern : *patterns) {
      groups = run(config, "layers_pattern", fmt::format(R"(.*\.{}\.(\d+)\.)", pattern), name,
                   RegexMode::Match);
      if (groups) break;
    }
  }
  if (!groups || groups->size() < 2 || !(*groups)[1]) return false;
  const auto index = parse_index(*(*groups)[1]);
  return index && std::find(layers->begin(), layers->end(), *index) != layers->end();
}

}  // namespace

TargetMatch match_target(const PeftConfig& config, std::string_view module_name) {
  const detail::Targets kind = detail::method_config(config.peft_type()).targets;
  if (kind == detail::Targets::None) return TargetMatch::NotTargeted;
  if (kind == detail::Targets::AttentionLayers) {
    throw Error(ErrorCode::Unsupported, config.source(),
                "ADAPTION_PROMPT adapts the attention modules of the model's last adapter_layers "
                "layers; a module name alone does not decide it");
  }
  const std::string name(module_name);

  const TargetModules exclude =
      uses(config, "exclude_modules") ? config.exclude_modules() : TargetModules{};
  if (exclude.kind == TargetModules::Kind::Regex && !exclude.regex.empty()) {
    if (matches(config, "exclude_modules", exclude.regex, name, RegexMode::FullMatch)) {
      return TargetMatch::Excluded;
    }
  } else if (exclude.kind == TargetModules::Kind::List && in_list(exclude.names, name)) {
    return TargetMatch::Excluded;
  }

  if (const auto saved =
          uses(config, "modules_to_save") ? config.modules_to_save() : std::nullopt) {
    for (const auto& entry : *saved) {
      if (matches(config, "modules_to_save", fmt::format(R"((^|.*\.){}($|\..*))", entry), name,
                  RegexMode::Match)) {
        return TargetMatch::Excluded;
      }
    }
  }

  const TargetModules targets = config.target_modules();
  if (targets.kind == TargetModules::Kind::None) {
    if (uses(config, "target_parameters") && config.target_parameters()) {
      return TargetMatch::NotTargeted;
    }
    throw Error(ErrorCode::Unsupported, config.source(),
                "target_modules is null: PEFT chooses the targets from the model type when the "
                "adapter is created");
  }
  if (targets.kind == TargetModules::Kind::Regex) {
    if (targets.is_all_linear()) {
      throw Error(
          ErrorCode::Unsupported, config.source(),
          "target_modules 'all-linear' is resolved from the model's layer classes "
          "(Linear/Conv1D, minus the output layer); a module name alone does not decide it");
    }
    return matches(config, "target_modules", targets.regex, name, RegexMode::FullMatch)
               ? TargetMatch::Targeted
               : TargetMatch::NotTargeted;
  }
  if (std::find(targets.names.begin(), targets.names.end(), name) != targets.names.end()) {
    return TargetMatch::Targeted;
  }
  if (!in_list(targets.names, name)) return TargetMatch::NotTargeted;
  return layer_allowed(config, name) ? TargetMatch::Targeted : TargetMatch::NotTargeted;
}

bool is_targeted(const PeftConfig& config, std::string_view module_name) {
  return match_target(config, module_name) == TargetMatch::Targeted;
}

bool is_parameter_targeted(const PeftConfig& config, std::string_view parameter_path) {
  if (!uses(config, "target_parameters")) return false;
  const auto parameters = config.target_parameters();
  return parameters && in_list(*parameters, parameter_path);
}

std::optional<std::string> pattern_key(const PeftConfig& config, std::string_view pattern_field,
                                       std::string_view module_name) {
  const std::vector<std::string> keys = config.member_keys(pattern_field);
  const std::string name(module_name);
  for (const auto& key : keys) {
    if (matches(config, pattern_field, fmt::format(R"((.*\.)?({})$)", key), name,
                RegexMode::Match)) {
      return key;
    }
  }
  if (std::find(keys.begin(), keys.end(), name) != keys.end()) return name;
  return std::nullopt;
}

int rank_for(const PeftConfig& config, std::string_view module_name) {
  switch (detail::method_config(config.peft_type()).ranks) {
    case detail::Ranks::Pattern: {
      const auto key = pattern_key(config, "rank_pattern", module_name);
      if (!key) return config.r();
      const auto ranks = config.rank_pattern();
      return ranks.at(*key);
    }
    case detail::Ranks::AdaLoraMasks: {
      // Keys are parameter paths "<module>.lora_E", possibly still followed by the
      // adapter name; PEFT resizes the module that path names.
      for (const auto& [key, mask] : config.adalora_rank_masks()) {
        std::string_view path = key;
        const auto at = path.rfind(".lora_E");
        if (at == std::string_view::npos) continue;
        const std::string_view rest = path.substr(at + 7);
        if (!rest.empty() && (rest[0] != '.' || rest.find('.', 1) != std::string_view::npos)) {
          continue;
        }
        if (path.substr(0, at) == module_name) {
          return static_cast<int>(std::count(mask.begin(), mask.end(), true));
        }
      }
      return static_cast<int>(config.get_int("init_r", 12));
    }
    case detail::Ranks::NotPerName:
      throw Error(ErrorCode::Unsupported, config.source(),
                  fmt::format("{} ranks follow effective_rank/rank_pattern applied to each "
                              "weight's singular values; they are not a per-name lookup",
                              to_string(config.peft_type())));
    case detail::Ranks::R:
      break;
  }
  return config.r();
}

double alpha_for(const PeftConfig& config, std::string_view module_name) {
  if (detail::method_config(config.peft_type()).alpha_pattern) {
    if (const auto key = pattern_key(config, "alpha_pattern", module_name)) {
      return config.alpha_pattern().at(*key);
    }
  }
  return config.lora_alpha();
}

}  // namespace peft
