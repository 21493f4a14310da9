#include "llama_checkpoint.hpp"

#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "peft/checkpoint.hpp"
#include "peft/config.hpp"
#include "peft/safetensors.hpp"

namespace peft::bench {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTargets[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                    "gate_proj", "up_proj", "down_proj"};

// Small finite values straight as bits: random BF16 in about [-0.06, 0.06], F32 factors in
// [-0.1, 0.1].
Tensor random_tensor(DType dtype, Shape shape, std::uint64_t& state) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  auto bytes = t.mutable_bytes();
  const auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  if (dtype == DType::BF16) {
    for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
      const auto r = next();
      const auto bits = static_cast<std::uint16_t>(((r & 1) << 15) | (0x3C00 + (r >> 1) % 0x180));
      std::memcpy(bytes.data() + i, &bits, 2);
    }
  } else {
    for (std::size_t i = 0; i + 3 < bytes.size(); i += 4) {
      const auto f = static_cast<float>(static_cast<std::int64_t>(next() % 2001) - 1000) * 1e-4f;
      std::memcpy(bytes.data() + i, &f, 4);
    }
  }
  return t;
}

}  // namespace

std::vector<WeightSpec> llama_weights(const LlamaShape& s) {
  std::vector<WeightSpec> specs{{"model.embed_tokens.weight", {s.vocab, s.hidden}}};
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    specs.push_back({p + "input_layernorm.weight", {s.hidden}});
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      specs.push_back({p + "self_attn." + proj + ".weight", {s.hidden, s.hidden}});
    }
    specs.push_back({p + "post_attention_layernorm.weight", {s.hidden}});
    specs.push_back({p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}});
    specs.push_back({p + "mlp.up_proj.weight", {s.intermediate, s.hidden}});
    specs.push_back({p + "mlp.down_proj.weight", {s.hidden, s.intermediate}});
  }
  specs.push_back({"model.norm.weight", {s.hidden}});
  specs.push_back({"lm_head.weight", {s.vocab, s.hidden}});
  return specs;
}

bool lora_targeted(const std::string& name) {
  for (const char* t : kTargets) {
    if (name.ends_with(std::string(t) + ".weight")) return true;
  }
  return false;
}

double lora_flops(const LlamaShape& shape) {
  double flops = 0;
  for (const auto& s : llama_weights(shape)) {
    if (lora_targeted(s.name)) {
      flops += 2.0 * static_cast<double>(s.shape[0] * s.shape[1]) * shape.rank;
    }
  }
  return flops;
}

void write_llama_checkpoint(const fs::path& root, const LlamaShape& shape) {
  fs::create_directories(root / "base");
  const auto specs = llama_weights(shape);
  std::uint64_t total = 0;
  for (const auto& s : specs) total += shape_numel(s.shape) * 2;
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  std::vector<std::pair<std::string, std::string>> weight_map;
  StateDict shard;
  std::size_t index = 0;
  std::uint64_t done = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    shard.set(specs[i].name, random_tensor(DType::BF16, specs[i].shape, state));
    weight_map.emplace_back(specs[i].name, shard_file_name(index, shape.shards));
    done += shape_numel(specs[i].shape) * 2;
    const bool last = i + 1 == specs.size();
    if (last || done >= total * (index + 1) / shape.shards) {
      save_safetensors(shard, root / "base" / shard_file_name(index, shape.shards),
                       Metadata{{"format", "pt"}});
      shard.clear();
      ++index;
    }
  }
  std::ofstream(root / "base" / "model.safetensors.index.json")
      << checkpoint_index_json(weight_map, total);
  std::ofstream(root / "base" / "config.json")
      << "{\n  \"model_type\": \"llama\",\n  \"tie_word_embeddings\": false,\n"
         "  \"torch_dtype\": \"bfloat16\"\n}\n";

  PeftConfig config = PeftConfig::make(PeftType::LORA);
  config.mutable_json()["r"] = shape.rank;
  config.mutable_json()["lora_alpha"] = 2 * shape.rank;
  config.mutable_json()["target_modules"] =
      std::vector<std::string>(std::begin(kTargets), std::end(kTargets));
  StateDict lora;
  const auto r = static_cast<std::uint64_t>(shape.rank);
  for (const auto& s : specs) {
    if (!lora_targeted(s.name)) continue;
    const std::string module = "base_model.model." + s.name.substr(0, s.name.size() - 7);
    lora.set(module + ".lora_A.weight", random_tensor(DType::F32, {r, s.shape[1]}, state));
    lora.set(module + ".lora_B.weight", random_tensor(DType::F32, {s.shape[0], r}, state));
  }
  fs::create_directories(root / "adapter");
  config.save(root / "adapter" / "adapter_config.json");
  save_safetensors(lora, root / "adapter" / "adapter_model.safetensors");
}

}  // namespace peft::bench
