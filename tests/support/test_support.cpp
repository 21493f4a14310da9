#include "test_support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace peft::testing {
namespace fs = std::filesystem;

namespace {
fs::path from_env_or(const char* variable, const fs::path& fallback) {
  const char* value = std::getenv(variable);
  return value != nullptr && *value != '\0' ? fs::path(value) : fallback;
}
}  // namespace

fs::path test_data() {
  return PEFT_TEST_DATA;
}
fs::path peft_ref_root() {
  return from_env_or("PEFTCPP_FIXTURES", test_data() / "peft-ref");
}
fs::path peft_merge_root() {
  return from_env_or("PEFTCPP_MERGE_FIXTURES", test_data() / "peft-merge");
}
fs::path real_adapters_root() {
  const fs::path root =
      from_env_or("PEFTCPP_REAL_ADAPTERS", fs::path(PEFT_SHARED_FIXTURES) / "real-adapters");
  std::error_code ec;
  return fs::is_directory(root, ec) ? root : fs::path();
}
fs::path peftcpp_binary() {
  return PEFTCPP_BINARY;
}

std::vector<fs::path> find_files(const fs::path& root, const std::string& filename) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  const bool by_extension = !filename.empty() && filename[0] == '.';
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const auto name = entry.path().filename().string();
    if (by_extension ? entry.path().extension() == filename : name == filename) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::byte> read_bytes(const fs::path& path) {
  const std::string text = read_text(path);
  std::vector<std::byte> out(text.size());
  std::transform(text.begin(), text.end(), out.begin(),
                 [](char c) { return static_cast<std::byte>(c); });
  return out;
}

void write_bytes(const fs::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    path_ = fs::temp_directory_path() / ("peftcpp-test-" + std::to_string(rd()));
    if (fs::create_directory(path_)) return;
  }
  throw std::runtime_error("cannot create a temporary folder");
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

CommandResult run_command(const std::vector<std::string>& argv) {
  // stdout and stderr go to temporary files to avoid pipe deadlocks.
  TempDir dir;
  const fs::path out_path = dir / "out";
  const fs::path err_path = dir / "err";
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    std::FILE* out = std::freopen(out_path.c_str(), "w", stdout);
    std::FILE* err = std::freopen(err_path.c_str(), "w", stderr);
    std::FILE* in = std::freopen("/dev/null", "r", stdin);
    if (out == nullptr || err == nullptr || in == nullptr) ::_exit(127);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_text(out_path);
  result.err = read_text(err_path);
  return result;
}

}  // namespace peft::testing
