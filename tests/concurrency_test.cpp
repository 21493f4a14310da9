// Concurrent readers: many threads reading tensors from one opened file, and readers
// holding a mapping (or opening the file again and again) while another process keeps
// replacing it atomically. Run under the sanitizer build too (.ci/run).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;

constexpr std::size_t kTensors = 32;
constexpr std::size_t kFloats = 4096;

std::string name_of(std::size_t t) {
  return "base_model.model.layers." + std::to_string(t) + ".lora_B.weight";
}

// Version `v` of the weights: value i of tensor t is v * 1e6 + t * 1e4 + i % 1000.
float value_of(int v, std::size_t t, std::size_t i) {
  return static_cast<float>(v * 1'000'000 + static_cast<int>(t) * 10'000 +
                            static_cast<int>(i % 1000));
}

StateDict version(int v) {
  StateDict out;
  for (std::size_t t = 0; t < kTensors; ++t) {
    std::vector<float> values(kFloats);
    for (std::size_t i = 0; i < kFloats; ++i) values[i] = value_of(v, t, i);
    out.set(name_of(t), Tensor::from_floats(DType::F32, {kFloats}, values));
  }
  return out;
}

// The version every value of `tensor` (tensor number t) belongs to, or -1 for a mix.
int version_of(const Tensor& tensor, std::size_t t) {
  const std::vector<float> values = tensor.to_floats();
  if (values.size() != kFloats) return -1;
  const int v = static_cast<int>(values[0] / 1'000'000);
  for (std::size_t i = 0; i < kFloats; ++i) {
    if (values[i] != value_of(v, t, i)) return -1;
  }
  return v;
}

void run_threads(std::size_t count, const std::function<void(std::size_t)>& body) {
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < count; ++i) threads.emplace_back(body, i);
  for (auto& thread : threads) thread.join();
}

TEST(Concurrency, ManyThreadsReadTensorsFromOneOpenedFile) {
  testing::TempDir dir;
  const fs::path path = dir / "adapter_model.safetensors";
  save_safetensors(version(1), path);
  const SafetensorsFile file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.is_mapped());
  std::atomic<int> wrong{0};
  run_threads(8, [&](std::size_t thread) {
    for (int round = 0; round < 20; ++round) {
      // Views by name (shared mapping owner: reference counts from every thread)...
      for (std::size_t k = 0; k < kTensors; ++k) {
        const std::size_t t = (k + thread) % kTensors;
        if (version_of(file.tensor(name_of(t)), t) != 1) ++wrong;
        if (file.info(name_of(t)) == nullptr || !file.contains(name_of(t))) ++wrong;
      }
      // ...and whole state dicts.
      const StateDict all = file.state_dict();
      if (all.size() != kTensors) ++wrong;
    }
  });
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Concurrency, ManyThreadsReadOneLoadedTorchFile) {
  testing::TempDir dir;
  const fs::path path = dir / "adapter_model.bin";
  save_torch_file(version(1), path);
  const StateDict weights = load_torch_file(path);
  std::atomic<int> wrong{0};
  run_threads(8, [&](std::size_t thread) {
    for (int round = 0; round < 10; ++round) {
      for (std::size_t k = 0; k < kTensors; ++k) {
        const std::size_t t = (k * 3 + thread) % kTensors;
        const Tensor copy = weights.at(name_of(t));  // copies share the mapping
        if (version_of(copy, t) != 1) ++wrong;
      }
    }
  });
  EXPECT_EQ(wrong.load(), 0);
}

// A child process rewriting `path` `rounds` times, alternating versions 2 and 3.
pid_t start_replacer(const fs::path& path, int rounds) {
  const pid_t child = ::fork();
  if (child == 0) {
    try {
      const StateDict versions[] = {version(2), version(3)};
      for (int i = 0; i < rounds; ++i) save_safetensors(versions[i % 2], path);
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  return child;
}

TEST(Concurrency, HeldMappingKeepsTheOldDataWhileAnotherProcessReplacesTheFile) {
  testing::TempDir dir;
  const fs::path path = dir / "adapter_model.safetensors";
  save_safetensors(version(1), path);
  const SafetensorsFile held = SafetensorsFile::open(path);
  const StateDict held_weights = held.state_dict();
  ASSERT_TRUE(held.is_mapped());

  const pid_t child = start_replacer(path, 40);
  ASSERT_GT(child, 0);
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::atomic<int> opened{0};
  std::vector<std::thread> readers;
  // Readers of the held mapping: always version 1, whatever happens to the path.
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!done) {
        for (std::size_t t = 0; t < kTensors; ++t) {
          if (version_of(held_weights.at(name_of(t)), t) != 1) ++wrong;
        }
      }
    });
  }
  // Readers opening the path afresh: each open sees one complete version. Each makes at
  // least one attempt even when the replacer finishes before it is scheduled (a loaded
  // 2-core machine), so `opened` cannot stay 0 for want of a chance.
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      for (bool first = true; first || !done; first = false) {
        try {
          const SafetensorsFile now = SafetensorsFile::open(path);
          const int v = version_of(now.tensor(name_of(0)), 0);
          for (std::size_t t = 0; t < kTensors; ++t) {
            if (version_of(now.tensor(name_of(t)), t) != v || v < 1) ++wrong;
          }
          ++opened;
        } catch (const Error& e) {
          ADD_FAILURE() << "opening during a replacement failed: " << e.what();
          ++wrong;
        }
      }
    });
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  done = true;
  for (auto& reader : readers) reader.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(opened.load(), 0);
  // The held file still reads as version 1; the path now holds the last version written.
  EXPECT_EQ(version_of(held.tensor(name_of(5)), 5), 1);
  EXPECT_EQ(version_of(SafetensorsFile::open(path).tensor(name_of(5)), 5), 3);
}

TEST(Concurrency, ReadersWithoutMmapSeeOneCompleteVersionToo) {
  testing::TempDir dir;
  const fs::path path = dir / "adapter_model.safetensors";
  save_safetensors(version(1), path);
  const pid_t child = start_replacer(path, 20);
  ASSERT_GT(child, 0);
  SafetensorsReadOptions options;
  options.use_mmap = false;
  int wrong = 0;
  int status = 0;
  int reads = 0;
  while (::waitpid(child, &status, WNOHANG) == 0 || reads == 0) {
    const SafetensorsFile now = SafetensorsFile::open(path, options);
    const int v = version_of(now.tensor(name_of(kTensors - 1)), kTensors - 1);
    for (std::size_t t = 0; t < kTensors; ++t) wrong += version_of(now.tensor(name_of(t)), t) != v;
    ++reads;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(reads, 0);
}

}  // namespace
}  // namespace peft
