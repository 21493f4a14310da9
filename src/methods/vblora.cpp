// VB-LoRA: logits over a shared vector bank, optionally saved as top-k (docs/peft-rules.md §2.5.3).
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "methods/kernels.hpp"
#include "methods/method_rules.hpp"
#include "peft/error.hpp"

namespace peft::methods {
namespace {

// The smallest integer type for indices below num_vectors (a strict < test, as PEFT).
DType index_dtype(std::int64_t num_vectors) {
  if (num_vectors < (1LL << 8)) return DType::U8;
  if (num_vectors < (1LL << 15)) return DType::I16;
  if (num_vectors < (1LL << 31)) return DType::I32;
  return DType::I64;
}

const Tensor& vector_bank(const PeftModel& model, const std::string& adapter,
                          const std::string& source) {
  const std::string key = "base_model.vblora_vector_bank." + adapter;
  const Tensor* bank = model.state.find(key);
  if (bank == nullptr) {
    throw Error(ErrorCode::MissingKey, source, fmt::format("the model has no '{}'", key));
  }
  return *bank;
}

}  // namespace

StateDict select_vblora(SaveContext& ctx) {
  StateDict out;
  const DType indices_dtype = index_dtype(ctx.config.num_vectors());
  const auto k = static_cast<std::size_t>(ctx.config.topk());
  for (const auto& [key, logits] : ctx.model.state) {
    if (key.find("vblora_logits") == std::string::npos) continue;
    if (!ctx.config.save_only_topk_weights()) {
      out.set(key, logits);
      continue;
    }
    if (logits.rank() != 3 || k == 0) {
      throw Error(ErrorCode::ShapeMismatch, ctx.config.source(),
                  fmt::format("'{}' must be 3-D logits to keep its top {}", key, k));
    }
    const auto last = static_cast<std::size_t>(logits.shape()[2]);
    const auto top = kernels::topk_last_dim(logits.to_floats(), last, k);
    const std::size_t kk = std::min(k, last);
    Shape index_shape = logits.shape();
    index_shape[2] = kk;
    out.set(key + "_topk_indices", Tensor::from_ints(indices_dtype, index_shape, top.indices));
    // softmax over the k values, without the last column (it is 1 - the others' sum).
    const auto weights = kernels::softmax_last_dim(top.values, kk);
    std::vector<float> kept;
    kept.reserve(weights.size());
    for (std::size_t i = 0; i < weights.size(); ++i) {
      if (i % kk != kk - 1) kept.push_back(weights[i]);
    }
    Shape weight_shape = logits.shape();
    weight_shape[2] = kk - 1;
    out.set(key + "_topk_weights", Tensor::from_floats(logits.dtype(), weight_shape, kept));
  }
  const std::string bank = "base_model.vblora_vector_bank." + ctx.adapter;
  out.set(bank, vector_bank(ctx.model, ctx.adapter, ctx.config.source()));
  return out;
}

StateDict remap_vblora(LoadContext& ctx, StateDict state) {
  if (ctx.config.save_only_topk_weights()) {
    const auto num_vectors = static_cast<std::size_t>(
        vector_bank(ctx.model, ctx.adapter, ctx.config.source()).shape()[0]);
    std::vector<std::string> index_keys;
    for (const auto& [key, tensor] : state) {
      if (key.find("_topk_indices") != std::string::npos) index_keys.push_back(key);
    }
    for (const auto& index_key : index_keys) {
      const auto replace_all = [&](std::string text, std::string_view with) {
        for (auto at = text.find("_topk_indices"); at != std::string::npos;
             at = text.find("_topk_indices", at + with.size())) {
          text.replace(at, 13, with);
        }
        return text;
      };
      const std::string weight_key = replace_all(index_key, "_topk_weights");
      const std::string logits_key = replace_all(index_key, "");
      const Tensor* weights = state.find(weight_key);
      if (weights == nullptr) {
        throw Error(ErrorCode::MissingKey, "",
                    fmt::format("'{}' has no partner '{}'", index_key, weight_key));
      }
      const Tensor indices = *state.find(index_key);
      if (indices.rank() == 0 || weights->rank() != indices.rank()) {
        throw Error(ErrorCode::ShapeMismatch, "",
                    fmt::format("'{}' and '{}' disagree in shape", index_key, weight_key));
      }
      const auto k = static_cast<std::size_t>(indices.shape().back());
      const auto stored = weights->to_floats();
      const auto ids = indices.to_ints();
      if (k == 0 || stored.size() / (k - 1 == 0 ? 1 : k - 1) * k != ids.size()) {
        throw Error(ErrorCode::ShapeMismatch, "",
                    fmt::format("'{}' and '{}' disagree in shape", index_key, weight_key));
      }
      const std::size_t rows = ids.size() / k;
      Shape shape = indices.shape();
      shape.back() = num_vectors;
      std::vector<float> logits(rows * num_vectors, -std::numeric_limits<float>::infinity());
      for (std::size_t r = 0; r < rows; ++r) {
        float sum = 0.0f;
        for (std::size_t j = 0; j + 1 < k; ++j) sum += stored[r * (k - 1) + j];
        for (std::size_t j = 0; j < k; ++j) {
          const float weight = j + 1 < k ? stored[r * (k - 1) + j] : 1.0f - sum;
          const auto id = ids[r * k + j];
          if (id < 0 || static_cast<std::size_t>(id) >= num_vectors) {
            throw Error(ErrorCode::ShapeMismatch, "",
                        fmt::format("'{}' holds index {} outside the bank of {} vectors", index_key,
                                    id, num_vectors));
          }
          logits[r * num_vectors + static_cast<std::size_t>(id)] = std::log(weight);
        }
      }
      state.set(logits_key, Tensor::from_floats(DType::F32, shape, logits));
      state.erase(index_key);
      state.erase(weight_key);
    }
  }
  return insert_adapter_names(ctx, std::move(state));
}

}  // namespace peft::methods
