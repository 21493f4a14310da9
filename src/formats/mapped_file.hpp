// Read-only access to a whole file: a shared memory mapping when the kernel allows
// it, else the file read into a heap buffer. The returned handle owns the bytes.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>

namespace peft::formats {

struct FileBytes {
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> owner;  // unmaps or frees when the last user lets go
  bool mapped = false;
};

// Throws peft::Error(Io / NotFound) naming the path.
FileBytes map_file(const std::filesystem::path& path, bool allow_mmap = true);

// The path of the live mapping that holds `address`, or nullptr. Async-signal-safe (for
// a SIGBUS handler); a path longer than 511 bytes is cut.
const char* mapped_file_containing(const void* address) noexcept;

}  // namespace peft::formats
