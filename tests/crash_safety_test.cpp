// Crash-safe writes (src/formats/atomic_file.hpp), tested the hard way: a child process
// writing over an existing adapter file is SIGKILLed at random moments, and a child whose
// writes fail for lack of space (RLIMIT_FSIZE) must report it. Afterwards the target is
// always the complete old file or the complete new one, for save_safetensors,
// save_torch_file and PeftConfig::save alike.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "peft/config.hpp"
#include "peft/safetensors.hpp"
#include "peft/signals.hpp"
#include "peft/torch_file.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A state dict of `tensors` F32 tensors of `floats` elements, every value derived from
// `seed`, so that two versions differ in every tensor.
StateDict weights(int seed, std::size_t tensors, std::size_t floats) {
  StateDict out;
  for (std::size_t t = 0; t < tensors; ++t) {
    std::vector<float> values(floats);
    for (std::size_t i = 0; i < floats; ++i) {
      values[i] = static_cast<float>(seed * 1000003 + static_cast<int>(t * 7919 + i % 4093));
    }
    out.set("base_model.model.layers." + std::to_string(t) + ".lora_A.weight",
            Tensor::from_floats(DType::F32, {floats}, values));
  }
  return out;
}

std::string fmt_note(int seed, int i) {
  return "note " + std::to_string(seed) + "-" + std::to_string(i);
}

// A LoRA config made large by an unknown member (kept verbatim), so that writing it takes
// long enough to be interrupted.
PeftConfig big_config(int seed) {
  PeftConfig config = PeftConfig::make(PeftType::LORA);
  config.mutable_json()["r"] = 8 + seed;
  nlohmann::json notes = nlohmann::json::array();
  for (int i = 0; i < 200'000; ++i) notes.push_back(fmt_note(seed, i));
  config.mutable_json()["notes"] = std::move(notes);
  return config;
}

// Files next to `target` other than the target itself.
std::vector<std::string> others(const fs::path& target) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(target.parent_path())) {
    if (entry.path() != target) out.push_back(entry.path().filename().string());
  }
  return out;
}

// What the kill loop saw.
struct KillOutcomes {
  int old_file = 0;
  int new_file = 0;
  int interrupted = 0;  // the kill left a temporary file: it landed mid-write
};

// Forks `iterations` children running `write_new` (which replaces `target`) and SIGKILLs
// each after a random delay spread over the write's duration. After each, the target must
// hold exactly `old_bytes` or `new_bytes`; any other file must be a temporary of the
// target's (".<name>.tmp-..."), which is removed. `restore` puts the old file back.
KillOutcomes kill_writers(const fs::path& target, const std::function<void()>& write_new,
                          const std::function<void()>& restore,
                          const std::vector<std::byte>& old_bytes,
                          const std::vector<std::byte>& new_bytes, int iterations) {
  // How long one write takes here (sanitizers, load): the delays cover 0..120% of it.
  const auto start = Clock::now();
  write_new();
  const auto duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  restore();
  std::mt19937 rng(12345);
  std::uniform_int_distribution<long> delay(0, duration.count() * 6 / 5 + 1);
  const std::string temp_prefix = "." + target.filename().string() + ".tmp-";

  KillOutcomes out;
  for (int i = 0; i < iterations; ++i) {
    const pid_t child = ::fork();
    if (child == 0) {
      try {
        write_new();
      } catch (...) {
        ::_exit(1);
      }
      ::_exit(0);
    }
    EXPECT_GT(child, 0);
    std::this_thread::sleep_for(std::chrono::microseconds(delay(rng)));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);

    const std::vector<std::byte> now = testing::read_bytes(target);
    const bool is_old = now == old_bytes;
    const bool is_new = now == new_bytes;
    EXPECT_TRUE(is_old || is_new) << "iteration " << i << ": the target is neither the old nor "
                                  << "the new file (" << now.size() << " bytes)";
    out.old_file += is_old;
    out.new_file += is_new;
    bool interrupted = false;
    for (const auto& name : others(target)) {
      EXPECT_EQ(name.rfind(temp_prefix, 0), 0u) << "unexpected file " << name;
      fs::remove(target.parent_path() / name);
      interrupted = true;
    }
    out.interrupted += interrupted;
    if (is_new) restore();
  }
  return out;
}

std::vector<std::byte> to_bytes(const std::string& text) {
  std::vector<std::byte> out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

constexpr int kIterations = 16;

TEST(CrashSafety, KilledSafetensorsWriterLeavesOldOrNewFile) {
  testing::TempDir dir;
  const fs::path target = dir / "adapter_model.safetensors";
  const StateDict old_weights = weights(1, 8, 1 << 20);  // 32 MiB
  const StateDict new_weights = weights(2, 8, 1 << 20);
  save_safetensors(old_weights, target);
  const auto old_bytes = testing::read_bytes(target);
  const auto new_bytes = serialize_safetensors(new_weights);
  ASSERT_NE(old_bytes, new_bytes);

  const auto outcomes = kill_writers(
      target, [&] { save_safetensors(new_weights, target); },
      [&] { save_safetensors(old_weights, target); }, old_bytes, new_bytes, kIterations);
  EXPECT_EQ(outcomes.old_file + outcomes.new_file, kIterations);
  // The file that is there parses and holds the tensors of one version.
  const auto file = SafetensorsFile::open(target);
  EXPECT_TRUE(file.tensor("base_model.model.layers.3.lora_A.weight")
                  .equals(old_weights.at("base_model.model.layers.3.lora_A.weight")));
  RecordProperty("old", outcomes.old_file);
  RecordProperty("new", outcomes.new_file);
  RecordProperty("interrupted", outcomes.interrupted);
  // With delays spread over the write, some kills land mid-write.
  EXPECT_GT(outcomes.interrupted, 0) << "no kill interrupted a write: the test proves nothing";
}

TEST(CrashSafety, KilledTorchWriterLeavesOldOrNewFile) {
  testing::TempDir dir;
  const fs::path target = dir / "adapter_model.bin";
  const StateDict old_weights = weights(3, 8, 1 << 20);
  const StateDict new_weights = weights(4, 8, 1 << 20);
  save_torch_file(old_weights, target);
  const auto old_bytes = testing::read_bytes(target);
  TorchWriteOptions named;
  named.archive_name = "adapter_model";
  const auto new_bytes = serialize_torch(new_weights, named);

  const auto outcomes = kill_writers(
      target, [&] { save_torch_file(new_weights, target); },
      [&] { save_torch_file(old_weights, target); }, old_bytes, new_bytes, kIterations);
  EXPECT_EQ(outcomes.old_file + outcomes.new_file, kIterations);
  EXPECT_EQ(load_torch_file(target).size(), old_weights.size());
  EXPECT_GT(outcomes.interrupted, 0) << "no kill interrupted a write: the test proves nothing";
}

TEST(CrashSafety, KilledConfigWriterLeavesOldOrNewFile) {
  testing::TempDir dir;
  const fs::path target = dir / "adapter_config.json";
  const PeftConfig old_config = big_config(1);
  const PeftConfig new_config = big_config(2);
  old_config.save(target);
  const auto old_bytes = testing::read_bytes(target);
  const auto new_bytes = to_bytes(new_config.to_json_text());

  const auto outcomes = kill_writers(
      target, [&] { new_config.save(target); }, [&] { old_config.save(target); }, old_bytes,
      new_bytes, kIterations);
  EXPECT_EQ(outcomes.old_file + outcomes.new_file, kIterations);
  EXPECT_EQ(PeftConfig::load(target).r(), 9);
}

// Runs `write` in a child whose files may not grow beyond `limit` bytes (as on a full
// disk: write() fails with EFBIG once the limit is reached; SIGXFSZ is ignored). Returns
// what the child reported: "<error code>\n<message>", or "no error".
std::string write_with_file_size_limit(const std::function<void()>& write, rlim_t limit) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return "pipe failed";
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit small{limit, limit};
    ::setrlimit(RLIMIT_FSIZE, &small);
    std::string report = "no error";
    try {
      write();
    } catch (const Error& e) {
      report = std::string(to_string(e.code())) + "\n" + e.what();
    } catch (const std::exception& e) {
      report = std::string("other exception\n") + e.what();
    }
    const ssize_t wrote = ::write(pipe_fds[1], report.data(), report.size());
    ::_exit(wrote == static_cast<ssize_t>(report.size()) ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  std::string report;
  char buffer[4096];
  for (ssize_t got; (got = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) {
    report.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  return report;
}

void expect_clean_io_error(const std::string& report, const fs::path& target) {
  EXPECT_EQ(report.substr(0, report.find('\n')), "io") << report;
  EXPECT_NE(report.find(target.string()), std::string::npos) << report;
  EXPECT_NE(report.find("File too large"), std::string::npos) << report;
  EXPECT_NE(report.find("unchanged"), std::string::npos) << report;
  EXPECT_TRUE(others(target).empty()) << "a temporary file was left behind";
}

TEST(CrashSafety, SafetensorsWriteFailingForSpaceKeepsTheOldFile) {
  testing::TempDir dir;
  const fs::path target = dir / "adapter_model.safetensors";
  save_safetensors(weights(1, 2, 1000), target);
  const auto old_bytes = testing::read_bytes(target);
  const StateDict bigger = weights(2, 4, 1 << 16);  // 1 MiB
  const std::string report =
      write_with_file_size_limit([&] { save_safetensors(bigger, target); }, 256 << 10);
  expect_clean_io_error(report, target);
  EXPECT_EQ(testing::read_bytes(target), old_bytes);
  // The same write with room enough succeeds.
  EXPECT_EQ(write_with_file_size_limit([&] { save_safetensors(bigger, target); }, 4 << 20),
            "no error");
  EXPECT_EQ(SafetensorsFile::open(target).size(), 4u);
}

TEST(CrashSafety, TorchWriteFailingForSpaceKeepsTheOldFile) {
  testing::TempDir dir;
  const fs::path target = dir / "adapter_model.bin";
  save_torch_file(weights(1, 2, 1000), target);
  const auto old_bytes = testing::read_bytes(target);
  const StateDict bigger = weights(2, 4, 1 << 16);
  const std::string report =
      write_with_file_size_limit([&] { save_torch_file(bigger, target); }, 256 << 10);
  expect_clean_io_error(report, target);
  EXPECT_EQ(testing::read_bytes(target), old_bytes);
  EXPECT_EQ(load_torch_file(target).size(), 2u);
}

TEST(CrashSafety, ConfigWriteFailingForSpaceKeepsTheOldFile) {
  testing::TempDir dir;
  const fs::path target = dir / "adapter_config.json";
  PeftConfig::make(PeftType::LORA).save(target);
  const auto old_bytes = testing::read_bytes(target);
  const PeftConfig bigger = big_config(1);
  const std::string report = write_with_file_size_limit([&] { bigger.save(target); }, 64 << 10);
  expect_clean_io_error(report, target);
  EXPECT_EQ(testing::read_bytes(target), old_bytes);
  // A write failing at its very first byte (limit 0) is reported the same way.
  expect_clean_io_error(write_with_file_size_limit([&] { bigger.save(target); }, 0), target);
  EXPECT_EQ(testing::read_bytes(target), old_bytes);
}

// A mapped weights file truncated under the reader: with install_sigbus_handler the
// process says which file and exits 1 instead of dying of SIGBUS.
TEST(CrashSafetyDeathTest, TruncatedMappedFileIsAClearError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  testing::TempDir dir;
  StateDict weights;
  weights.set("big", Tensor::zeros(DType::F32, {1 << 16}));  // several pages
  const auto path = dir / "w.safetensors";
  save_safetensors(weights, path);
  const auto touch_after_truncation = [&] {
    install_sigbus_handler(1);
    const SafetensorsFile file = SafetensorsFile::open(path);
    const Tensor t = file.tensor("big");
    if (::truncate(path.c_str(), 0) != 0) std::_Exit(3);
    volatile std::byte sink{};
    for (std::size_t i = 0; i < t.nbytes(); i += 4096) sink = t.bytes()[i];
    (void)sink;
    std::_Exit(4);  // not reached: the first touch raises SIGBUS
  };
  EXPECT_EXIT(touch_after_truncation(), ::testing::ExitedWithCode(1),
              "w.safetensors: io: the file was truncated");
}

}  // namespace
}  // namespace peft
