// One case of the peft-ref fixtures (tests/data/peft-ref or $PEFTCPP_FIXTURES): the
// files and case.json that real Python PEFT produced, turned into peftcpp inputs.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/peft_model.hpp"

namespace peft::testing {

class PeftRefCase {
 public:
  explicit PeftRefCase(std::filesystem::path dir);

  const std::string& name() const { return name_; }
  const std::filesystem::path& dir() const { return dir_; }
  const nlohmann::ordered_json& json() const { return json_; }

  // A state file, in the key order PyTorch produced (case.json keeps it), with the
  // tensors that shared storage in memory sharing it again, and writable.
  StateDict load_state(const std::string& file) const;
  // A tensor file in the given key order (or file order when empty).
  StateDict load_ordered(const std::filesystem::path& path,
                         const std::vector<std::string>& order) const;

  // The trained model (model_state + configs_in_memory) and the fresh one.
  PeftModel trained_model() const;
  PeftModel fresh_model() const;

  static std::vector<std::string> strings(const nlohmann::ordered_json& array);

 private:
  ModelFacts facts(const std::string& extra_state_file) const;

  std::filesystem::path dir_;
  std::string name_;
  nlohmann::ordered_json json_;
};

// Every case folder under the root, sorted by name.
std::vector<std::string> peft_ref_case_names();

}  // namespace peft::testing
