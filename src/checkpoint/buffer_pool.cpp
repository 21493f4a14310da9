#include "checkpoint/buffer_pool.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft::detail {
namespace {

// Buffers are whole 2 MiB huge pages where the kernel allows it (transparent huge pages in
// "madvise" mode): 512 times fewer first-touch faults.
constexpr std::size_t kHugePage = std::size_t{2} << 20;

}  // namespace

BufferPool::~BufferPool() {
  for (const Buffer& b : free_) free_buffer(b);
}

BufferPool::Buffer BufferPool::allocate(std::size_t bytes) {
  const std::size_t size = std::max(kHugePage, (bytes + kHugePage - 1) / kHugePage * kHugePage);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    throw Error(ErrorCode::Io, "",
                fmt::format("cannot allocate a {} byte buffer: {}", size, std::strerror(errno)));
  }
  ::madvise(p, size, MADV_HUGEPAGE);  // a hint; failure only costs speed
  return Buffer{static_cast<std::byte*>(p), size};
}

void BufferPool::free_buffer(Buffer buffer) {
  if (buffer.data != nullptr) ::munmap(buffer.data, buffer.capacity);
}

void BufferPool::release(Buffer buffer) {
  const std::lock_guard lock(mutex_);
  free_.push_back(buffer);
}

BufferPool::Lease BufferPool::acquire(DType dtype, const Shape& shape) {
  const std::size_t bytes = byte_size(dtype, shape);
  Buffer buffer;
  {
    const std::lock_guard lock(mutex_);
    // The smallest free buffer that fits; else the largest, which is grown.
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      const bool fits = it->capacity >= bytes;
      if (best == free_.end() ||
          (fits && (best->capacity < bytes || it->capacity < best->capacity)) ||
          (!fits && best->capacity < bytes && it->capacity > best->capacity)) {
        best = it;
      }
    }
    if (best != free_.end()) {
      buffer = *best;
      free_.erase(best);
    }
  }
  if (buffer.capacity < bytes) {
    free_buffer(buffer);
    buffer = allocate(bytes);
  }
  const std::span<std::byte> span(buffer.data, bytes);
  // The owner hands the buffer back (or frees it when the pool is gone) once the last
  // Tensor viewing it is released.
  std::weak_ptr<BufferPool> pool = weak_from_this();
  std::shared_ptr<const void> owner(buffer.data, [pool, buffer](const void*) {
    if (const auto p = pool.lock()) {
      p->release(buffer);
    } else {
      free_buffer(buffer);
    }
  });
  return Lease{Tensor::view(dtype, shape, span, std::move(owner)), span};
}

}  // namespace peft::detail
