// AtomicFile::copy_from, which the streamed merge uses for unchanged tensors: the kernel
// copy (a file on the same file system), the read + write fallback (a memfd, which
// copy_file_range refuses across file systems on current kernels), and an input that ends
// early (an Io error, no target left behind).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "formats/atomic_file.hpp"
#include "peft/error.hpp"
#include "test_support.hpp"

namespace peft {
namespace {

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7) % 26);
  return s;
}

void write_fd(int fd, const std::string& bytes) {
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

void expect_copy(int in_fd, const testing::TempDir& dir, const std::string& source) {
  {
    formats::AtomicFile out(dir / "out.bin");
    out.write(std::string_view("head:"));
    out.copy_from(in_fd, 1000, 3 << 20, "input");  // crosses the 1 MiB fallback buffer
    out.write(std::string_view(":tail"));
    out.commit();
  }
  EXPECT_EQ(testing::read_text(dir / "out.bin"), "head:" + source.substr(1000, 3 << 20) + ":tail");
}

TEST(AtomicCopy, KernelCopyOfARegularFile) {
  testing::TempDir dir;
  const std::string source = pattern((3 << 20) + 5000);
  const int fd = ::open((dir / "in.bin").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  write_fd(fd, source);
  expect_copy(fd, dir, source);
  ::close(fd);
}

TEST(AtomicCopy, ReadWriteFallback) {
  testing::TempDir dir;
  const std::string source = pattern((3 << 20) + 5000);
  const int fd = ::memfd_create("atomic_copy_test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  write_fd(fd, source);
  expect_copy(fd, dir, source);
  ::close(fd);
}

TEST(AtomicCopy, InputEndingEarlyFailsCleanly) {
  testing::TempDir dir;
  const int fd = ::open((dir / "in.bin").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  write_fd(fd, pattern(100));
  {
    formats::AtomicFile out(dir / "out.bin");
    EXPECT_PEFT_ERROR(out.copy_from(fd, 50, 100, "in.bin"), ErrorCode::Io, "ended 50 bytes early");
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "out.bin"));
  ::close(fd);
}

}  // namespace
}  // namespace peft
