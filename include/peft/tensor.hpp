// peft/tensor.hpp — a dtype, a shape and a view of bytes that keeps its storage alive.
//
// A Tensor never owns its bytes directly: it holds a shared handle to whatever does
// (a heap buffer, or a memory-mapped file), so a tensor read from a file stays valid
// after the file object is gone and copying a Tensor never copies data. Bytes are
// little-endian, C-contiguous, and may be unaligned (files in the wild are); typed
// accessors copy into an aligned buffer, so callers never dereference unaligned data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "peft/dtype.hpp"
#include "peft/export.hpp"

namespace peft {

using Shape = std::vector<std::uint64_t>;

// Product of the dimensions (1 for a scalar); throws ValidationOverflow on overflow.
PEFT_API std::uint64_t shape_numel(const Shape& shape);
// Bytes taken by `numel` elements of `dtype`; throws on overflow or a sub-byte remainder.
PEFT_API std::uint64_t byte_size(DType dtype, const Shape& shape);
// "[4, 16]" — for messages.
PEFT_API std::string shape_to_string(const Shape& shape);

class PEFT_API Tensor {
 public:
  // An empty F32 tensor of shape [0].
  Tensor();

  // A view of `bytes`, kept alive by `owner`. Throws TensorInvalidInfo when the byte
  // count does not match dtype and shape.
  static Tensor view(DType dtype, Shape shape, std::span<const std::byte> bytes,
                     std::shared_ptr<const void> owner);
  // A fresh zero-filled heap tensor; its bytes may be written through mutable_bytes().
  static Tensor zeros(DType dtype, Shape shape);
  // A heap tensor holding a copy of `bytes`.
  static Tensor copy_of(DType dtype, Shape shape, std::span<const std::byte> bytes);
  // A heap tensor of `dtype` holding `values` converted as PyTorch's .to() does.
  static Tensor from_floats(DType dtype, Shape shape, std::span<const float> values);
  static Tensor from_doubles(DType dtype, Shape shape, std::span<const double> values);
  static Tensor from_ints(DType dtype, Shape shape, std::span<const std::int64_t> values);
  // A tensor with a dtype and a shape but no storage, like PyTorch's meta tensors (an
  // adapter created with low_cpu_mem_usage). Its bytes() are empty; writers refuse it.
  static Tensor meta(DType dtype, Shape shape);

  DType dtype() const noexcept { return dtype_; }
  const Shape& shape() const noexcept { return shape_; }
  std::size_t rank() const noexcept { return shape_.size(); }
  std::uint64_t numel() const noexcept { return numel_; }
  std::size_t nbytes() const noexcept { return bytes_.size(); }
  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  // Writable bytes; only for tensors made by zeros()/copy_of()/from_*() (heap storage).
  // Throws InvalidArgument for views of files.
  std::span<std::byte> mutable_bytes();
  bool is_heap() const noexcept { return writable_; }
  bool is_meta() const noexcept { return meta_; }

  // The values converted to double / float / int64 (copies; works for every
  // convertible dtype and for unaligned storage).
  std::vector<double> to_doubles() const;
  std::vector<float> to_floats() const;
  std::vector<std::int64_t> to_ints() const;

  // This tensor converted to `target` (shares storage when the dtype already matches).
  // Float to integer conversion truncates toward zero like PyTorch and throws
  // ConversionOutOfRange for NaN or values that do not fit.
  Tensor to(DType target) const;
  // A heap copy with its own storage.
  Tensor clone() const;
  // The same bytes under another shape with the same element count.
  Tensor reshaped(Shape shape) const;

  // Same dtype, shape and bytes.
  bool equals(const Tensor& other) const noexcept;
  // True when both tensors have at least one byte in common in memory.
  bool overlaps(const Tensor& other) const noexcept;

 private:
  Tensor(DType dtype, Shape shape, std::uint64_t numel, std::span<const std::byte> bytes,
         std::shared_ptr<const void> owner, bool writable);
  static Tensor heap(DType dtype, Shape shape);

  DType dtype_;
  Shape shape_;
  std::uint64_t numel_;
  std::span<const std::byte> bytes_;
  std::shared_ptr<const void> owner_;
  bool writable_;
  bool meta_ = false;
};

}  // namespace peft
