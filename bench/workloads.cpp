#include "workloads.hpp"

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "peft/safetensors.hpp"

namespace peft::bench {

std::vector<TensorSpec> workload_spec(const std::string& workload) {
  std::vector<TensorSpec> out;
  if (workload == "lora") {
    // A 7B Llama LoRA, r=16 on the seven projections of 32 layers.
    const std::uint64_t h = 4096, inter = 11008, r = 16;
    const std::pair<const char*, std::pair<std::uint64_t, std::uint64_t>> dims[] = {
        {"self_attn.q_proj", {h, h}}, {"self_attn.k_proj", {h, h}},  {"self_attn.v_proj", {h, h}},
        {"self_attn.o_proj", {h, h}}, {"mlp.gate_proj", {h, inter}}, {"mlp.up_proj", {h, inter}},
        {"mlp.down_proj", {inter, h}}};
    for (int layer = 0; layer < 32; ++layer) {
      for (const auto& [module, in_out] : dims) {
        const auto prefix = fmt::format("base_model.model.model.layers.{}.{}", layer, module);
        out.push_back({prefix + ".lora_A.weight", DType::BF16, {r, in_out.first}});
        out.push_back({prefix + ".lora_B.weight", DType::BF16, {in_out.second, r}});
      }
    }
  } else if (workload == "small") {
    for (int i = 0; i < 20000; ++i) {
      out.push_back({fmt::format("blocks.{}.param_{}.weight", i / 100, i % 100), DType::F32, {64}});
    }
  } else if (workload == "shard") {
    // TinyLlama geometry with q/k/v biases: 25 layers x 12 tensors, 2.2 GB of BF16.
    const std::uint64_t h = 2048, inter = 5632, kv = 256;
    for (int layer = 0; layer < 25; ++layer) {
      const auto p = fmt::format("model.layers.{}", layer);
      out.push_back({p + ".input_layernorm.weight", DType::BF16, {h}});
      out.push_back({p + ".self_attn.q_proj.weight", DType::BF16, {h, h}});
      out.push_back({p + ".self_attn.q_proj.bias", DType::BF16, {h}});
      out.push_back({p + ".self_attn.k_proj.weight", DType::BF16, {kv, h}});
      out.push_back({p + ".self_attn.k_proj.bias", DType::BF16, {kv}});
      out.push_back({p + ".self_attn.v_proj.weight", DType::BF16, {kv, h}});
      out.push_back({p + ".self_attn.v_proj.bias", DType::BF16, {kv}});
      out.push_back({p + ".self_attn.o_proj.weight", DType::BF16, {h, h}});
      out.push_back({p + ".post_attention_layernorm.weight", DType::BF16, {h}});
      out.push_back({p + ".mlp.gate_proj.weight", DType::BF16, {inter, h}});
      out.push_back({p + ".mlp.up_proj.weight", DType::BF16, {inter, h}});
      out.push_back({p + ".mlp.down_proj.weight", DType::BF16, {h, inter}});
    }
  }
  return out;
}

StateDict make_workload(const std::string& workload) {
  StateDict out;
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  for (const auto& spec : workload_spec(workload)) {
    Tensor t = Tensor::zeros(spec.dtype, spec.shape);
    auto bytes = t.mutable_bytes();
    // 16-bit patterns with a tame exponent (finite BF16 / F32 halves), xorshift.
    for (std::size_t i = 0; i + 2 <= bytes.size(); i += 2) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      const auto v = static_cast<std::uint16_t>((state & 0x807F) | 0x3C00);
      std::memcpy(bytes.data() + i, &v, 2);
    }
    out.set(spec.name, std::move(t));
  }
  return out;
}

std::filesystem::path workload_file(const std::string& workload) {
  const char* env = std::getenv("BENCHDATA");
  const std::filesystem::path folder = env != nullptr ? env : "/tmp/peftcpp-bench";
  std::filesystem::create_directories(folder);
  const auto path = folder / (workload + ".safetensors");
  if (!std::filesystem::exists(path)) {
    save_safetensors(make_workload(workload), path, Metadata{{"format", "pt"}});
  }
  return path;
}

std::uint64_t touch(std::span<const std::byte> bytes) {
  std::uint64_t sum = 0;
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    sum += word;
  }
  for (; i < bytes.size(); ++i) sum += std::to_integer<std::uint64_t>(bytes[i]);
  return sum;
}

}  // namespace peft::bench
