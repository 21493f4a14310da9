// Injection rules of the methods with one or a few small per-layer tensors: FourierFT,
// WaveFT, C3A, SHiRA, RoAd, DeLoRA, Poly, LN tuning, trainable tokens.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "methods/injection_methods.hpp"
#include "peft/error.hpp"
#include "peft/module_match.hpp"
#include "pycompat/python_regex.hpp"

namespace peft::injection {
namespace {

// FourierFT's and C3A's own pattern lookup: the first key (file order) with
// re.match(".*\.<key>$", module), else the module name itself when it is a key.
std::optional<std::string> dotted_pattern_key(const PeftConfig& config, std::string_view field,
                                              const std::string& module) {
  const std::vector<std::string> keys = config.member_keys(field);
  for (const auto& key : keys) {
    if (detail::python_regex_matches(fmt::format(R"(.*\.{}$)", key), module,
                                     detail::RegexMode::Match))
      return key;
  }
  if (std::find(keys.begin(), keys.end(), module) != keys.end()) return module;
  return std::nullopt;
}

std::uint64_t pattern_int(const PeftConfig& config, std::string_view field,
                          const std::optional<std::string>& key, std::string_view fallback) {
  if (key) return config.json().at(std::string(field)).at(*key).get<std::uint64_t>();
  return static_cast<std::uint64_t>(config.get_int(fallback, 0));
}

void check_frequencies(const Layer& layer, std::uint64_t n_frequency) {
  if (n_frequency == 0 || n_frequency > layer.in_features() * layer.out_features()) {
    throw Error(
        ErrorCode::InvalidConfigValue, layer.module->path,
        fmt::format("n_frequency {} must be in [1, in_features * out_features]", n_frequency));
  }
}

}  // namespace

// FourierFT: the trainable spectrum; its frequency indices are a plain attribute, not state.
void fourierft_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("FourierFT", {"Linear", "Conv1D"});
  const std::string& path = layer.module->path;
  const auto key = dotted_pattern_key(ctx.config, "n_frequency_pattern", path);
  const std::uint64_t n = pattern_int(ctx.config, "n_frequency_pattern", key, "n_frequency");
  check_frequencies(layer, n);
  put(out, layer, ctx, "fourierft_spectrum", ctx.make.zeros(layer.weight(), {n}));
}

// WaveFT: likewise a spectrum of n_frequency wavelet coefficients.
void waveft_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("WaveFT", {"Linear", "Conv1D"});
  if (ctx.config.get_bool("proportional_parameters", false)) {
    throw Error(ErrorCode::Unsupported, ctx.config.source(),
                "WaveFT proportional_parameters (sizes spread over the whole model) is not "
                "injected yet");
  }
  const auto key = pattern_key(ctx.config, "n_frequency_pattern", layer.module->path);
  const std::uint64_t n = pattern_int(ctx.config, "n_frequency_pattern", key, "n_frequency");
  check_frequencies(layer, n);
  put(out, layer, ctx, "waveft_spectrum", ctx.make.zeros(layer.weight(), {n}));
}

// C3A: a circulant kernel per (output block, input block).
void c3a_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("C3A", {"Linear"});
  const auto key = dotted_pattern_key(ctx.config, "block_size_pattern", layer.module->path);
  const std::uint64_t block = pattern_int(ctx.config, "block_size_pattern", key, "block_size");
  const std::uint64_t in = layer.in_features(), out_features = layer.out_features();
  if (block == 0 || in % block != 0 || out_features % block != 0) {
    throw Error(ErrorCode::InvalidConfigValue, layer.module->path,
                fmt::format("block_size {} must divide {} and {}", block, in, out_features));
  }
  put(out, layer, ctx, "c3a_kernel",
      ctx.make.zeros(layer.weight(), {out_features / block, in / block, block}));
}

// SHiRA: r * (in + out) sparse values; the mask's indices are a plain attribute.
void shira_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("SHiRA", {"Linear"});
  const auto r = static_cast<std::uint64_t>(ctx.config.r());
  const std::uint64_t in = layer.in_features(), out_features = layer.out_features();
  const std::uint64_t count = r * (in + out_features);
  if (count > in * out_features) {
    throw Error(ErrorCode::InvalidConfigValue, layer.module->path,
                fmt::format("r {} gives more SHiRA values than the layer has weights", r));
  }
  put(out, layer, ctx, "shira_weight", ctx.make.zeros(layer.weight(), {count}));
}

// RoAd: rotation angles and scales, sized by the variant.
void road_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("RoAd", {"Linear"});
  const std::uint64_t out_features = layer.out_features();
  const auto group = static_cast<std::uint64_t>(ctx.config.get_int("group_size", 64));
  if (group == 0 || out_features % group != 0) {
    throw Error(ErrorCode::InvalidConfigValue, layer.module->path,
                fmt::format("out_features {} must divide by group_size {}", out_features, group));
  }
  const std::string variant = ctx.config.get_string("variant").value_or("road_1");
  std::uint64_t size = 0;
  if (variant == "road_1") size = out_features / 2;
  if (variant == "road_2") size = out_features;
  if (variant == "road_4") size = out_features * 2;
  if (size == 0) {
    throw Error(ErrorCode::InvalidConfigValue, ctx.config.source(),
                fmt::format("unknown RoAd variant '{}'", variant));
  }
  put(out, layer, ctx, "road_theta", ctx.make.zeros(layer.weight(), {size}));
  put(out, layer, ctx, "road_alpha", ctx.make.zeros(layer.weight(), {size}));
}

// DeLoRA: A, B, the norm bound lambda, and the frozen per-input-column norms of the base
// weight (saved with the adapter, computed here as PEFT does).
void delora_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("DeLoRA", {"Linear"});
  const Tensor& weight = layer.weight();
  const auto r = static_cast<std::uint64_t>(rank_for(ctx.config, layer.module->path));
  const std::uint64_t in = layer.in_features(), out_features = layer.out_features();
  const auto lambda_key = pattern_key(ctx.config, "lambda_pattern", layer.module->path);
  const double lambda = lambda_key
                            ? ctx.config.json().at("lambda_pattern").at(*lambda_key).get<double>()
                            : ctx.config.get_double("delora_lambda", 15.0);
  const std::vector<double> w = weight.to_doubles();
  std::vector<float> norms(in);
  for (std::uint64_t col = 0; col < in; ++col) {
    double sum = 0;
    for (std::uint64_t row = 0; row < out_features; ++row)
      sum += w[row * in + col] * w[row * in + col];
    norms[col] = static_cast<float>(std::sqrt(sum));
  }
  put(out, layer, ctx, "delora_A", ctx.make.zeros(weight, {r, in}));
  put(out, layer, ctx, "delora_B", ctx.make.zeros(weight, {out_features, r}));
  put(out, layer, ctx, "delora_lambda", ctx.make.filled(weight, {1}, static_cast<float>(lambda)));
  put(out, layer, ctx, "delora_w_norm", ctx.make.from_floats(weight, {in}, norms));
}

// Poly: the task router's logits, then skill-wise LoRA factors per split.
void poly_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("Poly", {"Linear"});
  const PeftConfig& config = ctx.config;
  if (config.get_string("poly_type").value_or("poly") != "poly") {
    throw Error(ErrorCode::InvalidConfigValue, config.source(), "poly_type must be 'poly'");
  }
  const Tensor& weight = layer.weight();
  const auto r = static_cast<std::uint64_t>(config.r());
  const auto tasks = static_cast<std::uint64_t>(config.get_int("n_tasks", 1));
  const auto skills = static_cast<std::uint64_t>(config.get_int("n_skills", 4));
  const auto splits = static_cast<std::uint64_t>(config.get_int("n_splits", 1));
  put(out, layer, ctx, "poly_router", ctx.make.zeros(weight, {tasks, splits * skills}),
      ".module_logits");
  put(out, layer, ctx, "poly_lora_A",
      ctx.make.zeros(weight, {splits, skills, layer.in_features() / splits, r}));
  put(out, layer, ctx, "poly_lora_B",
      ctx.make.zeros(weight, {splits, skills, r, layer.out_features() / splits}));
}

// LN tuning: a deep copy of the whole module (any class), half precision upcast.
void ln_tuning_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  for (const auto& [name, tensor] : layer.module->params) {
    const DType dtype = is_floating(tensor.dtype()) ? ctx.make.dtype(tensor) : tensor.dtype();
    put(out, layer, ctx, "ln_tuning_layers", tensor.to(dtype).clone(), "." + name);
  }
}

// Trainable tokens: the rows of the chosen tokens, copied from the embedding (PEFT's
// init_weights=True starts from them and replaces, not adds, on merge). Its
// trainable_tokens_original copy is a non-persistent buffer, not state.
Tensor token_rows(const Layer& layer, const Context& ctx, const std::vector<std::int64_t>& tokens) {
  const Tensor& weight = layer.weight();
  const auto rows = static_cast<std::uint64_t>(weight.shape().at(0));
  const std::uint64_t width = weight.numel() / std::max<std::uint64_t>(rows, 1);
  std::vector<double> values;
  values.reserve(tokens.size() * width);
  const auto all = weight.to_doubles();
  for (const std::int64_t token : tokens) {
    if (token < 0 || static_cast<std::uint64_t>(token) >= rows) {
      throw Error(ErrorCode::InvalidConfigValue, ctx.config.source(),
                  fmt::format("token indices: token {} is outside {}'s {} rows", token,
                              layer.module->path, rows));
    }
    const auto first = all.begin() + static_cast<std::ptrdiff_t>(token * width);
    values.insert(values.end(), first, first + static_cast<std::ptrdiff_t>(width));
  }
  return Tensor::from_doubles(ctx.make.dtype(weight),
                              {static_cast<std::uint64_t>(tokens.size()), width}, values);
}

void trainable_tokens_slots(const Layer& layer, const Context& ctx, StateDict& out) {
  layer.require("trainable tokens", {"Embedding", "Linear"});
  put(out, layer, ctx, "trainable_tokens_delta",
      token_rows(layer, ctx, ctx.config.token_indices()));
}

}  // namespace peft::injection
