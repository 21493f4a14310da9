// The two string rewrites between full keys and saved keys (docs/peft-rules.md §2.3.1, §3.2).
#include <string>

#include "methods/adapter_names.hpp"
#include "peft/peft_state_dict.hpp"

namespace peft {

std::string remove_adapter_name(std::string_view key, std::string_view adapter_name, bool vblora) {
  if (key.find('.') == std::string_view::npos) return std::string(key);
  const std::string dotted = "." + std::string(adapter_name);
  // A parameter-dictionary entry: the adapter name is the last component.
  if (key.ends_with(dotted)) return std::string(key.substr(0, key.size() - dotted.size()));
  // A module-dictionary entry: the adapter name is the second-to-last component.
  const auto dot = key.rfind('.');
  std::string_view head = key.substr(0, dot);
  const std::string_view leaf = key.substr(dot + 1);
  if (vblora && leaf.starts_with(std::string(adapter_name) + "_")) {
    // "...vblora_logits_A.default_topk_indices" -> "...vblora_logits_A_topk_indices"
    return std::string(head) + "_" + std::string(leaf.substr(adapter_name.size() + 1));
  }
  if (head.ends_with(dotted)) head.remove_suffix(dotted.size());
  return std::string(head) + "." + std::string(leaf);
}

std::string insert_adapter_name(std::string_view key, std::string_view adapter_name,
                                std::string_view prefix) {
  const auto at = key.rfind(prefix);
  if (prefix.empty() || at == std::string_view::npos) return std::string(key);
  const std::string_view suffix = key.substr(at + prefix.size());
  const auto dot = suffix.find('.');
  if (dot == std::string_view::npos) return std::string(key) + "." + std::string(adapter_name);
  // Insert before what follows the suffix's first component, only at the end of the key.
  const std::string_view tail = suffix.substr(dot + 1);
  if (!key.ends_with(tail)) return std::string(key);
  return std::string(key.substr(0, key.size() - tail.size())) + std::string(adapter_name) + "." +
         std::string(tail);
}

}  // namespace peft
