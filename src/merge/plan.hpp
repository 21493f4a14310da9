// The merge plan: for each base tensor, the ordered operations the selected adapters apply
// to it, and the per-method rule table that produces them.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "merge/dense.hpp"
#include "merge/fused_lora.hpp"
#include "peft/merge.hpp"
#include "peft/peft_type.hpp"

namespace peft::merge {

using Values = std::vector<double>;

// One change to one base tensor. Exactly one of replacement / delta / transform is set.
struct Op {
  std::string key;     // the base tensor
  std::string origin;  // "adapter 'default' (LORA), module 'lin0'" for messages
  std::optional<Tensor> replacement;
  // Additive rule: the delta in the base tensor's layout (same element count).
  std::function<Values(const Shape&)> delta;
  // Optional fast path of `delta`: adds it straight into the values (one fused GEMM, no
  // delta buffer); returns false when it cannot (a transposed layout), and `delta` is used.
  std::function<bool(Values&, const Shape&)> add_into;
  // Optional float32 path (LoRA, in PEFT's precision): the factors when the weight is stored
  // [out, in] as they expect, null otherwise. Used for F32/BF16/F16 weights without
  // safe_merge (fused_lora.hpp); the float64 `delta` covers every other case.
  std::function<const FloatFactors*(const Shape&)> float_factors;
  // Other rules rewrite the values in place; `inverse` undoes `transform`.
  std::function<void(Values&, const Shape&)> transform;
  std::function<void(Values&, const Shape&)> inverse;
  // Why unmerging cannot restore the base (empty when it can).
  std::string no_unmerge;
  // The adapter's factors stay in half precision (autocast_adapter_dtype=False): the delta
  // is rounded to this dtype before it is added.
  std::optional<DType> delta_dtype;
  // The base tensor may be absent (a bias PEFT only updates when the layer has one).
  bool optional = false;
};

// The parameters one adapter holds for one module.
struct ModuleInput {
  const MergeAdapter* adapter = nullptr;
  std::string module;      // base module path, ".base_layer" removed ("mha.out_proj")
  std::string raw_module;  // as in the file ("mha.base_layer.out_proj")
  std::map<std::string, Tensor, std::less<>> params;  // "lora_A.weight" -> tensor
  const StateDict* shared = nullptr;                  // "vera_A", ... ("base_model." removed)
  std::string origin;

  const PeftConfig& config() const { return adapter->config; }
  const Tensor* find(std::string_view name) const;
  // Throws MissingKey naming the adapter key that is absent.
  const Tensor& param(std::string_view name) const;
  const Tensor& shared_tensor(std::string_view name) const;
  const Tensor& extra(std::string_view name) const;  // adapter->extras "<module>.<name>"
  const Tensor* find_extra(std::string_view name) const;
  std::string weight_key() const { return module + ".weight"; }
  std::string bias_key() const { return module + ".bias"; }
  // An op on `key` with origin filled in.
  Op op(std::string key) const;
};

using BuildFn = void (*)(const ModuleInput&, std::vector<Op>&);

struct MergeRules {
  PeftType type{};
  // The name prefix of the parameter components that mark an adapter parameter in a key
  // ("lora_" in "lin0.lora_A.weight"): the registry's prefix.
  std::string_view marker;
  BuildFn build = nullptr;
  // Non-empty: PEFT cannot merge this method, and why.
  std::string_view refusal;
};

// Throws Unsupported for types PEFT v0.18.0 does not know.
const MergeRules& merge_rules_for(PeftType type);

// --- layouts -------------------------------------------------------------------------
// A base weight viewed as [out, in * prod(kernel)]: PyTorch's layout, or the transpose of
// a 2-D [in, out] weight (fan_in_fan_out, GPT-2 Conv1D) when `transposed`.
struct Layout {
  std::size_t out = 0;
  std::size_t in = 0;  // flattened: in_channels * prod(kernel)
  bool transposed = false;
};
// The layout of a base tensor for an [out, in] update: chooses the transposed view when
// `fan_in_fan_out` (or when only it fits). ShapeMismatch naming `origin` otherwise.
Layout layout_for(const Shape& shape, std::size_t out, std::size_t in, bool fan_in_fan_out,
                  const std::string& origin);
// The plain layout of a base weight: [shape[0], rest], or [shape[1], shape[0]] when
// fan_in_fan_out on a 2-D weight.
Layout natural_layout(const Shape& shape, bool fan_in_fan_out);
Mat to_out_in(const Values& values, const Layout& layout);
Values from_out_in(Mat m, const Layout& layout);
// An [out, in] delta in the base tensor's layout.
Values delta_in_layout(Mat delta, const Shape& shape, bool fan_in_fan_out,
                       const std::string& origin);

// Helpers shared by several rules.
void scale_values(Values& values, double factor);
// Values of a 1-element tensor (a trained scalar stored as [1]).
double scalar_of(const Tensor& tensor, const std::string& what);
// A transform that multiplies by `m` on the right in the [out, in] view (W' = W @ m), with
// its inverse.
void right_multiply(Op& op, const Mat& m, bool fan_in_fan_out);

// FourierFT / WaveFT spectrum positions in an [out, in] weight, as [2, n] flattened (rows,
// then columns): `<module>.<extra_name>` when the adapter's extras hold it, else what PEFT
// draws when it loads the adapter, torch.randperm(out * in) seeded with random_loc_seed.
// Captured by value in ops, which outlive the ModuleInput.
struct SpectrumPositions {
  std::optional<Tensor> given;
  std::int64_t seed = 777;
  std::string what;    // "<module>.<extra_name>"
  std::string origin;  // for errors
  std::vector<std::int64_t> resolve(std::size_t n, std::size_t out, std::size_t in) const;
};
SpectrumPositions spectrum_positions(const ModuleInput& in, std::string_view extra_name);

// Per-method builders (one file each).
void build_lora(const ModuleInput& in, std::vector<Op>& ops);
void build_adalora(const ModuleInput& in, std::vector<Op>& ops);
void build_ia3(const ModuleInput& in, std::vector<Op>& ops);
void build_loha(const ModuleInput& in, std::vector<Op>& ops);
void build_lokr(const ModuleInput& in, std::vector<Op>& ops);
void build_oft(const ModuleInput& in, std::vector<Op>& ops);
void build_boft(const ModuleInput& in, std::vector<Op>& ops);
void build_hra(const ModuleInput& in, std::vector<Op>& ops);
void build_vera(const ModuleInput& in, std::vector<Op>& ops);
void build_randlora(const ModuleInput& in, std::vector<Op>& ops);
void build_vblora(const ModuleInput& in, std::vector<Op>& ops);
void build_fourierft(const ModuleInput& in, std::vector<Op>& ops);
void build_waveft(const ModuleInput& in, std::vector<Op>& ops);
void build_miss(const ModuleInput& in, std::vector<Op>& ops);
void build_shira(const ModuleInput& in, std::vector<Op>& ops);
void build_c3a(const ModuleInput& in, std::vector<Op>& ops);
void build_road(const ModuleInput& in, std::vector<Op>& ops);
void build_delora(const ModuleInput& in, std::vector<Op>& ops);
void build_osf(const ModuleInput& in, std::vector<Op>& ops);
void build_ln_tuning(const ModuleInput& in, std::vector<Op>& ops);
void build_trainable_tokens(const ModuleInput& in, std::vector<Op>& ops);

}  // namespace peft::merge
