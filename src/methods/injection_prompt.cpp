// Injection rules of prompt learning (the prompt encoder PEFT builds next to the base
// model) and adaption prompt (the tensors of an adapted attention module).
#include <fmt/format.h>

#include "methods/injection_methods.hpp"
#include "peft/error.hpp"

namespace peft::injection {
namespace {

std::uint64_t positive(std::optional<int> value, const Context& ctx, std::string_view field) {
  if (!value || *value <= 0) {
    throw Error(ErrorCode::InvalidConfigValue, ctx.config.source(),
                fmt::format("'{}' must be a positive integer to build the prompt encoder "
                            "(PEFT fills it from the base model's config)",
                            field));
  }
  return static_cast<std::uint64_t>(*value);
}

std::uint64_t token_dim(const Context& ctx) {
  return positive(ctx.config.token_dim(), ctx, "token_dim");
}

std::uint64_t total_virtual_tokens(const Context& ctx) {
  return positive(ctx.config.num_virtual_tokens(), ctx, "num_virtual_tokens") *
         positive(ctx.config.num_transformer_submodules(), ctx, "num_transformer_submodules");
}

std::uint64_t encoder_hidden_size(const Context& ctx) {
  const std::int64_t size = ctx.config.get_int("encoder_hidden_size", 0);
  if (size <= 0) {
    throw Error(ErrorCode::InvalidConfigValue, ctx.config.source(),
                "'encoder_hidden_size' must be a positive integer for a trainable prompt encoder");
  }
  return static_cast<std::uint64_t>(size);
}

// Prompt encoders are created in float32 whatever the base model's dtype.
void encoder(StateDict& out, const Context& ctx, std::string_view name, Shape shape) {
  out.set(fmt::format("prompt_encoder.{}.{}", ctx.adapter, name),
          Tensor::zeros(DType::F32, std::move(shape)));
}

void linear(StateDict& out, const Context& ctx, std::string_view name, std::uint64_t in,
            std::uint64_t out_features) {
  encoder(out, ctx, fmt::format("{}.weight", name), {out_features, in});
  encoder(out, ctx, fmt::format("{}.bias", name), {out_features});
}

// A bidirectional torch.nn.LSTM's parameters, layer by layer, forward then reverse.
void lstm(StateDict& out, const Context& ctx, std::uint64_t input, std::uint64_t hidden) {
  const std::int64_t layers = ctx.config.get_int("encoder_num_layers", 2);
  for (std::int64_t l = 0; l < layers; ++l) {
    const std::uint64_t in = l == 0 ? input : 2 * hidden;
    for (const char* direction : {"", "_reverse"}) {
      encoder(out, ctx, fmt::format("lstm_head.weight_ih_l{}{}", l, direction), {4 * hidden, in});
      encoder(out, ctx, fmt::format("lstm_head.weight_hh_l{}{}", l, direction),
              {4 * hidden, hidden});
      encoder(out, ctx, fmt::format("lstm_head.bias_ih_l{}{}", l, direction), {4 * hidden});
      encoder(out, ctx, fmt::format("lstm_head.bias_hh_l{}{}", l, direction), {4 * hidden});
    }
  }
}

}  // namespace

// Prompt tuning: one embedding row per virtual token (PEFT starts it random, or from
// sampled or tokenised vocabulary rows: always overwritten by the load).
void prompt_tuning_slots(const Layer&, const Context& ctx, StateDict& out) {
  encoder(out, ctx, "embedding.weight", {total_virtual_tokens(ctx), token_dim(ctx)});
}

// Multitask prompt tuning: the shared prompt plus per-task low-rank factors (registered
// on the encoder itself, so before its embedding child).
void multitask_prompt_tuning_slots(const Layer&, const Context& ctx, StateDict& out) {
  const auto tasks = static_cast<std::uint64_t>(ctx.config.get_int("num_tasks", 1));
  const auto ranks = static_cast<std::uint64_t>(ctx.config.get_int("num_ranks", 1));
  const std::uint64_t tokens = total_virtual_tokens(ctx), dim = token_dim(ctx);
  encoder(out, ctx, "prefix_task_cols", {tasks, tokens, ranks});
  encoder(out, ctx, "prefix_task_rows", {tasks, ranks, dim});
  encoder(out, ctx, "embedding.weight", {tokens, dim});
}

// P-tuning: the embedding, and when trainable (not inference_mode) its reparameterisation,
// an MLP or a bidirectional LSTM followed by an MLP.
void p_tuning_slots(const Layer&, const Context& ctx, StateDict& out) {
  const std::uint64_t dim = token_dim(ctx);
  encoder(out, ctx, "embedding.weight", {total_virtual_tokens(ctx), dim});
  if (ctx.config.inference_mode()) return;
  const std::uint64_t hidden = encoder_hidden_size(ctx);
  if (ctx.config.encoder_reparameterization_type() == "LSTM") {
    lstm(out, ctx, dim, hidden);
    linear(out, ctx, "mlp_head.0", 2 * hidden, 2 * hidden);
    linear(out, ctx, "mlp_head.2", 2 * hidden, dim);
    return;
  }
  linear(out, ctx, "mlp_head.0", dim, hidden);
  linear(out, ctx, "mlp_head.2", hidden, hidden);
  linear(out, ctx, "mlp_head.4", hidden, dim);
}

// Prefix tuning: per virtual token, a key and a value for every layer; with
// prefix_projection (trainable) a token_dim embedding and the MLP that expands it.
void prefix_tuning_slots(const Layer&, const Context& ctx, StateDict& out) {
  const std::uint64_t tokens = positive(ctx.config.num_virtual_tokens(), ctx, "num_virtual_tokens");
  const std::uint64_t dim = token_dim(ctx);
  const std::uint64_t past = positive(ctx.config.num_layers(), ctx, "num_layers") * 2 * dim;
  if (ctx.config.prefix_projection() && !ctx.config.inference_mode()) {
    const std::uint64_t hidden = encoder_hidden_size(ctx);
    encoder(out, ctx, "embedding.weight", {tokens, dim});
    linear(out, ctx, "transform.0", dim, hidden);
    linear(out, ctx, "transform.2", hidden, past);
    return;
  }
  encoder(out, ctx, "embedding.weight", {tokens, past});
}

// CPT: the context embedding and its trainable delta (zeros in PEFT too).
void cpt_slots(const Layer&, const Context& ctx, StateDict& out) {
  const std::uint64_t tokens = positive(ctx.config.num_virtual_tokens(), ctx, "num_virtual_tokens");
  encoder(out, ctx, "embedding.weight", {tokens, token_dim(ctx)});
  encoder(out, ctx, "delta_embedding.weight", {tokens, token_dim(ctx)});
}

// Adaption prompt: `layer` is an attention module (tensors named relative to it). The
// prompt has the model's hidden size (the query projection's input) and the dtype of its
// projections (float32 for integer ones); the gate starts at zero.
void adaption_prompt_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  const Tensor* projection = nullptr;
  std::uint64_t hidden = 0;
  for (const auto& [name, tensor] : layer.module->params) {
    if (name == "q_proj.weight" && tensor.rank() == 2) {
      projection = &tensor;
      hidden = tensor.shape()[1];
    } else if (name == "c_attn.weight" && tensor.rank() == 2 && projection == nullptr) {
      projection = &tensor;  // GPT-2's Conv1D is [in, out]
      hidden = tensor.shape()[0];
    }
  }
  if (projection == nullptr) {
    throw Error(ErrorCode::Unsupported, layer.module->path,
                "adaption prompt adapts Llama/Mistral-style (q_proj) or GPT-2 (c_attn) "
                "attention modules; this module has neither");
  }
  const DType dtype = is_floating(projection->dtype()) ? projection->dtype() : DType::F32;
  const auto length = static_cast<std::uint64_t>(ctx.config.get_int("adapter_len", 0));
  out.set(layer.module->path + ".adaption_prompt", Tensor::zeros(dtype, {1, length, hidden}));
  out.set(layer.module->path + ".adaption_gate", Tensor::zeros(dtype, {1}));
}

}  // namespace peft::injection
