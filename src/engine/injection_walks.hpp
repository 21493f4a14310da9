// Internal to inject_adapters: the model each ModelShape builds around its methods'
// tensors, and the module view of a base state dict they share.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "methods/injection_methods.hpp"
#include "peft/injection.hpp"

namespace peft::injection {

using Adapters = std::vector<std::pair<std::string, PeftConfig>>;

// Modules in state order, each with its direct parameters (the key minus its last part).
std::vector<Module> modules_of(const StateDict& base);
// The Python class of a module: from `classes`, else guessed from its weight's rank.
std::string class_of(const Module& module, const ModuleClasses& classes);
// modules_to_save plus the heads PeftModelFor<Task> adds to it (classifier, score,
// qa_outputs), matched as PEFT matches them: the module path ends with the name.
std::vector<std::string> saved_module_names(const PeftConfig& config);
bool is_saved(const std::string& path, const std::vector<std::string>& names);
// A module wrapped by modules_to_save for `adapters`: the original under "original_module",
// a copy per adapter under "modules_to_save.<adapter>"; `prefix` ends with the module path
// and a dot.
void add_saved_module(const Module& module, const std::vector<std::string>& adapters,
                      const std::string& prefix, StateDict& out);
// The contexts of the adapters, in order.
std::vector<Context> contexts_of(const Adapters& adapters, const InjectionOptions& options);

PeftModel tuner_model(const StateDict& base, const Adapters& adapters,
                      const InjectionOptions& options);
PeftModel prompt_learning_model(const StateDict& base, const Adapters& adapters,
                                const InjectionOptions& options);
PeftModel xlora_model(const StateDict& base, const Adapters& adapters,
                      const InjectionOptions& options);
PeftModel adaption_prompt_model(const StateDict& base, const Adapters& adapters,
                                const InjectionOptions& options);

}  // namespace peft::injection
