// Merging an r=16 all-linear LoRA into a synthetic 1 GB BF16 checkpoint of 4 shards (a
// Llama-shaped 0.5B model: hidden 1024, intermediate 2816, 34 layers, vocabulary 32000),
// next to the machine's limit measured in the same run: streaming the same checkpoint
// (map every shard, write it back). Inputs are generated into $BENCHDATA (default
// /tmp/peftcpp-bench) by a child process, so that this process's memory is the merge's.
//
//   merge_bench [--benchmark_repetitions=N]
//
// Counters: GB/s of base weights processed, GFLOP/s of the LoRA products (2 * out * in * r
// per adapted weight), peak anonymous RSS (RssAnon sampled every millisecond) in MB and as
// a multiple of the largest shard.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "peft/adapter_io.hpp"
#include "peft/checkpoint.hpp"
#include "peft/config.hpp"
#include "peft/safetensors.hpp"

namespace {
namespace fs = std::filesystem;
using peft::DType;
using peft::Shape;
using peft::StateDict;
using peft::Tensor;

constexpr int kLayers = 34;
constexpr std::uint64_t kHidden = 1024, kIntermediate = 2816, kVocab = 32000;
constexpr std::size_t kShards = 4;
constexpr int kRank = 16;
const char* const kTargets[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                "gate_proj", "up_proj", "down_proj"};

fs::path bench_root() {
  const char* env = std::getenv("BENCHDATA");
  return fs::path(env != nullptr && *env != '\0' ? env : "/tmp/peftcpp-bench") / "merge";
}

struct Spec {
  std::string name;
  Shape shape;
};

std::vector<Spec> model_spec() {
  std::vector<Spec> specs{{"model.embed_tokens.weight", {kVocab, kHidden}}};
  for (int i = 0; i < kLayers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    specs.push_back({p + "input_layernorm.weight", {kHidden}});
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      specs.push_back({p + "self_attn." + proj + ".weight", {kHidden, kHidden}});
    }
    specs.push_back({p + "post_attention_layernorm.weight", {kHidden}});
    specs.push_back({p + "mlp.gate_proj.weight", {kIntermediate, kHidden}});
    specs.push_back({p + "mlp.up_proj.weight", {kIntermediate, kHidden}});
    specs.push_back({p + "mlp.down_proj.weight", {kHidden, kIntermediate}});
  }
  specs.push_back({"model.norm.weight", {kHidden}});
  specs.push_back({"lm_head.weight", {kVocab, kHidden}});
  return specs;
}

bool targeted(const std::string& name) {
  for (const char* t : kTargets) {
    if (name.ends_with(std::string(t) + ".weight")) return true;
  }
  return false;
}

// Small finite values straight as bits: random BF16 in about [-0.06, 0.06].
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
      const std::uint16_t bits =
          static_cast<std::uint16_t>(((r & 1) << 15) | (0x3C00 + (r >> 1) % 0x180));
      std::memcpy(bytes.data() + i, &bits, 2);
    }
  } else {
    auto* f = reinterpret_cast<float*>(bytes.data());
    for (std::size_t i = 0; i < bytes.size() / 4; ++i) {
      f[i] = static_cast<float>(static_cast<std::int64_t>(next() % 2001) - 1000) * 1e-4f;
    }
  }
  return t;
}

void generate(const fs::path& root) {
  fs::create_directories(root / "base");
  const auto specs = model_spec();
  std::uint64_t total = 0;
  for (const auto& s : specs) total += peft::shape_numel(s.shape) * 2;
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  std::vector<std::pair<std::string, std::string>> weight_map;
  StateDict shard;
  std::size_t index = 0;
  std::uint64_t done = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    shard.set(specs[i].name, random_tensor(DType::BF16, specs[i].shape, state));
    weight_map.emplace_back(specs[i].name, peft::shard_file_name(index, kShards));
    done += peft::shape_numel(specs[i].shape) * 2;
    const bool last = i + 1 == specs.size();
    if (last || done >= total * (index + 1) / kShards) {
      peft::save_safetensors(shard, root / "base" / peft::shard_file_name(index, kShards),
                             peft::Metadata{{"format", "pt"}});
      shard.clear();
      ++index;
    }
  }
  std::ofstream(root / "base" / "model.safetensors.index.json")
      << peft::checkpoint_index_json(weight_map, total);
  std::ofstream(root / "base" / "config.json")
      << "{\n  \"model_type\": \"llama\",\n  \"tie_word_embeddings\": false,\n"
         "  \"torch_dtype\": \"bfloat16\"\n}\n";

  peft::PeftConfig config = peft::PeftConfig::make(peft::PeftType::LORA);
  config.mutable_json()["r"] = kRank;
  config.mutable_json()["lora_alpha"] = 2 * kRank;
  config.mutable_json()["target_modules"] =
      std::vector<std::string>(std::begin(kTargets), std::end(kTargets));
  StateDict lora;
  for (const auto& s : specs) {
    if (!targeted(s.name)) continue;
    const std::string module = "base_model.model." + s.name.substr(0, s.name.size() - 7);
    lora.set(module + ".lora_A.weight", random_tensor(DType::F32, {kRank, s.shape[1]}, state));
    lora.set(module + ".lora_B.weight", random_tensor(DType::F32, {s.shape[0], kRank}, state));
  }
  fs::create_directories(root / "adapter");
  config.save(root / "adapter" / "adapter_config.json");
  peft::save_safetensors(lora, root / "adapter" / "adapter_model.safetensors");
  std::ofstream(root / "ready") << "1\n";
}

// Generated once, in a child process whose allocations this process never sees.
const fs::path& inputs() {
  static const fs::path root = [] {
    const fs::path r = bench_root();
    if (!fs::exists(r / "ready")) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        generate(r);
        ::_exit(0);
      }
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    return r;
  }();
  return root;
}

std::uint64_t rss_anon() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("RssAnon:")) return std::stoull(line.substr(8)) * 1024;
  }
  return 0;
}

// Samples RssAnon every millisecond while alive.
class AnonSampler {
 public:
  AnonSampler()
      : peak_(rss_anon()), thread_([this] {
          while (!stop_) {
            peak_ = std::max<std::uint64_t>(peak_, rss_anon());
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        }) {}
  ~AnonSampler() { stop(); }
  std::uint64_t stop() {
    if (!stop_.exchange(true)) thread_.join();
    return peak_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> peak_;
  std::thread thread_;
};

struct Facts {
  peft::CheckpointLayout layout;
  std::uint64_t largest_shard = 0;
  double lora_flops = 0;
};

const Facts& facts() {
  static const Facts f = [] {
    Facts out;
    out.layout = peft::open_checkpoint((inputs() / "base").string());
    for (const auto& s : out.layout.shards)
      out.largest_shard = std::max(out.largest_shard, s.bytes);
    for (const auto& s : model_spec()) {
      if (targeted(s.name)) {
        out.lora_flops += 2.0 * static_cast<double>(s.shape[0] * s.shape[1]) * kRank;
      }
    }
    return out;
  }();
  return f;
}

void set_counters(benchmark::State& state, std::uint64_t peak_anon, double flops) {
  const double bytes =
      static_cast<double>(facts().layout.total_bytes()) * static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsRate);
  if (flops > 0) {
    state.counters["GFLOP/s"] = benchmark::Counter(
        flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  }
  state.counters["peak_anon_MB"] = static_cast<double>(peak_anon) / 1e6;
  state.counters["anon/shard"] =
      static_cast<double>(peak_anon) / static_cast<double>(facts().largest_shard);
}

// The limit: map every shard and write its tensors back (zero-copy, atomic).
void BM_StreamCopy(benchmark::State& state) {
  const Facts& f = facts();
  const fs::path out = inputs() / "out-copy";
  fs::create_directories(out);
  AnonSampler sampler;
  for (auto _ : state) {
    for (const auto& shard : f.layout.shards) {
      const auto file = peft::SafetensorsFile::open(shard.path);
      peft::save_safetensors(file.state_dict(), out / shard.file_name, file.metadata());
    }
  }
  set_counters(state, sampler.stop(), 0);
}

void BM_MergeCheckpoint(benchmark::State& state) {
  const Facts& f = facts();
  const fs::path adapter = inputs() / "adapter";
  peft::CheckpointWriteOptions write;
  write.threads = static_cast<unsigned>(state.range(0));
  write.force = true;
  AnonSampler sampler;
  for (auto _ : state) {
    // Loaded as the CLI loads it: the adapter's tensors are views of its mapped file.
    peft::MergeAdapter lora{"default",
                            peft::load_adapter_config(adapter.string()),
                            peft::load_peft_weights(adapter.string()),
                            {}};
    peft::merge_checkpoint(f.layout, {lora}, {}, inputs() / "out-merge", write);
  }
  set_counters(state, sampler.stop(), f.lora_flops);
}

BENCHMARK(BM_StreamCopy)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_MergeCheckpoint)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
