// The float32 fast path of a LoRA merge, in PEFT's own precision: PEFT computes the delta
// of float32 factors with a float32 matmul and adds it to the weight in float32 before the
// one rounding to the weight's dtype (docs/merge.md "Precision"). Done tile by tile so
// that the delta never exists whole: a block of rows of s·B·A is computed by sgemm into a
// per-thread buffer, added to the weight's rows and rounded straight into the output.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "peft/dtype.hpp"

namespace peft::merge {

// LoRA factors converted to float32 once, when the merge is planned.
struct FloatFactors {
  std::vector<float> a;  // [rank, cols]
  std::vector<float> b;  // [rows, rank]
  std::size_t rank = 0, rows = 0, cols = 0;
  float scaling = 1.0f;
};

// Whether fused_lora_add handles weights of this dtype (F32, BF16, F16).
bool fused_dtype(DType dtype) noexcept;

// out = round_to_dtype(float(in) + scaling * B @ A), `in` and `out` holding rows x cols
// elements of `dtype` (they may be the same buffer). Uses BLAS sgemm on the calling thread.
void fused_lora_add(DType dtype, std::span<const std::byte> in, std::span<std::byte> out,
                    const FloatFactors& factors);

// The same for the rows [first_row, first_row + n) only, `in` and `out` holding just those
// n rows. With `first_row` a multiple of fused_block_rows, each row gets the bits the
// whole-weight call gives it (the same sgemm blocks).
void fused_lora_add_rows(DType dtype, std::span<const std::byte> in, std::span<std::byte> out,
                         const FloatFactors& factors, std::size_t first_row);
std::size_t fused_block_rows(const FloatFactors& factors) noexcept;

}  // namespace peft::merge
