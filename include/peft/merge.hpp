// peft/merge.hpp — merging adapters into base weights (PEFT's merge_and_unload) and taking
// them out again (unmerge_adapter + unload), for every method PEFT v0.18.0 can merge.
//
// An adapter is its config plus its saved tensors (adapter_model.safetensors as PEFT wrote
// it: keys "base_model.model.<module>.<param>", no adapter name). Merging follows PEFT:
//
//   * Tensors the adapter stores under base names are *replacements*, applied first:
//     "<module>.base_layer.<p>" (bias="all", save_embedding_layers) and plain base keys
//     (bias="all" on modules without an adapter) are loaded into the base by every loaded
//     adapter; modules_to_save copies come from the active (first) adapter only.
//   * Then every selected adapter, in `adapter_names` order, changes the tensors of its
//     modules by its method's rule (a delta, a rotation, a rescaling or written rows).
//   * LoRA deltas of float32 (or upcast half) factors are computed in float32 and added to
//     F32/BF16/F16 weights in float32, as PEFT does on the CPU; everything else is computed
//     in float64 (docs/merge.md "Precision"). The result is rounded to the base tensor's
//     dtype after each adapter, as PEFT's in-place updates do; with `safe_merge` (or an
//     adapter kept in half precision) the delta is rounded to the base dtype before it is
//     added.
//
// The merge is planned once per set of adapters (PreparedMerge: which base keys each
// adapter touches and how) and then applied tensor by tensor, so that a sharded checkpoint
// can be streamed with bounded memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "peft/config.hpp"
#include "peft/diagnostic.hpp"
#include "peft/export.hpp"
#include "peft/state_dict.hpp"

namespace peft {

// One loaded adapter.
struct PEFT_API MergeAdapter {
  std::string name;  // "default", "other", ...: what MergeOptions::adapter_names selects
  PeftConfig config;
  StateDict weights;  // adapter_model.safetensors as saved (no adapter names in keys)
  // Optional. Values PEFT derives at load time from torch's random generator and does not
  // save: FourierFT "<module>.fourierft_indices" and WaveFT "<module>.waveft_indices" (int64
  // [2, n]: rows, columns). When absent, peftcpp draws them exactly as torch.randperm does
  // from the config's random_loc_seed; given ones are used as they are.
  StateDict extras;
};

struct PEFT_API MergeOptions {
  // The adapters to merge, in order; empty merges the active adapter (the first loaded).
  std::vector<std::string> adapter_names;
  // PEFT's safe_merge: the delta is rounded to the base dtype before it is added.
  bool safe_merge = false;
  // Whether the adapter was loaded with autocast_adapter_dtype=True (PEFT's default):
  // half-precision factors are then upcast to float32. false keeps them in half precision,
  // so the delta is rounded to the factors' dtype before it is added.
  bool autocast_adapter_dtype = true;
  // Pairs {key, shares_storage_with}, e.g. {"lm_head.weight", "model.embed_tokens.weight"}
  // for tie_word_embeddings: an adapter on either name changes both tensors.
  std::vector<std::pair<std::string, std::string>> tied_keys;
  // Receives notes about what the merge did differently from the letter of the config.
  Diagnostics* warnings = nullptr;
};

namespace merge {
struct Plan;
}

// The adapters indexed by the base tensors they change. Cheap to copy (shared, immutable).
class PEFT_API PreparedMerge {
 public:
  // Throws NotFound for an unknown adapter name, Unsupported for methods PEFT cannot merge
  // (prompt learning, Poly, X-LoRA, layer_replication, grouped LoRA convolutions...),
  // MissingKey/ShapeMismatch for adapter tensors that do not fit together.
  PreparedMerge(std::vector<MergeAdapter> adapters, MergeOptions options);

  // Base keys the merge changes (replacements included), in first-seen order.
  const std::vector<std::string>& touched_keys() const;
  bool touches(std::string_view base_key) const;

  // The merged value of one base tensor (the tensor itself when untouched). Throws
  // ShapeMismatch when the adapter does not fit the tensor, UnsupportedDType for integer
  // tensors the adapter would change.
  Tensor merge_tensor(std::string_view base_key, const Tensor& base) const;
  // merge_tensor and merge_tensor_into give the bits of merge_adapters and of the streamed
  // checkpoint merge when OpenBLAS runs one thread (those two make it so while they run):
  // OpenBLAS's threaded sgemm rounds differently.
  // merge_tensor written into `out` (base.nbytes() bytes, the base's dtype) instead of a
  // new tensor. LoRA updates of F32/BF16/F16 weights take the fused float32 path there
  // (no float64 copy of the weight, no delta matrix, per-thread working memory reused).
  void merge_tensor_into(std::string_view base_key, const Tensor& base,
                         std::span<std::byte> out) const;
  // Whether merge_tensor_into handles this tensor with the fused float32 path (its working
  // memory is then a small per-thread tile, not float64 copies of the tensor).
  bool merges_fused(std::string_view base_key, DType dtype, const Shape& shape) const;
  // The fused path by blocks of rows, for callers streaming a weight through a small buffer:
  // merges, in place in `rows`, the rows [first_row, first_row + n) of the weight `base_key`
  // of `dtype` and `shape` (n = rows.size() / bytes per row). `first_row` must be a multiple
  // of fused_row_block(); each row then gets the bits merge_tensor_into gives it. Only for
  // tensors merges_fused accepts (InvalidArgument otherwise).
  void merge_rows_in_place(std::string_view base_key, DType dtype, const Shape& shape,
                           std::uint64_t first_row, std::span<std::byte> rows) const;
  std::uint64_t fused_row_block(std::string_view base_key, DType dtype, const Shape& shape) const;
  // The base value of one merged tensor. Throws Unsupported, saying why, where the merged
  // weights and the adapter do not determine it (replacements, DoRA, OSF...).
  Tensor unmerge_tensor(std::string_view base_key, const Tensor& merged) const;
  // Touched keys absent from `seen_keys`: an adapter module without its base tensor.
  std::vector<std::string> missing_keys(std::span<const std::string> seen_keys) const;

 private:
  std::shared_ptr<const merge::Plan> plan_;
};

// Shapes of base tensors by key; nullopt when the base has no such tensor.
using BaseShapes = std::function<std::optional<Shape>(std::string_view base_key)>;

// merge_and_unload() on a whole state dict: same keys, order, shapes and dtypes as `base`.
// Throws MissingKey when an adapter module has no tensor in `base`.
PEFT_API StateDict merge_adapters(const StateDict& base, std::vector<MergeAdapter> adapters,
                                  const MergeOptions& options = {});
// The inverse: the base weights from the merged ones, or Unsupported saying why not.
PEFT_API StateDict unmerge_adapters(const StateDict& merged, std::vector<MergeAdapter> adapters,
                                    const MergeOptions& options = {});

// PEFT's add_weighted_adapter arguments besides the sources and weights (docs/merge.md
// "Combining adapters").
struct PEFT_API WeightedAdapterOptions {
  // "cat", "linear", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd",
  // "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd" (PEFT's default is "svd").
  // With a single source PEFT uses "linear" whatever is asked (reported in `warnings`).
  std::string combination_type = "svd";
  // The svd family's rank; 0 keeps the largest source rank.
  int svd_rank = 0;
  // Clamp both SVD factors to [-q, q], q the svd_clamp quantile of their entries. The
  // result depends on the sign the SVD picks for each singular pair (not unique).
  std::optional<double> svd_clamp;
  // torch.linalg.svd(full_matrices=...): changes nothing unless the rank exceeds
  // min(out, in), where full matrices fail as in PEFT and thin ones keep min(out, in).
  bool svd_full_matrices = true;
  // A cuSOLVER driver name: refused, as torch refuses it for CPU tensors.
  std::string svd_driver;
  // Fraction of entries the pruning types keep (required by them, as in PEFT).
  std::optional<double> density;
  // "total" or "frequency": how ties/dare_ties elect the sign of each entry.
  std::string majority_sign_method = "total";
  // DARE's masks: the seed of torch.manual_seed(seed) run just before the Python call; the
  // masks are then PEFT's bit for bit. Required by the dare_* types.
  std::optional<std::uint64_t> torch_seed;
  // Module paths in the model's named_modules() order, which is the order PEFT draws DARE
  // masks in. Empty: paths compared with their numbers as numbers ("layers.2" before
  // "layers.10"), which is the model order of numbered blocks but not always within one.
  std::vector<std::string> module_order;
  // The base model's config.json "model_type". For the families whose layers peftcpp knows
  // (llama, mistral, qwen2, qwen3, gemma 1-3, phi3, gpt2...), modules not in module_order are
  // put in their model order within each block too (q, k, v, o before the MLP's gate, up,
  // down; lm_head last), which makes the default DARE masks PEFT's on those models.
  std::string model_type;
  // Receives PEFT's warnings (a density >= 1 prunes nothing, one source means "linear").
  Diagnostics* warnings = nullptr;
};

// PEFT's add_weighted_adapter for LoRA adapters: a new LoRA adapter named `name` whose delta
// combines the sources' (docs/merge.md). The sources must be LoRA adapters without DoRA.
// Throws InvalidArgument for what PEFT refuses (different ranks where equal ranks are
// needed, density missing, an unknown combination type or sign method, an SVD driver on
// the CPU) and Unsupported for what it cannot combine (Conv1d in the svd family).
PEFT_API MergeAdapter add_weighted_adapter(std::span<const MergeAdapter> sources,
                                           std::span<const double> weights, std::string name,
                                           const WeightedAdapterOptions& options);

// The combination types, in PEFT's documentation order; whether one draws random masks.
PEFT_API std::span<const std::string_view> weighted_combination_types();
PEFT_API bool combination_draws_masks(std::string_view combination_type);

}  // namespace peft
