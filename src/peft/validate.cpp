#include "peft/validate.hpp"

#include <fmt/format.h>

#include <set>

#include "peft/error.hpp"
#include "peft/inspect.hpp"
#include "peft/methods/method_rules.hpp"
#include "peft/module_match.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

void check_weights(const AdapterSummary& s, std::vector<Problem>& out) {
  if (s.weights_file.empty()) {
    out.push_back(
        {"missing_weights", s.folder.string(), "no adapter_model.safetensors or adapter_model.bin",
         "copy the weights next to adapter_config.json (PEFT writes them with save_pretrained)"});
    return;
  }
  if (!s.weights_error.empty()) {
    const bool code_execution = s.weights_error.find("forbidden_pickle") != std::string::npos;
    if (s.bytes_on_disk == 0) {
      out.push_back({"empty_weights", s.weights_file.string(),
                     "the weights file is empty (0 bytes)",
                     "a known failure of distributed training saves: save again from rank 0 "
                     "(or gather the weights first, e.g. with DeepSpeed ZeRO-3)"});
    } else if (code_execution) {
      out.push_back({"unsafe_pickle", s.weights_file.string(), s.weights_error,
                     "this .bin asks to run code when loaded; do not load it with torch.load "
                     "(weights_only=False); ask for a safetensors file instead"});
    } else {
      out.push_back({"unreadable_weights", s.weights_file.string(), s.weights_error,
                     "the file is truncated or corrupt: download or save it again"});
    }
    return;
  }
  if (s.tensors.empty()) {
    out.push_back({"empty_weights", s.weights_file.string(), "the weights file holds no tensor",
                   "a known failure of distributed training saves: save again from rank 0"});
  }
}

// LoRA-like methods: shapes against the config, modules against target_modules, adapter
// names left inside keys.
void check_tensors(const AdapterSummary& s, std::vector<Problem>& out) {
  if (!s.config || s.tensors.empty()) return;
  const PeftConfig& config = *s.config;
  if (config.is_prompt_learning()) return;
  std::string_view prefix;
  try {
    prefix = methods::rules_for(config.peft_type()).prefix;
  } catch (const Error&) {
    return;
  }
  const bool lora = config.peft_type() == PeftType::LORA;
  const std::string where = s.weights_file.string();
  for (const auto& t : s.tensors) {
    const auto at = t.name.rfind(prefix);
    if (at == std::string::npos) continue;
    const std::string_view suffix = std::string_view(t.name).substr(at + prefix.size());
    const auto dots = std::count(suffix.begin(), suffix.end(), '.');
    if (lora && dots >= 2) {
      out.push_back(
          {"adapter_name_in_key", where + ": " + t.name,
           "the key still contains an adapter name (saved from model.state_dict() "
           "instead of get_peft_model_state_dict)",
           "save with PeftModel.save_pretrained, or strip the adapter name from the keys"});
    }
  }
  for (const auto& m : s.modules) {
    try {
      if (config.target_modules().kind != TargetModules::Kind::None &&
          !config.target_modules().is_all_linear() &&
          match_target(config, m.module) != TargetMatch::Targeted &&
          config.find("target_parameters") == nullptr) {
        out.push_back({"untargeted_module", where + ": " + m.module,
                       "the weights hold tensors for a module target_modules does not match",
                       "add the module to target_modules, or remove its tensors"});
      }
      if (m.rank && lora) {
        const int expected = rank_for(config, m.module);
        if (expected != *m.rank) {
          out.push_back({"rank_mismatch", where + ": " + m.module,
                         fmt::format("lora_A has rank {} but the config gives this module r={}",
                                     *m.rank, expected),
                         "fix r / rank_pattern in adapter_config.json to match the weights"});
        }
      }
    } catch (const Error&) {
      // decided elsewhere (all-linear, unknown patterns)
    }
  }
  TargetModules targets;
  try {
    targets = config.target_modules();
  } catch (const Error&) {
    return;  // a target_modules of the wrong type is reported by check_config
  }
  if (targets.kind == TargetModules::Kind::List) {
    for (const auto& name : targets.names) {
      const bool found =
          std::any_of(s.modules.begin(), s.modules.end(), [&](const ModuleSummary& m) {
            return m.module == name || m.module.ends_with("." + name);
          });
      if (!found) {
        out.push_back(
            {"targeted_without_weights", where + ": " + name,
             "target_modules names a module that has no tensor in the weights",
             "check that the weights belong to this config (or the module was excluded)"});
      }
    }
  }
}

void check_config(const AdapterSummary& s, std::vector<Problem>& out) {
  const fs::path file = s.folder / "adapter_config.json";
  if (!s.config) {
    out.push_back({"bad_config", file.string(), s.config_error,
                   "an adapter folder needs the adapter_config.json PEFT wrote with the weights"});
    return;
  }
  try {
    s.config->validate();
  } catch (const Error& e) {
    out.push_back({"invalid_config", file.string(), e.what(),
                   "PEFT 0.18 refuses this config: fix the field named"});
  }
  for (const auto& field : s.config->unknown_fields()) {
    out.push_back({"unknown_field", file.string() + ": " + field,
                   "field unknown to PEFT 0.18.0 for this type (it drops it with a warning)",
                   "harmless for peftcpp; remove it if PEFT 0.18 must load the file silently"});
  }
}

}  // namespace

std::vector<Problem> validate_adapter_folder(const fs::path& folder) {
  std::vector<Problem> out;
  for (const auto& summary : inspect_adapters(folder)) {
    check_config(summary, out);
    check_weights(summary, out);
    check_tensors(summary, out);
  }
  return out;
}

nlohmann::json to_json(const Problem& p) {
  const nlohmann::json j{
      {"code", p.code}, {"where", p.where}, {"message", p.message}, {"hint", p.hint}};
  // Names from the files may hold bytes that are not UTF-8: dump() would throw on them.
  return nlohmann::json::parse(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace peft
