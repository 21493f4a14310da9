// The auxiliary training wrappers (ModulesToSaveWrapper, TrainableTokensWrapper), found
// from the keys of the full state dict (docs/peft-rules.md §2.7).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "peft/peft_model.hpp"

namespace peft::detail {

struct Wrapper {
  enum class Kind { ModulesToSave, TrainableTokens };
  Kind kind;
  std::string path;   // the wrapper's module path, e.g. "base_model.model.classifier"
  bool tied = false;  // a trainable-tokens wrapper sharing another wrapper's delta
};

// Every wrapper of the model, in module order.
std::vector<Wrapper> find_wrappers(const PeftModel& model);

// (saved key, full key) pairs of what the wrapper stores for `adapter`, both relative
// to the wrapper path, in state order; empty when it does not serve the adapter.
std::vector<std::pair<std::string, std::string>> wrapper_key_map(const PeftModel& model,
                                                                 const Wrapper& wrapper,
                                                                 const std::string& adapter);

}  // namespace peft::detail
