#include "engine/weight_conversion.hpp"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "formats/atomic_file.hpp"
#include "peft/adapter_io.hpp"
#include "peft/error.hpp"

namespace peft::detail {
namespace {

// 2·x for the doubled rank and alpha, refusing values whose double does not fit.
std::int64_t doubled(std::int64_t value, const PeftConfig& config) {
  std::int64_t out = 0;
  if (__builtin_mul_overflow(value, 2, &out)) {
    throw Error(ErrorCode::InvalidConfigValue, config.source(),
                fmt::format("{} is too large to double", value));
  }
  return out;
}

bool non_empty(const nlohmann::json* field) {
  return field != nullptr && field->is_object() && !field->empty();
}

std::string init_kind(const PeftConfig& config) {
  const auto init = config.init_lora_weights();
  if (std::holds_alternative<bool>(init)) return std::get<bool>(init) ? "true" : "false";
  std::string text = std::get<std::string>(init);
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// The warning PEFT's load_adapter gives when another adapter joins a base-mutating one.
void warn_mutating_init(const PeftConfig& config, Diagnostics* warnings) {
  if (warnings == nullptr) return;
  const std::string kind = init_kind(config);
  const std::string guide = "https://github.com/huggingface/peft/tree/main/examples/";
  if (kind == "pissa") {
    report_warning(
        warnings, "mutating_init",
        "PiSSA changes the base weights of the model and should thus not be used with other "
        "adapters. Consider converting the PiSSA adapter into a normal LoRA adapter: " +
            guide + "pissa_finetuning#convert-pissa-to-lora");
  } else if (kind == "corda") {
    report_warning(
        warnings, "mutating_init",
        "CorDA changes the base weights of the model and should thus not be used with other "
        "adapters. Consider converting the CorDA adapter into a normal LoRA adapter: " +
            guide + "corda_finetuning#convert-corda-to-lora");
  } else if (kind == "olora") {
    report_warning(
        warnings, "mutating_init",
        "OLoRA changes the base weights of the model and should thus not be used with other "
        "adapters. Consider converting the OLoRA adapter into a normal LoRA adapter: " +
            guide + "olora_finetuning#olora-and-lora");
  }
}

}  // namespace

Tensor concatenate(const Tensor& a, const Tensor& b, std::size_t dim) {
  if (a.dtype() != b.dtype() || a.rank() != b.rank() || dim >= a.rank()) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("cannot join {} {} and {} {} along dimension {}", dtype_name(a.dtype()),
                            shape_to_string(a.shape()), dtype_name(b.dtype()),
                            shape_to_string(b.shape()), dim));
  }
  Shape shape = a.shape();
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (d != dim && shape[d] != b.shape()[d]) {
      throw Error(ErrorCode::ShapeMismatch, "",
                  fmt::format("cannot join {} and {} along dimension {}",
                              shape_to_string(a.shape()), shape_to_string(b.shape()), dim));
    }
  }
  shape[dim] += b.shape()[dim];
  std::uint64_t outer = 1;
  for (std::size_t d = 0; d < dim; ++d) outer *= shape[d];
  const std::size_t a_block = outer == 0 ? 0 : a.nbytes() / outer;
  const std::size_t b_block = outer == 0 ? 0 : b.nbytes() / outer;
  Tensor out = Tensor::zeros(a.dtype(), shape);
  std::byte* dst = out.mutable_bytes().data();
  for (std::uint64_t o = 0; o < outer; ++o) {
    if (a_block) std::memcpy(dst, a.bytes().data() + o * a_block, a_block);
    dst += a_block;
    if (b_block) std::memcpy(dst, b.bytes().data() + o * b_block, b_block);
    dst += b_block;
  }
  return out;
}

Tensor negate(const Tensor& x) {
  const std::size_t size = dtype_size(x.dtype());
  if (!is_floating(x.dtype()) || size == 0) {
    throw Error(ErrorCode::UnsupportedDType, "",
                fmt::format("cannot negate {}", dtype_name(x.dtype())));
  }
  Tensor out = x.clone();
  auto bytes = out.mutable_bytes();
  for (std::size_t i = size - 1; i < bytes.size(); i += size)
    bytes[i] ^= std::byte{0x80};  // little-endian sign
  return out;
}

ConvertedAdapter convert_to_plain_lora(const StateDict& trained, const PeftConfig& config,
                                       const std::filesystem::path& initial,
                                       Diagnostics* warnings) {
  if (config.peft_type() != PeftType::LORA) {
    throw Error(ErrorCode::Unsupported, config.source(),
                "path_initial_model_for_weight_conversion only converts LoRA adapters");
  }
  // 1. The initial folder's config becomes the trained config with init_lora_weights=true.
  PeftConfig initial_config = config;
  initial_config.mutable_json()["init_lora_weights"] = true;
  initial_config.save(initial / "adapter_config.json");
  // 2./3. What can be converted.
  if (config.use_rslora() &&
      (non_empty(config.find("rank_pattern")) || non_empty(config.find("alpha_pattern")))) {
    throw Error(
        ErrorCode::Unsupported, config.source(),
        "an rsLoRA adapter with rank_pattern or alpha_pattern cannot be converted to plain LoRA");
  }
  const std::string kind = init_kind(config);
  if (!(kind.starts_with("pissa") || kind.starts_with("corda") || kind.starts_with("olora") ||
        kind == "true")) {
    report_warning(warnings, "weight_conversion_ignored",
                   "`path_initial_model_for_weight_conversion` only works for converting a "
                   "PiSSA or CorDA or OLoRA adapter to a LoRA adapter");
  }
  // 4. The initial adapter, as loading it next to the trained one would give it.
  warn_mutating_init(config, warnings);
  const StateDict start = load_peft_weights(initial.string());
  // 5. [A | A0] and [B | -B0]; every other key is dropped.
  ConvertedAdapter out{StateDict{}, config};
  for (const auto& [key, tensor] : trained) {
    const bool is_a = key.find("lora_A") != std::string::npos;
    const bool is_b = !is_a && key.find("lora_B") != std::string::npos;
    if (!is_a && !is_b) continue;
    const Tensor* init = start.find(key);
    if (init == nullptr) {
      throw Error(ErrorCode::MissingKey, initial.string(),
                  fmt::format("the initial adapter has no '{}' to subtract", key));
    }
    out.weights.set(key, is_a ? concatenate(tensor, init->to(tensor.dtype()), 0)
                              : concatenate(tensor, negate(init->to(tensor.dtype())), 1));
  }
  // 6. The written config: a plain LoRA of twice the rank.
  auto& json = out.config.mutable_json();
  json["init_lora_weights"] = true;
  json["r"] = doubled(config.r(), config);
  if (config.use_rslora()) {
    json["lora_alpha"] = config.lora_alpha() * std::sqrt(2.0);
  } else {
    const auto alpha = config.find("lora_alpha");
    json["lora_alpha"] = alpha != nullptr && alpha->is_number_integer()
                             ? nlohmann::json(doubled(alpha->get<std::int64_t>(), config))
                             : nlohmann::json(config.lora_alpha() * 2);
  }
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    if (auto* values = config.find(pattern); values != nullptr && values->is_object()) {
      for (auto& [module, value] : json[pattern].items()) {
        if (value.is_number_integer()) {
          value = doubled(value.get<std::int64_t>(), config);
        } else if (value.is_number()) {
          value = value.get<double>() * 2;
        }
      }
    }
  }
  return out;
}

}  // namespace peft::detail
