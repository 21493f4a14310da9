// formats/pipelined_writer: what is submitted reaches the file in order, buffers are reused
// only once written, and a failing write on the writing thread surfaces in the caller.
#include "formats/pipelined_writer.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <string>

#include "peft/error.hpp"
#include "test_support.hpp"

namespace peft::formats {
namespace {

std::span<const std::byte> as_bytes(const std::string& text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

TEST(PipelinedWriter, WritesEverythingInOrder) {
  testing::TempDir dir;
  const auto path = dir / "out.bin";
  std::string expected;
  const std::string pad = "--";
  std::vector<std::string> external;  // must outlive finish()
  for (int i = 0; i < 50; ++i)
    external.push_back(std::string(100 + i, static_cast<char>('a' + i % 26)));
  {
    AtomicFile file(path);
    PipelinedWriter writer(file, 64);
    for (int i = 0; i < 50; ++i) {
      // Buffers larger than the initial capacity are reallocated, smaller ones reused.
      const std::string text(static_cast<std::size_t>(10 + 37 * i),
                             static_cast<char>('A' + i % 26));
      const auto buffer = writer.buffer(text.size());
      std::memcpy(buffer.data(), text.data(), text.size());
      writer.submit(text.size(), as_bytes(pad));
      writer.submit_external(as_bytes(external[static_cast<std::size_t>(i)]), {});
      expected += text + pad + external[static_cast<std::size_t>(i)];
    }
    writer.finish();
    file.commit();
  }
  EXPECT_EQ(testing::read_text(path), expected);
}

TEST(PipelinedWriter, FailedWriteIsThrownToTheCallerAndLeavesNoFile) {
  testing::TempDir dir;
  const auto path = dir / "out.bin";
  // A file size limit makes write() fail with EFBIG (SIGXFSZ ignored) on the writing thread.
  rlimit previous{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &previous), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit limited = previous;
  limited.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  bool thrown = false;
  try {
    AtomicFile file(path);
    PipelinedWriter writer(file, 1024);
    for (int i = 0; i < 16; ++i) {
      const auto buffer = writer.buffer(1024);
      std::memset(buffer.data(), 'x', buffer.size());
      writer.submit(buffer.size(), {});
    }
    writer.finish();
    file.commit();
  } catch (const Error& e) {
    thrown = true;
    EXPECT_EQ(e.code(), ErrorCode::Io) << e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &previous);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(thrown);
  EXPECT_FALSE(std::filesystem::exists(path));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ADD_FAILURE() << "left behind: " << entry.path();
  }
}

}  // namespace
}  // namespace peft::formats
