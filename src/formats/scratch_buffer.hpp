// A byte buffer reused from one piece of work to the next. Unlike std::vector it does not
// zero what it grows by: callers overwrite every byte before reading it, and on these VMs the
// zeroing (and the page faults it takes) cost as much as converting the bytes.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

namespace peft::formats {

class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  explicit ScratchBuffer(std::size_t capacity) { take(capacity); }

  // `n` bytes, uninitialised; valid until the next take() asks for more than the capacity.
  std::span<std::byte> take(std::size_t n) {
    if (n > capacity_) {
      data_ = std::make_unique_for_overwrite<std::byte[]>(n);
      capacity_ = n;
    }
    return {data_.get(), n};
  }

 private:
  std::unique_ptr<std::byte[]> data_;
  std::size_t capacity_ = 0;
};

}  // namespace peft::formats
