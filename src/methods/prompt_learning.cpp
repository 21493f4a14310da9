// Prompt learning (prompt tuning, multitask prompt tuning, P-tuning, prefix tuning, CPT):
// the saved dict is not a selection of keys but the prompt itself (docs/peft-rules.md §2.5.6).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "methods/kernels.hpp"
#include "methods/method_rules.hpp"
#include "peft/error.hpp"

namespace peft::methods {
namespace {

const Tensor& encoder_tensor(const PeftModel& model, const std::string& adapter,
                             std::string_view name) {
  const std::string key = fmt::format("prompt_encoder.{}.{}", adapter, name);
  const Tensor* tensor = model.state.find(key);
  if (tensor == nullptr) {
    throw Error(ErrorCode::MissingKey, "", fmt::format("the model has no '{}'", key));
  }
  return *tensor;
}

int required(std::optional<int> value, const PeftConfig& config, const char* field) {
  if (!value || *value <= 0) {
    throw Error(ErrorCode::InvalidConfigValue, config.source(),
                fmt::format("'{}' must be a positive integer to compute the prompt", field));
  }
  return *value;
}

Tensor as_tensor(const kernels::Matrix& m, DType dtype) {
  return Tensor::from_floats(dtype, {m.rows, m.cols}, m.data);
}

// Linear layer `index` of a Sequential under the prompt encoder.
kernels::Matrix apply_linear(const PeftModel& model, const std::string& adapter,
                             const std::string& sequential, int index, const kernels::Matrix& x) {
  const std::string base = fmt::format("{}.{}", sequential, index);
  const Tensor& weight = encoder_tensor(model, adapter, base + ".weight");
  const Tensor* bias = model.state.find(fmt::format("prompt_encoder.{}.{}.bias", adapter, base));
  return kernels::linear(x, weight, bias);
}

// CPT: the embedding plus the delta, each delta row scaled down to at most its
// token type's epsilon (CPTEmbedding.get_projection).
Tensor cpt_prompt(const SaveContext& ctx, const Tensor& table, std::size_t rows) {
  const PeftConfig& config = ctx.config;
  kernels::Matrix x = kernels::first_rows(table, rows);
  const kernels::Matrix delta =
      kernels::first_rows(encoder_tensor(ctx.model, ctx.adapter, "delta_embedding.weight"), rows);
  if (delta.cols != x.cols) {
    throw Error(ErrorCode::ShapeMismatch, config.source(), "CPT delta and embedding widths differ");
  }
  const auto types = config.find("cpt_tokens_type_mask");
  if (types == nullptr || !types->is_array() || types->size() < rows) {
    throw Error(ErrorCode::InvalidConfigValue, config.source(),
                "'cpt_tokens_type_mask' must list a type for every virtual token");
  }
  const float scale =
      std::sqrt(static_cast<float>(required(config.token_dim(), config, "token_dim")) / 2048.0f);
  const auto epsilon_of = [&](const char* field) {
    return static_cast<float>(config.get_double(field, 0.1)) * scale;
  };
  const float format_eps = epsilon_of("opt_projection_format_epsilon");
  const float input_eps = epsilon_of("opt_projection_epsilon");
  for (std::size_t r = 0; r < rows; ++r) {
    float sum = 0.0f;
    for (std::size_t c = 0; c < delta.cols; ++c) sum += delta.at(r, c) * delta.at(r, c);
    const float norm = std::sqrt(sum);
    const std::int64_t type = (*types)[r].get<std::int64_t>();
    float eps = 1e-10f;
    if (type > 0 && (type % 4 == 1 || type % 4 == 3)) eps = format_eps;
    if (type > 0 && type % 4 == 2) eps = input_eps;
    const float factor = norm > 0.0f ? eps / std::max(norm, eps) : 1.0f;
    for (std::size_t c = 0; c < x.cols; ++c) x.at(r, c) += delta.at(r, c) * factor;
  }
  return as_tensor(x, table.dtype());
}

// What get_prompt_embedding_to_save computes in training mode.
Tensor computed_prompt(const SaveContext& ctx) {
  const PeftConfig& config = ctx.config;
  const Tensor& table = encoder_tensor(ctx.model, ctx.adapter, "embedding.weight");
  const int virtual_tokens = required(config.num_virtual_tokens(), config, "num_virtual_tokens");
  const int submodules = config.num_transformer_submodules().value_or(1);
  switch (config.peft_type()) {
    case PeftType::PROMPT_TUNING: {
      const auto rows =
          static_cast<std::uint64_t>(virtual_tokens) * static_cast<std::uint64_t>(submodules);
      if (table.rank() == 2 && table.shape()[0] == rows) return table;  // the lookup is the table
      return as_tensor(kernels::first_rows(table, rows), table.dtype());
    }
    case PeftType::P_TUNING: {
      if (config.encoder_reparameterization_type() != "MLP") {
        throw Error(ErrorCode::Unsupported, config.source(),
                    "P-tuning with encoder_reparameterization_type '" +
                        config.encoder_reparameterization_type() +
                        "': only the MLP encoder's output can be computed; save the adapter in "
                        "inference mode (the raw embedding) instead");
      }
      kernels::Matrix x = kernels::first_rows(
          table, static_cast<std::size_t>(virtual_tokens) * static_cast<std::size_t>(submodules));
      x = apply_linear(ctx.model, ctx.adapter, "mlp_head", 0, x);
      kernels::relu_inplace(x);
      x = apply_linear(ctx.model, ctx.adapter, "mlp_head", 2, x);
      kernels::relu_inplace(x);
      x = apply_linear(ctx.model, ctx.adapter, "mlp_head", 4, x);
      return as_tensor(x, table.dtype());
    }
    case PeftType::PREFIX_TUNING: {
      kernels::Matrix x = kernels::first_rows(table, static_cast<std::size_t>(virtual_tokens));
      if (!config.prefix_projection()) {
        if (table.rank() == 2 && table.shape()[0] == static_cast<std::uint64_t>(virtual_tokens)) {
          return table;
        }
        return as_tensor(x, table.dtype());
      }
      x = apply_linear(ctx.model, ctx.adapter, "transform", 0, x);
      kernels::tanh_inplace(x);
      x = apply_linear(ctx.model, ctx.adapter, "transform", 2, x);
      return as_tensor(x, table.dtype());
    }
    case PeftType::CPT:
      return cpt_prompt(
          ctx, table,
          static_cast<std::size_t>(virtual_tokens) * static_cast<std::size_t>(submodules));
    default:
      throw Error(ErrorCode::Unsupported, config.source(),
                  fmt::format("computing the training-mode prompt of {} is not implemented; save "
                              "the adapter in inference mode",
                              to_string(config.peft_type())));
  }
}

}  // namespace

StateDict select_prompt_learning(SaveContext& ctx) {
  StateDict out;
  if (ctx.config.peft_type() == PeftType::MULTITASK_PROMPT_TUNING) {
    out.set("prefix_task_cols", encoder_tensor(ctx.model, ctx.adapter, "prefix_task_cols"));
    out.set("prefix_task_rows", encoder_tensor(ctx.model, ctx.adapter, "prefix_task_rows"));
    out.set("prompt_embeddings", encoder_tensor(ctx.model, ctx.adapter, "embedding.weight"));
    return out;
  }
  out.set("prompt_embeddings", ctx.config.inference_mode()
                                   ? encoder_tensor(ctx.model, ctx.adapter, "embedding.weight")
                                   : computed_prompt(ctx));
  return out;
}

void load_prompt_encoder(LoadContext& ctx, const StateDict& state) {
  const Tensor* prompt = state.find("prompt_embeddings");
  if (prompt == nullptr) {
    throw Error(ErrorCode::MissingKey, "", "the weights hold no 'prompt_embeddings'");
  }
  copy_into_model(ctx.model, fmt::format("prompt_encoder.{}.embedding.weight", ctx.adapter),
                  *prompt, "weight");
  if (ctx.config.peft_type() != PeftType::MULTITASK_PROMPT_TUNING) return;
  // The whole dict is also loaded, non-strictly, into the prompt encoder.
  for (const auto& [key, tensor] : state) {
    const std::string target = fmt::format("prompt_encoder.{}.{}", ctx.adapter, key);
    if (ctx.model.state.contains(target)) copy_into_model(ctx.model, target, tensor, key);
  }
}

}  // namespace peft::methods
