// safetensors read and write against the machine's limits, on the three workloads
// of ../shared/bench: `lora` (80 MB, 448 BF16), `small` (20,000 tiny F32, header-bound)
// and `shard` (2.2 GB, 300 BF16). Warm page cache: every file is read once first.
//
//   build/bench/safetensors_bench --benchmark_repetitions=5 \
//       --benchmark_report_aggregates_only=true
// Compare medians within one run; the machine is noisy.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>
#include <span>
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
    ::sync();  // start every write with no dirty pages pending (the peers' --prepare does the same)
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
    // 64 MiB pieces, like ../shared/bench/rawwrite.c (one 2 GB write() is much slower here).
    const std::size_t piece = std::min<std::size_t>(buffer.size() - done, std::size_t{64} << 20);
    const ssize_t wrote = ::write(fd, buffer.data() + done, piece);
    if (wrote <= 0) break;
    done += static_cast<std::size_t>(wrote);
  }
  ::close(fd);
}

// The same bytes in a 2 MiB-aligned MADV_HUGEPAGE buffer, as ../shared/bench/rawwrite.c holds them:
// the plain-write side of the paired benchmark is the machine's best case, not a slowed one (a
// 2 GB std::vector written the same way measured 2-3x slower than rawwrite.c here).
class HugePageBuffer {
 public:
  explicit HugePageBuffer(std::span<const std::byte> source) : size_(source.size()) {
    constexpr std::size_t kHuge = std::size_t{2} << 20;
    const std::size_t capacity = (size_ + kHuge - 1) / kHuge * kHuge;
    data_ = static_cast<std::byte*>(std::aligned_alloc(kHuge, std::max(capacity, kHuge)));
    if (data_ == nullptr) throw std::bad_alloc();
    ::madvise(data_, capacity, MADV_HUGEPAGE);
    std::memcpy(data_, source.data(), size_);
  }
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;
  ~HugePageBuffer() { std::free(data_); }
  operator std::span<const std::byte>() const {
    return {data_, size_};
  }  // NOLINT(google-explicit-constructor)

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// The limit: write() of the same number of bytes from one buffer in RAM.
void BM_RawWrite(benchmark::State& state) {
  const auto source = prepared(state);
  const auto size = std::filesystem::file_size(source);
  std::vector<std::byte> buffer(size, std::byte{0x3C});
  const auto target = source.parent_path() / ("raw-" + workload_of(state));
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove(target);
    ::sync();  // start every write with no dirty pages pending (the peers' --prepare does the same)
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

// Paired: each iteration writes the same bytes three ways, rotating which goes first so page-cache
// writeback and the VM's noise land on all alike: save_safetensors from the tensors, plain write()
// from one std::vector (the "plain write() of the same bytes"), and plain write() from a
// huge-page buffer (../shared/bench/rawwrite.c, the machine's best case). Each write starts with an
// untimed sync(), like the peers' `--prepare 'rm -f DST; sync'`. Reports the mean of each arm and
// ours / plain-vector, ours / huge-page.
void BM_WritePaired(benchmark::State& state) {
  const auto source = prepared(state);
  const auto tensors = peft::bench::make_workload(workload_of(state));
  const auto serialized = peft::serialize_safetensors(tensors, peft::Metadata{{"format", "pt"}});
  const HugePageBuffer huge(serialized);
  const auto target = source.parent_path() / ("paired-" + workload_of(state));
  const auto timed = [&](auto&& write) {
    std::filesystem::remove(target);
    ::sync();
    const auto t0 = std::chrono::steady_clock::now();
    write();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // One untimed round first: the first 2 GB write after building the sources pays for memory
  // reclaim (measured 4-5 s here) and would land on whichever arm happens to go first.
  peft::save_safetensors(tensors, target, peft::Metadata{{"format", "pt"}});
  write_plain(target, serialized);
  write_plain(target, huge);
  std::array<double, 3> total{};
  int rotation = 0;
  for (auto _ : state) {
    double ours_this = 0;
    for (int k = 0; k < 3; ++k) {
      const int arm = (rotation + k) % 3;
      double seconds = 0;
      if (arm == 0) {
        seconds = timed([&] {
          peft::save_safetensors(tensors, target, peft::Metadata{{"format", "pt"}});
        });
        ours_this = seconds;
      } else if (arm == 1) {
        seconds = timed([&] { write_plain(target, serialized); });
      } else {
        seconds = timed([&] { write_plain(target, huge); });
      }
      total[static_cast<std::size_t>(arm)] += seconds;
    }
    rotation = (rotation + 1) % 3;
    state.SetIterationTime(ours_this);
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["ours_ms"] = total[0] / n * 1e3;
  state.counters["raw_ms"] = total[1] / n * 1e3;
  state.counters["rawhuge_ms"] = total[2] / n * 1e3;
  state.counters["ratio"] = total[0] / total[1];
  state.counters["ratio_huge"] = total[0] / total[2];
  std::filesystem::remove(target);
}

BENCHMARK(BM_OpenHeader)->Apply(workloads);
BENCHMARK(BM_OpenReadAll)->Apply(workloads);
BENCHMARK(BM_RawRead1MiB)->Apply(workloads);
BENCHMARK(BM_Write)->Apply(workloads);
BENCHMARK(BM_RawWrite)->Apply(workloads);
BENCHMARK(BM_WritePaired)->Apply(workload_args)->UseManualTime();

}  // namespace

BENCHMARK_MAIN();
