// PyTorch .bin reading: peftcpp's load_torch_file against reading the same tensors
// from safetensors, on the `lora` (80 MB) and `shard` (2.2 GB) workloads written as
// torch.save-format files by peftcpp's own writer. scripts/bench_torch_load.py times
// torch.load on the same files (in-process, import excluded) for the side-by-side run:
//   build/bench/torch_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//   /usr/bin/python3 scripts/bench_torch_load.py /tmp/peftcpp-bench/lora.bin 5
#include <benchmark/benchmark.h>

#include <filesystem>

#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "workloads.hpp"

namespace {
using peft::bench::touch;

const char* const kWorkloads[] = {"lora", "shard"};

std::filesystem::path bin_file(const std::string& workload) {
  const auto safetensors = peft::bench::workload_file(workload);
  const auto bin = safetensors.parent_path() / (workload + ".bin");
  if (!std::filesystem::exists(bin)) {
    peft::save_torch_file(peft::SafetensorsFile::open(safetensors).state_dict(), bin);
  }
  return bin;
}

void read_bin(benchmark::State& state, bool verify_crc) {
  const std::string workload = kWorkloads[state.range(0)];
  const auto path = bin_file(workload);
  peft::TorchReadOptions options;
  options.verify_crc = verify_crc;
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    const peft::StateDict sd = peft::load_torch_file(path, options);
    std::uint64_t sum = 0;
    for (const auto& [name, tensor] : sd) {
      sum += touch(tensor.bytes());
      bytes += tensor.nbytes();
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.SetLabel(workload);
}

void BM_BinReadAll(benchmark::State& state) {
  read_bin(state, false);
}
void BM_BinReadAllVerifyCrc(benchmark::State& state) {
  read_bin(state, true);
}

void BM_SafetensorsReadAll(benchmark::State& state) {
  const std::string workload = kWorkloads[state.range(0)];
  const auto path = peft::bench::workload_file(workload);
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    const auto file = peft::SafetensorsFile::open(path);
    std::uint64_t sum = 0;
    for (const auto& [name, tensor] : file.state_dict()) {
      sum += touch(tensor.bytes());
      bytes += tensor.nbytes();
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.SetLabel(workload);
}

void args(benchmark::internal::Benchmark* b) {
  b->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_BinReadAll)->Apply(args);
BENCHMARK(BM_BinReadAllVerifyCrc)->Apply(args);
BENCHMARK(BM_SafetensorsReadAll)->Apply(args);

}  // namespace

BENCHMARK_MAIN();
