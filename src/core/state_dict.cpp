#include "peft/state_dict.hpp"

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft {

StateDict::StateDict(const StateDict& other) : entries_(other.entries_) {
  rebuild_index();
}

StateDict& StateDict::operator=(const StateDict& other) {
  if (this != &other) {
    // list::operator= would assign pairs with a const key; rebuild instead.
    std::list<value_type> copy(other.entries_);
    entries_.swap(copy);
    rebuild_index();
  }
  return *this;
}

void StateDict::rebuild_index() {
  index_.clear();
  index_.reserve(entries_.size());
  for (auto it = entries_.begin(); it != entries_.end(); ++it) index_.emplace(it->first, it);
}

const Tensor* StateDict::find(std::string_view key) const {
  const auto it = index_.find(key);
  return it == index_.end() ? nullptr : &it->second->second;
}

Tensor* StateDict::find(std::string_view key) {
  const auto it = index_.find(key);
  return it == index_.end() ? nullptr : &it->second->second;
}

const Tensor& StateDict::at(std::string_view key) const {
  if (const Tensor* tensor = find(key)) return *tensor;
  throw Error(ErrorCode::TensorNotFound, "", fmt::format("no tensor named '{}'", key));
}

void StateDict::set(std::string key, Tensor tensor) {
  if (Tensor* existing = find(key)) {
    *existing = std::move(tensor);
    return;
  }
  entries_.emplace_back(std::move(key), std::move(tensor));
  const auto it = std::prev(entries_.end());
  index_.emplace(it->first, it);
}

std::optional<Tensor> StateDict::pop(std::string_view key) {
  const auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  const auto entry = it->second;
  Tensor tensor = std::move(entry->second);
  index_.erase(it);
  entries_.erase(entry);
  return tensor;
}

void StateDict::clear() {
  index_.clear();
  entries_.clear();
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [key, tensor] : entries_) out.push_back(key);
  return out;
}

std::uint64_t StateDict::total_bytes() const noexcept {
  std::uint64_t total = 0;
  for (const auto& [key, tensor] : entries_) total += tensor.nbytes();
  return total;
}

}  // namespace peft
