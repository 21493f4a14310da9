// Planning a merge (which base tensors each adapter changes, and how) and applying the plan
// to one tensor or a whole state dict.
#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>
#include <set>
#include <unordered_set>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "merge/shared_bases.hpp"
#include "peft/error.hpp"

namespace peft {
namespace merge {

struct Plan {
  std::vector<MergeAdapter> adapters;
  std::deque<StateDict> shared;  // per adapter; ModuleInputs point into it
  std::vector<std::string> touched;
  std::unordered_map<std::string, std::vector<Op>> ops;
  std::vector<std::pair<std::string, std::string>> tied;
  bool safe_merge = false;
};

namespace {

constexpr std::string_view kModelPrefix = "base_model.model.";
constexpr std::string_view kSharedPrefix = "base_model.";

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const auto dot = text.find('.', start);
    parts.emplace_back(text.substr(start, dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

std::string join(const std::vector<std::string>& parts, std::size_t from, std::size_t to,
                 bool drop_base_layer) {
  std::string out;
  for (std::size_t i = from; i < to; ++i) {
    if (drop_base_layer && parts[i] == "base_layer") continue;
    if (!out.empty()) out += '.';
    out += parts[i];
  }
  return out;
}

bool has_marker(std::string_view component, const MergeRules& rules) {
  return component.starts_with(rules.marker);
}

// Whether `module` is (or lies inside) one of the config's modules_to_save.
bool in_modules_to_save(const PeftConfig& config, const std::vector<std::string>& parts) {
  const auto saved = config.modules_to_save();
  if (!saved) return false;
  for (std::size_t end = 1; end <= parts.size(); ++end) {
    const std::string prefix = join(parts, 0, end, false);
    for (const auto& name : *saved) {
      if (prefix == name || prefix.ends_with("." + name)) return true;
    }
  }
  return false;
}

// One adapter's file, sorted into what the merge needs.
struct Parsed {
  std::vector<ModuleInput> modules;                           // method parameters, in file order
  std::vector<ModuleInput> token_modules;                     // LoRA's trainable_token_indices rows
  std::vector<std::pair<std::string, Tensor>> loaded;         // written into the base on load
  std::vector<std::pair<std::string, Tensor>> saved_modules;  // modules_to_save copies
};

ModuleInput& module_slot(std::vector<ModuleInput>& modules, const MergeAdapter& adapter,
                         const StateDict& shared, const std::vector<std::string>& parts,
                         std::size_t end) {
  const std::string raw = join(parts, 0, end, false);
  for (auto& m : modules) {
    if (m.raw_module == raw) return m;
  }
  ModuleInput m;
  m.adapter = &adapter;
  m.raw_module = raw;
  m.module = join(parts, 0, end, true);
  m.shared = &shared;
  m.origin = fmt::format("adapter '{}' ({}), module '{}'", adapter.name,
                         to_string(adapter.config.peft_type()), m.module);
  modules.push_back(std::move(m));
  return modules.back();
}

Parsed parse_adapter(const MergeAdapter& adapter, const MergeRules& rules, StateDict& shared) {
  Parsed out;
  for (const auto& [key, tensor] : adapter.weights) {
    if (!key.starts_with(kModelPrefix)) {
      if (key.starts_with(kSharedPrefix)) {
        shared.set(key.substr(kSharedPrefix.size()), tensor);
        continue;
      }
      throw Error(ErrorCode::InvalidArgument, adapter.config.source(),
                  fmt::format("adapter '{}': key '{}' does not start with 'base_model.': not a "
                              "PEFT adapter file",
                              adapter.name, key));
    }
    const auto parts = split(std::string_view(key).substr(kModelPrefix.size()));
    std::size_t marker = parts.size();
    bool tokens = false;
    for (std::size_t i = 1; i < parts.size(); ++i) {
      if (parts[i] == "token_adapter") {
        marker = i;
        tokens = true;
        break;
      }
      if (has_marker(parts[i], rules)) {
        marker = i;
        break;
      }
    }
    if (marker < parts.size()) {
      auto& slot =
          module_slot(tokens ? out.token_modules : out.modules, adapter, shared, parts, marker);
      slot.params.emplace(join(parts, tokens ? marker + 1 : marker, parts.size(), false), tensor);
      continue;
    }
    const bool base_layer = std::find(parts.begin(), parts.end(), "base_layer") != parts.end();
    std::string base_key = join(parts, 0, parts.size(), true);
    if (!base_layer && in_modules_to_save(adapter.config, parts)) {
      out.saved_modules.emplace_back(std::move(base_key), tensor);
    } else {
      out.loaded.emplace_back(std::move(base_key), tensor);
    }
  }
  return out;
}

void check_mergeable(const MergeAdapter& adapter, const MergeRules& rules) {
  if (!rules.refusal.empty() || rules.build == nullptr) {
    throw Error(ErrorCode::Unsupported, adapter.config.source(),
                fmt::format("adapter '{}' ({}) cannot be merged: {}", adapter.name,
                            to_string(adapter.config.peft_type()), rules.refusal));
  }
  if (adapter.config.peft_type() == PeftType::LORA && adapter.config.layer_replication()) {
    throw Error(ErrorCode::Unsupported, adapter.config.source(),
                fmt::format("adapter '{}' uses layer_replication: the copied layers share their "
                            "base weights, so each copy's delta cannot be merged separately "
                            "(PEFT adds all of them into the shared tensor)",
                            adapter.name));
  }
}

std::vector<std::size_t> selected_adapters(const Plan& plan, const MergeOptions& options) {
  if (plan.adapters.empty()) {
    throw Error(ErrorCode::InvalidArgument, "", "merge: no adapter given");
  }
  if (options.adapter_names.empty()) return {0};
  std::vector<std::size_t> out;
  for (const auto& name : options.adapter_names) {
    const auto it = std::find_if(plan.adapters.begin(), plan.adapters.end(),
                                 [&](const MergeAdapter& a) { return a.name == name; });
    if (it == plan.adapters.end()) {
      throw Error(ErrorCode::NotFound, "",
                  fmt::format("merge: no adapter named '{}' was given", name));
    }
    out.push_back(static_cast<std::size_t>(it - plan.adapters.begin()));
  }
  return out;
}

class PlanBuilder {
 public:
  explicit PlanBuilder(Plan& plan) : plan_(plan) {}

  void add(Op op) {
    std::vector<std::string> keys{op.key};
    for (const auto& [a, b] : plan_.tied) {
      if (op.key == a) keys.push_back(b);
      if (op.key == b) keys.push_back(a);
    }
    for (const auto& key : keys) {
      auto& list = plan_.ops[key];
      if (list.empty()) plan_.touched.push_back(key);
      Op copy = op;
      copy.key = key;
      list.push_back(std::move(copy));
    }
  }
  void replace(const std::string& key, const Tensor& tensor, const std::string& origin,
               std::string why) {
    Op op;
    op.key = key;
    op.origin = origin;
    op.replacement = tensor;
    op.no_unmerge = std::move(why);
    add(std::move(op));
  }

 private:
  Plan& plan_;
};

std::optional<DType> half_factor_dtype(const MergeAdapter& adapter, const MergeOptions& options) {
  if (options.autocast_adapter_dtype) return std::nullopt;
  for (const auto& [key, tensor] : adapter.weights) {
    if (tensor.dtype() == DType::BF16 || tensor.dtype() == DType::F16) return tensor.dtype();
  }
  return std::nullopt;
}

std::shared_ptr<Plan> build_plan(std::vector<MergeAdapter> adapters, const MergeOptions& options) {
  auto plan = std::make_shared<Plan>();
  plan->adapters = std::move(adapters);
  plan->tied = options.tied_keys;
  plan->safe_merge = options.safe_merge;
  const auto selected = selected_adapters(*plan, options);
  for (std::size_t i : selected) {
    check_mergeable(plan->adapters[i], merge_rules_for(plan->adapters[i].config.peft_type()));
  }
  std::vector<Parsed> parsed;
  for (const auto& adapter : plan->adapters) {
    plan->shared.emplace_back();
    parsed.push_back(
        parse_adapter(adapter, merge_rules_for(adapter.config.peft_type()), plan->shared.back()));
  }
  PlanBuilder builder(*plan);
  // Loading an adapter writes these into the base model, whichever adapter is merged.
  for (std::size_t a = 0; a < parsed.size(); ++a) {
    for (const auto& [key, tensor] : parsed[a].loaded) {
      builder.replace(key, tensor, fmt::format("adapter '{}'", plan->adapters[a].name),
                      fmt::format("adapter '{}' stores '{}' as a trained tensor that replaced "
                                  "the base value (bias=\"all\"/\"lora_only\" or a saved "
                                  "embedding); the original value is not recoverable",
                                  plan->adapters[a].name, key));
    }
  }
  // merge_and_unload installs the active adapter's modules_to_save copies.
  for (const auto& [key, tensor] : parsed[0].saved_modules) {
    builder.replace(key, tensor, fmt::format("adapter '{}'", plan->adapters[0].name),
                    fmt::format("'{}' belongs to a module in modules_to_save of adapter '{}': "
                                "the trained copy replaced the base module, whose values are "
                                "not recoverable",
                                key, plan->adapters[0].name));
  }
  for (std::size_t i : selected) {
    const auto& rules = merge_rules_for(plan->adapters[i].config.peft_type());
    const auto delta_dtype = half_factor_dtype(plan->adapters[i], options);
    std::vector<Op> ops;
    for (const auto& module : parsed[i].modules) rules.build(module, ops);
    for (const auto& module : parsed[i].token_modules) build_trainable_tokens(module, ops);
    for (auto& op : ops) {
      if (op.delta && delta_dtype) op.delta_dtype = delta_dtype;
      builder.add(std::move(op));
    }
  }
  return plan;
}

Values checked(Values values, std::size_t expected, const Op& op, const Shape& shape) {
  if (values.size() != expected) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("{}: the update of '{}' has {} elements, the base tensor {} has {}",
                            op.origin, op.key, values.size(), shape_to_string(shape), expected));
  }
  return values;
}

Values replacement_values(const Op& op, const Tensor& base) {
  if (op.replacement->shape() != base.shape()) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("{}: replaces '{}' with a {} tensor but the base tensor is {}",
                            op.origin, op.key, shape_to_string(op.replacement->shape()),
                            shape_to_string(base.shape())));
  }
  return op.replacement->to(base.dtype()).to_doubles();
}

// `round_result`: store w as the base dtype holds it (PEFT keeps the weight in that dtype
// between adapters). The caller skips it after the last op: converting the result to the
// base dtype rounds the same way (through float), and rounding twice changes nothing.
void apply_forward(const Op& op, const Tensor& base, bool safe_merge, Values& w,
                   bool round_result) {
  const DType dtype = base.dtype();
  if (op.replacement) {
    w = replacement_values(op, base);
    return;
  }
  if (op.add_into && !safe_merge && !op.delta_dtype && op.add_into(w, base.shape())) {
    if (round_result) round_to_dtype(w, dtype);
    return;
  }
  if (op.delta) {
    Values d = checked(op.delta(base.shape()), w.size(), op, base.shape());
    if (op.delta_dtype) round_to_dtype(d, *op.delta_dtype);
    if (safe_merge || op.delta_dtype) round_to_dtype(d, dtype);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] += d[i];
  } else {
    op.transform(w, base.shape());
  }
  if (round_result) round_to_dtype(w, dtype);
}

void apply_inverse(const Op& op, const Tensor& merged, Values& w) {
  if (op.replacement || (op.transform && !op.inverse)) {
    throw Error(ErrorCode::Unsupported, "",
                fmt::format("cannot unmerge '{}': {}", op.key, op.no_unmerge));
  }
  if (op.delta) {
    Values d = checked(op.delta(merged.shape()), w.size(), op, merged.shape());
    for (std::size_t i = 0; i < w.size(); ++i) w[i] -= d[i];
  } else {
    op.inverse(w, merged.shape());
  }
  round_to_dtype(w, merged.dtype());
}

Values float_values(const Tensor& tensor, std::string_view key) {
  if (!is_floating(tensor.dtype()) || !is_convertible(tensor.dtype())) {
    throw Error(ErrorCode::UnsupportedDType, "",
                fmt::format("'{}' is {}: adapters can only be merged into F64, F32, F16 or BF16 "
                            "tensors",
                            key, dtype_name(tensor.dtype())));
  }
  return tensor.to_doubles();
}

}  // namespace
}  // namespace merge

PreparedMerge::PreparedMerge(std::vector<MergeAdapter> adapters, MergeOptions options)
    : plan_(merge::build_plan(std::move(adapters), options)) {}

const std::vector<std::string>& PreparedMerge::touched_keys() const {
  return plan_->touched;
}

bool PreparedMerge::touches(std::string_view base_key) const {
  return plan_->ops.count(std::string(base_key)) != 0;
}

namespace merge {
namespace {

// The float32 factors of every op on this tensor, or empty when one of them (or the
// options) needs the float64 path.
std::vector<const FloatFactors*> fused_factors(const Plan& plan, const std::vector<Op>& ops,
                                               DType dtype, const Shape& shape) {
  if (plan.safe_merge || !fused_dtype(dtype)) return {};
  std::vector<const FloatFactors*> factors;
  for (const auto& op : ops) {
    if (!op.float_factors || op.delta_dtype) return {};
    const FloatFactors* f = op.float_factors(shape);
    if (f == nullptr || f->rows * f->cols != shape_numel(shape)) return {};
    factors.push_back(f);
  }
  return factors;
}

}  // namespace
}  // namespace merge

bool PreparedMerge::merges_fused(std::string_view base_key, DType dtype, const Shape& shape) const {
  const auto it = plan_->ops.find(std::string(base_key));
  return it != plan_->ops.end() && !merge::fused_factors(*plan_, it->second, dtype, shape).empty();
}

void PreparedMerge::merge_tensor_into(std::string_view base_key, const Tensor& base,
                                      std::span<std::byte> out) const {
  if (out.size() != base.nbytes()) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("merge_tensor_into: '{}' has {} bytes, the output buffer {}", base_key,
                            base.nbytes(), out.size()));
  }
  const auto it = plan_->ops.find(std::string(base_key));
  const auto factors = it == plan_->ops.end()
                           ? std::vector<const merge::FloatFactors*>{}
                           : merge::fused_factors(*plan_, it->second, base.dtype(), base.shape());
  if (factors.empty()) {
    const Tensor merged = merge_tensor(base_key, base);
    std::memcpy(out.data(), merged.bytes().data(), out.size());
    return;
  }
  // Each adapter reads the previous result and rounds to the weight's dtype, as PEFT's
  // successive in-place updates do.
  for (std::size_t k = 0; k < factors.size(); ++k) {
    merge::fused_lora_add(base.dtype(), k == 0 ? base.bytes() : std::span<const std::byte>(out),
                          out, *factors[k]);
  }
}

namespace {
std::vector<const merge::FloatFactors*> fused_or_refuse(const merge::Plan& plan,
                                                        std::string_view base_key, DType dtype,
                                                        const Shape& shape) {
  const auto it = plan.ops.find(std::string(base_key));
  auto factors = it == plan.ops.end() ? std::vector<const merge::FloatFactors*>{}
                                      : merge::fused_factors(plan, it->second, dtype, shape);
  if (factors.empty()) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("'{}' is not merged by the fused path", base_key));
  }
  return factors;
}
}  // namespace

std::uint64_t PreparedMerge::fused_row_block(std::string_view base_key, DType dtype,
                                             const Shape& shape) const {
  return merge::fused_block_rows(*fused_or_refuse(*plan_, base_key, dtype, shape).front());
}

void PreparedMerge::merge_rows_in_place(std::string_view base_key, DType dtype, const Shape& shape,
                                        std::uint64_t first_row, std::span<std::byte> rows) const {
  const auto factors = fused_or_refuse(*plan_, base_key, dtype, shape);
  if (first_row % merge::fused_block_rows(*factors.front()) != 0) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("merge_rows_in_place: row {} of '{}' is not on a block boundary",
                            first_row, base_key));
  }
  // Each adapter reads the previous result and rounds, as in merge_tensor_into.
  for (const merge::FloatFactors* f : factors) {
    merge::fused_lora_add_rows(dtype, rows, rows, *f, static_cast<std::size_t>(first_row));
  }
}

Tensor PreparedMerge::merge_tensor(std::string_view base_key, const Tensor& base) const {
  const auto it = plan_->ops.find(std::string(base_key));
  if (it == plan_->ops.end()) return base;
  if (!merge::fused_factors(*plan_, it->second, base.dtype(), base.shape()).empty()) {
    Tensor out = Tensor::zeros(base.dtype(), base.shape());
    merge_tensor_into(base_key, base, out.mutable_bytes());
    return out;
  }
  merge::Values w = merge::float_values(base, base_key);
  const auto& ops = it->second;
  for (std::size_t k = 0; k < ops.size(); ++k) {
    merge::apply_forward(ops[k], base, plan_->safe_merge, w, k + 1 < ops.size());
  }
  return Tensor::from_doubles(base.dtype(), base.shape(), w);
}

Tensor PreparedMerge::unmerge_tensor(std::string_view base_key, const Tensor& merged) const {
  const auto it = plan_->ops.find(std::string(base_key));
  if (it == plan_->ops.end()) return merged;
  merge::Values w = merge::float_values(merged, base_key);
  for (auto op = it->second.rbegin(); op != it->second.rend(); ++op) {
    merge::apply_inverse(*op, merged, w);
  }
  return Tensor::from_doubles(merged.dtype(), merged.shape(), w);
}

std::vector<std::string> PreparedMerge::missing_keys(std::span<const std::string> seen_keys) const {
  const std::unordered_set<std::string> seen(seen_keys.begin(), seen_keys.end());
  std::vector<std::string> missing;
  for (const auto& key : plan_->touched) {
    if (seen.count(key) != 0) continue;
    const auto& ops = plan_->ops.at(key);
    if (std::all_of(ops.begin(), ops.end(), [](const merge::Op& op) { return op.optional; })) {
      continue;
    }
    const bool tied_seen = std::any_of(plan_->tied.begin(), plan_->tied.end(), [&](const auto& p) {
      return (p.first == key && seen.count(p.second) != 0) ||
             (p.second == key && seen.count(p.first) != 0);
    });
    if (!tied_seen) missing.push_back(key);
  }
  return missing;
}

namespace {

void require_all_present(const PreparedMerge& prepared, const StateDict& state) {
  const auto keys = state.keys();
  const auto missing = prepared.missing_keys(keys);
  if (missing.empty()) return;
  throw Error(ErrorCode::MissingKey, "",
              fmt::format("merge: the adapter changes '{}', which the base state dict does not "
                          "have{}",
                          missing.front(),
                          missing.front().ends_with(".bias")
                              ? " (a lora_bias or bias update needs a base layer with a bias)"
                              : ""));
}

// Values PEFT draws at load time and did not save, drawn the same way.
void complete_adapters(std::vector<MergeAdapter>& adapters, const StateDict& base) {
  const BaseShapes shapes = [&](std::string_view key) -> std::optional<Shape> {
    if (const Tensor* t = base.find(key)) return t->shape();
    return std::nullopt;
  };
  for (auto& adapter : adapters) {
    regenerate_vera_projections(adapter, shapes);
    regenerate_randlora_projections(adapter, shapes);
  }
}

}  // namespace

StateDict merge_adapters(const StateDict& base, std::vector<MergeAdapter> adapters,
                         const MergeOptions& options) {
  return annotate_errors(adapters.empty() ? std::string("merge") : adapters.front().config.source(),
                         [&]() -> StateDict {
                           // As the streamed merge: OpenBLAS on one thread, so that both
                           // give the same bits (its threaded sgemm rounds differently).
                           const merge::SingleThreadedBlas blas;
                           complete_adapters(adapters, base);
                           const PreparedMerge prepared(std::move(adapters), options);
                           require_all_present(prepared, base);
                           StateDict out;
                           for (const auto& [key, tensor] : base)
                             out.set(key, prepared.merge_tensor(key, tensor));
                           return out;
                         });
}

StateDict unmerge_adapters(const StateDict& merged, std::vector<MergeAdapter> adapters,
                           const MergeOptions& options) {
  return annotate_errors(
      adapters.empty() ? std::string("unmerge") : adapters.front().config.source(),
      [&]() -> StateDict {
        const merge::SingleThreadedBlas blas;  // as merge_adapters
        complete_adapters(adapters, merged);
        const PreparedMerge prepared(std::move(adapters), options);
        require_all_present(prepared, merged);
        StateDict out;
        for (const auto& [key, tensor] : merged) out.set(key, prepared.unmerge_tensor(key, tensor));
        return out;
      });
}

}  // namespace peft
