#include "peft/validate.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include <set>

#include "config/method_config.hpp"
#include "methods/registry.hpp"
#include "peft/convert.hpp"
#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/inspect.hpp"
#include "peft/module_match.hpp"
#include "tools/field_types.hpp"
#include "tools/problem.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

void check_weights(const AdapterSummary& s, std::vector<Problem>& out) {
  if (s.weights_file.empty()) {
    out.push_back(detail::problem(
        "missing_weights", s.folder.string(), "no adapter_model.safetensors or adapter_model.bin",
        "copy the weights next to adapter_config.json (PEFT writes them with save_pretrained)"));
    return;
  }
  if (!s.weights_error.empty()) {
    const bool code_execution = s.weights_error.find("forbidden_pickle") != std::string::npos;
    if (s.bytes_on_disk == 0) {
      out.push_back(detail::problem(
          "empty_weights", s.weights_file.string(), "the weights file is empty (0 bytes)",
          "a known failure of distributed training saves: save again from rank 0 "
          "(or gather the weights first, e.g. with DeepSpeed ZeRO-3)"));
    } else if (code_execution) {
      out.push_back(
          detail::problem("unsafe_pickle", s.weights_file.string(), s.weights_error,
                          "this .bin asks to run code when loaded; do not load it with torch.load "
                          "(weights_only=False); ask for a safetensors file instead"));
    } else {
      out.push_back(detail::problem("unreadable_weights", s.weights_file.string(), s.weights_error,
                                    "the file is truncated or corrupt: download or save it again"));
    }
    return;
  }
  if (s.tensors.empty()) {
    out.push_back(detail::problem(
        "empty_weights", s.weights_file.string(), "the weights file holds no tensor",
        "a known failure of distributed training saves: save again from rank 0"));
  }
}

// A saved LoRA key ends with "<module>.lora_A.weight" (lora_B likewise, ".bias" with
// lora_bias), "<module>.lora_magnitude_vector.weight" or "<module>.lora_embedding_A": one
// more component than that is the adapter name get_peft_model_state_dict removes.
bool lora_key_keeps_adapter_name(std::string_view key) {
  struct Leaf {
    std::string_view name;
    int saved_components;  // components after the leaf in a saved key
  };
  static constexpr Leaf kLeaves[] = {{"lora_A", 1},
                                     {"lora_B", 1},
                                     {"lora_magnitude_vector", 1},
                                     {"lora_embedding_A", 0},
                                     {"lora_embedding_B", 0}};
  for (const Leaf& leaf : kLeaves) {
    const std::string component = "." + std::string(leaf.name);
    const auto at = key.rfind(component);
    if (at == std::string_view::npos) continue;
    const std::string_view rest = key.substr(at + component.size());
    if (!rest.empty() && rest.front() != '.') continue;  // "lora_A" must be a whole component
    if (std::count(rest.begin(), rest.end(), '.') > leaf.saved_components) return true;
  }
  return false;
}

// A tuner layer inside a wrapped module's base layer belongs to the module that was
// targeted: LoRA on nn.MultiheadAttention "mha" keeps out_proj's factors under
// "mha.base_layer.out_proj".
std::string wrapping_module(const std::string& module) {
  const auto at = module.find(".base_layer.");
  return at == std::string::npos ? module : module.substr(0, at);
}

// LoRA-like methods: shapes against the config, modules against target_modules, adapter
// names left inside keys.
void check_tensors(const AdapterSummary& s, std::vector<Problem>& out) {
  if (!s.config || s.tensors.empty()) return;
  const PeftConfig& config = *s.config;
  if (config.is_prompt_learning()) return;
  // A type whose rules are unknown (added after PEFT 0.18): nothing to compare with.
  if (methods::method(config.peft_type()).state_dict.select == nullptr) return;
  const bool lora = config.peft_type() == PeftType::LORA;
  const std::string where = s.weights_file.empty() ? s.folder.string() : s.weights_file.string();
  for (const auto& t : s.tensors) {
    if (lora && lora_key_keeps_adapter_name(t.name)) {
      out.push_back(detail::problem(
          "adapter_name_in_key", where + ": " + t.name,
          "the key still contains an adapter name (saved from model.state_dict() "
          "instead of get_peft_model_state_dict)",
          "save with PeftModel.save_pretrained, or strip the adapter name from the keys"));
    }
  }
  for (const auto& m : s.modules) {
    try {
      if (config.target_modules().kind != TargetModules::Kind::None &&
          !config.target_modules().is_all_linear() &&
          match_target(config, wrapping_module(m.module)) != TargetMatch::Targeted &&
          // target_parameters adapts parameters of modules target_modules need not name.
          config.target_parameters().value_or(std::vector<std::string>{}).empty()) {
        out.push_back(
            detail::problem("untargeted_module", where + ": " + m.module,
                            "the weights hold tensors for a module target_modules does not match",
                            "add the module to target_modules, or remove its tensors"));
      }
      if (m.rank_mismatch() && lora) {
        out.push_back(
            detail::problem("rank_mismatch", where + ": " + m.module,
                            fmt::format("lora_A has rank {} but the config gives this module r={}",
                                        *m.weights_rank, *m.rank),
                            "fix r / rank_pattern in adapter_config.json to match the weights"));
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
        out.push_back(detail::problem(
            "targeted_without_weights", where + ": " + name,
            "target_modules names a module that has no tensor in the weights",
            "check that the weights belong to this config (or the module was excluded)",
            Severity::Warning));
      }
    }
  }
}

// PEFT loads adapter_model.safetensors when it exists and never looks at a .bin next to
// it: a .bin that differs is stale, and whoever reads it gets other weights.
void check_second_weights_file(const AdapterSummary& s, std::vector<Problem>& out) {
  const fs::path safetensors = s.folder / "adapter_model.safetensors";
  const fs::path bin = s.folder / "adapter_model.bin";
  std::error_code ec;
  if (!fs::exists(safetensors, ec) || !fs::exists(bin, ec) || !s.weights_error.empty()) return;
  std::string difference;
  try {
    const Comparison c = compare_adapters(safetensors, bin);
    if (c.identical()) return;
    difference = fmt::format("{} tensor{} differ (first: {}, {})", c.tensors.size(),
                             c.tensors.size() == 1 ? "" : "s", c.tensors.front().key,
                             c.tensors.front().what);
  } catch (const Error& e) {
    difference = fmt::format("the .bin cannot be read ({})", e.what());
  }
  out.push_back(detail::problem(
      "stale_weights_file", bin.string(),
      "adapter_model.safetensors and adapter_model.bin both exist and differ: " + difference +
          "; PEFT loads only adapter_model.safetensors",
      "delete the file that is out of date (PEFT ignores the .bin)", Severity::Warning));
}

// A field PEFT 0.18 does not declare: harmless when a later PEFT wrote it at its default
// (0.18 drops it and behaves the same), wrong when it switches on a later feature.
Problem unknown_field_problem(const PeftConfig& config, const std::string& file,
                              const std::string& field) {
  const std::string source = file + ": " + field;
  const detail::FieldDefault* newer = detail::newer_field(config.peft_type(), field);
  if (newer == nullptr) {
    return detail::problem(
        "unknown_field", source,
        "field unknown to PEFT 0.18.0 for this type (it drops it with a warning)",
        "harmless for peftcpp; remove it if PEFT 0.18 must load the file silently",
        Severity::Warning);
  }
  const nlohmann::json& value = config.json().at(field);
  const nlohmann::json fallback = nlohmann::json::parse(newer->json);
  if (value == fallback) {
    return detail::problem(
        "newer_field_at_default", source,
        fmt::format("written by a PEFT newer than 0.18 at its default ({})", newer->json),
        "harmless: PEFT 0.18 drops it and behaves the same", Severity::Warning);
  }
  return detail::problem(
      "newer_field_in_use", source,
      fmt::format("a feature of a PEFT newer than 0.18 is switched on ({} instead of {}): PEFT "
                  "0.18 drops the field and builds a model that computes something else",
                  value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  newer->json),
      "load this adapter with the PEFT version that wrote it");
}

// Module names that belong to one family of architectures only (PEFT's default target
// modules per model type): a list naming several families was likely copied together from
// examples, and every name of the other families matches nothing in the model.
struct ModuleFamily {
  std::string_view family;
  std::initializer_list<std::string_view> names;
};
const ModuleFamily kModuleFamilies[] = {
    {"Llama-style *_proj",
     {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
    {"GPT-2 (c_attn, c_proj, c_fc)", {"c_attn", "c_fc"}},
    {"BERT-style (query, key, value)", {"query", "key", "value"}},
    {"T5 (q, k, v, o, wi, wo)", {"q", "k", "v", "o", "wi", "wo", "wi_0", "wi_1"}},
    {"fused query_key_value (BLOOM, Falcon, GPT-NeoX)",
     {"query_key_value", "dense_h_to_4h", "dense_4h_to_h"}},
    {"MPT (Wqkv)", {"Wqkv"}},
};

void check_target_architectures(const PeftConfig& config, const std::string& file,
                                std::vector<Problem>& out) {
  const nlohmann::json* targets = config.find("target_modules");
  if (targets == nullptr || !targets->is_array()) return;
  std::vector<std::string> families;
  for (const ModuleFamily& family : kModuleFamilies) {
    std::vector<std::string> named;
    for (const auto& entry : *targets) {
      if (!entry.is_string()) continue;
      const auto& name = entry.get_ref<const std::string&>();
      if (std::find(family.names.begin(), family.names.end(), name) != family.names.end()) {
        named.push_back(name);
      }
    }
    if (!named.empty()) {
      families.push_back(fmt::format("{}: {}", family.family, fmt::join(named, ", ")));
    }
  }
  if (families.size() < 2) return;
  out.push_back(detail::problem(
      "mixed_architectures", file + ": target_modules",
      fmt::format("target_modules names modules of {} architecture families ({}); a model has "
                  "one of them, the other names match nothing",
                  families.size(), fmt::join(families, "; ")),
      "keep the names of the base model's architecture", Severity::Warning));
}

void check_config(const AdapterSummary& s, std::vector<Problem>& out,
                  const fs::path& config_file = {}) {
  const fs::path file = config_file.empty() ? s.folder / "adapter_config.json" : config_file;
  if (!s.config) {
    out.push_back(detail::problem(
        "bad_config", file.string(), s.config_error,
        "an adapter folder needs the adapter_config.json PEFT wrote with the weights"));
    return;
  }
  detail::check_field_types(*s.config, file.string(), out);
  try {
    s.config->validate();
  } catch (const Error& e) {
    out.push_back(detail::problem("invalid_config", file.string(), e.what(),
                                  "PEFT 0.18 refuses this config: fix the field named"));
  }
  for (const auto& field : s.config->unknown_fields()) {
    out.push_back(unknown_field_problem(*s.config, file.string(), field));
  }
  check_target_architectures(*s.config, file.string(), out);
}

}  // namespace

std::vector<Problem> validate_adapter_folder(const fs::path& folder) {
  std::vector<Problem> out;
  for (const auto& summary : inspect_adapters(folder)) {
    check_config(summary, out);
    check_weights(summary, out);
    check_second_weights_file(summary, out);
    check_tensors(summary, out);
  }
  return out;
}

std::vector<Problem> validate_file(const fs::path& file) {
  std::vector<Problem> out;
  if (detect_file_format(file) == FileFormat::Json) {
    AdapterSummary s;
    s.folder = file.parent_path();
    try {
      s.config = PeftConfig::load(file);
    } catch (const Error& e) {
      s.config_error = e.what();
    }
    check_config(s, out, file);
    return out;
  }
  const AdapterSummary s = inspect_weights_file(file);  // throws for what is no weights file
  check_weights(s, out);
  return out;
}

std::vector<Problem> validate_adapter(const PeftConfig& config, const StateDict& weights,
                                      const std::string& source) {
  AdapterSummary summary = summarize_adapter(config, weights);
  summary.folder = source;
  std::vector<Problem> out;
  check_config(summary, out, source);
  if (weights.empty()) {
    out.push_back(detail::problem("empty_weights", source, "the adapter holds no tensor",
                                  "check that the weights belong to this config and adapter name"));
  }
  check_tensors(summary, out);
  return out;
}

nlohmann::json to_json(const Problem& p) {
  const nlohmann::json j{{"code", p.code},
                         {"severity", p.severity == Severity::Error ? "error" : "warning"},
                         {"source", p.source},
                         {"message", p.message},
                         {"hint", p.hint}};
  // Names from the files may hold bytes that are not UTF-8: dump() would throw on them.
  return nlohmann::json::parse(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace peft
