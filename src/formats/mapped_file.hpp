// Read-only access to a whole file: a shared memory mapping when the kernel allows
// it, else the file read into a heap buffer. The returned handle owns the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
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

// Copies `mapped` (a span of a live mapping made by map_file) into `into` (as large) with pread
// from the file behind it (a descriptor kept open while the mapping lives), without touching
// the mapping: on this project's VMs one pass over mapped page-cache pages costs several times
// a read() into a small reused buffer (docs/gguf.md "Performance"); false, copying nothing, when
// `mapped` is not in a registered mapping. Throws Io naming the file when a read fails or the file
// has shrunk.
bool read_mapped(std::span<const std::byte> mapped, std::span<std::byte> into);

}  // namespace peft::formats
