// PEFT's add_weighted_adapter for LoRA: a new adapter whose delta combines the sources'.
// With s_i the scaling of source i:
//   cat:    A = [w_i s_i A_i] stacked, B = [B_i] side by side: delta = sum w_i s_i B_i A_i;
//   linear: A = sum c_i A_i, B = sum c_i B_i with c_i = sign(w_i s_i) sqrt(|w_i s_i|)
//           (cross terms included, as PEFT does; equal ranks required);
//   svd:    the best rank-k approximation of sum w_i s_i^2 B_i A_i (PEFT applies s_i twice),
//           k = the largest source rank.
// The new config has r = lora_alpha = new rank (scaling 1; rsLoRA is inherited as in PEFT).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "merge/dense.hpp"
#include "peft/error.hpp"
#include "peft/merge.hpp"
#include "peft/module_match.hpp"

namespace peft {
namespace {

using merge::Mat;

struct Factors {
  std::string a_key, b_key;  // adapter keys (Linear/Conv "lora_A.weight", Embedding ...)
  Tensor a, b;
  double scaling = 1.0;
};

constexpr std::string_view kPrefix = "base_model.model.";

// Module path -> factors of one source adapter.
std::map<std::string, Factors> lora_modules(const MergeAdapter& source) {
  if (source.config.peft_type() != PeftType::LORA || source.config.use_dora()) {
    throw Error(ErrorCode::Unsupported, source.config.source(),
                fmt::format("add_weighted_adapter: adapter '{}' is not a plain LoRA adapter "
                            "(DoRA and other methods cannot be combined)",
                            source.name));
  }
  std::map<std::string, Factors> out;
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
      std::string layer = module;
      if (const auto at = layer.find(".base_layer"); at != std::string::npos) layer.resize(at);
      const double r = rank_for(source.config, layer);
      const double alpha = alpha_for(source.config, layer);
      const double s = source.config.use_rslora() ? alpha / std::sqrt(r) : alpha / r;
      out[module] = Factors{key, b_key, tensor, *b, s};
    }
  }
  return out;
}

Mat rows_of(const Tensor& t) {
  const std::size_t r = static_cast<std::size_t>(t.shape().at(0));
  return merge::as_matrix(t, r, static_cast<std::size_t>(t.numel()) / r, "lora factor");
}

Tensor to_tensor(const Mat& m, const Tensor& like, std::uint64_t rows_or_cols, bool is_a) {
  Shape shape = like.shape();
  shape[is_a ? 0 : 1] = rows_or_cols;
  return Tensor::from_doubles(DType::F32, shape, m.v);
}

const Factors* parts_front_impl(const std::vector<const Factors*>& parts) {
  for (const auto* p : parts) {
    if (p != nullptr) return p;
  }
  return nullptr;
}

// cat / linear factors for one module.
std::pair<Mat, Mat> combine(const std::vector<const Factors*>& parts,
                            std::span<const double> weights, bool cat, std::size_t new_rank) {
  const std::size_t in = rows_of(parts_front_impl(parts)->a).cols;
  const std::size_t out = rows_of(parts_front_impl(parts)->b).rows;
  Mat a(new_rank, in), b(out, new_rank);
  std::size_t offset = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == nullptr) continue;
    const Mat ai = rows_of(parts[i]->a), bi = rows_of(parts[i]->b);
    const double ws = weights[i] * parts[i]->scaling;
    const double fa = cat ? ws : std::copysign(std::sqrt(std::abs(ws)), ws);
    const double fb = cat ? 1.0 : fa;
    for (std::size_t k = 0; k < ai.rows; ++k) {
      for (std::size_t c = 0; c < in; ++c) a(offset + k, c) += fa * ai(k, c);
      for (std::size_t o = 0; o < out; ++o) b(o, offset + k) += fb * bi(o, k);
    }
    if (cat) offset += ai.rows;
  }
  return {a, b};
}

}  // namespace

MergeAdapter add_weighted_adapter(std::span<const MergeAdapter> sources,
                                  std::span<const double> weights,
                                  std::string_view combination_type, std::string name,
                                  int svd_rank) {
  if (sources.empty() || sources.size() != weights.size()) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("add_weighted_adapter: {} adapters but {} weights", sources.size(),
                            weights.size()));
  }
  const bool cat = combination_type == "cat";
  const bool linear = combination_type == "linear";
  const bool use_svd = combination_type == "svd";
  if (!cat && !linear && !use_svd) {
    throw Error(ErrorCode::Unsupported, "",
                fmt::format("add_weighted_adapter: combination type '{}' is not supported "
                            "(cat, linear, svd are)",
                            combination_type));
  }
  std::vector<std::map<std::string, Factors>> modules;
  int rank_sum = 0, rank_max = 0;
  for (const auto& s : sources) {
    modules.push_back(lora_modules(s));
    rank_sum += s.config.r();
    rank_max = std::max(rank_max, s.config.r());
    if (linear && s.config.r() != sources[0].config.r()) {
      throw Error(ErrorCode::InvalidArgument, s.config.source(),
                  "add_weighted_adapter: 'linear' needs adapters of equal rank");
    }
  }
  const int new_rank = cat       ? rank_sum
                       : use_svd ? (svd_rank > 0 ? svd_rank : rank_max)
                                 : sources[0].config.r();
  MergeAdapter out{std::move(name), sources[0].config, {}, {}};
  auto& json = out.config.mutable_json();
  json["r"] = new_rank;
  json["lora_alpha"] = new_rank;
  json["rank_pattern"] = nlohmann::json::object();
  json["alpha_pattern"] = nlohmann::json::object();
  std::vector<std::string> order;
  for (const auto& m : modules) {
    for (const auto& [module, unused] : m) {
      if (std::find(order.begin(), order.end(), module) == order.end()) order.push_back(module);
    }
  }
  json["target_modules"] = order;
  for (const auto& module : order) {
    std::vector<const Factors*> parts;
    for (const auto& m : modules) {
      const auto it = m.find(module);
      parts.push_back(it == m.end() ? nullptr : &it->second);
    }
    const Factors& first = *parts_front_impl(parts);
    Mat a, b;
    if (use_svd) {
      if (first.a.rank() > 2) {
        throw Error(ErrorCode::Unsupported, "",
                    fmt::format("add_weighted_adapter: 'svd' cannot combine the convolution "
                                "'{}': PEFT feeds its {}-d delta to an SVD and fails",
                                module, first.a.rank()));
      }
      Mat total(rows_of(first.b).rows, rows_of(first.a).cols);
      for (std::size_t i = 0; i < parts.size(); ++i) {
        if (parts[i] == nullptr) continue;
        const double s = parts[i]->scaling;
        merge::add_scaled(total, merge::matmul(rows_of(parts[i]->b), rows_of(parts[i]->a)),
                          weights[i] * s * s);
      }
      const merge::Svd d = merge::svd(total);
      const std::size_t k = std::min<std::size_t>(new_rank, d.s.size());
      a = Mat(k, total.cols);
      b = Mat(total.rows, k);
      for (std::size_t x = 0; x < k; ++x) {
        for (std::size_t c = 0; c < total.cols; ++c) a(x, c) = d.v(c, x);
        for (std::size_t o = 0; o < total.rows; ++o) b(o, x) = d.u(o, x) * d.s[x];
      }
    } else {
      std::tie(a, b) = combine(parts, weights, cat, static_cast<std::size_t>(new_rank));
    }
    out.weights.set(first.a_key, to_tensor(a, first.a, a.rows, true));
    out.weights.set(first.b_key, to_tensor(b, first.b, b.cols, false));
  }
  return out;
}

}  // namespace peft
