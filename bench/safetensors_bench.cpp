// safetensors read and write against the machine's limits, on the three workloads
// of ../shared/bench: `lora` (80 MB, 448 BF16), `small` (20,000 tiny F32, header-bound)
// and `shard` (2.2 GB, 300 BF16). Warm page cache: every file is read once first.
//
//   build/bench/safetensors_bench --benchmark_repetitions=5 \
//       --benchmark_report_aggregates_only=true
// Compare medians within one run; the machine is noisy.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <vector>

#include "peft/safetensors.hpp"
#include "workloads.hpp"

namespace {
using peft::bench::touch;
using peft::bench::workload_file;

const char* const kWorkloads[] = {"lora", "small", "shard"};

const std::string& workload_of(const benchmark::State& state) {
  static const std::vector<std::string> names(std::begin(kWorkloads), std::end(kWorkloads));
  return names[static_cast<std::size_t>(state.range(0))];
}

void warm(const std::filesystem::path& path) {
  std::vector<char> buffer(1 << 20);
  const int fd = ::open(path.c_str(), O_RDONLY);
  while (::read(fd, buffer.data(), buffer.size()) > 0) {
  }
  ::close(fd);
}

std::filesystem::path prepared(benchmark::State& state) {
  const auto path = workload_file(workload_of(state));
  warm(path);
  state.SetLabel(workload_of(state));
  return path;
}

// Open + parse + validate the header; no tensor byte is touched.
void BM_OpenHeader(benchmark::State& state) {
  const auto path = prepared(state);
  for (auto _ : state) {
    auto file = peft::SafetensorsFile::open(path);
    benchmark::DoNotOptimize(file.size());
  }
}

// Open, then sum every tensor's bytes through the zero-copy views.
void BM_OpenReadAll(benchmark::State& state) {
  const auto path = prepared(state);
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    auto file = peft::SafetensorsFile::open(path);
    std::uint64_t sum = 0;
    for (const auto& [name, tensor] : file.state_dict()) sum += touch(tensor.bytes());
    benchmark::DoNotOptimize(sum);
    bytes += file.file_size();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// The limit: plain 1 MiB read() calls into a reused buffer, summed.
void BM_RawRead1MiB(benchmark::State& state) {
  const auto path = prepared(state);
  std::vector<std::byte> buffer(1 << 20);
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    std::uint64_t sum = 0;
    ssize_t got = 0;
    while ((got = ::read(fd, buffer.data(), buffer.size())) > 0) {
      sum += touch({buffer.data(), static_cast<std::size_t>(got)});
      bytes += static_cast<std::uint64_t>(got);
    }
    ::close(fd);
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// Write the workload from tensors already in memory (heap), atomically.
void BM_Write(benchmark::State& state) {
  const auto source = prepared(state);
  const auto tensors = peft::bench::make_workload(workload_of(state));
  const auto target = source.parent_path() / ("out-" + workload_of(state) + ".safetensors");
  const peft::Metadata metadata{{"format", "pt"}};
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove(target);
    state.ResumeTiming();
    peft::save_safetensors(tensors, target, metadata);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(std::filesystem::file_size(target)));
  std::filesystem::remove(target);
}

void write_plain(const std::filesystem::path& target, std::span<const std::byte> buffer) {
  const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::size_t done = 0;
  while (done < buffer.size()) {
    const ssize_t wrote = ::write(fd, buffer.data() + done, buffer.size() - done);
    if (wrote <= 0) break;
    done += static_cast<std::size_t>(wrote);
  }
  ::close(fd);
}

// The limit: write() of the same number of bytes from one buffer in RAM.
void BM_RawWrite(benchmark::State& state) {
  const auto source = prepared(state);
  const auto size = std::filesystem::file_size(source);
  std::vector<std::byte> buffer(size, std::byte{0x3C});
  const auto target = source.parent_path() / ("raw-" + workload_of(state));
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove(target);
    state.ResumeTiming();
    write_plain(target, buffer);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
  std::filesystem::remove(target);
}

void workload_args(benchmark::internal::Benchmark* b) {
  for (int i = 0; i < 3; ++i) b->Arg(i);
  b->Unit(benchmark::kMillisecond);
}

void workloads(benchmark::internal::Benchmark* b) {
  workload_args(b);
  b->UseRealTime();
}

// Paired: each iteration writes with save_safetensors and with plain write() of the
// same bytes, alternating which goes first, so page-cache writeback affects both alike. Reports the
// mean of each and their ratio (the headline number for writes).
void BM_WritePaired(benchmark::State& state) {
  const auto source = prepared(state);
  const auto tensors = peft::bench::make_workload(workload_of(state));
  const auto bytes = peft::serialize_safetensors(tensors, peft::Metadata{{"format", "pt"}});
  const auto ours = source.parent_path() / ("paired-ours-" + workload_of(state));
  const auto raw = source.parent_path() / ("paired-raw-" + workload_of(state));
  double ours_seconds = 0, raw_seconds = 0;
  bool ours_first = true;
  for (auto _ : state) {
    std::filesystem::remove(ours);
    std::filesystem::remove(raw);
    double ours_this = 0;
    const auto time_ours = [&] {
      const auto t0 = std::chrono::steady_clock::now();
      peft::save_safetensors(tensors, ours, peft::Metadata{{"format", "pt"}});
      ours_this = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    const auto time_raw = [&] {
      const auto t0 = std::chrono::steady_clock::now();
      write_plain(raw, bytes);
      raw_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    if (ours_first) {
      time_ours();
      time_raw();
    } else {
      time_raw();
      time_ours();
    }
    ours_first = !ours_first;
    ours_seconds += ours_this;
    state.SetIterationTime(ours_this);
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["ours_ms"] = ours_seconds / n * 1e3;
  state.counters["raw_ms"] = raw_seconds / n * 1e3;
  state.counters["ratio"] = ours_seconds / raw_seconds;
  std::filesystem::remove(ours);
  std::filesystem::remove(raw);
}

BENCHMARK(BM_OpenHeader)->Apply(workloads);
BENCHMARK(BM_OpenReadAll)->Apply(workloads);
BENCHMARK(BM_RawRead1MiB)->Apply(workloads);
BENCHMARK(BM_Write)->Apply(workloads);
BENCHMARK(BM_RawWrite)->Apply(workloads);
BENCHMARK(BM_WritePaired)->Apply(workload_args)->UseManualTime();

}  // namespace

BENCHMARK_MAIN();
