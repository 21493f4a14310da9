#include "engine/wrappers.hpp"

#include <algorithm>
#include <unordered_map>

namespace peft::detail {
namespace {

constexpr std::string_view kCopies = ".modules_to_save.";
constexpr std::string_view kOriginal = ".original_module.";
constexpr std::string_view kDelta = ".token_adapter.trainable_tokens_delta.";

bool is_listed(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

std::vector<Wrapper> find_wrappers(const PeftModel& model) {
  std::vector<Wrapper> found;
  std::unordered_map<std::string, std::size_t> index;               // path -> position in `found`
  std::vector<std::pair<std::string, const Tensor*>> first_deltas;  // for tie detection
  std::unordered_map<std::string, bool> has_original;
  const auto add = [&](std::string path, Wrapper::Kind kind) -> Wrapper* {
    auto [it, inserted] = index.emplace(path, found.size());
    if (inserted) found.push_back({kind, std::move(path), false});
    return &found[it->second];
  };
  for (const auto& [key, tensor] : model.state) {
    // A ModulesToSaveWrapper keeps the original module next to the copies.
    if (const auto at = key.find(kOriginal); at != std::string::npos) {
      add(key.substr(0, at), Wrapper::Kind::ModulesToSave);
      has_original[key.substr(0, at)] = true;
    } else if (const auto copy = key.find(kCopies); copy != std::string::npos) {
      add(key.substr(0, copy), Wrapper::Kind::ModulesToSave);
    } else if (const auto delta = key.find(kDelta); delta != std::string::npos) {
      Wrapper* wrapper = add(key.substr(0, delta), Wrapper::Kind::TrainableTokens);
      if (model.facts.tied_token_wrappers.empty()) {
        // Tied wrappers share the delta of the wrapper they are tied to.
        for (const auto& [other, other_delta] : first_deltas) {
          if (other != wrapper->path && other_delta->overlaps(tensor)) wrapper->tied = true;
        }
        first_deltas.emplace_back(wrapper->path, &tensor);
      }
    }
  }
  for (auto& wrapper : found) {
    if (!model.facts.tied_token_wrappers.empty()) {
      wrapper.tied = is_listed(model.facts.tied_token_wrappers, wrapper.path);
    }
  }
  // A ".modules_to_save." key without an ".original_module." sibling is not a wrapper.
  std::vector<Wrapper> out;
  for (auto& wrapper : found) {
    if (wrapper.kind == Wrapper::Kind::ModulesToSave && !has_original.count(wrapper.path)) continue;
    out.push_back(std::move(wrapper));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> wrapper_key_map(const PeftModel& model,
                                                                 const Wrapper& wrapper,
                                                                 const std::string& adapter) {
  std::vector<std::pair<std::string, std::string>> map;
  if (wrapper.kind == Wrapper::Kind::TrainableTokens) {
    const std::string full = "token_adapter.trainable_tokens_delta." + adapter;
    if (!wrapper.tied && model.state.contains(wrapper.path + "." + full)) {
      map.emplace_back("token_adapter.trainable_tokens_delta", full);
    }
    return map;
  }
  const std::string copy_prefix = wrapper.path + std::string(kCopies) + adapter + ".";
  for (const auto& [key, tensor] : model.state) {
    if (key.starts_with(copy_prefix)) {
      std::string local = key.substr(copy_prefix.size());
      map.emplace_back(local, "modules_to_save." + adapter + "." + local);
    }
  }
  return map;
}

}  // namespace peft::detail
