// PEFT's add_weighted_adapter for LoRA: a new adapter whose delta combines the sources'
// (docs/merge.md "Combining adapters"). This file checks the request as PEFT does, finds
// each module's factors, orders the modules as PEFT visits them and writes the new
// adapter; weighted_combine.cpp builds the factors, task_arithmetic.cpp prunes and mixes.
// The new config has r = lora_alpha = new rank (scaling 1; rsLoRA is inherited as in PEFT).
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "merge/weighted_combine.hpp"
#include "merge/weighted_draws.hpp"
#include "peft/error.hpp"
#include "peft/merge.hpp"
#include "peft/module_match.hpp"

namespace peft {
namespace {

using merge::Pruning;
using merge::SourceFactors;

// How each combination type builds the factors: stack them (cat), mix A and B separately,
// or mix the deltas and take an SVD.
enum class Family : std::uint8_t { Cat, PerFactor, PerDelta };

struct Combination {
  std::string_view name;
  Family family;
  Pruning pruning;
  bool elect_sign;  // TIES sign election
};

constexpr std::array kCombinations = {
    Combination{"svd", Family::PerDelta, Pruning::None, false},
    Combination{"linear", Family::PerFactor, Pruning::None, false},
    Combination{"cat", Family::Cat, Pruning::None, false},
    Combination{"ties", Family::PerFactor, Pruning::Magnitude, true},
    Combination{"ties_svd", Family::PerDelta, Pruning::Magnitude, true},
    Combination{"dare_ties", Family::PerFactor, Pruning::Random, true},
    Combination{"dare_linear", Family::PerFactor, Pruning::Random, false},
    Combination{"dare_ties_svd", Family::PerDelta, Pruning::Random, true},
    Combination{"dare_linear_svd", Family::PerDelta, Pruning::Random, false},
    Combination{"magnitude_prune", Family::PerFactor, Pruning::Magnitude, false},
    Combination{"magnitude_prune_svd", Family::PerDelta, Pruning::Magnitude, false},
};

constexpr std::array<std::string_view, kCombinations.size()> kNames = [] {
  std::array<std::string_view, kCombinations.size()> names{};
  for (std::size_t i = 0; i < kCombinations.size(); ++i) names[i] = kCombinations[i].name;
  return names;
}();

const Combination& find_combination(std::string_view name) {
  for (const auto& c : kCombinations) {
    if (c.name == name) return c;
  }
  throw Error(ErrorCode::InvalidArgument, "",
              fmt::format("add_weighted_adapter: invalid combination type '{}' (one of {})", name,
                          fmt::join(kNames, ", ")));
}

constexpr std::string_view kPrefix = "base_model.model.";

double scaling_of(const PeftConfig& config, const std::string& module) {
  std::string layer = module;
  if (const auto at = layer.find(".base_layer"); at != std::string::npos) layer.resize(at);
  const double r = rank_for(config, layer);
  const double alpha = alpha_for(config, layer);
  return config.use_rslora() ? alpha / std::sqrt(r) : alpha / r;
}

// Module path -> factors of one source adapter.
std::map<std::string, SourceFactors> lora_modules(const MergeAdapter& source) {
  if (source.config.peft_type() != PeftType::LORA || source.config.use_dora()) {
    throw Error(ErrorCode::Unsupported, source.config.source(),
                fmt::format("add_weighted_adapter: adapter '{}' is not a plain LoRA adapter "
                            "(DoRA and other methods cannot be combined)",
                            source.name));
  }
  std::map<std::string, SourceFactors> out;
  for (const auto& [key, tensor] : source.weights) {
    for (const auto& [a_suffix, b_suffix] : {std::pair{".lora_A.weight", ".lora_B.weight"},
                                             std::pair{".lora_embedding_A", ".lora_embedding_B"}}) {
      if (!key.starts_with(kPrefix) || !key.ends_with(a_suffix)) continue;
      const std::string module =
          key.substr(kPrefix.size(), key.size() - kPrefix.size() - std::strlen(a_suffix));
      const std::string b_key = std::string(kPrefix) + module + b_suffix;
      const Tensor* b = source.weights.find(b_key);
      if (b == nullptr) {
        throw Error(ErrorCode::MissingKey, source.config.source(),
                    fmt::format("add_weighted_adapter: '{}' has no '{}'", key, b_key));
      }
      const bool embedding = std::string_view(a_suffix) == ".lora_embedding_A";
      const bool transposed = embedding || (source.config.fan_in_fan_out() && tensor.rank() == 2);
      out[module] = SourceFactors{
          key, b_key, tensor, *b, scaling_of(source.config, module), embedding, transposed};
    }
  }
  return out;
}

// "layers.2" before "layers.10": runs of digits compare as numbers.
bool natural_less(std::string_view a, std::string_view b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t ei = i, ej = j;
      while (ei < a.size() && std::isdigit(static_cast<unsigned char>(a[ei]))) ++ei;
      while (ej < b.size() && std::isdigit(static_cast<unsigned char>(b[ej]))) ++ej;
      const auto na = a.substr(i, ei - i), nb = b.substr(j, ej - j);
      if (na.size() != nb.size()) return na.size() < nb.size();  // no leading zeros in paths
      if (na != nb) return na < nb;
      i = ei;
      j = ej;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

// The order in which a block's modules are declared, per model family (transformers'
// modeling_*.py __init__ order, which is named_modules() order). A path ending in one of these
// sorts by its position among the modules of the same block.
struct BlockOrder {
  std::vector<std::string_view> model_types;
  std::vector<std::string_view> modules;
};

const std::vector<BlockOrder>& block_orders() {
  static const std::vector<BlockOrder> orders = {
      {{"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3",
        "gemma3_text"},
       {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}},
      {{"phi3"}, {"self_attn.o_proj", "self_attn.qkv_proj", "mlp.gate_up_proj", "mlp.down_proj"}},
      {{"gpt2"}, {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}},
  };
  return orders;
}

// The key a module path sorts by (natural_less): a path ending in one of its family's block
// modules has that name replaced by its rank (after "\x01", so before any other name in the
// same block), and the output head sorts after everything ("\x7f"). Keys, not a comparator
// mixing rules, so that the order is consistent.
std::string order_key(const std::string& path, const BlockOrder* family) {
  if (family == nullptr) return path;
  const std::size_t dot = path.rfind('.');
  if (path.substr(dot == std::string::npos ? 0 : dot + 1) == "lm_head") return "\x7f" + path;
  for (std::size_t k = 0; k < family->modules.size(); ++k) {
    const std::string_view m = family->modules[k];
    if (path.size() > m.size() && path.ends_with(m) && path[path.size() - m.size() - 1] == '.') {
      return path.substr(0, path.size() - m.size()) + '\x01' + static_cast<char>('A' + k);
    }
  }
  return path;
}

// The modules of all sources in the order PEFT visits them (named_modules()): as listed in
// `model_order`, unlisted ones after them: within a block of a known family in declaration
// order, the output head last, otherwise in natural order.
std::vector<std::string> module_order(const std::vector<std::map<std::string, SourceFactors>>& all,
                                      const std::vector<std::string>& model_order,
                                      std::string_view model_type) {
  const BlockOrder* family = nullptr;
  for (const BlockOrder& o : block_orders()) {
    if (std::find(o.model_types.begin(), o.model_types.end(), model_type) != o.model_types.end())
      family = &o;
  }
  std::unordered_map<std::string_view, std::size_t> listed;
  for (std::size_t i = 0; i < model_order.size(); ++i) listed.emplace(model_order[i], i);
  struct Entry {
    std::size_t rank;
    std::string key, module;
  };
  std::vector<Entry> entries;
  std::unordered_set<std::string_view> seen;
  for (const auto& m : all) {
    for (const auto& [module, unused] : m) {
      if (!seen.insert(module).second) continue;
      const auto it = listed.find(module);
      entries.push_back({it == listed.end() ? model_order.size() : it->second,
                         order_key(module, family), module});
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.rank != b.rank) return a.rank < b.rank;
    return natural_less(a.key, b.key);
  });
  std::vector<std::string> order;
  order.reserve(entries.size());
  for (auto& e : entries) order.push_back(std::move(e.module));
  return order;
}

void check_options(const Combination& c, const WeightedAdapterOptions& o) {
  if (!o.svd_driver.empty() && c.family == Family::PerDelta) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("add_weighted_adapter: svd_driver '{}' is refused: torch.linalg.svd "
                            "accepts a driver only for CUDA tensors (cuSOLVER), and peftcpp "
                            "computes on the CPU",
                            o.svd_driver));
  }
  if (o.svd_clamp && !(*o.svd_clamp >= 0.0 && *o.svd_clamp <= 1.0)) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("add_weighted_adapter: svd_clamp {} is not a quantile in [0, 1] "
                            "(torch.quantile refuses it)",
                            *o.svd_clamp));
  }
  if (c.pruning != Pruning::None) {
    if (!o.density) {
      throw Error(ErrorCode::InvalidArgument, "",
                  fmt::format("add_weighted_adapter: '{}' needs a density (PEFT fails with a "
                              "TypeError when it is None)",
                              c.name));
    }
    if (!(*o.density >= 0.0)) {
      throw Error(ErrorCode::InvalidArgument, "",
                  fmt::format("add_weighted_adapter: density should be >= 0, got {}", *o.density));
    }
  }
  if (c.elect_sign && o.majority_sign_method != "total" && o.majority_sign_method != "frequency") {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("add_weighted_adapter: majority_sign_method '{}' is not 'total' or "
                            "'frequency'",
                            o.majority_sign_method));
  }
  if (c.pruning == Pruning::Random && *o.density < 1.0 && !o.torch_seed) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("add_weighted_adapter: '{}' draws random masks: give torch_seed, the "
                            "seed torch.manual_seed received before the call",
                            c.name));
  }
}

int new_rank_for(const Combination& c, std::span<const MergeAdapter> sources, int svd_rank) {
  int sum = 0, max = 0;
  for (const auto& s : sources) {
    sum += s.config.r();
    max = std::max(max, s.config.r());
    if (c.family == Family::PerFactor && s.config.r() != sources[0].config.r()) {
      throw Error(
          ErrorCode::InvalidArgument, s.config.source(),
          fmt::format("add_weighted_adapter: '{}' needs source adapters of equal rank r "
                      "({} has {}, {} has {}); PEFT refuses different ranks for linear, "
                      "ties, dare_linear, dare_ties and magnitude_prune",
                      c.name, sources[0].name, sources[0].config.r(), s.name, s.config.r()));
    }
  }
  switch (c.family) {
    case Family::Cat:
      return sum;
    case Family::PerFactor:
      return sources[0].config.r();
    case Family::PerDelta:
      return svd_rank > 0 ? svd_rank : max;
  }
  return max;
}

// The svd family reshapes Linear, Embedding and Conv2d deltas to matrices; a Conv1d (3-d)
// delta reaches the SVD as it is and PEFT fails.
void check_svd_shape(const merge::ModuleSources& m, std::string_view combination) {
  const std::size_t rank = m.parts.front()->a.rank();
  if (rank == 2 || rank == 4) return;
  throw Error(ErrorCode::Unsupported, "",
              fmt::format("add_weighted_adapter: '{}' cannot combine '{}': PEFT reshapes only "
                          "Linear, Embedding and Conv2d deltas for the svd and fails on this "
                          "{}-d one",
                          combination, m.path, rank + 0));
}

// Per module: the combined adapter's shape as PEFT creates it (for the draws it makes).
merge::CreatedModule created_module(const merge::ModuleSources& m, const PeftConfig& config) {
  const Tensor& a = m.parts.front()->a;
  const auto rows = a.shape().at(0);
  std::string layer = m.path;
  if (const auto at = layer.find(".base_layer"); at != std::string::npos) layer.resize(at);
  return merge::CreatedModule{m.path, static_cast<std::uint64_t>(rank_for(config, layer)),
                              a.numel() / rows, m.parts.front()->b.shape().at(0),
                              m.parts.front()->embedding};
}

merge::CombinedFactors combine_module(Family family, const merge::ModuleSources& m,
                                      const merge::TaskMix& mix, const merge::SvdRequest& svd) {
  switch (family) {
    case Family::Cat:
      return merge::combine_cat(m);
    case Family::PerFactor:
      return merge::combine_per_factor(m, mix);
    case Family::PerDelta:
      return merge::combine_per_delta(m, mix, svd);
  }
  return merge::combine_cat(m);
}

Tensor to_tensor(const merge::Mat& m, const Tensor& like, std::uint64_t rank, bool is_a) {
  Shape shape = like.shape();
  shape[is_a ? 0 : 1] = rank;
  return Tensor::from_doubles(DType::F32, shape, m.v);
}

}  // namespace

std::span<const std::string_view> weighted_combination_types() {
  return kNames;
}

bool combination_draws_masks(std::string_view combination_type) {
  return find_combination(combination_type).pruning == Pruning::Random;
}

MergeAdapter add_weighted_adapter(std::span<const MergeAdapter> sources,
                                  std::span<const double> weights, std::string name,
                                  const WeightedAdapterOptions& options) {
  if (sources.empty() || sources.size() != weights.size()) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("add_weighted_adapter: {} adapters but {} weights", sources.size(),
                            weights.size()));
  }
  const Combination* asked = &find_combination(options.combination_type);
  if (sources.size() == 1 && asked->name != "linear") {
    report_warning(options.warnings, "single_source_linear",
                   fmt::format("add_weighted_adapter: one source adapter, so PEFT combines it as "
                               "'linear' instead of '{}'",
                               asked->name));
    asked = &find_combination("linear");
  }
  const Combination& c = *asked;
  check_options(c, options);
  const int new_rank = new_rank_for(c, sources, options.svd_rank);
  std::vector<std::map<std::string, SourceFactors>> modules;
  for (const auto& s : sources) modules.push_back(lora_modules(s));
  const std::vector<std::string> order =
      module_order(modules, options.module_order, options.model_type);

  std::vector<merge::ModuleSources> work;
  for (const auto& module : order) {
    merge::ModuleSources m{module, {}, {}, static_cast<std::size_t>(new_rank)};
    for (std::size_t i = 0; i < modules.size(); ++i) {
      if (const auto it = modules[i].find(module); it != modules[i].end()) {
        m.parts.push_back(&it->second);
        m.weights.push_back(weights[i]);
      }
    }
    if (c.family == Family::PerDelta) check_svd_shape(m, c.name);
    work.push_back(std::move(m));
  }

  MergeAdapter out{std::move(name), sources[0].config, {}, {}};
  auto& json = out.config.mutable_json();
  json["r"] = new_rank;
  json["lora_alpha"] = new_rank;

  const double density = options.density.value_or(1.0);
  if (c.pruning != Pruning::None && density >= 1.0) {
    report_warning(options.warnings, "density_no_pruning",
                   fmt::format("The density {} is greater than or equal to 1, no pruning will be "
                               "performed.",
                               density));
  }
  std::optional<numeric::TorchGenerator> generator;
  if (c.pruning == Pruning::Random && density < 1.0) {
    // PEFT creates the combined adapter (drawing its throw-away init) before any mask.
    generator.emplace(*options.torch_seed);
    std::vector<merge::CreatedModule> created;
    created.reserve(work.size());
    for (const auto& m : work) created.push_back(created_module(m, out.config));
    merge::skip_creation_draws(*generator, sources[0].config, created);
  }
  const merge::TaskMix mix{c.pruning, c.elect_sign, density,
                           options.majority_sign_method == "frequency"
                               ? merge::SignMethod::Frequency
                               : merge::SignMethod::Total,
                           generator ? &*generator : nullptr};
  const merge::SvdRequest svd{static_cast<std::size_t>(new_rank), options.svd_clamp,
                              options.svd_full_matrices};

  json["rank_pattern"] = nlohmann::json::object();
  json["alpha_pattern"] = nlohmann::json::object();
  json["target_modules"] = order;
  for (const auto& m : work) {
    const merge::CombinedFactors f = combine_module(c.family, m, mix, svd);
    const SourceFactors& first = *m.parts.front();
    out.weights.set(first.a_key, to_tensor(f.a, first.a, f.a.rows, true));
    out.weights.set(first.b_key, to_tensor(f.b, first.b, f.b.cols, false));
  }
  return out;
}

}  // namespace peft
