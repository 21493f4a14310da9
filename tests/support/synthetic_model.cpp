#include "synthetic_model.hpp"

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "peft/config.hpp"
#include "peft/safetensors.hpp"

namespace peft::testing {
namespace fs = std::filesystem;

namespace {

// Deterministic values in [-scale, scale] (an LCG; quality is irrelevant here).
Tensor random_tensor(DType dtype, Shape shape, std::uint32_t& state, float scale) {
  std::vector<float> values(shape_numel(shape));
  for (float& v : values) {
    state = state * 1664525u + 1013904223u;
    v = scale * (static_cast<float>(state >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f);
  }
  return Tensor::from_floats(dtype, std::move(shape), values);
}

}  // namespace

StateDict synthetic_state(const SyntheticModel& m) {
  StateDict state;
  std::uint32_t rng = m.seed * 2654435761u + 7u;
  const auto h = m.hidden, f = m.intermediate;
  state.set("model.embed_tokens.weight", random_tensor(m.dtype, {m.vocab, h}, rng, 1.0f));
  for (int i = 0; i < m.layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    state.set(p + "input_layernorm.weight", random_tensor(m.dtype, {h}, rng, 1.0f));
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      state.set(p + "self_attn." + proj + ".weight", random_tensor(m.dtype, {h, h}, rng, 0.5f));
    }
    state.set(p + "post_attention_layernorm.weight", random_tensor(m.dtype, {h}, rng, 1.0f));
    state.set(p + "mlp.gate_proj.weight", random_tensor(m.dtype, {f, h}, rng, 0.5f));
    state.set(p + "mlp.up_proj.weight", random_tensor(m.dtype, {f, h}, rng, 0.5f));
    state.set(p + "mlp.down_proj.weight", random_tensor(m.dtype, {h, f}, rng, 0.5f));
  }
  state.set("model.norm.weight", random_tensor(m.dtype, {h}, rng, 1.0f));
  if (m.integer_buffer) {
    std::vector<std::int64_t> positions(8);
    for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<std::int64_t>(i);
    state.set("model.position_ids", Tensor::from_ints(DType::I64, {1, 8}, positions));
  }
  if (m.lm_head) state.set("lm_head.weight", random_tensor(m.dtype, {m.vocab, h}, rng, 0.5f));
  return state;
}

MergeAdapter synthetic_lora(const StateDict& base, const std::vector<std::string>& targets, int r,
                            double alpha, std::uint32_t seed, const std::string& name) {
  PeftConfig config = PeftConfig::make(PeftType::LORA);
  config.mutable_json()["r"] = r;
  config.mutable_json()["lora_alpha"] = alpha;
  config.mutable_json()["target_modules"] = targets;
  StateDict weights;
  std::uint32_t rng = seed * 40503u + 11u;
  const auto rank = static_cast<std::uint64_t>(r);
  for (const auto& [key, tensor] : base) {
    if (!key.ends_with(".weight") || tensor.rank() != 2) continue;
    const std::string module = key.substr(0, key.size() - 7);
    const bool targeted = std::any_of(targets.begin(), targets.end(), [&](const std::string& t) {
      return module == t || module.ends_with("." + t);
    });
    if (!targeted) continue;
    const std::string prefix = "base_model.model." + module;
    weights.set(prefix + ".lora_A.weight",
                random_tensor(DType::F32, {rank, tensor.shape()[1]}, rng, 0.3f));
    weights.set(prefix + ".lora_B.weight",
                random_tensor(DType::F32, {tensor.shape()[0], rank}, rng, 0.3f));
  }
  return MergeAdapter{name, std::move(config), std::move(weights), {}};
}

void save_adapter(const MergeAdapter& adapter, const fs::path& folder) {
  fs::create_directories(folder);
  adapter.config.save(folder / "adapter_config.json");
  save_safetensors(adapter.weights, folder / "adapter_model.safetensors");
}

void write_model_config(const fs::path& folder, bool tie_word_embeddings,
                        const std::string& torch_dtype) {
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"rms_norm_eps", 1e-06},
                           {"tie_word_embeddings", tie_word_embeddings},
                           {"torch_dtype", torch_dtype}};
  std::ofstream(folder / "config.json") << config.dump(2) << "\n";
}

}  // namespace peft::testing
