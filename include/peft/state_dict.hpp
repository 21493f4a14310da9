// peft/state_dict.hpp — an ordered name → Tensor map, the unit every function takes
// and returns.
//
// Behaves like a Python dict: iteration follows insertion order, assigning to an
// existing name keeps its position, erasing is O(1). Lookups take string_view.
#pragma once

#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "peft/export.hpp"
#include "peft/tensor.hpp"

namespace peft {

class PEFT_API StateDict {
 public:
  using value_type = std::pair<const std::string, Tensor>;
  using iterator = std::list<value_type>::iterator;
  using const_iterator = std::list<value_type>::const_iterator;

  StateDict() = default;
  StateDict(const StateDict& other);
  StateDict& operator=(const StateDict& other);
  StateDict(StateDict&&) noexcept = default;
  StateDict& operator=(StateDict&&) noexcept = default;
  ~StateDict() = default;

  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  bool contains(std::string_view key) const { return index_.count(key) != 0; }

  const Tensor* find(std::string_view key) const;
  Tensor* find(std::string_view key);
  // Throws TensorNotFound naming the key.
  const Tensor& at(std::string_view key) const;

  // Inserts at the end, or replaces the tensor in place when the key exists.
  void set(std::string key, Tensor tensor);
  // Removes and returns the tensor, or nullopt when absent.
  std::optional<Tensor> pop(std::string_view key);
  bool erase(std::string_view key) { return pop(key).has_value(); }
  void clear();

  std::vector<std::string> keys() const;
  // Sum of the tensors' byte sizes.
  std::uint64_t total_bytes() const noexcept;

  iterator begin() noexcept { return entries_.begin(); }
  iterator end() noexcept { return entries_.end(); }
  const_iterator begin() const noexcept { return entries_.begin(); }
  const_iterator end() const noexcept { return entries_.end(); }

 private:
  void rebuild_index();

  std::list<value_type> entries_;
  // Keys view the strings stored in entries_ (list nodes never move).
  std::unordered_map<std::string_view, iterator> index_;
};

}  // namespace peft
