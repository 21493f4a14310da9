#include "peft/peft_model.hpp"

#include <fmt/format.h>

#include <map>
#include <tuple>

#include "peft/error.hpp"

namespace peft {
namespace {

std::string known_adapters(const PeftModel& model) {
  std::string names;
  for (const auto& [name, config] : model.adapters) names += (names.empty() ? "" : ", ") + name;
  return names.empty() ? "none" : names;
}

}  // namespace

const PeftConfig& PeftModel::config(std::string_view adapter_name) const {
  for (const auto& [name, config] : adapters) {
    if (name == adapter_name) return config;
  }
  throw Error(ErrorCode::NotFound, "",
              fmt::format("the model has no adapter '{}' (it has: {})", adapter_name,
                          known_adapters(*this)));
}

PeftConfig& PeftModel::config(std::string_view adapter_name) {
  return const_cast<PeftConfig&>(std::as_const(*this).config(adapter_name));
}

bool PeftModel::has_adapter(std::string_view adapter_name) const {
  for (const auto& [name, config] : adapters) {
    if (name == adapter_name) return true;
  }
  return false;
}

void make_writable(StateDict& state) {
  // One heap copy per distinct byte range, shared by every tensor that viewed it.
  std::map<std::tuple<const std::byte*, std::size_t, DType>, Tensor> copies;
  for (auto& [key, tensor] : state) {
    if (tensor.is_heap() || tensor.nbytes() == 0) continue;
    const auto range = std::make_tuple(tensor.bytes().data(), tensor.nbytes(), tensor.dtype());
    auto it = copies.find(range);
    if (it == copies.end()) it = copies.emplace(range, tensor.clone()).first;
    tensor = it->second.reshaped(tensor.shape());
  }
}

}  // namespace peft
