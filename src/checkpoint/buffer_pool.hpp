// Output buffers of the streamed merge, reused from tensor to tensor: on this kind of
// machine the first-touch page faults of a fresh buffer per tensor (and the munmap that
// frees it) cost more than the arithmetic. A buffer goes back to the pool when the last
// Tensor viewing it is released (after the writer wrote it).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "peft/tensor.hpp"

namespace peft::detail {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  static std::shared_ptr<BufferPool> create() {
    return std::shared_ptr<BufferPool>(new BufferPool);
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  struct Lease {
    Tensor tensor;               // a view of the buffer; keeps it out of the pool
    std::span<std::byte> bytes;  // the same bytes, to be written before `tensor` is used
  };
  // A buffer for a tensor of `dtype` and `shape`. At most as many buffers exist as leases
  // were alive at once; each keeps the largest size asked of it.
  Lease acquire(DType dtype, const Shape& shape);

 private:
  struct Buffer {
    std::byte* data = nullptr;
    std::size_t capacity = 0;
  };
  BufferPool() = default;
  void release(Buffer buffer);
  static Buffer allocate(std::size_t bytes);
  static void free_buffer(Buffer buffer);

  std::mutex mutex_;
  std::vector<Buffer> free_;
};

}  // namespace peft::detail
