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

#include "llama_checkpoint.hpp"
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

const peft::bench::LlamaShape kShape;  // issue 16: 34 layers, 1024/2816, r = 16

fs::path bench_root() {
  const char* env = std::getenv("BENCHDATA");
  return fs::path(env != nullptr && *env != '\0' ? env : "/tmp/peftcpp-bench") / "merge";
}

void generate(const fs::path& root) {
  peft::bench::write_llama_checkpoint(root, kShape);
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
    out.lora_flops = peft::bench::lora_flops(kShape);
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
